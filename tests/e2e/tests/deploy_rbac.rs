//! The deployed RBAC is enough: the server runs with the
//! credentials of its deployed ServiceAccount — a TokenRequest token for
//! `sworn-system/sworn-server`, bound to its pod as in-cluster, with exactly
//! the RBAC of `deploy/kustomize` applied, not admin — and Kubernetes node
//! attestation (N1–N5), workload re-verification (W4, W5) and the bundle
//! ConfigMap all work. The real agent then bootstraps from that ConfigMap and
//! attests with the shipped agent.toml. A ServiceAccount without the RBAC is
//! the control: the same server cannot attest anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod deploy_support;

use std::path::Path;
use std::time::Duration;

use deploy_support::*;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::Api;
use sworn_dev::k8s::{ControlPlane, Kubelet, PodHandle, PodParams, TokenVolume};
use sworn_e2e::{TestServer, attest, audit_after, audit_checkpoint, connect, key_and_csr, uri_san};
use sworn_identity::Factor;
use sworn_proto::agent as pb;
use tokio_util::sync::CancellationToken;

/// The cluster name the shipped configs use.
const CLUSTER: &str = "default";

/// The `[[clusters]]` section of the shipped server.toml, pointed at
/// `kubeconfig` instead of the in-cluster config.
fn shipped_cluster_section(docs: &[serde_yaml::Value], kubeconfig: &Path) -> String {
    let cm = of_kind(docs, "ConfigMap")
        .into_iter()
        .find(|d| d["metadata"]["name"] == "sworn-server")
        .unwrap();
    let text = cm["data"]["server.toml"].as_str().unwrap();
    let (_, clusters) = text.split_once("[[clusters]]").unwrap();
    format!(
        "[[clusters]]{clusters}kubeconfig = \"{}\"\n",
        kubeconfig.display()
    )
}

/// A token for `sa`, bound to a pod of that account as the kubelet would
/// mount it for in-cluster access (audience: the API server's own).
async fn in_cluster_token(cp: &ControlPlane, kubelet: &Kubelet, pod: &str, sa: &str) -> String {
    let p = kubelet
        .create_pod(&PodParams::new("sworn-system", pod, sa, "node-a"))
        .await
        .unwrap();
    kubelet.request_token(&p, cp.issuer(), 3600).await.unwrap()
}

async fn agent_pod(kubelet: &Kubelet, name: &str, node: &str) -> PodHandle {
    let mut p = PodParams::new("sworn-system", name, "sworn-agent", node);
    p.token_volume = Some(TokenVolume::for_audience("sworn-agent"));
    kubelet.create_pod(&p).await.unwrap()
}

fn k8s(token: String) -> pb::attest_request::Method {
    pb::attest_request::Method::K8s(pb::K8sAttestation {
        cluster: CLUSTER.into(),
        token,
    })
}

/// The `kind` audit rows written after `checkpoint`, as "<decision> <detail>".
async fn audit_details(server: &TestServer, checkpoint: i64, kind: &str) -> Vec<String> {
    audit_after(server, checkpoint)
        .await
        .into_iter()
        .filter(|ev| ev.kind == kind)
        .map(|ev| format!("{} {}", ev.decision, ev.detail))
        .collect()
}

/// The one `kind` audit row written after `checkpoint`, and its factor.
async fn one_audited(server: &TestServer, checkpoint: i64, kind: &str) -> (String, Factor) {
    let rows = audit_details(server, checkpoint, kind).await;
    assert_eq!(rows.len(), 1, "one {kind} decision audited: {rows:?}");
    let (_, detail) = rows[0].split_once(' ').unwrap();
    let detail: serde_json::Value = serde_json::from_str(detail).unwrap();
    let factor = detail["factor"].as_str().unwrap().parse().unwrap();
    (rows[0].clone(), factor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_agent_work_under_exactly_the_deployed_rbac() {
    let cp = ControlPlane::start().await.unwrap();
    let kubelet = Kubelet::new(&cp).unwrap();
    let rendered = render_kustomize();
    let docs = parse_docs(&rendered);
    apply(&cp, &rendered);
    let dir = tempfile::Builder::new()
        .prefix("swd")
        .tempdir_in("/tmp")
        .unwrap();

    // The server's credentials: its own ServiceAccount, nothing else.
    let token = in_cluster_token(&cp, &kubelet, "sworn-server-0", "sworn-server").await;
    let kubeconfig = token_kubeconfig(&cp, dir.path(), "sworn-server", &token);
    let whoami = run_ok(
        kubectl(&cp, &kubeconfig).args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ]),
        None,
        "kubectl auth whoami",
    );
    assert_eq!(whoami, "system:serviceaccount:sworn-system:sworn-server");
    let denied = run(
        kubectl(&cp, &kubeconfig).args(["get", "secrets", "-n", "sworn-system"]),
        None,
    );
    assert!(
        !denied.status.success(),
        "the server's account must not read secrets"
    );
    assert!(String::from_utf8_lossy(&denied.stderr).contains("forbidden"));

    let server = TestServer::start(&shipped_cluster_section(&docs, &kubeconfig)).await;

    // It published the bundle into the ConfigMap the manifests created
    // (get + update by name is all it may do).
    let cms = Api::<ConfigMap>::namespaced(cp.client(), "sworn-system");
    let mut bundle = String::new();
    for _ in 0..40 {
        let cm = cms.get("sworn-bundle").await.unwrap();
        if let Some(b) = cm.data.and_then(|d| d.get("bundle.pem").cloned()) {
            bundle = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        bundle.contains("BEGIN CERTIFICATE"),
        "bundle ConfigMap not updated"
    );
    let on_disk = std::fs::read_to_string(&server.server.shared.config.bundle_file).unwrap();
    assert_eq!(
        bundle.trim(),
        on_disk.trim(),
        "the ConfigMap holds the server's bundle"
    );

    // N1–N5 under the server's RBAC: TokenReview, GET pod, GET node.
    let agent = agent_pod(&kubelet, "sworn-agent-x1", "node-a").await;
    let node_uid = Api::<Node>::all(cp.client())
        .get("node-a")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let agent_token = kubelet
        .request_token(&agent, "sworn-agent", 600)
        .await
        .unwrap();
    let mut client = server.agent_client().await;
    let creds = attest(&mut client, k8s(agent_token)).await.unwrap();
    assert_eq!(
        creds.id,
        format!(
            "spiffe://example.org/sworn/agent/k8s/{CLUSTER}/{node_uid}/{}",
            agent.uid
        )
    );
    assert_eq!(uri_san(&creds.chain[0]), creds.id);

    // W4/W5 under the same RBAC: the example workload gets its default identity...
    let mut wl = PodParams::new(
        "sworn-example",
        "sworn-example-1",
        "sworn-example",
        "node-a",
    );
    wl.token_volume = Some(TokenVolume::for_audience("sworn"));
    let workload = kubelet.create_pod(&wl).await.unwrap();
    let wl_token = std::fs::read_to_string(kubelet.token_path(&workload).unwrap()).unwrap();
    let mint = |pod: &PodHandle, token: String| {
        let ev = pb::K8sEvidence {
            pod_uid: pod.uid.clone(),
            container_id: pod.container("app").unwrap().container_id.clone(),
            pod_name: pod.name.clone(),
            namespace: pod.namespace.clone(),
            container_name: "app".into(),
            token,
        };
        let creds = creds.clone();
        let addr = server.server.agent_api_addr;
        async move {
            let (_, csr) = key_and_csr();
            let mut c = connect(addr, Some(&creds)).await;
            let resp = c
                .mint_x509_svids(pb::MintX509SvidsRequest {
                    items: vec![pb::MintItem {
                        entry_id: String::new(),
                        csr,
                        evidence: Some(pb::mint_item::Evidence::K8s(ev)),
                    }],
                })
                .await
                .unwrap()
                .into_inner();
            match resp.results.into_iter().next().unwrap() {
                pb::MintResult {
                    result: Some(pb::mint_result::Result::Svid(s)),
                    ..
                } => Ok(s.spiffe_id),
                other => Err(other),
            }
        }
    };
    assert_eq!(
        mint(&workload, wl_token.clone()).await.unwrap(),
        "spiffe://example.org/ns/sworn-example/sa/sworn-example"
    );
    // ...and a pod on another node is refused by the server's own reads (W4),
    // not by a permission error.
    let mut far = PodParams::new("sworn-example", "far", "sworn-example", "node-b");
    far.token_volume = Some(TokenVolume::for_audience("sworn"));
    let far = kubelet.create_pod(&far).await.unwrap();
    let far_token = std::fs::read_to_string(kubelet.token_path(&far).unwrap()).unwrap();
    let checkpoint = audit_checkpoint(&server).await;
    let refused = mint(&far, far_token).await.unwrap_err();
    let (last, factor) = one_audited(&server, checkpoint, "mint").await;
    assert_eq!(
        (refused.factor.as_str(), factor),
        ("W4", Factor::W4),
        "{last}"
    );
    assert!(last.starts_with("deny "), "{last}");
    let mints = audit_details(&server, 0, "mint").await;
    assert!(
        !mints.iter().any(|m| m.contains("forbidden")),
        "no RBAC denial in any decision: {mints:?}"
    );

    // The denials deploy/README.md's troubleshooting describes, as the
    // audit log shows them under the deployed RBAC.
    let wrong = kubelet
        .request_token(&workload, "not-sworn", 600)
        .await
        .unwrap();
    let checkpoint = audit_checkpoint(&server).await;
    let refused = mint(&workload, wrong).await.unwrap_err();
    let (last, factor) = one_audited(&server, checkpoint, "mint").await;
    println!("audit (wrong workload audience): {last}");
    assert_eq!(refused.factor, "W4");
    assert!(
        last.starts_with("deny ")
            && factor == Factor::W4
            && last.contains("token not authenticated"),
        "workload token for the wrong audience: {last}"
    );
    let mut c = server.agent_client().await;
    let wrong = kubelet.request_token(&agent, "sworn", 600).await.unwrap();
    let checkpoint = audit_checkpoint(&server).await;
    let err = attest(&mut c, k8s(wrong)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let (last, factor) = one_audited(&server, checkpoint, "agent.attest").await;
    println!("audit (agent refused): {last}");
    assert!(
        last.starts_with("deny ")
            && factor == Factor::N1
            && last.contains("token not authenticated"),
        "agent token for the wrong audience: {last}"
    );
    let mut p = PodParams::new("sworn-system", "rogue-agent", "default", "node-a");
    p.token_volume = Some(TokenVolume::for_audience("sworn-agent"));
    let rogue = kubelet.create_pod(&p).await.unwrap();
    let t = kubelet
        .request_token(&rogue, "sworn-agent", 600)
        .await
        .unwrap();
    let checkpoint = audit_checkpoint(&server).await;
    let err = attest(&mut c, k8s(t)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let (last, factor) = one_audited(&server, checkpoint, "agent.attest").await;
    println!("audit (agent refused): {last}");
    assert!(
        last.starts_with("deny ")
            && factor == Factor::N2
            && last.contains("service account not allowed")
            && last.contains("sworn-system:default"),
        "agent under another service account: {last}"
    );

    // The real agent, configured by the shipped agent.toml, trusting the
    // bundle exactly as the mounted ConfigMap gives it, attests with its
    // projected token.
    let agent2 = agent_pod(&kubelet, "sworn-agent-x2", "node-a").await;
    let agent_cfg = of_kind(&docs, "ConfigMap")
        .into_iter()
        .find(|d| d["metadata"]["name"] == "sworn-agent")
        .unwrap()["data"]["agent.toml"]
        .as_str()
        .unwrap()
        .to_owned();
    let bundle_file = dir.path().join("bundle.pem");
    std::fs::write(&bundle_file, &bundle).unwrap();
    let replace = |text: &str, key: &str, value: String| -> String {
        let mut found = false;
        let out = text
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{key} = ")) {
                    found = true;
                    format!("{key} = \"{value}\"")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(found, "shipped agent.toml has no {key}");
        out
    };
    let mut cfg = agent_cfg;
    for (k, v) in [
        ("data_dir", dir.path().join("agent").display().to_string()),
        (
            "server_address",
            format!("https://127.0.0.1:{}", server.server.agent_api_addr.port()),
        ),
        ("bundle_file", bundle_file.display().to_string()),
        (
            "agent_token_path",
            kubelet.token_path(&agent2).unwrap().display().to_string(),
        ),
        (
            "socket_path",
            dir.path().join("a.sock").display().to_string(),
        ),
        ("health_address", "127.0.0.1:0".to_owned()),
    ] {
        cfg = replace(&cfg, k, v);
    }
    // Its API credentials: its own ServiceAccount (list/watch pods, nothing
    // else), as in-cluster; and this run's kubelet root and cgroup roots.
    let api_token = kubelet
        .request_token(&agent2, cp.issuer(), 3600)
        .await
        .unwrap();
    let agent_kubeconfig = token_kubeconfig(&cp, dir.path(), "sworn-agent", &api_token);
    let base = kubelet.cgroup_root().cgroup_path().display().to_string();
    cfg.push_str(&format!(
        "\nkubeconfig = \"{}\"\nkubelet_root = \"{}\"\ncgroup_roots = [\"{base}/kubepods\", \"{base}/kubepods.slice\"]\n",
        agent_kubeconfig.display(),
        kubelet.kubelet_root().display()
    ));
    let cfg_file = dir.path().join("agent.toml");
    std::fs::write(&cfg_file, cfg).unwrap();
    let config = sworn_agent::Config::from_file(&cfg_file, Some("node-a".into())).unwrap();
    let running = sworn_agent::Agent::start(config, CancellationToken::new())
        .await
        .unwrap();
    let id = tokio::time::timeout(Duration::from_secs(30), running.ready())
        .await
        .expect("the agent attests in time")
        .unwrap();
    assert_eq!(
        id.to_string(),
        format!(
            "spiffe://example.org/sworn/agent/k8s/{CLUSTER}/{node_uid}/{}",
            agent2.uid
        )
    );
    // The full workload flow under both deployed accounts: a process of a
    // pod on node-a gets its default identity from this agent.
    let go = std::env::var("SWORN_GO_SPIFFE_FETCH").expect(
        "SWORN_GO_SPIFFE_FETCH is not set: run `eval \"$(tests/interop/setup.sh)\"` first (test.sh does this)",
    );
    let web = kubelet
        .create_pod(&PodParams::new(
            "sworn-example",
            "web-x",
            "sworn-example",
            "node-a",
        ))
        .await
        .unwrap();
    let mut cmd = std::process::Command::new(&go);
    cmd.args([
        "-addr",
        &format!("unix://{}", dir.path().join("a.sock").display()),
        "-timeout",
        "20s",
    ]);
    let out = kubelet
        .start_container_process(&web, "app", &cmd, sworn_dev::k8s::CgroupStyle::Cgroupfs)
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("spiffe://example.org/ns/sworn-example/sa/sworn-example"),
        "workload under the deployed RBAC: {text}"
    );
    running.shutdown().await.unwrap();
    server.stop().await;

    // Control: a ServiceAccount without the deployed RBAC cannot run the
    // server's checks, so nothing attests.
    let token = in_cluster_token(&cp, &kubelet, "nobody-0", "nobody").await;
    let kubeconfig = token_kubeconfig(&cp, dir.path(), "nobody", &token);
    let bare = TestServer::start(&shipped_cluster_section(&docs, &kubeconfig)).await;
    let agent_token = kubelet
        .request_token(&agent, "sworn-agent", 600)
        .await
        .unwrap();
    let mut client = bare.agent_client().await;
    let checkpoint = audit_checkpoint(&bare).await;
    let err = attest(&mut client, k8s(agent_token)).await.unwrap_err();
    let attests = audit_details(&bare, 0, "agent.attest").await;
    assert!(
        attests.iter().all(|a| !a.starts_with("allow")),
        "{attests:?}"
    );
    // The audit names the cause the README's troubleshooting points at.
    let (last, factor) = one_audited(&bare, checkpoint, "agent.attest").await;
    println!("audit (server without RBAC): {last}");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        last.starts_with("unavailable ") && factor == Factor::Api && last.contains("forbidden"),
        "{last}"
    );
    bare.stop().await;
    cp.stop().await;
}

/// A kube client authenticating with `kubeconfig` (a ServiceAccount token).
async fn client_from(kubeconfig: &Path) -> kube::Client {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_pod_watch_works_under_exactly_the_deployed_rbac() {
    use sworn_agent::k8s::{PodChange, PodIndex};

    let cp = ControlPlane::start().await.unwrap();
    let kubelet = Kubelet::new(&cp).unwrap();
    apply(&cp, &render_kustomize());
    let dir = tempfile::tempdir().unwrap();
    let here = kubelet
        .create_pod(&PodParams::new(
            "sworn-example",
            "here",
            "sworn-example",
            "node-a",
        ))
        .await
        .unwrap();
    let there = kubelet
        .create_pod(&PodParams::new(
            "sworn-example",
            "there",
            "sworn-example",
            "node-b",
        ))
        .await
        .unwrap();

    // The agent's credentials: its own ServiceAccount, bound to its pod.
    let agent = agent_pod(&kubelet, "sworn-agent-w1", "node-a").await;
    let token = kubelet
        .request_token(&agent, cp.issuer(), 3600)
        .await
        .unwrap();
    let kubeconfig = token_kubeconfig(&cp, dir.path(), "sworn-agent", &token);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let tasks = tokio_util::task::TaskTracker::new();
    let index = PodIndex::start(
        client_from(&kubeconfig).await,
        "node-a",
        tx,
        shutdown.clone(),
        &tasks,
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(20), index.ready())
            .await
            .expect("the first list arrives under list/watch pods"),
        "pod watch ready"
    );
    assert!(index.by_uid(&here.uid).is_some(), "this node's pod");
    assert!(index.by_uid(&there.uid).is_none(), "only this node's pods");
    // The watch (not only the list) is allowed: a new pod and a deletion arrive.
    let later = kubelet
        .create_pod(&PodParams::new(
            "sworn-example",
            "later",
            "sworn-example",
            "node-a",
        ))
        .await
        .unwrap();
    assert!(
        index
            .wait_for(&later.uid, Duration::from_secs(10))
            .await
            .is_some(),
        "a pod created after the list arrives by the watch"
    );
    kubelet.delete_pod(&later).await.unwrap();
    let deleted = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(change) = rx.recv().await {
            if matches!(&change, PodChange::Deleted(uid) if *uid == later.uid) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        deleted.ok(),
        Some(true),
        "the deletion arrives by the watch"
    );
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;

    // Control: an account without the agent's RBAC never gets its first list.
    let p = kubelet
        .create_pod(&PodParams::new(
            "sworn-system",
            "nobody-0",
            "nobody",
            "node-a",
        ))
        .await
        .unwrap();
    let token = kubelet.request_token(&p, cp.issuer(), 3600).await.unwrap();
    let kubeconfig = token_kubeconfig(&cp, dir.path(), "nobody", &token);
    let (tx, _rx) = tokio::sync::mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let tasks = tokio_util::task::TaskTracker::new();
    let index = PodIndex::start(
        client_from(&kubeconfig).await,
        "node-a",
        tx,
        shutdown.clone(),
        &tasks,
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(3), index.ready())
            .await
            .is_err(),
        "without list/watch pods the watch must not become ready"
    );
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    cp.stop().await;
}
