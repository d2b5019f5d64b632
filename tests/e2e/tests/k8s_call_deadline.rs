//! Every Kubernetes call the server makes has a deadline (`k8s_call_timeout`). An API
//! server that accepts connections but never answers (here: kube-apiserver stopped with
//! SIGSTOP) makes a mint `Unavailable` with factor `api` once the deadline passes — well
//! before the agent's own 30 s call timeout — and is never a denial. When the API server
//! answers again, the same mint is issued.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use sworn_dev::k8s::PodParams;
use sworn_e2e::k8s_env::{k8s_evidence, setup_with};
use sworn_e2e::{audit_after, audit_checkpoint, connect, issued, mint_one, summary};
use sworn_proto::agent as pb;

const DEADLINE: Duration = Duration::from_secs(2);

/// Continues the stopped API server even when the test fails half way.
struct Stopped(Pid);

impl Stopped {
    fn stop(pid: u32) -> Self {
        let pid = Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
        kill_process(pid, Signal::STOP).unwrap();
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill_process(self.0, Signal::CONT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_api_server_makes_the_mint_unavailable_at_k8s_call_timeout_never_denied() {
    let env = setup_with(&format!("k8s_call_timeout = \"{}s\"", DEADLINE.as_secs())).await;
    let web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();
    let agent = env.agent_creds("node-a");
    let mut c = connect(env.server.server.agent_api_addr, Some(&agent)).await;
    // Positive control: with the API server answering, the pod's default identity is issued.
    let r = mint_one(&mut c, "", k8s_evidence(&env, &web)).await;
    assert_eq!(
        issued(&r).as_deref(),
        Some("spiffe://example.org/ns/default/sa/web"),
        "{}",
        summary(&r)
    );

    let apiserver = env.cp.as_ref().unwrap().pids()[1];
    let checkpoint = audit_checkpoint(&env.server).await;
    let stopped = Stopped::stop(apiserver);
    let started = Instant::now();
    let r = tokio::time::timeout(DEADLINE * 4, mint_one(&mut c, "", k8s_evidence(&env, &web)))
        .await
        .expect("the mint must answer soon after k8s_call_timeout, not hang with the API server");
    let took = started.elapsed();
    drop(stopped);
    assert!(
        matches!(r.result, Some(pb::mint_result::Result::Unavailable(_))) && r.factor == "api",
        "a hung API server must be unavailable (factor api), got {}",
        summary(&r)
    );
    assert!(
        took >= DEADLINE && took < DEADLINE * 4,
        "answered after {took:?}, the deadline is {DEADLINE:?}"
    );
    let events = audit_after(&env.server, checkpoint).await;
    let mints: Vec<serde_json::Value> = events
        .iter()
        .filter(|e| e.kind == "mint")
        .map(|e| {
            let mut d: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
            d["decision"] = e.decision.clone().into();
            d
        })
        .collect();
    assert!(
        mints
            .iter()
            .any(|d| d["decision"] == "unavailable" && d["factor"] == "api"),
        "{mints:?}"
    );
    assert!(mints.iter().all(|d| d["decision"] != "deny"), "{mints:?}");

    // The API server answers again: the same evidence is issued.
    let r = mint_one(&mut c, "", k8s_evidence(&env, &web)).await;
    assert_eq!(
        issued(&r).as_deref(),
        Some("spiffe://example.org/ns/default/sa/web"),
        "{}",
        summary(&r)
    );
}
