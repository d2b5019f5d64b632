//! Recognising the kubelet's pod and container cgroup segments below a configured root.
//!
//! Layouts accepted (`<uid>` dashed for cgroupfs, underscore-escaped for systemd, `<id>` 64
//! lowercase hex):
//! - cgroupfs: `<root>/[besteffort|burstable/]pod<uid>/<container>[/…]`
//! - systemd:  `<root>/[<p>-<qos>.slice/]<p>[-<qos>]-pod<uid>.slice/<container>[/…]`, and the
//!   single-segment form `<p>[-<qos>]-pod<uid>.slice:<runtime>:<id>` some containerd setups
//!   produce.
//!
//! `<container>` is `<id>`, `crio-<id>`, `cri-containerd-<id>.scope`, `crio-<id>.scope` or
//! `docker-<id>.scope`. Segments below the container (a runtime subgroup, or cgroups the
//! container made in its own delegated subtree) are allowed, but none of them may look like
//! another pod or container: one path names at most one of each.

use super::error::CgroupError;
use super::roots::{CgroupRoot, Driver};
use crate::kube::{ContainerId, ContainerRuntime, PodContainer, PodUid, is_container_id};

/// The QoS classes that get their own cgroup level; guaranteed pods sit directly under the
/// root.
const QOS_CLASSES: [&str; 2] = ["besteffort", "burstable"];

/// Reads pod UID and container ID from `rest`, the path segments below `root`.
pub(crate) fn locate(
    root: &CgroupRoot,
    rest: &[&str],
    line: usize,
) -> Result<PodContainer, CgroupError> {
    match root.driver() {
        Driver::Cgroupfs => locate_cgroupfs(rest, line),
        Driver::Systemd { prefix } => locate_systemd(prefix, rest, line),
    }
}

fn locate_cgroupfs(rest: &[&str], line: usize) -> Result<PodContainer, CgroupError> {
    let at = usize::from(rest.first().is_some_and(|s| QOS_CLASSES.contains(s)));
    let pod_seg = rest.get(at).ok_or(CgroupError::UnexpectedLayout { line })?;
    let raw = pod_seg
        .strip_prefix("pod")
        .ok_or(CgroupError::UnexpectedLayout { line })?;
    let pod_uid = pod_uid(raw, '-', line)?;
    container_below(pod_uid, &rest[at + 1..], line)
}

fn locate_systemd(prefix: &str, rest: &[&str], line: usize) -> Result<PodContainer, CgroupError> {
    let qos = rest.first().and_then(|first| {
        let class = first
            .strip_prefix(prefix)
            .and_then(|s| s.strip_prefix('-'))
            .and_then(|s| s.strip_suffix(".slice"))?;
        QOS_CLASSES.into_iter().find(|q| *q == class)
    });
    let at = usize::from(qos.is_some());
    let pod_seg = rest.get(at).ok_or(CgroupError::UnexpectedLayout { line })?;
    let (slice, inline_container) = match pod_seg.split_once(':') {
        Some((slice, tail)) => (slice, Some(tail)),
        None => (*pod_seg, None),
    };
    let expected = match qos {
        Some(q) => format!("{prefix}-{q}-pod"),
        None => format!("{prefix}-pod"),
    };
    let raw = slice
        .strip_prefix(expected.as_str())
        .and_then(|s| s.strip_suffix(".slice"))
        .ok_or(CgroupError::UnexpectedLayout { line })?;
    let pod_uid = pod_uid(raw, '_', line)?;
    let below = &rest[at + 1..];
    let Some(tail) = inline_container else {
        return container_below(pod_uid, below, line);
    };
    let unrecognised = || CgroupError::UnrecognisedContainer {
        line,
        segment: (*pod_seg).to_owned(),
    };
    let (runtime, id) = tail.split_once(':').ok_or_else(unrecognised)?;
    let runtime = match runtime {
        "cri-containerd" => ContainerRuntime::Containerd,
        "crio" => ContainerRuntime::CriO,
        "docker" => ContainerRuntime::Docker,
        _ => return Err(unrecognised()),
    };
    let container_id = id.parse::<ContainerId>().map_err(|_| unrecognised())?;
    reject_nested(below, line)?;
    Ok(PodContainer {
        pod_uid,
        container_id,
        runtime,
    })
}

/// The pod UID from the text after `pod`; `escape` is the separator the driver uses between
/// UUID groups (`-` for cgroupfs, `_` for systemd, which reserves `-` for slice nesting).
fn pod_uid(raw: &str, escape: char, line: usize) -> Result<PodUid, CgroupError> {
    // The kubelet names static pods by a 32-hex hash of their manifest. The API server's
    // mirror pod has a different UID, so such a pod can never be matched: refuse it by name.
    if raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CgroupError::StaticPodUid { line });
    }
    let other = if escape == '-' { '_' } else { '-' };
    if raw.contains(other) {
        return Err(CgroupError::InvalidPodUid { line });
    }
    raw.replace(escape, "-")
        .parse::<PodUid>()
        .map_err(|_| CgroupError::InvalidPodUid { line })
}

/// The container segment directly below the pod segment, then anything beneath it.
fn container_below(
    pod_uid: PodUid,
    below: &[&str],
    line: usize,
) -> Result<PodContainer, CgroupError> {
    let Some((seg, deeper)) = below.split_first() else {
        return Err(CgroupError::NoContainer { line, pod_uid });
    };
    let Some((container_id, runtime)) = container(seg) else {
        if looks_like_pod(seg) {
            return Err(CgroupError::NestedSegments { line });
        }
        return Err(CgroupError::UnrecognisedContainer {
            line,
            segment: (*seg).to_owned(),
        });
    };
    reject_nested(deeper, line)?;
    Ok(PodContainer {
        pod_uid,
        container_id,
        runtime,
    })
}

fn reject_nested(segments: &[&str], line: usize) -> Result<(), CgroupError> {
    if segments.iter().any(|s| looks_kubernetes(s)) {
        return Err(CgroupError::NestedSegments { line });
    }
    Ok(())
}

/// A container segment in any of the forms the runtimes produce.
fn container(seg: &str) -> Option<(ContainerId, ContainerRuntime)> {
    let (id, runtime) = if let Some(scope) = seg.strip_suffix(".scope") {
        [
            ("cri-containerd-", ContainerRuntime::Containerd),
            ("crio-", ContainerRuntime::CriO),
            ("docker-", ContainerRuntime::Docker),
        ]
        .into_iter()
        .find_map(|(prefix, rt)| scope.strip_prefix(prefix).map(|id| (id, rt)))?
    } else if let Some(id) = seg.strip_prefix("crio-") {
        (id, ContainerRuntime::CriO)
    } else {
        (seg, ContainerRuntime::Unnamed)
    };
    if !is_container_id(id) {
        return None;
    }
    Some((id.parse().ok()?, runtime))
}

/// Whether a segment outside (or nested below) the expected layout carries something that
/// looks like a pod or container name. Such a path is refused rather than ignored, so a forged
/// subtree is reported instead of silently skipped.
pub(crate) fn looks_kubernetes(seg: &str) -> bool {
    looks_like_pod(seg) || longest_hex_run(seg) >= 64
}

fn looks_like_pod(seg: &str) -> bool {
    if seg.contains("kubepods") {
        return true;
    }
    seg.match_indices("pod").any(|(i, _)| {
        if i != 0 && !seg[..i].ends_with('-') {
            return false;
        }
        let tail = &seg[i + 3..];
        let tail = tail.split(':').next().unwrap_or(tail);
        let tail = tail.strip_suffix(".slice").unwrap_or(tail);
        (32..=36).contains(&tail.len())
            && tail
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_')
    })
}

fn longest_hex_run(seg: &str) -> usize {
    seg.split(|c: char| !c.is_ascii_hexdigit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}
