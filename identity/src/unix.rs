//! The facts of a unix caller and the selectors they satisfy (docs/architecture.md,
//! "Factors": `evidence` and `policy`).
//!
//! The agent reads them from the kernel and sends them as `UnixEvidence`; the server matches
//! entries on the same facts as reported by the attested agent. [`UnixFacts::selectors`] is
//! the one function from the facts to selectors on both sides.

use std::collections::BTreeSet;

use crate::selector::Selector;

/// What the kernel says about a unix caller.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnixFacts {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Supplementary groups.
    pub supplementary_gids: Vec<u32>,
    /// Absolute path of the executable; empty when it is not UTF-8.
    pub path: String,
    /// SHA-256 of the executable, lowercase hex.
    pub sha256: String,
}

impl UnixFacts {
    /// Every selector these facts satisfy. A path or digest that is not a valid selector
    /// value (empty, relative) yields none, so no entry can match on it.
    pub fn selectors(&self) -> BTreeSet<Selector> {
        let mut s = BTreeSet::from([Selector::unix_uid(self.uid), Selector::unix_gid(self.gid)]);
        s.extend(
            self.supplementary_gids
                .iter()
                .copied()
                .map(Selector::unix_gid),
        );
        s.extend(Selector::unix_path(&self.path).ok());
        s.extend(Selector::unix_sha256(&self.sha256).ok());
        s
    }
}

#[cfg(feature = "proto")]
mod proto {
    use sworn_proto::agent as pb;

    use super::UnixFacts;

    impl From<UnixFacts> for pb::UnixEvidence {
        fn from(f: UnixFacts) -> Self {
            pb::UnixEvidence {
                uid: f.uid,
                gid: f.gid,
                path: f.path,
                sha256: f.sha256,
                supplementary_gids: f.supplementary_gids,
            }
        }
    }

    impl From<pb::UnixEvidence> for UnixFacts {
        fn from(e: pb::UnixEvidence) -> Self {
            UnixFacts {
                uid: e.uid,
                gid: e.gid,
                supplementary_gids: e.supplementary_gids,
                path: e.path,
                sha256: e.sha256,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_of_unix_facts() {
        let f = UnixFacts {
            uid: 1000,
            gid: 100,
            supplementary_gids: vec![27, 100],
            path: "/usr/bin/app".into(),
            sha256: "a".repeat(64),
        };
        let got: Vec<String> = f.selectors().iter().map(ToString::to_string).collect();
        let mut want = vec![
            "unix:uid:1000".to_owned(),
            "unix:gid:100".to_owned(),
            "unix:gid:27".to_owned(),
            "unix:path:/usr/bin/app".to_owned(),
            format!("unix:sha256:{}", "a".repeat(64)),
        ];
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want);
    }

    #[test]
    fn an_unusable_path_or_digest_gives_no_selector() {
        let f = UnixFacts {
            uid: 0,
            gid: 0,
            supplementary_gids: vec![],
            path: String::new(),
            sha256: "XYZ".into(),
        };
        let got: Vec<String> = f.selectors().iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 2, "{got:?}");
    }
}
