//! Pod status documents as a kubelet reports them (core/v1 PodStatus).
//!
//! Merge patches replace lists wholesale, so each document carries the
//! complete container status lists.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ContainerHandle, ContainerKind, PodHandle};

/// The pod fully started: init containers Completed, the rest running.
pub(super) fn running(pod: &PodHandle) -> Value {
    let now = now();
    let of = |kind| pod.containers.iter().filter(move |c| c.kind == kind);
    let inits: Vec<Value> = of(ContainerKind::Init)
        .map(|c| terminated(pod, c, &now))
        .collect();
    let regular: Vec<Value> = of(ContainerKind::Regular)
        .map(|c| running_status(pod, c, &now))
        .collect();
    let ephemeral: Vec<Value> = of(ContainerKind::Ephemeral)
        .map(|c| running_status(pod, c, &now))
        .collect();
    json!({
        "phase": "Running",
        "conditions": conditions(&now, true, true),
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "startTime": now,
        "qosClass": "BestEffort",
        "initContainerStatuses": inits,
        "containerStatuses": regular,
        "ephemeralContainerStatuses": ephemeral,
    })
}

/// Pending, with `current` (an init container) running.
pub(super) fn init_running(pod: &PodHandle, current: &str) -> Value {
    let now = now();
    let mut before = true;
    let mut inits = Vec::new();
    for c in pod
        .containers
        .iter()
        .filter(|c| c.kind == ContainerKind::Init)
    {
        if c.name == current {
            before = false;
            inits.push(running_status(pod, c, &now));
        } else if before {
            inits.push(terminated(pod, c, &now));
        } else {
            inits.push(waiting(pod, c, "PodInitializing"));
        }
    }
    let regular: Vec<Value> = pod
        .containers
        .iter()
        .filter(|c| c.kind == ContainerKind::Regular)
        .map(|c| waiting(pod, c, "PodInitializing"))
        .collect();
    json!({
        "phase": "Pending",
        "conditions": conditions(&now, false, false),
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "startTime": now,
        "qosClass": "BestEffort",
        "initContainerStatuses": inits,
        "containerStatuses": regular,
        "ephemeralContainerStatuses": [],
    })
}

fn conditions(now: &str, initialized: bool, ready: bool) -> Value {
    let s = |b: bool| if b { "True" } else { "False" };
    json!([
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": s(initialized), "lastTransitionTime": now},
        {"type": "ContainersReady", "status": s(ready), "lastTransitionTime": now},
        {"type": "Ready", "status": s(ready), "lastTransitionTime": now},
    ])
}

fn base(pod: &PodHandle, c: &ContainerHandle, ready: bool, state: Value) -> Value {
    json!({
        "name": c.name,
        "image": pod.image,
        "imageID": image_id(&pod.image),
        "containerID": c.runtime_id(),
        "ready": ready,
        "started": ready,
        "restartCount": 0,
        "state": state,
    })
}

fn running_status(pod: &PodHandle, c: &ContainerHandle, now: &str) -> Value {
    base(
        pod,
        c,
        c.kind != ContainerKind::Init,
        json!({"running": {"startedAt": now}}),
    )
}

fn terminated(pod: &PodHandle, c: &ContainerHandle, now: &str) -> Value {
    base(
        pod,
        c,
        false,
        json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now, "containerID": c.runtime_id()}}),
    )
}

fn waiting(pod: &PodHandle, c: &ContainerHandle, reason: &str) -> Value {
    json!({
        "name": c.name,
        "image": pod.image,
        "imageID": "",
        "ready": false,
        "started": false,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason}},
    })
}

/// A stable digest reference for `image` (`<repo>@sha256:<hex>`), as a runtime
/// reports after pulling.
fn image_id(image: &str) -> String {
    let repo = image
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(image, |(r, _)| r);
    format!(
        "{repo}@sha256:{}",
        hex::encode(Sha256::digest(image.as_bytes()))
    )
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
