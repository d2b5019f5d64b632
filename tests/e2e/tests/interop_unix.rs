//! Unmodified public SPIFFE clients against the unix-mode quickstart
//! environment (`sworn-dev up`, started in-process): the Rust `spiffe` crate
//! (X509Source, including a rotation), go-spiffe v2 and py-spiffe. Each SVID
//! they receive passes the X509-SVID checklist against the bundle.
//!
//! The Go and Python clients are prepared by `tests/interop/setup.sh` (run by
//! `test.sh`), which exports `SWORN_GO_SPIFFE_FETCH`, `SWORN_PY_SPIFFE` and
//! `SWORN_PY_SPIFFE_PROBE`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, SystemTime};

use sworn_identity::{Expected, SpiffeIdentity, check_x509_svid};

fn prerequisite(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run `eval \"$(tests/interop/setup.sh)\"` first (test.sh does this)"
        )
    })
}

fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spiffe_crate_x509_source_gets_a_conformant_svid_and_sees_it_rotate() {
    let dir = tempfile::tempdir().unwrap();
    let env = sworn_dev::unix::start_with(dir.path(), Some(Duration::from_secs(20)))
        .await
        .unwrap();
    let endpoint = format!("unix://{}", env.state.socket.display());
    let source = spiffe::X509Source::builder()
        .endpoint(&endpoint)
        .build()
        .await
        .unwrap();
    let svid = source.svid().unwrap();
    let expected = format!("spiffe://example.org/user/{}", uid());
    assert_eq!(svid.spiffe_id().to_string(), expected);

    // The X509-SVID checklist, against the bundle the server publishes.
    let chain: Vec<Vec<u8>> = svid
        .cert_chain()
        .iter()
        .map(|c| c.as_bytes().to_vec())
        .collect();
    let roots = env.server.shared.ca.bundle().roots_der;
    let id = SpiffeIdentity::parse(&expected).unwrap();
    check_x509_svid(
        &chain[0],
        &chain[1..],
        Expected::Id(&id),
        &roots,
        SystemTime::now(),
    )
    .expect("X509-SVID profile");

    // 20 s TTL: the agent rotates at half-life (with jitter) and pushes it.
    let first_serial = serial(&chain[0]);
    let mut updates = source.updated();
    tokio::time::timeout(Duration::from_secs(25), updates.changed())
        .await
        .expect("no rotation within 25 s")
        .unwrap();
    let rotated = source.svid().unwrap();
    assert_eq!(rotated.spiffe_id().to_string(), expected);
    assert_ne!(
        serial(rotated.leaf().as_bytes()),
        first_serial,
        "a rotation brings a new certificate"
    );
    source.shutdown().await;
    env.stop().await;
}

fn serial(der: &[u8]) -> String {
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    c.raw_serial_as_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_spiffe_and_py_spiffe_fetch_unmodified() {
    let go = prerequisite("SWORN_GO_SPIFFE_FETCH");
    let py = prerequisite("SWORN_PY_SPIFFE");
    let probe = prerequisite("SWORN_PY_SPIFFE_PROBE");
    let dir = tempfile::tempdir().unwrap();
    let env = sworn_dev::unix::start(dir.path()).await.unwrap();
    let endpoint = format!("unix://{}", env.state.socket.display());
    let expected = format!("spiffe://example.org/user/{}", uid());

    let sock = endpoint.clone();
    let go_out =
        tokio::task::spawn_blocking(move || Command::new(go).args(["-addr", &sock]).output())
            .await
            .unwrap()
            .unwrap();
    assert!(
        go_out.status.success(),
        "go-spiffe: {}",
        String::from_utf8_lossy(&go_out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&go_out.stdout).unwrap();
    assert_eq!(v["spiffe_id"], expected.as_str());

    let sock = endpoint.clone();
    let py_out =
        tokio::task::spawn_blocking(move || Command::new(py).arg(probe).arg(&sock).output())
            .await
            .unwrap()
            .unwrap();
    assert!(
        py_out.status.success(),
        "py-spiffe: {}",
        String::from_utf8_lossy(&py_out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&py_out.stdout).unwrap();
    assert_eq!(v["spiffe_id"], expected.as_str());
    assert_eq!(v["bundle_domains"], serde_json::json!(["example.org"]));

    // A caller with no entry (uid 65534) reaches the socket but is refused.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let gob = dir.path().join("go-fetch");
    std::fs::copy(prerequisite("SWORN_GO_SPIFFE_FETCH"), &gob).unwrap();
    let sock = endpoint.clone();
    let denied = tokio::task::spawn_blocking(move || {
        use std::os::unix::process::CommandExt;
        Command::new(gob)
            .args(["-addr", &sock, "-timeout", "5s"])
            .uid(65534)
            .gid(65534)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        !denied.status.success(),
        "uid 65534 has no entry and must get nothing"
    );
    let err = String::from_utf8_lossy(&denied.stdout);
    assert!(
        err.contains("PermissionDenied"),
        "refused by attestation, not by the filesystem: {err}"
    );
    env.stop().await;
}
