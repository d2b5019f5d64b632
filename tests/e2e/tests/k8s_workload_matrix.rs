//! The Kubernetes workload deny matrix (DESIGN.md §3.2; issue 6) with real
//! parts: a real kube-apiserver and etcd, real agents (one per node, attested
//! through the real flow), real processes in real cgroups, and an unmodified
//! public client (go-spiffe, via `tests/interop/setup.sh`) as the workload.
//! The rows that need a lying agent, a forged SA or templates are in
//! `k8s_server_reverification.rs`, because no honest agent sends them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sworn_dev::k8s::{CgroupStyle, PodParams, TokenVolume};
use sworn_e2e::k8s_env::{denied, output, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_process_of_the_pod_on_the_agents_node_gets_its_identity() {
    let env = setup().await;
    let web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();

    // Positive, cgroupfs placement.
    let v = env
        .fetch_in(&web, "app", "node-a", CgroupStyle::Cgroupfs)
        .await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
        "{v}"
    );

    // Positive, systemd placement.
    let api = env
        .kubelet
        .create_pod(&PodParams::new("default", "api", "api", "node-a"))
        .await
        .unwrap();
    let v = env
        .fetch_in(&api, "app", "node-a", CgroupStyle::Systemd)
        .await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/api",
        "{v}"
    );

    // Wrong node: a process of a node-b pod asks node-a's agent.
    let far = env
        .kubelet
        .create_pod(&PodParams::new("default", "far", "web", "node-b"))
        .await
        .unwrap();
    let v = env
        .fetch_in(&far, "app", "node-a", CgroupStyle::Cgroupfs)
        .await;
    assert!(denied(&v), "wrong node: {v}");
    // ...while node-b's own agent serves it.
    let v = env
        .fetch_in(&far, "app", "node-b", CgroupStyle::Cgroupfs)
        .await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
        "{v}"
    );

    // Not in a pod: a host process.
    let out = env.fetch_cmd("node-a", &[]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(denied(&v), "host process: {v}");

    // The right pod UID but a container ID the pod does not have.
    let cg = env
        .kubelet
        .cgroup_root()
        .container(CgroupStyle::Cgroupfs, &web.uid, &"ab".repeat(32));
    let v = output(
        env.kubelet
            .start_process_in(cg, &env.fetch_cmd("node-a", &[]))
            .unwrap(),
    )
    .await;
    assert!(denied(&v), "container ID mismatch: {v}");

    // A forged kubepods path under a prefix that is not a configured root.
    let forged = sworn_dev::k8s::CgroupRoot::open(
        &env.kubelet.cgroup_root().cgroup_path().join("user.slice"),
    )
    .unwrap();
    let cg = forged.container(
        CgroupStyle::Cgroupfs,
        &web.uid,
        &web.container("app").unwrap().container_id,
    );
    let v = output(
        env.kubelet
            .start_process_in(cg, &env.fetch_cmd("node-a", &[]))
            .unwrap(),
    )
    .await;
    assert!(denied(&v), "forged cgroup path: {v}");
    drop(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_problems_deny() {
    let env = setup().await;
    // No token volume at all.
    let mut p = PodParams::new("default", "notoken", "web", "node-a");
    p.token_volume = None;
    let pod = env.kubelet.create_pod(&p).await.unwrap();
    assert!(
        denied(
            &env.fetch_in(&pod, "app", "node-a", CgroupStyle::Cgroupfs)
                .await
        ),
        "no token volume"
    );

    // A token volume for another audience.
    let mut p = PodParams::new("default", "otheraud", "web", "node-a");
    p.token_volume = Some(TokenVolume::for_audience("vault"));
    let pod = env.kubelet.create_pod(&p).await.unwrap();
    assert!(
        denied(
            &env.fetch_in(&pod, "app", "node-a", CgroupStyle::Cgroupfs)
                .await
        ),
        "other audience"
    );

    // Declared but not mounted by any container (the kubelet leaves it empty).
    let mut p = PodParams::new("default", "unmounted", "web", "node-a");
    let mut v = TokenVolume::for_audience("sworn");
    v.mounted = false;
    p.token_volume = Some(v);
    let pod = env.kubelet.create_pod(&p).await.unwrap();
    assert!(
        denied(
            &env.fetch_in(&pod, "app", "node-a", CgroupStyle::Cgroupfs)
                .await
        ),
        "unmounted volume"
    );

    // Another pod's token copied into this pod's volume: the server sees the UID
    // mismatch. The thief's own token is never written, so nothing was pre-minted.
    let victim = env
        .kubelet
        .create_pod(&PodParams::new("default", "victim", "web", "node-a"))
        .await
        .unwrap();
    let thief = env
        .kubelet
        .create_pod_object(&PodParams::new("default", "thief", "web", "node-a"))
        .await
        .unwrap();
    env.kubelet.set_running(&thief).await.unwrap();
    let stolen = std::fs::read_to_string(env.kubelet.token_path(&victim).unwrap()).unwrap();
    sworn_dev::k8s::write_projected_file(
        &env.kubelet.volume_dir(&thief, "sworn-token"),
        &[("token", stolen.as_bytes())],
    )
    .unwrap();
    assert!(
        denied(
            &env.fetch_in(&thief, "app", "node-a", CgroupStyle::Cgroupfs)
                .await
        ),
        "copied token"
    );

    // Expired: signed by the harness with the API server's key (TokenRequest's
    // minimum lifetime is 600 s), written where the kubelet would put the token.
    let stale = env
        .kubelet
        .create_pod_object(&PodParams::new("default", "stale", "web", "node-a"))
        .await
        .unwrap();
    env.kubelet.set_running(&stale).await.unwrap();
    let claims = env
        .kubelet
        .forge_claims_for_pod(&stale, "sworn")
        .await
        .unwrap()
        .expired(60, 600);
    let expired = env
        .cp
        .as_ref()
        .unwrap()
        .forge_token_with_apiserver_key(&claims)
        .unwrap();
    sworn_dev::k8s::write_projected_file(
        &env.kubelet.volume_dir(&stale, "sworn-token"),
        &[("token", expired.as_bytes())],
    )
    .unwrap();
    assert!(
        denied(
            &env.fetch_in(&stale, "app", "node-a", CgroupStyle::Cgroupfs)
                .await
        ),
        "expired token"
    );
    drop(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_ephemeral_deleted_pods_and_api_server_down() {
    let mut env = setup().await;
    // A running init container of a Pending pod gets its SVID.
    let mut p = PodParams::new("default", "initpod", "web", "node-a");
    p.init_containers = vec!["setup".into()];
    let init = env.kubelet.create_pod_object(&p).await.unwrap();
    env.kubelet.set_init_running(&init, "setup").await.unwrap();
    env.kubelet.write_tokens(&init).await.unwrap();
    let v = env
        .fetch_in(&init, "setup", "node-a", CgroupStyle::Cgroupfs)
        .await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
        "init container: {v}"
    );

    // An ephemeral (debug) container is refused by default.
    let mut web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();
    env.kubelet
        .add_ephemeral_container(&mut web, "debugger")
        .await
        .unwrap();
    assert!(
        denied(
            &env.fetch_in(&web, "debugger", "node-a", CgroupStyle::Cgroupfs)
                .await
        ),
        "ephemeral"
    );

    // Deleted while a stream is open: the stream ends with PermissionDenied within seconds.
    let watcher = env
        .kubelet
        .start_container_process(
            &web,
            "app",
            &env.fetch_cmd("node-a", &["-updates", "2"]),
            CgroupStyle::Cgroupfs,
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = tokio::time::Instant::now();
    env.kubelet.delete_pod(&web).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(25), watcher.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].contains("spiffe://example.org/ns/default/sa/web"),
        "{text}"
    );
    assert!(
        text.contains("PermissionDenied"),
        "the stream must end with PermissionDenied: {text}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // The old process is denied on a new call too.
    assert!(
        denied(
            &env.fetch_in(&web, "app", "node-a", CgroupStyle::Cgroupfs)
                .await
        ),
        "deleted pod"
    );

    // The API server goes down: cached SVIDs keep serving.
    let cached = env
        .kubelet
        .create_pod(&PodParams::new("default", "cached", "web", "node-a"))
        .await
        .unwrap();
    let v = env
        .fetch_in(&cached, "app", "node-a", CgroupStyle::Cgroupfs)
        .await;
    assert_eq!(v["spiffe_id"], "spiffe://example.org/ns/default/sa/web");
    env.cp.take().unwrap().stop().await;
    let v = env
        .fetch_in(&cached, "app", "node-a", CgroupStyle::Cgroupfs)
        .await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
        "cached SVID while the API is down: {v}"
    );
    drop(env);
}
