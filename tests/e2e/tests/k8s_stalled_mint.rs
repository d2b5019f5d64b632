//! A pod deleted while a mint stalls loses its stream within a second
//! (docs/architecture.md, "The agent's SVID cache"): the agent's pod watch
//! never waits for a mint, and a caller waiting on a mint for a pod that is
//! gone stops waiting.
//!
//! Real parts: kube-apiserver and etcd, the server, a real agent attested
//! through the real flow, a real process in the pod's cgroup running go-spiffe
//! (unmodified, `tests/interop/go-fetch -updates`) with one open
//! FetchX509SVID stream. The stall is the server's test hook
//! (`Shared::mint_stalls`, reachable from no configuration): the mint of one
//! SPIFFE ID is held after the server re-verified the pod and before it
//! signs, as a slow datastore or CA would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sworn_dev::k8s::{CgroupStyle, ContainerProcess, PodHandle, PodParams};
use sworn_e2e::audit_after;
use sworn_e2e::k8s_env::{Env, setup};
use sworn_proto::admin::CreateEntryRequest;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

/// Far longer than the one second the stream may take to end.
const STALL: Duration = Duration::from_secs(20);
const PROMPTLY: Duration = Duration::from_secs(1);
const WEB_ID: &str = "spiffe://example.org/ns/default/sa/web";

/// The probe's lines, each stamped when it arrived.
struct Lines(mpsc::UnboundedReceiver<(Instant, String)>);

impl Lines {
    fn of(p: &mut ContainerProcess) -> Self {
        let stdout = p.child_mut().unwrap().stdout.take().unwrap();
        let stdout = tokio::process::ChildStdout::from_std(stdout).unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// The next line before `within` passes.
    async fn next(&mut self, within: Duration, what: &str) -> (Instant, String) {
        timeout(within, self.0.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within {within:?}"))
            .unwrap_or_else(|| panic!("the probe exited before {what}"))
    }
}

/// Everything up, and go-spiffe watching its X.509 context from the `app`
/// container of pod `web` on `node-a`, after its first SVID arrived.
async fn web_watching() -> (Env, PodHandle, ContainerProcess, Lines) {
    let env = setup().await;
    let web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();
    // The last -timeout wins: the stream stays open for the whole test.
    let watch = env.fetch_cmd("node-a", &["-updates", "1000", "-timeout", "300s"]);
    let mut probe = env
        .kubelet
        .start_container_process(&web, "app", &watch, CgroupStyle::Cgroupfs)
        .unwrap();
    let mut lines = Lines::of(&mut probe);
    let (_, first) = lines
        .next(Duration::from_secs(60), "first X.509 context")
        .await;
    assert!(first.contains(WEB_ID), "the first context: {first}");
    (env, web, probe, lines)
}

/// Stalls every mint of `spiffe_id`, runs `start`, and waits until the server
/// holds such a mint; returns when it began to be held.
async fn stall_while(
    env: &Env,
    spiffe_id: &str,
    start: impl Future<Output = ()>,
    what: &str,
) -> Instant {
    let stalls = &env.server.server.shared.mint_stalls;
    stalls.stall(spiffe_id, STALL);
    start.await;
    if timeout(Duration::from_secs(30), stalls.held(spiffe_id))
        .await
        .is_err()
    {
        let mints: Vec<String> = audit_after(&env.server, 0)
            .await
            .into_iter()
            .filter(|e| e.kind == "mint")
            .map(|e| format!("{} {}", e.decision, e.detail))
            .collect();
        panic!("{what} never reached the server; its mint decisions:\n{mints:#?}");
    }
    Instant::now()
}

/// Deletes `pod`; its open stream must end with PermissionDenied within
/// [`PROMPTLY`], before the server could have answered the mint of `held`
/// (held since `held_at`), and with nothing of `held` issued.
async fn delete_and_time_the_stream(
    env: &Env,
    pod: &PodHandle,
    lines: &mut Lines,
    held: &str,
    held_at: Instant,
) {
    let deleted = Instant::now();
    env.kubelet.delete_pod(pod).await.unwrap();
    let (at, line) = lines.next(STALL, "end of the stream").await;
    let took = at - deleted;
    println!("the deleted pod's stream ended {took:?} after the deletion started");
    assert!(
        line.contains("watch_error") && line.contains("PermissionDenied"),
        "the stream must end with PermissionDenied: {line}"
    );
    assert!(
        at < held_at + STALL,
        "the stream must end before the held mint of {held} is answered"
    );
    let issued: Vec<_> = audit_after(&env.server, 0)
        .await
        .into_iter()
        .filter(|e| e.kind == "mint" && e.decision == "allow" && e.detail.contains(held))
        .collect();
    assert!(issued.is_empty(), "{held} was issued: {issued:?}");
    assert!(
        took < PROMPTLY,
        "the deleted pod's stream ended {took:?} after the deletion"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_while_its_own_mint_stalls_loses_its_stream_within_a_second() {
    let (env, web, _probe, mut lines) = web_watching().await;
    // A new entry for the pod: its open stream asks for it at once, and the
    // server holds that mint.
    let extra = "spiffe://example.org/web/extra";
    let create = async {
        env.server
            .admin()
            .await
            .create_entry(CreateEntryRequest {
                spiffe_id: extra.into(),
                selectors: vec!["k8s:ns:default".into(), "k8s:pod-name:web".into()],
                ..Default::default()
            })
            .await
            .unwrap();
    };
    let held_at = stall_while(&env, extra, create, "the stream's mint of the new entry").await;
    delete_and_time_the_stream(&env, &web, &mut lines, extra, held_at).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_while_another_pods_premint_stalls_loses_its_stream_within_a_second() {
    let (env, web, _probe, mut lines) = web_watching().await;
    // Another pod starts; the agent pre-mints its default identity from the
    // watch, and the server holds that mint. In a kubelet's order: the token
    // volume is written before the container is reported running.
    let slow = "spiffe://example.org/ns/default/sa/slow";
    let start = async {
        let params = PodParams::new("default", "slow", "slow", "node-a");
        let pod = env.kubelet.create_pod_object(&params).await.unwrap();
        env.kubelet.write_tokens(&pod).await.unwrap();
        env.kubelet.set_running(&pod).await.unwrap();
    };
    let held_at = stall_while(&env, slow, start, "the pre-mint of the new pod").await;
    delete_and_time_the_stream(&env, &web, &mut lines, slow, held_at).await;
}
