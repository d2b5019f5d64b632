//! The configured cgroup roots under which pod cgroups may sit (docs/architecture.md, "Workload attestation", W1 anchoring).
//!
//! Invariant: a [`CgroupRoot`] is an absolute cgroup path of named segments only (no `.`,
//! `..`, empty segments, `:` or control characters), so anchoring compares plain segment
//! lists. A root whose last segment ends in `.slice` uses the systemd driver's naming
//! (`kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice`); any other
//! root uses the cgroupfs driver's (`kubepods/besteffort/pod<uid>`).

use std::fmt;
use std::str::FromStr;

/// Why a configured cgroup root was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CgroupRootError {
    /// The root does not start with `/`.
    #[error("cgroup root {0:?} is not absolute")]
    NotAbsolute(String),
    /// The root is `/` itself; pods never sit directly in the top cgroup.
    #[error("cgroup root must name at least one segment, not \"/\"")]
    TopLevel,
    /// The root has an empty, `.` or `..` segment (e.g. `//`, a trailing `/`, `/a/../b`).
    #[error("cgroup root {0:?} has an empty, '.' or '..' segment")]
    BadSegment(String),
    /// The root holds `:` or a control character, which never occur in kubelet cgroup names.
    #[error("cgroup root {0:?} holds ':' or a control character")]
    ForbiddenChar(String),
    /// A systemd root's last segment is just `.slice`.
    #[error("cgroup root {0:?} ends in an unnamed slice")]
    UnnamedSlice(String),
    /// No roots were given.
    #[error("no cgroup roots configured")]
    Empty,
}

/// How the kubelet names the cgroups below a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Driver {
    /// `<root>/[besteffort|burstable/]pod<uid-with-dashes>/<container>`.
    Cgroupfs,
    /// `<root>/[<p>-<qos>.slice/]<p>[-<qos>]-pod<uid_with_underscores>.slice/<container>`,
    /// where `<p>` is the root's last segment without `.slice`.
    Systemd {
        /// The slice-name prefix `<p>`.
        prefix: String,
    },
}

/// One configured cgroup root, e.g. `/kubepods`, `/kubepods.slice`, or kind's
/// `/docker/<node-container-id>/kubepods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRoot {
    segments: Vec<String>,
    driver: Driver,
}

impl CgroupRoot {
    pub(crate) fn segments(&self) -> &[String] {
        &self.segments
    }

    pub(crate) fn driver(&self) -> &Driver {
        &self.driver
    }
}

impl FromStr for CgroupRoot {
    type Err = CgroupRootError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .strip_prefix('/')
            .ok_or_else(|| CgroupRootError::NotAbsolute(s.to_owned()))?;
        if rest.is_empty() {
            return Err(CgroupRootError::TopLevel);
        }
        if s.chars().any(|c| c == ':' || c.is_control()) {
            return Err(CgroupRootError::ForbiddenChar(s.to_owned()));
        }
        let segments: Vec<String> = rest.split('/').map(str::to_owned).collect();
        if segments
            .iter()
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(CgroupRootError::BadSegment(s.to_owned()));
        }
        let last = segments.last().map(String::as_str).unwrap_or_default();
        let driver = match last.strip_suffix(".slice") {
            Some("") => return Err(CgroupRootError::UnnamedSlice(s.to_owned())),
            Some(prefix) => Driver::Systemd {
                prefix: prefix.to_owned(),
            },
            None => Driver::Cgroupfs,
        };
        Ok(Self { segments, driver })
    }
}

impl fmt::Display for CgroupRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for seg in &self.segments {
            write!(f, "/{seg}")?;
        }
        Ok(())
    }
}

/// The set of cgroup roots a pod segment may sit directly under. Never empty.
///
/// The default is `/kubepods` (cgroupfs driver) and `/kubepods.slice` (systemd driver).
/// Other prefixes, such as kind's `/docker/<id>/kubepods` or a test harness's per-run root,
/// count only when configured: anyone who may create cgroups elsewhere (a delegated
/// `user.slice` subtree, a container with writable cgroupfs) could otherwise build
/// `…/kubepods/besteffort/pod<victim>/<id>` and pass as the victim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRoots(Vec<CgroupRoot>);

impl CgroupRoots {
    /// The given roots, replacing the defaults.
    pub fn new(roots: impl IntoIterator<Item = CgroupRoot>) -> Result<Self, CgroupRootError> {
        let roots: Vec<CgroupRoot> = roots.into_iter().collect();
        if roots.is_empty() {
            return Err(CgroupRootError::Empty);
        }
        Ok(Self(roots))
    }

    /// Parses each string as a [`CgroupRoot`]; the result replaces the defaults.
    pub fn parse<S: AsRef<str>>(
        roots: impl IntoIterator<Item = S>,
    ) -> Result<Self, CgroupRootError> {
        let roots = roots
            .into_iter()
            .map(|r| r.as_ref().parse())
            .collect::<Result<Vec<CgroupRoot>, _>>()?;
        Self::new(roots)
    }

    /// The configured roots, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &CgroupRoot> {
        self.0.iter()
    }

    /// The longest configured root that is a segment-wise prefix of `path`.
    pub(crate) fn longest_prefix_of(&self, path: &[&str]) -> Option<&CgroupRoot> {
        self.0
            .iter()
            .filter(|root| {
                root.segments.len() <= path.len()
                    && root.segments.iter().zip(path).all(|(a, b)| a == b)
            })
            .max_by_key(|root| root.segments.len())
    }
}

impl Default for CgroupRoots {
    fn default() -> Self {
        Self(vec![
            CgroupRoot {
                segments: vec!["kubepods".to_owned()],
                driver: Driver::Cgroupfs,
            },
            CgroupRoot {
                segments: vec!["kubepods.slice".to_owned()],
                driver: Driver::Systemd {
                    prefix: "kubepods".to_owned(),
                },
            },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_must_be_absolute_named_paths() {
        assert!(matches!(
            "kubepods".parse::<CgroupRoot>(),
            Err(CgroupRootError::NotAbsolute(_))
        ));
        assert_eq!("/".parse::<CgroupRoot>(), Err(CgroupRootError::TopLevel));
        for bad in [
            "/a/../kubepods",
            "/a/./kubepods",
            "//kubepods",
            "/kubepods/",
            "/..",
        ] {
            assert!(
                matches!(
                    bad.parse::<CgroupRoot>(),
                    Err(CgroupRootError::BadSegment(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            "/a:b".parse::<CgroupRoot>(),
            Err(CgroupRootError::ForbiddenChar(_))
        ));
        assert!(matches!(
            "/a\nb".parse::<CgroupRoot>(),
            Err(CgroupRootError::ForbiddenChar(_))
        ));
        assert!(matches!(
            "/x/.slice".parse::<CgroupRoot>(),
            Err(CgroupRootError::UnnamedSlice(_))
        ));
        assert_eq!(
            CgroupRoots::parse(Vec::<String>::new()),
            Err(CgroupRootError::Empty)
        );
    }

    #[test]
    fn driver_follows_the_last_segment() {
        let root: CgroupRoot = "/kubelet.slice/kubelet-kubepods.slice".parse().unwrap();
        assert_eq!(
            root.driver,
            Driver::Systemd {
                prefix: "kubelet-kubepods".into()
            }
        );
        assert_eq!(root.to_string(), "/kubelet.slice/kubelet-kubepods.slice");
        let root: CgroupRoot = "/docker/abc/kubepods".parse().unwrap();
        assert_eq!(root.driver, Driver::Cgroupfs);
        assert_eq!(
            CgroupRoots::default(),
            CgroupRoots::parse(["/kubepods", "/kubepods.slice"]).unwrap()
        );
    }
}
