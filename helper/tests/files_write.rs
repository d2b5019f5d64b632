//! Files mode writer: atomic versions, modes, links, cleanup, and the notification after each
//! write (a real child shell with a `trap`, and `--exec`). SVIDs come from the sworn CA
//! library; the end-to-end files test through a real agent is in `agent_e2e.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::{TestCa, key_matches_cert, leaf_serial};
use sworn_helper::files::{self, FilesConfig, Notify, PidTarget, SignalName};
use sworn_helper::metrics::Metrics;
use sworn_helper::tls::MaterialWatch;
use tokio_util::sync::CancellationToken;

const ID: &str = "spiffe://example.org/db";

fn read_pair(dir: &Path) -> Option<(String, String)> {
    Some((
        std::fs::read_to_string(dir.join("svid.pem")).ok()?,
        std::fs::read_to_string(dir.join("svid.key")).ok()?,
    ))
}

fn versions(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".sworn-")
        })
        .count()
}

#[test]
fn readers_never_see_a_torn_or_mismatched_set_while_rotating() {
    let ca = TestCa::new("example.org");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("svid");
    let materials: Vec<_> = (0..6).map(|_| ca.material(ID, &[])).collect();
    files::publish(&dir, &materials[0]).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (dir, stop, checks) = (dir.clone(), stop.clone(), checks.clone());
        readers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // The documented guarantee: resolve `current` once, read beneath it.
                let version = std::fs::canonicalize(dir.join("current")).expect("current resolves");
                // This loop rotates far faster than any reader's premise (a version is kept
                // until the next rotation), so a resolved version may vanish: retry then.
                // What must never happen is a mismatch or a torn file.
                let Some((cert, key)) = read_pair(&version) else {
                    continue;
                };
                assert!(
                    key_matches_cert(&cert, &key),
                    "mismatched pair in {}",
                    version.display()
                );
                if let Ok(bundle) = std::fs::read_to_string(version.join("bundle.pem")) {
                    assert!(bundle.ends_with("-----END CERTIFICATE-----\n"));
                }
                // Top-level names: every file is whole (never torn or missing).
                let top = std::fs::read_to_string(dir.join("svid.pem")).expect("never missing");
                assert!(
                    pem::parse_many(&top).is_ok_and(|b| !b.is_empty()),
                    "torn svid.pem"
                );
                let top_key = std::fs::read_to_string(dir.join("svid.key")).expect("never missing");
                assert!(rcgen::KeyPair::from_pem(&top_key).is_ok(), "torn svid.key");
                checks.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for i in 1..300 {
        files::publish(&dir, &materials[i % materials.len()]).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("a reader saw an inconsistent state");
    }
    assert!(
        checks.load(Ordering::Relaxed) > 50,
        "readers ran {} checks",
        checks.load(Ordering::Relaxed)
    );
    // Superseded versions are kept for a while, then only current and previous remain.
    assert!(versions(&dir) > 2);
    let old = std::time::SystemTime::now() - 2 * files::write::KEEP_SUPERSEDED;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with(".sworn-") {
            std::fs::File::open(e.path())
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
    }
    files::publish(&dir, &materials[0]).unwrap();
    assert_eq!(versions(&dir), 2);
    let (cert, key) = read_pair(&dir).unwrap();
    assert!(key_matches_cert(&cert, &key));
}

#[test]
fn key_is_0600_files_are_readable_and_links_are_relative() {
    let ca = TestCa::new("example.org");
    let out = tempfile::tempdir().unwrap();
    let m = ca.material(ID, &[]);
    let version = files::publish(out.path(), &m).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&version.join("svid.key")), 0o600);
    assert_eq!(mode(&version.join("svid.pem")), 0o644);
    assert_eq!(mode(&version.join("bundle.pem")), 0o644);
    assert_eq!(mode(&version), 0o755);
    assert_eq!(
        std::fs::read_link(out.path().join("svid.key")).unwrap(),
        Path::new("current/svid.key")
    );
    assert!(
        std::fs::read_link(out.path().join("current"))
            .unwrap()
            .is_relative()
    );
    // The chain is the leaf (and intermediates); the bundle is our trust domain's roots.
    let chain = pem::parse_many(std::fs::read(out.path().join("svid.pem")).unwrap()).unwrap();
    assert_eq!(chain.len(), m.chain().len());
    assert_eq!(chain[0].contents(), m.chain()[0].as_ref());
    let bundle = pem::parse_many(std::fs::read(out.path().join("bundle.pem")).unwrap()).unwrap();
    assert_eq!(
        bundle
            .iter()
            .map(|b| b.contents().to_vec())
            .collect::<Vec<_>>(),
        ca.roots()
    );
    // The key file is PKCS#8 PEM.
    let key = std::fs::read_to_string(out.path().join("svid.key")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    // A moved directory still works (an emptyDir mounted elsewhere).
    let moved = out
        .path()
        .parent()
        .unwrap()
        .join(format!("moved-{}", std::process::id()));
    std::fs::rename(out.path(), &moved).unwrap();
    let (cert, key) = read_pair(&moved).unwrap();
    assert!(key_matches_cert(&cert, &key));
    std::fs::rename(&moved, out.path()).unwrap();
}

#[tokio::test]
async fn every_rotation_signals_the_process_after_the_files_changed() {
    let ca = TestCa::new("example.org");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("svid");
    let pid_file = out.path().join("app.pid");
    let seen = out.path().join("seen");
    std::fs::create_dir(&seen).unwrap();
    // A real process with a SIGHUP handler that copies what it sees on each signal.
    let script = format!(
        "n=0; trap 'n=$((n+1)); cp {d}/svid.pem {s}/$n.pem; cp {d}/svid.key {s}/$n.key; touch {s}/$n.done' HUP; echo $$ > {p}.tmp; mv {p}.tmp {p}; while :; do sleep 0.05; done",
        d = dir.display(),
        s = seen.display(),
        p = pid_file.display()
    );
    let mut app = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert!(support::eventually(Duration::from_secs(5), || pid_file.exists()).await);

    let (watch, updater) = MaterialWatch::new(ca.material(ID, &[]));
    let config = FilesConfig {
        dir: dir.clone(),
        notify: Notify::Signal {
            signal: "SIGHUP".parse::<SignalName>().unwrap(),
            target: PidTarget::PidFile(pid_file.clone()),
        },
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(files::run(watch, config, Metrics::new(), shutdown.clone()));
    let seen_path = out.path().join("seen");
    let mut serials = Vec::new();
    for n in 1..=3usize {
        // The handler marks each signal done after both copies.
        let done = seen_path.join(format!("{n}.done"));
        let ok = support::eventually(Duration::from_secs(10), move || done.exists()).await;
        assert!(ok, "signal {n} not handled");
        let cert = std::fs::read_to_string(seen_path.join(format!("{n}.pem"))).unwrap();
        let key = std::fs::read_to_string(seen_path.join(format!("{n}.key"))).unwrap();
        assert!(key_matches_cert(&cert, &key), "signal {n}: mismatched pair");
        serials.push(leaf_serial(&cert));
        if n < 3 {
            assert!(updater.publish(ca.material(ID, &[])));
        }
    }
    serials.dedup();
    assert_eq!(
        serials.len(),
        3,
        "each signal saw the new svid: {serials:?}"
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
    app.kill().await.unwrap();
}

#[tokio::test]
async fn exec_runs_after_each_write_with_the_directory_set() {
    let ca = TestCa::new("example.org");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("svid");
    let log = out.path().join("exec.log");
    let (watch, updater) = MaterialWatch::new(ca.material(ID, &[]));
    let config = FilesConfig {
        dir: dir.clone(),
        notify: Notify::Exec(format!(
            "openssl x509 -noout -serial -in \"$SWORN_HELPER_DIR/svid.pem\" >> {}",
            log.display()
        )),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(files::run(watch, config, Metrics::new(), shutdown.clone()));
    let lines = |n: usize| {
        let log = log.clone();
        move || {
            std::fs::read_to_string(&log)
                .map(|t| t.lines().count() >= n)
                .unwrap_or(false)
        }
    };
    assert!(
        support::eventually(Duration::from_secs(10), lines(1)).await,
        "exec did not run (is openssl installed?)"
    );
    assert!(updater.publish(ca.material(ID, &[])));
    assert!(support::eventually(Duration::from_secs(10), lines(2)).await);
    let text = std::fs::read_to_string(&log).unwrap();
    let serials: Vec<_> = text.lines().collect();
    assert_ne!(serials[0], serials[1], "{text}");
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
