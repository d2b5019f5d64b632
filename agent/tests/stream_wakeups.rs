//! Only the streams a change affects wake (docs/architecture.md, "The agent's SVID cache"):
//! a rotation of one caller's SVID, or a new entry for it, wakes that caller's
//! FetchX509SVID stream, not the other nineteen open ones, which are sent nothing.
//!
//! Real parts: the server in-process (SQLite, its CA), a join-token agent, its unix socket,
//! and 20 callers, each go-spiffe (unmodified, `tests/interop/go-fetch`, watching X.509
//! contexts) run as a process under its own uid with an entry of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{Env, metric, require_root, uid_selector};
use tokio::io::{AsyncBufReadExt, BufReader};

const STREAMS: u32 = 20;
/// The callers' uids: `BASE_UID..BASE_UID + STREAMS`.
const BASE_UID: u32 = 30_200;
/// The caller whose SVID rotates: short-lived, renewed at about half of it.
const ROTATING: u32 = 0;
const SHORT_TTL: i64 = 30;
const WAKEUPS: &str = "sworn_agent_workload_api_stream_wakeups_total";

/// go-spiffe, copied where other uids can run it.
fn go_fetch(env: &Env) -> PathBuf {
    let var = "SWORN_GO_SPIFFE_FETCH";
    let built = std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run `eval \"$(tests/interop/setup.sh)\"` first (test.sh does this)"
        )
    });
    let go = env.dir.path().join("go-fetch");
    std::fs::copy(built, &go).unwrap();
    std::fs::set_permissions(&go, std::fs::Permissions::from_mode(0o755)).unwrap();
    go
}

/// One watching caller: the lines (one per X.509 context) it printed so far.
struct Watcher {
    _child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watcher {
    fn spawn(go: &PathBuf, addr: &str, uid: u32) -> Watcher {
        let mut child = tokio::process::Command::new(go)
            .args(["-addr", addr, "-updates", "1000", "-timeout", "300s"])
            .uid(uid)
            .gid(uid)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let seen = lines.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                seen.lock().unwrap().push(line);
            }
        });
        Watcher {
            _child: child,
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_callers_rotation_or_new_entry_wakes_only_its_stream_of_twenty() {
    require_root();
    let env = Env::start().await;
    env.open_to_other_uids();
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let go = go_fetch(&env);
    let mut ids = Vec::new();
    for i in 0..STREAMS {
        let ttl = if i == ROTATING { SHORT_TTL } else { 3600 };
        let id = format!("spiffe://example.org/stream/{i}");
        ids.push(
            env.entry(&id, &uid_selector(BASE_UID + i), &node, ttl)
                .await,
        );
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    support::synced(&agent, &refs).await;

    let addr = format!("unix://{}", agent.socket_path().as_path().display());
    let watchers: Vec<Watcher> = (0..STREAMS)
        .map(|i| Watcher::spawn(&go, &addr, BASE_UID + i))
        .collect();
    sworn_harness::wait_until(
        "every caller holds its first X.509 context",
        Duration::from_secs(30),
        || watchers.iter().all(|w| w.lines().len() == 1),
    )
    .await;
    let before = metric(&agent, WAKEUPS).await.unwrap_or(0.0);
    let rotating = &watchers[ROTATING as usize];
    assert_eq!(
        rotating.lines().len(),
        1,
        "the short-lived SVID rotated before every stream was open"
    );

    // The rotating caller's stream carries the renewed SVID (a new serial).
    sworn_harness::wait_until(
        "the rotated SVID reaches its stream",
        Duration::from_secs(SHORT_TTL as u64),
        || rotating.lines().len() >= 2,
    )
    .await;
    let lines = rotating.lines();
    let serial = |l: &str| serde_json::from_str::<serde_json::Value>(l).unwrap()["serial"].clone();
    assert_ne!(serial(&lines[0]), serial(&lines[1]), "{lines:?}");
    let after = metric(&agent, WAKEUPS)
        .await
        .expect("the agent counts stream wakeups");
    println!(
        "one rotation among {STREAMS} open streams: {} wakeups",
        after - before
    );
    assert!(
        after - before <= 2.0,
        "one caller's rotation woke {} streams",
        after - before
    );
    for (i, w) in watchers.iter().enumerate().skip(1) {
        assert_eq!(
            w.lines().len(),
            1,
            "caller {i} was sent a message: {:?}",
            w.lines()
        );
    }

    // A new entry for another caller: the Sync message wakes that caller's stream alone
    // (once for the entry, once more for the SVID its recomputation minted).
    let before = metric(&agent, WAKEUPS).await.unwrap();
    let second = env
        .entry(
            "spiffe://example.org/stream/1-more",
            &uid_selector(BASE_UID + 1),
            &node,
            3600,
        )
        .await;
    support::synced(&agent, &[&second]).await;
    let target = &watchers[1];
    sworn_harness::wait_until(
        "the new entry's context reaches its stream",
        Duration::from_secs(30),
        || target.lines().len() >= 2,
    )
    .await;
    let after = metric(&agent, WAKEUPS).await.unwrap();
    println!(
        "one new entry among {STREAMS} open streams: {} wakeups",
        after - before
    );
    assert!(
        after - before <= 2.0,
        "one caller's new entry woke {} times",
        after - before
    );
    for (i, w) in watchers.iter().enumerate().skip(2) {
        assert_eq!(
            w.lines().len(),
            1,
            "caller {i} was sent a message: {:?}",
            w.lines()
        );
    }
    drop(watchers);
    agent.shutdown().await.unwrap();
}
