//! The real `sworn-server` binary whose datastore was lost while its CA directory remained
//! (docs/architecture.md, "Storage"): the new datastore would not know which agent tokens
//! already attested, so the server refuses to start (exit 64, saying why) unless
//! `danger_allow_lost_datastore = true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod server_support;

use server_support::{BIN, Server};

#[test]
fn a_deleted_database_beside_a_kept_ca_exits_64_unless_danger_allow_lost_datastore() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.stop();
    let data = dir.path().join("data");
    assert!(
        data.join("ca").join("state.json").exists(),
        "the CA is kept"
    );
    for f in ["sworn.db", "sworn.db-wal", "sworn.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }

    let cfg = Server::config(dir.path());
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started on a lost datastore");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("datastore") && stderr.contains("danger_allow_lost_datastore = true"),
        "{stderr}"
    );
    // A second try is refused the same way: the refusal itself did not make the new
    // datastore look like a kept one.
    let again = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(64));

    // With the danger option it starts, on the same CA.
    let s = Server::start_with(dir.path(), "danger_allow_lost_datastore = true\n");
    let bundle = s.ok(&["bundle", "show"]);
    assert!(bundle.contains("BEGIN CERTIFICATE"), "{bundle}");
    s.stop();
    // Once it has run, the datastore holds the bundle again: a plain restart is fine.
    Server::start(dir.path()).stop();
}
