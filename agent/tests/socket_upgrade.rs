//! The Workload API socket across an upgrade and in a hostile directory, with real agents on
//! real unix sockets (docs/architecture.md, "Upgrades").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Env;
use sworn_agent::{Agent, AgentError, SocketPath, SocketPathError};
use sworn_identity::socket::SocketError;
use tokio_util::sync::CancellationToken;

/// A client that connects to `path` every 50 ms until stopped, recording every failure.
struct Prober {
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Prober {
    fn start(path: PathBuf) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, a, f) = (stop.clone(), attempts.clone(), failures.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Err(e) = UnixStream::connect(&path) {
                    f.lock().unwrap().push(e.to_string());
                }
                a.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Prober {
            stop,
            attempts,
            failures,
            thread,
        }
    }

    /// Waits (bounded) until `n` more connection attempts were made.
    async fn more(&self, n: usize) {
        let target = self.attempts.load(Ordering::Relaxed) + n;
        sworn_harness::wait_until(
            &format!("{n} more connection attempts"),
            Duration::from_secs(10),
            || self.attempts.load(Ordering::Relaxed) >= target,
        )
        .await;
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        let failures = self.failures.lock().unwrap().clone();
        (self.attempts.load(Ordering::Relaxed), failures)
    }
}

fn on(path: &Path) -> impl FnOnce(&mut sworn_agent::Config) + '_ {
    move |c| c.socket_path = SocketPath::new(path).unwrap()
}

/// A surge rollout: the new agent starts while the old one still serves on the same path, then
/// the old one stops. A client connecting every 50 ms throughout never finds the path empty,
/// and afterwards the path is the new agent's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_rollout_never_leaves_the_socket_path_without_a_socket() {
    let env = Env::start().await;
    let path = env.dir.path().join("run").join("agent.sock");
    let old = env.agent_with("old", on(&path)).await;
    let prober = Prober::start(path.clone());
    prober.more(5).await;

    let new = env.agent_with("new", on(&path)).await;
    prober.more(5).await;
    old.shutdown().await.unwrap();
    prober.more(10).await;
    let (attempts, failures) = prober.finish();
    assert!(
        failures.is_empty(),
        "{} of {attempts} connections failed: {failures:?}",
        failures.len()
    );

    // The path leads to the new agent: it serves a caller its SVID.
    env.entry_for_me(&new, "spiffe://example.org/web").await;
    let svids = sworn_agent::fetch::fetch_x509(&path).await.unwrap();
    assert_eq!(svids[0].spiffe_id, "spiffe://example.org/web");
    // The last agent out removes its own socket.
    new.shutdown().await.unwrap();
    assert!(
        !path.exists(),
        "the new agent removed its socket at shutdown"
    );
}

/// A directory another user may write to would let them swap the socket for a link between
/// bind and chmod. The agent refuses it at start, whatever they plant, and chmods nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_socket_directory_is_refused_and_a_planted_link_is_never_followed() {
    let env = Env::start().await;
    let hostile = env.dir.path().join("shared");
    std::fs::create_dir(&hostile).unwrap();
    std::fs::set_permissions(&hostile, std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = env.dir.path().join("secret");
    std::fs::write(&secret, b"keep").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let path = hostile.join("agent.sock");
    // The attacker keeps planting a link to the secret at the path.
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = {
        let (stop, path, secret, plant) = (
            stop.clone(),
            path.clone(),
            secret.clone(),
            hostile.join("p"),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::os::unix::fs::symlink(&secret, &plant);
                let _ = std::fs::rename(&plant, &path);
            }
        })
    };
    for _ in 0..20 {
        let mut config = env.agent_config("a");
        config.socket_path = SocketPath::new(&path).unwrap();
        let err = Agent::start(config, CancellationToken::new())
            .await
            .expect_err("a world-writable socket directory is refused");
        assert!(
            matches!(
                &err,
                AgentError::Socket(SocketPathError::Place(SocketError::UnsafeDirectory { .. }))
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the link's target was never chmodded");
}
