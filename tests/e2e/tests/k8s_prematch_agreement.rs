//! The entries an agent pre-matches for a pod's caller are exactly the entries the server
//! accepts, row by row (docs/architecture.md, "The calling container"): the node name set
//! or empty; `imageID` a digest, a bare digest, tag-only or missing; init, ephemeral and
//! restarted containers; a stale status of the same name; a pod being deleted.
//!
//! Each row runs the deciding code of both sides on the same pod object, in a real
//! kube-apiserver, and the same entries. The agent side is the agent's own: its watch of the
//! node's pods (`PodIndex`), W2 and W3 (`attest_pod`, the Workload API's path after the
//! kernel), and its pre-match (`entitled`) over the state the server's Sync stream sent. The
//! server side is a MintX509Svids call for every entry (and the default identity) from a
//! really attested agent, with the evidence that agent sent (or, where the agent refused,
//! the evidence it would have sent), which the server re-verifies on its own read of the pod.
//! Statuses are written through the status subresource, as a kubelet would write them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sworn_agent::SyncState;
use sworn_agent::k8s::svids::entitled;
use sworn_agent::k8s::workload::{K8sWorkloadConfig, attest_pod};
use sworn_agent::k8s::{PodChange, PodIndex};
use sworn_dev::k8s::{
    ContainerHandle, ContainerKind, ControlPlane, Kubelet, PodHandle, PodParams, container_id,
};
use sworn_e2e::k8s_env::{attested_agent, control_plane};
use sworn_e2e::{AgentCreds, TestServer, connect, key_and_csr};
use sworn_proto::admin as apb;
use sworn_proto::agent as pb;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const NODE: &str = "node-a";
const IMAGE: &str = "registry.invalid/sworn/test:1";
const STARTED: &str = "2026-01-01T00:00:00Z";
/// The digest the started containers of these pods run.
const DIGEST: &str = "sha256:5f0c9a8e7d6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a09";
/// Another image's digest, required by an entry that no row satisfies.
const OTHER_DIGEST: &str =
    "sha256:e1d2c3b4a5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

/// What a regular container with the image digest is owed.
const FULL: &[&str] = &["default", "ns", "sa", "app", "image", "node", "label"];
/// The same without an image digest.
const NO_IMAGE: &[&str] = &["default", "ns", "sa", "app", "node", "label"];
/// A running init container with the image digest.
const INIT: &[&str] = &["default", "ns", "sa", "setup", "image", "node", "label"];

/// (name, selectors, scoped to another agent). Every row's pod runs in `default` as `web`
/// with label `app=web`.
fn entries() -> Vec<(&'static str, Vec<String>, bool)> {
    let s = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        ("ns", s(&["k8s:ns:default"]), false),
        ("sa", s(&["k8s:sa:web"]), false),
        (
            "app",
            s(&["k8s:ns:default", "k8s:container-name:app"]),
            false,
        ),
        (
            "setup",
            s(&["k8s:ns:default", "k8s:container-name:setup"]),
            false,
        ),
        (
            "image",
            vec![
                "k8s:ns:default".into(),
                format!("k8s:container-image:{DIGEST}"),
            ],
            false,
        ),
        (
            "other-image",
            vec![
                "k8s:ns:default".into(),
                format!("k8s:container-image:{OTHER_DIGEST}"),
            ],
            false,
        ),
        ("node", s(&["k8s:node-name:node-a"]), false),
        ("label", s(&["k8s:pod-label:app:web"]), false),
        ("other-ns", s(&["k8s:ns:billing"]), false),
        ("elsewhere", s(&["k8s:ns:default"]), true),
    ]
}

struct Env {
    cp: ControlPlane,
    kubelet: Kubelet,
    server: TestServer,
    agent: AgentCreds,
}

async fn setup() -> Env {
    let (cp, kubelet) = control_plane().await;
    let server = TestServer::start(&TestServer::cluster_toml("dev", cp.kubeconfig_path())).await;
    let agent = attested_agent(&server, &kubelet, "agent-a", NODE).await;
    Env {
        cp,
        kubelet,
        server,
        agent,
    }
}

fn running(name: &str, id: &str, image_id: &str) -> Value {
    json!({
        "name": name, "image": IMAGE, "imageID": image_id,
        "containerID": format!("containerd://{id}"),
        "ready": true, "started": true, "restartCount": 0,
        "state": {"running": {"startedAt": STARTED}},
    })
}

fn waiting(name: &str) -> Value {
    json!({
        "name": name, "image": IMAGE, "imageID": "", "ready": false, "started": false,
        "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}},
    })
}

/// Running as instance `id` after instance `previous` exited.
fn restarted(name: &str, id: &str, previous: &str) -> Value {
    let mut s = running(name, id, &format!("registry.invalid/sworn/test@{DIGEST}"));
    s["restartCount"] = json!(1);
    s["lastState"] = json!({"terminated": {
        "exitCode": 1, "reason": "Error", "startedAt": STARTED, "finishedAt": STARTED,
        "containerID": format!("containerd://{previous}"),
    }});
    s
}

fn status(phase: &str, init: Vec<Value>, regular: Vec<Value>, ephemeral: Vec<Value>) -> Value {
    json!({
        "phase": phase, "hostIP": "127.0.0.1", "startTime": STARTED,
        "initContainerStatuses": init,
        "containerStatuses": regular,
        "ephemeralContainerStatuses": ephemeral,
    })
}

fn params(name: &str) -> PodParams {
    let mut p = PodParams::new("default", name, "web", NODE);
    p.labels.insert("app".into(), "web".into());
    p.image = IMAGE.into();
    p
}

fn id_of(pod: &PodHandle, container: &str) -> String {
    pod.container(container).unwrap().container_id.clone()
}

/// Writes `status` through the status subresource; returns the pod's new resource version.
async fn report(kubelet: &Kubelet, pod: &PodHandle, status: Value) -> String {
    Api::<Pod>::namespaced(kubelet.client().clone(), &pod.namespace)
        .patch_status(
            &pod.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

/// One row: a caller in container `caller` of `pod`, and what both sides must decide.
struct Row {
    name: &'static str,
    pod: PodHandle,
    /// The container ID in the caller's cgroup.
    caller: String,
    /// The container name the agent would report (for the evidence of a refused row).
    container: &'static str,
    /// The resource version the agent's watch must show first; `None`: never in the watch.
    version: Option<String>,
    /// Entries accepted, by name.
    want: &'static [&'static str],
    /// When nothing is accepted: the factor the agent refuses with, and the one the server
    /// denies the default identity with.
    factors: Option<(&'static str, &'static str)>,
}

impl Row {
    /// A caller in container `container` (ID `caller`) of `pod`, whose watch version is
    /// `version`, owed `want`.
    fn new(
        name: &'static str,
        pod: &PodHandle,
        caller: &str,
        container: &'static str,
        version: Option<&str>,
        want: &'static [&'static str],
    ) -> Row {
        Row {
            name,
            pod: pod.clone(),
            caller: caller.to_owned(),
            container,
            version: version.map(str::to_owned),
            want,
            factors: None,
        }
    }

    /// Owed nothing: refused by the agent with `agent`, denied by the server with `server`.
    fn refused(
        name: &'static str,
        pod: &PodHandle,
        caller: &str,
        container: &'static str,
        version: Option<&str>,
        agent: &'static str,
        server: &'static str,
    ) -> Row {
        Row {
            factors: Some((agent, server)),
            ..Row::new(name, pod, caller, container, version, &[])
        }
    }
}

/// A running pod's status with these regular container statuses.
fn running_pod(regular: Vec<Value>) -> Value {
    status("Running", vec![], regular, vec![])
}

/// Reports `status` for `pod` and writes its token where the kubelet puts it; returns the
/// pod's new resource version.
async fn start(k: &Kubelet, pod: &PodHandle, status: Value) -> String {
    let version = report(k, pod, status).await;
    k.write_tokens(pod).await.unwrap();
    version
}

async fn rows(env: &Env) -> Vec<Row> {
    let k = &env.kubelet;
    let repo_digest = format!("registry.invalid/sworn/test@{DIGEST}");
    let mut rows = Vec::new();

    // The node name set; imageID in its forms.
    for (name, image_id, want) in [
        ("regular, imageID repo@digest", repo_digest.clone(), FULL),
        ("regular, imageID bare digest", DIGEST.to_owned(), FULL),
        ("regular, imageID tag-only", IMAGE.to_owned(), NO_IMAGE),
        ("regular, imageID missing", String::new(), NO_IMAGE),
    ] {
        let pod = k
            .create_pod_object(&params(&format!("img-{}", rows.len())))
            .await
            .unwrap();
        let id = id_of(&pod, "app");
        let v = start(k, &pod, running_pod(vec![running("app", &id, &image_id)])).await;
        rows.push(Row::new(name, &pod, &id, "app", Some(&v), want));
    }

    // Init containers: a running one of a Pending pod is a caller; the waiting regular
    // container has no ID yet, so a process under the ID it will get is refused.
    let mut p = params("initpod");
    p.init_containers = vec!["setup".into()];
    let pod = k.create_pod_object(&p).await.unwrap();
    let (setup, app) = (id_of(&pod, "setup"), id_of(&pod, "app"));
    let init = vec![running("setup", &setup, &repo_digest)];
    let v = start(
        k,
        &pod,
        status("Pending", init, vec![waiting("app")], vec![]),
    )
    .await;
    rows.push(Row::new(
        "init container running",
        &pod,
        &setup,
        "setup",
        Some(&v),
        INIT,
    ));
    rows.push(Row::refused(
        "regular container still waiting",
        &pod,
        &app,
        "app",
        Some(&v),
        "W2",
        "W2",
    ));

    // An ephemeral container, running, with the image digest.
    let mut pod = k.create_pod_object(&params("debugged")).await.unwrap();
    k.add_ephemeral_container(&mut pod, "debugger")
        .await
        .unwrap();
    let (app, debugger) = (id_of(&pod, "app"), id_of(&pod, "debugger"));
    let regular = vec![running("app", &app, &repo_digest)];
    let ephemeral = vec![running("debugger", &debugger, &repo_digest)];
    let v = start(k, &pod, status("Running", vec![], regular, ephemeral)).await;
    rows.push(Row::refused(
        "ephemeral container",
        &pod,
        &debugger,
        "debugger",
        Some(&v),
        "W2",
        "W2",
    ));

    // A restarted container: its current instance is the caller, its previous one is not.
    let pod = k.create_pod_object(&params("restarted")).await.unwrap();
    let (current, previous) = (id_of(&pod, "app"), container_id());
    let v = start(
        k,
        &pod,
        running_pod(vec![restarted("app", &current, &previous)]),
    )
    .await;
    rows.push(Row::new(
        "restarted container, current instance",
        &pod,
        &current,
        "app",
        Some(&v),
        FULL,
    ));
    rows.push(Row::refused(
        "restarted container, previous instance",
        &pod,
        &previous,
        "app",
        Some(&v),
        "W2",
        "W2",
    ));

    // A stale status of the same name left beside the current one, with another image: the
    // image is the calling instance's, found by ID, never any status with its name.
    let pod = k.create_pod_object(&params("stale")).await.unwrap();
    let (current, stale) = (id_of(&pod, "app"), container_id());
    let mut old = running(
        "app",
        &stale,
        &format!("registry.invalid/sworn/other@{OTHER_DIGEST}"),
    );
    old["state"] =
        json!({"terminated": {"exitCode": 0, "startedAt": STARTED, "finishedAt": STARTED}});
    old["ready"] = json!(false);
    let v = start(
        k,
        &pod,
        running_pod(vec![old, running("app", &current, &repo_digest)]),
    )
    .await;
    rows.push(Row::new(
        "stale status of the same name",
        &pod,
        &current,
        "app",
        Some(&v),
        FULL,
    ));

    // The node name empty: an unscheduled pod (created here, since the kubelet stand-in
    // always binds its pods), reported running anyway. No agent's watch has it, and its
    // token names no node.
    let created = Api::<Pod>::namespaced(k.client().clone(), "default")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "unscheduled", "namespace": "default", "labels": {"app": "web"}},
                "spec": {
                    "serviceAccountName": "web", "automountServiceAccountToken": false,
                    "containers": [{"name": "app", "image": IMAGE}],
                },
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let pod = PodHandle {
        namespace: "default".into(),
        name: "unscheduled".into(),
        uid: created.metadata.uid.unwrap(),
        node_name: String::new(),
        service_account: "web".into(),
        image: IMAGE.into(),
        containers: vec![ContainerHandle {
            name: "app".into(),
            kind: ContainerKind::Regular,
            container_id: container_id(),
        }],
        token_volume: None,
    };
    let id = id_of(&pod, "app");
    report(
        k,
        &pod,
        running_pod(vec![running("app", &id, &repo_digest)]),
    )
    .await;
    rows.push(Row::refused(
        "node name empty",
        &pod,
        &id,
        "app",
        None,
        "W2",
        "W4",
    ));

    // Being deleted: a finalizer keeps the object, with its deletionTimestamp, in the API
    // (and in the agent's watch) after the delete.
    let pod = k.create_pod_object(&params("deleting")).await.unwrap();
    let id = id_of(&pod, "app");
    let pods = Api::<Pod>::namespaced(k.client().clone(), "default");
    pods.patch(
        "deleting",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["sworn.test/hold"]}})),
    )
    .await
    .unwrap();
    start(
        k,
        &pod,
        running_pod(vec![running("app", &id, &repo_digest)]),
    )
    .await;
    pods.delete("deleting", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let now = pods.get("deleting").await.unwrap();
    assert!(now.metadata.deletion_timestamp.is_some());
    let v = now.metadata.resource_version.unwrap();
    rows.push(Row::refused(
        "pod being deleted",
        &pod,
        &id,
        "app",
        Some(&v),
        "W2",
        "W4",
    ));
    rows
}

/// The pod's token as the kubelet wrote it, or (a pod without a token volume) a fresh one.
async fn token_of(kubelet: &Kubelet, pod: &PodHandle) -> String {
    match kubelet.token_path(pod) {
        Some(path) => std::fs::read_to_string(path).unwrap(),
        None => kubelet.request_token(pod, "sworn", 600).await.unwrap(),
    }
}

/// Waits (bounded) until the agent's watch shows `uid` at `version`.
async fn watch_shows(index: &PodIndex, uid: &str, version: &str) {
    let shown = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if index
                .by_uid(uid)
                .is_some_and(|p| p.metadata.resource_version.as_deref() == Some(version))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        shown.is_ok(),
        "the watch never showed pod {uid} at {version}"
    );
}

/// The server's decision on every entry: the names accepted, and the factor of the default
/// identity's denial (empty when it was issued).
async fn server_accepts(
    env: &Env,
    ids: &[(String, String)],
    evidence: &pb::K8sEvidence,
) -> (BTreeSet<String>, String) {
    let mut c = connect(env.server.server.agent_api_addr, Some(&env.agent)).await;
    let items = ids
        .iter()
        .map(|(id, _)| pb::MintItem {
            entry_id: id.clone(),
            csr: key_and_csr().1,
            evidence: Some(pb::mint_item::Evidence::K8s(evidence.clone())),
        })
        .collect();
    let results = c
        .mint_x509_svids(pb::MintX509SvidsRequest { items })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), ids.len());
    let mut accepted = BTreeSet::new();
    let mut default_factor = String::new();
    for ((id, name), r) in ids.iter().zip(results) {
        match r.result {
            Some(pb::mint_result::Result::Svid(_)) => {
                accepted.insert(name.clone());
            }
            Some(pb::mint_result::Result::Denied(_)) if id.is_empty() => default_factor = r.factor,
            Some(pb::mint_result::Result::Denied(_)) => {}
            other => panic!("{name}: not a decision: {other:?} ({})", r.factor),
        }
    }
    (accepted, default_factor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_prematched_entries_equal_server_accepted_entries_row_by_row() {
    let env = setup().await;

    // The entries, through the admin API; then the agent's state from the server's Sync.
    let mut admin = env.server.admin().await;
    let mut ids = vec![(String::new(), "default".to_owned())];
    for (name, selectors, elsewhere) in entries() {
        let e = admin
            .create_entry(apb::CreateEntryRequest {
                spiffe_id: format!("spiffe://example.org/e/{name}"),
                selectors,
                node: if elsewhere {
                    "spiffe://example.org/sworn/agent/k8s/dev/other".into()
                } else {
                    String::new()
                },
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids.push((e.id, name.to_owned()));
    }
    let name_of: BTreeMap<String, String> = ids.iter().cloned().collect();
    let mut c = connect(env.server.server.agent_api_addr, Some(&env.agent)).await;
    let msg = c
        .sync(pb::SyncRequest::default())
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    let state = SyncState::from_message(msg, &env.agent.id);
    let synced: BTreeSet<&str> = state
        .entries
        .iter()
        .map(|e| name_of[&e.id.to_string()].as_str())
        .collect();
    let scoped_here: BTreeSet<&str> = entries()
        .into_iter()
        .filter(|(_, _, elsewhere)| !elsewhere)
        .map(|(name, _, _)| name)
        .collect();
    assert_eq!(
        synced, scoped_here,
        "the agent's state holds the entries scoped to it"
    );

    // The agent's watch of its node's pods.
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (tx, mut changes) = tokio::sync::mpsc::channel::<PodChange>(64);
    let index = PodIndex::start(env.cp.client(), NODE, tx, stop.clone(), &tasks);
    tasks.spawn(async move { while changes.recv().await.is_some() {} });
    assert!(index.ready().await);
    let cfg = K8sWorkloadConfig {
        kubelet_root: env.kubelet.kubelet_root().to_owned(),
        pod_wait: Duration::from_secs(3),
        ..K8sWorkloadConfig::default()
    };

    let rows = rows(&env).await;
    let mut table = Vec::new();
    let mut failed = Vec::new();
    for row in &rows {
        if let Some(v) = &row.version {
            watch_shows(&index, &row.pod.uid, v).await;
        }
        let agent = attest_pod(
            &cfg,
            &index,
            row.pod.uid.parse().unwrap(),
            row.caller.parse().unwrap(),
        )
        .await;
        let (prematched, evidence, agent_factor) = match agent {
            Ok(facts) => (
                entitled(&facts, &state)
                    .iter()
                    .map(|id| name_of[&id.to_wire()].clone())
                    .collect::<BTreeSet<_>>(),
                facts.evidence.clone(),
                String::new(),
            ),
            Err(refusal) => (
                BTreeSet::new(),
                pb::K8sEvidence {
                    pod_uid: row.pod.uid.clone(),
                    container_id: row.caller.clone(),
                    pod_name: row.pod.name.clone(),
                    namespace: row.pod.namespace.clone(),
                    container_name: row.container.into(),
                    token: token_of(&env.kubelet, &row.pod).await,
                },
                refusal.factor().to_string(),
            ),
        };
        let (accepted, server_factor) = server_accepts(&env, &ids, &evidence).await;
        let want: BTreeSet<String> = row.want.iter().map(|s| (*s).to_owned()).collect();
        let factors = (agent_factor.as_str(), server_factor.as_str());
        let want_factors = row.factors.unwrap_or(("", ""));
        let line = format!(
            "{:<40} agent {prematched:?} {agent_factor:>2} | server {accepted:?} {server_factor:>2}",
            row.name
        );
        if prematched != accepted || accepted != want || factors != want_factors {
            failed.push(format!("{line}\n{:<40} want {want:?} {want_factors:?}", ""));
        }
        table.push(line);
    }
    println!("{}", table.join("\n"));
    assert!(
        failed.is_empty(),
        "rows where the agent and the server disagree, or differ from the rule:\n{}\n\nall rows:\n{}",
        failed.join("\n"),
        table.join("\n")
    );
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    env.cp.stop().await;
}
