//! The Kubernetes workload deny matrix (docs/architecture.md, "Factors") with
//! real parts: a real kube-apiserver and etcd, real agents (one per node,
//! attested through the real flow), real processes in real cgroups, and an
//! unmodified public client (go-spiffe, via `tests/interop/setup.sh`) as the
//! workload. The rows that need a lying agent, a forged SA or templates are in
//! `k8s_server_reverification.rs`, because no honest agent sends them.
//!
//! Every refusal is checked for the factor that failed, read after a
//! checkpoint taken just before the call: the agent's own `sworn::audit` log
//! line for what the agent refuses itself (W1–W3; the agents run in this test
//! process, so their log is captured here), and the server's audit row for
//! what the server refuses (W4). Each matrix has a positive control on the
//! same setup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead as _;
use std::time::{Duration, Instant};

use sworn_dev::k8s::{CgroupStyle, ContainerProcess, PodHandle, PodParams, TokenVolume};
use sworn_e2e::k8s_env::{Env, denied, output, setup};
use sworn_e2e::{audit_after, audit_checkpoint};
use sworn_identity::Factor;

/// How soon after its pod is deleted an open stream must end: the test's own
/// bound, well inside the probe's 20 s timeout.
const STREAM_END_BOUND: Duration = Duration::from_secs(5);

/// Capture of the in-process agents' `sworn::audit` log lines.
mod agent_log {
    use std::sync::{Mutex, Once};

    use sworn_identity::Factor;

    static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    struct Sink;

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LOG.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Installs the capture as this process's subscriber (once).
    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("sworn::audit=info"))
                .with_ansi(false)
                .with_writer(|| Sink)
                .try_init()
                .expect("the agents' audit log capture is the process's only subscriber");
        });
    }

    /// The log's length now.
    pub fn checkpoint() -> usize {
        LOG.lock().unwrap().len()
    }

    /// The lines written after `checkpoint` that contain `message`.
    pub fn lines_after(checkpoint: usize, message: &str) -> Vec<String> {
        let log = LOG.lock().unwrap();
        String::from_utf8_lossy(&log[checkpoint..])
            .lines()
            .filter(|l| l.contains(message))
            .map(str::to_owned)
            .collect()
    }

    /// The `factor=` field of a log line.
    pub fn factor(line: &str) -> Factor {
        let (_, rest) = line
            .split_once(" factor=")
            .unwrap_or_else(|| panic!("no factor in {line}"));
        rest.split_whitespace().next().unwrap().parse().unwrap()
    }
}

/// The tests share the captured log, so they take turns (under nextest each
/// test is its own process anyway).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where the agents' log and the server's audit log stood before a call.
struct Checkpoint {
    log: usize,
    audit: i64,
}

async fn checkpoint(env: &Env) -> Checkpoint {
    Checkpoint {
        log: agent_log::checkpoint(),
        audit: audit_checkpoint(&env.server).await,
    }
}

/// Asserts that the probe was refused, and that the agent refused the caller
/// itself on `factor` since `cp`.
fn assert_agent_refused(v: &serde_json::Value, cp: &Checkpoint, factor: Factor, what: &str) {
    assert!(denied(v), "{what}: {v}");
    let lines = agent_log::lines_after(cp.log, "caller refused");
    assert!(
        !lines.is_empty() && lines.iter().all(|l| agent_log::factor(l) == factor),
        "{what}: the agent must refuse the caller on {factor}; its audit lines since the checkpoint: {lines:#?}"
    );
}

/// Asserts that the probe was refused, and that the server denied the mint of
/// `pod` on `factor` since `cp` (its audit rows, and the agent's line about
/// the denial).
async fn assert_server_denied(
    env: &Env,
    v: &serde_json::Value,
    cp: &Checkpoint,
    pod: &PodHandle,
    factor: Factor,
    what: &str,
) {
    assert!(denied(v), "{what}: {v}");
    let rows: Vec<serde_json::Value> = audit_after(&env.server, cp.audit)
        .await
        .into_iter()
        .filter(|e| e.kind == "mint")
        .map(|e| {
            let mut d: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
            d["decision"] = e.decision.into();
            d
        })
        .filter(|d| d["pod_uid"] == pod.uid.as_str())
        .collect();
    assert!(
        !rows.is_empty()
            && rows
                .iter()
                .all(|d| d["decision"] == "deny" && d["factor"] == factor.as_str()),
        "{what}: the server must deny on {factor}; its mint rows for the pod since the checkpoint: {rows:#?}"
    );
    let lines = agent_log::lines_after(cp.log, "the server denied a workload svid");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&pod.uid) && agent_log::factor(l) == factor),
        "{what}: the agent logs the server's denial on {factor}: {lines:#?}"
    );
}

/// Runs the probe in `pod`'s `app` container, cgroupfs placement.
async fn fetch(env: &Env, pod: &PodHandle, node: &str) -> serde_json::Value {
    env.fetch_in(pod, "app", node, CgroupStyle::Cgroupfs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_process_of_the_pod_on_the_agents_node_gets_its_identity() {
    agent_log::install();
    let _serial = SERIAL.lock().await;
    let env = setup().await;
    let web = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();

    // Positive, cgroupfs placement.
    let v = fetch(&env, &web, "node-a").await;
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
    let cp = checkpoint(&env).await;
    let v = fetch(&env, &far, "node-a").await;
    assert_agent_refused(&v, &cp, Factor::W2, "wrong node");
    // ...while node-b's own agent serves it.
    let v = fetch(&env, &far, "node-b").await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
        "{v}"
    );

    // Not in a pod: a host process.
    let cp = checkpoint(&env).await;
    let out = env.fetch_cmd("node-a", &[]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_agent_refused(&v, &cp, Factor::W1, "host process");

    // The right pod UID but a container ID the pod does not have.
    let cg = env
        .kubelet
        .cgroup_root()
        .container(CgroupStyle::Cgroupfs, &web.uid, &"ab".repeat(32));
    let cp = checkpoint(&env).await;
    let v = output(
        env.kubelet
            .start_process_in(cg, &env.fetch_cmd("node-a", &[]))
            .unwrap(),
    )
    .await;
    assert_agent_refused(&v, &cp, Factor::W2, "container ID mismatch");

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
    let cp = checkpoint(&env).await;
    let v = output(
        env.kubelet
            .start_process_in(cg, &env.fetch_cmd("node-a", &[]))
            .unwrap(),
    )
    .await;
    assert_agent_refused(&v, &cp, Factor::W1, "forged cgroup path");
    drop(env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_problems_deny() {
    agent_log::install();
    let _serial = SERIAL.lock().await;
    let env = setup().await;
    // Positive control: the default token volume, written by the kubelet.
    let good = env
        .kubelet
        .create_pod(&PodParams::new("default", "good", "web", "node-a"))
        .await
        .unwrap();
    let v = fetch(&env, &good, "node-a").await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
        "good token: {v}"
    );

    // No token volume at all.
    let mut p = PodParams::new("default", "notoken", "web", "node-a");
    p.token_volume = None;
    let pod = env.kubelet.create_pod(&p).await.unwrap();
    let cp = checkpoint(&env).await;
    let v = fetch(&env, &pod, "node-a").await;
    assert_agent_refused(&v, &cp, Factor::W3, "no token volume");

    // A token volume for another audience.
    let mut p = PodParams::new("default", "otheraud", "web", "node-a");
    p.token_volume = Some(TokenVolume::for_audience("vault"));
    let pod = env.kubelet.create_pod(&p).await.unwrap();
    let cp = checkpoint(&env).await;
    let v = fetch(&env, &pod, "node-a").await;
    assert_agent_refused(&v, &cp, Factor::W3, "other audience");

    // Declared but not mounted by any container (the kubelet leaves it empty).
    let mut p = PodParams::new("default", "unmounted", "web", "node-a");
    let mut v = TokenVolume::for_audience("sworn");
    v.mounted = false;
    p.token_volume = Some(v);
    let pod = env.kubelet.create_pod(&p).await.unwrap();
    let cp = checkpoint(&env).await;
    let v = fetch(&env, &pod, "node-a").await;
    assert_agent_refused(&v, &cp, Factor::W3, "unmounted volume");

    // Positive control for the rows below: a pod whose token file the test
    // writes itself, the way they write theirs, holding its own real token.
    let honest = env
        .kubelet
        .create_pod_object(&PodParams::new("default", "honest", "web", "node-a"))
        .await
        .unwrap();
    env.kubelet.set_running(&honest).await.unwrap();
    let own = env
        .kubelet
        .request_token(&honest, "sworn", 600)
        .await
        .unwrap();
    sworn_dev::k8s::write_projected_file(
        &env.kubelet.volume_dir(&honest, "sworn-token"),
        &[("token", own.as_bytes())],
    )
    .unwrap();
    let v = fetch(&env, &honest, "node-a").await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
        "a pod's own token written by the test: {v}"
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
    let cp = checkpoint(&env).await;
    let v = fetch(&env, &thief, "node-a").await;
    assert_server_denied(&env, &v, &cp, &thief, Factor::W4, "copied token").await;

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
    let cp = checkpoint(&env).await;
    let v = fetch(&env, &stale, "node-a").await;
    assert_server_denied(&env, &v, &cp, &stale, Factor::W4, "expired token").await;
    drop(env);
}

/// The probe's stdout, line by line, each with the time it arrived.
fn stdout_lines(
    p: &mut ContainerProcess,
) -> tokio::sync::mpsc::UnboundedReceiver<(Instant, String)> {
    let stdout = p.child_mut().unwrap().stdout.take().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_ephemeral_deleted_pods_and_api_server_down() {
    agent_log::install();
    let _serial = SERIAL.lock().await;
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
    let cp = checkpoint(&env).await;
    let v = env
        .fetch_in(&web, "debugger", "node-a", CgroupStyle::Cgroupfs)
        .await;
    assert_agent_refused(&v, &cp, Factor::W2, "ephemeral");

    // Deleted while a stream is open: the stream ends with PermissionDenied
    // within STREAM_END_BOUND of the deletion. The same pod's app container is
    // the positive control: its stream first carries the SVID.
    let mut watcher = env
        .kubelet
        .start_container_process(
            &web,
            "app",
            &env.fetch_cmd("node-a", &["-updates", "2"]),
            CgroupStyle::Cgroupfs,
        )
        .unwrap();
    let mut lines = stdout_lines(&mut watcher);
    let (_, first) = tokio::time::timeout(Duration::from_secs(30), lines.recv())
        .await
        .expect("the stream's first message in time")
        .expect("the probe printed nothing");
    assert!(
        first.contains("spiffe://example.org/ns/default/sa/web"),
        "{first}"
    );
    let deleted_at = Instant::now();
    env.kubelet.delete_pod(&web).await.unwrap();
    let ended = tokio::time::timeout(STREAM_END_BOUND, lines.recv())
        .await
        .unwrap_or_else(|_| {
            panic!("the stream did not end within {STREAM_END_BOUND:?} of the deletion")
        })
        .expect("the probe exited without the stream ending");
    assert!(
        ended.1.contains("watch_error"),
        "the next message after the deletion must end the stream: {}",
        ended.1
    );
    assert!(
        ended.1.contains("PermissionDenied"),
        "the stream must end with PermissionDenied: {}",
        ended.1
    );
    println!(
        "stream ended {:?} after the pod's deletion (bound {STREAM_END_BOUND:?})",
        ended.0 - deleted_at
    );
    drop(watcher);
    // The old process is denied on a new call too: the pod left the watch.
    let cp = checkpoint(&env).await;
    let v = fetch(&env, &web, "node-a").await;
    assert_agent_refused(&v, &cp, Factor::W2, "deleted pod");

    // The API server goes down: cached SVIDs keep serving.
    let cached = env
        .kubelet
        .create_pod(&PodParams::new("default", "cached", "web", "node-a"))
        .await
        .unwrap();
    let v = fetch(&env, &cached, "node-a").await;
    assert_eq!(v["spiffe_id"], "spiffe://example.org/ns/default/sa/web");
    env.cp.take().unwrap().stop().await;
    let v = fetch(&env, &cached, "node-a").await;
    assert_eq!(
        v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
        "cached SVID while the API is down: {v}"
    );
    drop(env);
}
