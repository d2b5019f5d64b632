//! `/proc/<pid>/cgroup` → pod UID and container ID: the kernel factor W1 (docs/architecture.md, "Workload attestation").
//!
//! Only `/proc/<pid>/cgroup` counts; mountinfo is never read, because a process can shape its
//! own mount namespace but not the cgroup the kernel reports for it.
//!
//! Rules, in the order they are applied:
//! - Every line is `<hierarchy>:<controllers>:<path>` with a decimal hierarchy ID, empty
//!   controllers exactly for hierarchy 0 (cgroup v2), and an absolute path. Anything else makes
//!   the whole file [`CgroupError::Malformed`]: a line that cannot be read is never skipped.
//!   (The kernel refuses `\n` in cgroup names, so a name cannot smuggle in a line of its own;
//!   `tests/real_cgroup.rs` checks that on the running kernel.)
//! - A hierarchy appears once; two lines for one hierarchy are refused.
//! - Leading `..` segments (the kernel prints them for a cgroup outside the reader's cgroup
//!   namespace, e.g. `0::/../../kubepods/…`) are dropped. The kernel never prints `.` or a
//!   `..` after a named segment, so those are malformed.
//! - A path under a configured [`CgroupRoot`] must have the pod segment directly below the
//!   root (after the QoS level, if any) and a container segment directly below the pod; see
//!   the `segment` module for the accepted names.
//! - A path under no root is ignored if it names nothing that looks like a pod or container
//!   (a v1 controller the runtime did not join, the host's `0::/`), and refused otherwise
//!   (a forged `/user.slice/…/kubepods/besteffort/pod<victim>/<id>`).
//! - All lines that name a pod must name the same pod and container; at least one must.
//!
//! Paths are relative to the agent's cgroup namespace, so the agent must run in the host's
//! cgroup namespace (or the roots must be configured as the agent sees them).

mod error;
mod roots;
mod segment;

pub use error::CgroupError;
pub use roots::{CgroupRoot, CgroupRootError, CgroupRoots};

use crate::kube::PodContainer;

/// Parses the contents of `/proc/<pid>/cgroup` into the pod and container the process runs in,
/// accepting only pod cgroups anchored under `roots`.
pub fn parse_proc_cgroup(
    contents: &[u8],
    roots: &CgroupRoots,
) -> Result<PodContainer, CgroupError> {
    let text = std::str::from_utf8(contents).map_err(|_| CgroupError::Malformed {
        line: 0,
        reason: "not utf-8",
    })?;
    let body = text.strip_suffix('\n').unwrap_or(text);
    if body.is_empty() {
        return Err(CgroupError::Malformed {
            line: 0,
            reason: "empty",
        });
    }
    let mut seen: Vec<(u32, &str)> = Vec::new();
    let mut found: Option<PodContainer> = None;
    for (index, raw) in body.split('\n').enumerate() {
        let line = index + 1;
        let (hierarchy, path) = split_line(raw, line)?;
        if let Some((_, earlier)) = seen.iter().find(|(h, _)| *h == hierarchy) {
            if *earlier == path {
                return Err(malformed(line, "hierarchy listed twice"));
            }
            return Err(CgroupError::HierarchyDisagrees { hierarchy });
        }
        seen.push((hierarchy, path));
        let Some(here) = classify(path, roots, line)? else {
            continue;
        };
        match &found {
            None => found = Some(here),
            Some(first) if *first == here => {}
            Some(first) => {
                return Err(CgroupError::ConflictingIds {
                    first: Box::new(first.clone()),
                    second: Box::new(here),
                });
            }
        }
    }
    found.ok_or(CgroupError::NotInPod)
}

fn malformed(line: usize, reason: &'static str) -> CgroupError {
    CgroupError::Malformed { line, reason }
}

/// Splits `<hierarchy>:<controllers>:<path>` and checks the first two fields.
fn split_line(raw: &str, line: usize) -> Result<(u32, &str), CgroupError> {
    let mut fields = raw.splitn(3, ':');
    let (Some(id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed(line, "fewer than three fields"));
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(line, "hierarchy id is not a decimal number"));
    }
    let hierarchy: u32 = id
        .parse()
        .map_err(|_| malformed(line, "hierarchy id out of range"))?;
    if (hierarchy == 0) != controllers.is_empty() {
        return Err(malformed(
            line,
            "controllers must be empty exactly for hierarchy 0",
        ));
    }
    if !path.starts_with('/') {
        return Err(malformed(line, "path is not absolute"));
    }
    Ok((hierarchy, path))
}

/// The pod and container one path names, `None` if it names none and sits under no root.
fn classify(
    path: &str,
    roots: &CgroupRoots,
    line: usize,
) -> Result<Option<PodContainer>, CgroupError> {
    let segments = normalise(path, line)?;
    match roots.longest_prefix_of(&segments) {
        Some(root) => {
            let rest = &segments[root.segments().len()..];
            segment::locate(root, rest, line).map(Some)
        }
        None if segments.iter().any(|s| segment::looks_kubernetes(s)) => {
            Err(CgroupError::OutsideRoots {
                line,
                path: format!("/{}", segments.join("/")),
            })
        }
        None => Ok(None),
    }
}

/// The named segments of an absolute path, after dropping leading `..` segments.
fn normalise(path: &str, line: usize) -> Result<Vec<&str>, CgroupError> {
    let rest = &path[1..];
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut segments = Vec::new();
    for seg in rest.split('/') {
        match seg {
            "" => return Err(malformed(line, "empty path segment")),
            "." => return Err(malformed(line, "'.' path segment")),
            ".." if segments.is_empty() => {}
            ".." => return Err(malformed(line, "'..' after a named segment")),
            named => segments.push(named),
        }
    }
    Ok(segments)
}
