//! The `sworn-server` binary as a user drives it: config errors, the admin
//! CLI over the real socket, `x509 mint` checked by `openssl verify`, and
//! restart durability.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sworn-server");

struct Server {
    child: Child,
    dir: PathBuf,
}

impl Server {
    fn config(dir: &Path) -> PathBuf {
        let cfg = dir.join("server.toml");
        std::fs::write(
            &cfg,
            format!(
                "trust_domain = \"example.org\"\ndata_dir = \"{}\"\nagent_api_address = \"127.0.0.1:0\"\nhealth_address = \"127.0.0.1:0\"\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        cfg
    }

    fn start(dir: &Path) -> Server {
        let cfg = Self::config(dir);
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("server.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let s = Server {
            child,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.cli(&["healthcheck"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "server did not become healthy: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("data/admin.sock")
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--admin-socket")
            .arg(self.socket())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bad_config_exits_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("data_dir = \"/tmp/x\"\n", "trust_domain"),
        ("trust_domain = \"example.org\"\n", "data_dir"),
        (
            "trust_domain = \"example.org\"\ndata_dir = \"/tmp/x\"\nca_ttl = \"forever\"\n",
            "ca_ttl",
        ),
        (
            "trust_domain = \"example.org\"\ndata_dir = \"/tmp/x\"\nlisten = 1\n",
            "listen",
        ),
    ] {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(&cfg, text).unwrap();
        let out = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "error for {key} does not name it: {err}");
    }
}

#[test]
fn admin_cli_round_trip_and_openssl_verifies_minted_svid() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());

    let created: serde_json::Value = serde_json::from_str(&s.ok(&[
        "entry",
        "create",
        "--spiffe-id",
        "spiffe://example.org/web",
        "--selector",
        "unix:uid:1000",
        "--selector",
        "unix:gid:1000",
        "--ttl",
        "10m",
        "--dns",
        "web.example.org",
        "--output",
        "json",
    ]))
    .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["ttl_seconds"], 600);
    let listed: serde_json::Value =
        serde_json::from_str(&s.ok(&["entry", "list", "--output", "json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let shown: serde_json::Value =
        serde_json::from_str(&s.ok(&["entry", "show", &id, "--output", "json"])).unwrap();
    assert_eq!(shown["spiffe_id"], "spiffe://example.org/web");
    assert_eq!(
        shown["selectors"],
        serde_json::json!(["unix:uid:1000", "unix:gid:1000"])
    );

    // Bad input: clear errors, non-zero exit, nothing stored.
    for (args, needle) in [
        (
            vec![
                "--spiffe-id",
                "spiffe://example.org/a/../b",
                "--selector",
                "unix:uid:1",
            ],
            "dot",
        ),
        (
            vec![
                "--spiffe-id",
                "spiffe://Example.org/a",
                "--selector",
                "unix:uid:1",
            ],
            "spiffe",
        ),
        (
            vec![
                "--spiffe-id",
                "spiffe://example.org/a%41",
                "--selector",
                "unix:uid:1",
            ],
            "spiffe",
        ),
        (
            vec![
                "--spiffe-id",
                "spiffe://example.org/a/",
                "--selector",
                "unix:uid:1",
            ],
            "spiffe",
        ),
        (
            vec![
                "--spiffe-id",
                "spiffe://example.org/sworn/x",
                "--selector",
                "unix:uid:1",
            ],
            "reserved",
        ),
        (
            vec![
                "--spiffe-id",
                "spiffe://example.org/a",
                "--selector",
                "unix:uid:abc",
            ],
            "uid",
        ),
        (
            vec![
                "--spiffe-id",
                "spiffe://example.org/a",
                "--selector",
                "nope:x:y",
            ],
            "unknown",
        ),
    ] {
        let mut full = vec!["entry", "create"];
        full.extend(args.iter().copied());
        let out = s.cli(&full);
        assert!(!out.status.success(), "{full:?} should fail");
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains(needle), "{full:?}: {err}");
    }
    let long = format!("spiffe://example.org/{}", "a".repeat(2100));
    assert!(
        !s.cli(&[
            "entry",
            "create",
            "--spiffe-id",
            &long,
            "--selector",
            "unix:uid:1"
        ])
        .status
        .success()
    );
    let listed: serde_json::Value =
        serde_json::from_str(&s.ok(&["entry", "list", "--output", "json"])).unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "refused entries must not be stored"
    );

    // x509 mint + openssl verify against `bundle show`.
    let out = dir.path().join("out");
    s.ok(&[
        "x509",
        "mint",
        "--spiffe-id",
        "spiffe://example.org/db",
        "--ttl",
        "5m",
        "--write",
        out.to_str().unwrap(),
    ]);
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, s.ok(&["bundle", "show"])).unwrap();
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(&bundle)
        .arg(out.join("svid.pem"))
        .output()
        .expect("openssl is required for this test (apt-get install openssl)");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("svid.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let jwks: serde_json::Value =
        serde_json::from_str(&s.ok(&["bundle", "show", "--format", "jwks"])).unwrap();
    assert_eq!(jwks["keys"][0]["use"], "x509-svid");

    let token = s.ok(&["token", "generate", "--ttl", "10m"]);
    assert_eq!(token.trim().len(), 64);

    s.ok(&["entry", "delete", &id]);
    assert!(!s.cli(&["entry", "show", &id]).status.success());

    // The audit log has every change, and never the token itself.
    let audit = s.ok(&["audit", "--output", "json"]);
    let kinds: Vec<String> = audit
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for k in ["entry.create", "mint", "token.generate", "entry.delete"] {
        assert!(kinds.iter().any(|x| x == k), "audit lacks {k}: {kinds:?}");
    }
    assert!(
        !audit.contains(token.trim()),
        "the join token leaked into the audit log"
    );
    s.stop();
}

#[test]
fn restart_keeps_ca_entries_and_audit_and_corrupt_key_refuses_start() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.ok(&[
        "entry",
        "create",
        "--spiffe-id",
        "spiffe://example.org/keep",
        "--selector",
        "unix:uid:7",
    ]);
    let bundle_before = s.ok(&["bundle", "show"]);
    let audit_before = s.ok(&["audit", "--output", "json"]);
    s.stop();

    // Restart: the stale admin socket is replaced, and nothing is lost.
    let s = Server::start(dir.path());
    assert_eq!(
        s.ok(&["bundle", "show"]),
        bundle_before,
        "CA changed across restart"
    );
    assert!(
        s.ok(&["entry", "list"])
            .contains("spiffe://example.org/keep")
    );
    assert!(
        s.ok(&["audit", "--output", "json"])
            .starts_with(audit_before.trim_end())
    );
    s.stop();

    // Corrupt the active key: the server must refuse to start, naming the file.
    let ca_dir = dir.path().join("data/ca");
    let key = std::fs::read_dir(&ca_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .expect("a key file in the CA dir");
    std::fs::write(
        &key,
        b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let cfg = Server::config(dir.path());
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&*key.file_name().unwrap().to_string_lossy()),
        "{err}"
    );

    // Removing the CA dir entirely must not silently create a new CA either.
    std::fs::remove_dir_all(&ca_dir).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a missing CA with a stored bundle must refuse to start"
    );
    assert!(!ca_dir.exists());
}

#[test]
fn cli_without_server_says_how_to_fix_it() {
    let out = Command::new(BIN)
        .args(["entry", "list", "--admin-socket", "/nonexistent/admin.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SWORN_ADMIN_SOCKET"));
}
