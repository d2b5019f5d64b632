//! Workload API connection limits in Kubernetes mode are per pod (docs/architecture.md,
//! "Workload API connections"): pods commonly share a uid, so one pod filling its allowance
//! must not refuse another. Real parts: a real kube-apiserver and etcd, a real agent, real
//! processes in real pod cgroups (all of them uid 0 here, as many pods are), and go-spiffe as
//! the workload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sworn_dev::k8s::{CgroupStyle, PodParams};
use sworn_e2e::k8s_env::{Env, setup};

/// The per-tenant connection allowance (sworn_agent::MAX_CONNECTIONS_PER_TENANT) plus a few.
const HOG_CONNECTIONS: usize = sworn_agent::MAX_CONNECTIONS_PER_TENANT + 8;

/// Connections node-a's agent closed for `reason`.
async fn closed(env: &Env, reason: &str) -> u64 {
    let agent = &env.agents.iter().find(|(n, _, _)| n == "node-a").unwrap().1;
    let Ok(answer) = sworn_agent::probe::get(agent.health_address(), "/metrics").await else {
        return 0;
    };
    let series =
        format!("sworn_agent_workload_api_connections_closed_total{{reason=\"{reason}\"}}");
    sworn_harness::metrics::value(&answer.body, &series).unwrap_or(0.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_holding_its_whole_connection_allowance_does_not_refuse_another_pod_of_its_uid() {
    let env = setup().await;
    let hog = env
        .kubelet
        .create_pod(&PodParams::new("default", "hog", "hog", "node-a"))
        .await
        .unwrap();
    let web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();
    let socket = env
        .agents
        .iter()
        .find(|(n, _, _)| n == "node-a")
        .unwrap()
        .2
        .clone();

    // The hog: one process in its pod opens more connections than a tenant may hold, each
    // with a complete request and then nothing, so none is closed before the 5 min idle
    // deadline.
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../agent/tests/support/h2_attack.py");
    let mut attack = Command::new("python3");
    attack
        .arg(script)
        .arg(&socket)
        .arg("idle")
        .arg(HOG_CONNECTIONS.to_string());
    let mut holder = env
        .kubelet
        .start_container_process(&hog, "app", &attack, CgroupStyle::Cgroupfs)
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.child_mut().unwrap().stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the hog did not start");
    // Its connections beyond the allowance were closed at accept…
    sworn_harness::wait_until_async(
        "the hog's excess connections closed at the limit",
        Duration::from_secs(20),
        async || closed(&env, "limit").await >= 8,
    )
    .await;
    assert_eq!(
        closed(&env, "limit").await,
        8,
        "only the hog's excess is refused"
    );

    // …while a process of another pod, with the same uid, is served.
    let v = env
        .fetch_in(&web, "app", "node-a", CgroupStyle::Cgroupfs)
        .await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
        "{v}"
    );
    // And another process of the hog's own pod is not: the allowance is the pod's.
    let v = env
        .fetch_in(&hog, "app", "node-a", CgroupStyle::Cgroupfs)
        .await;
    assert!(
        v["error"].is_string(),
        "the hog pod got past its allowance: {v}"
    );
    assert_eq!(
        closed(&env, "limit").await,
        9,
        "the hog's new connection was the one refused"
    );
    drop(holder);
    drop(env);
}
