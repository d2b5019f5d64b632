//! The `sworn-server` binary as a user drives it: config errors, the admin
//! CLI over the real socket, `x509 mint` checked by `openssl verify`, restart
//! durability, and the entry rules (unix entries scoped to an agent, DNS names
//! the CA can mint) at creation and for entries stored before them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

mod server_support;

use server_support::{BIN, NODE, Server};

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
        "--node",
        NODE,
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
    assert_eq!(shown["node"], NODE);
    assert_eq!(shown["invalid"], serde_json::Value::Null);

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
        // Scoped, so each is refused for the reason under test.
        let mut full = vec!["entry", "create", "--node", NODE];
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
            "unix:uid:1",
            "--node",
            NODE,
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
        "--node",
        NODE,
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

/// Runs `entry create --spiffe-id spiffe://example.org/<name> <args>`.
fn create(s: &Server, name: &str, args: &[&str]) -> Output {
    let id = format!("spiffe://example.org/{name}");
    let mut full = vec!["entry", "create", "--spiffe-id", &id];
    full.extend_from_slice(args);
    s.cli(&full)
}

/// Asserts `out` failed and its stderr contains `needle`.
fn refused(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains(needle), "stderr does not name {needle}: {err}");
}

fn entry_ids(s: &Server) -> Vec<String> {
    let listed: serde_json::Value =
        serde_json::from_str(&s.ok(&["entry", "list", "--output", "json"])).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn entry_create_scopes_unix_entries_to_an_agent_and_applies_the_ca_dns_rule() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());

    // A unix entry without --node would match every agent: refused, naming the flag.
    for sel in ["unix:uid:1000", "unix:path:/usr/bin/app", "unix:gid:10"] {
        refused(&create(&s, "unscoped", &["--selector", sel]), "--node");
    }
    assert!(entry_ids(&s).is_empty(), "a refused entry was stored");
    let ok = create(
        &s,
        "scoped",
        &["--selector", "unix:uid:1000", "--node", NODE],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Kubernetes entries need no --node: the server re-verifies the pod's node itself.
    let ok = create(&s, "k8s", &["--selector", "k8s:ns:shop"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(entry_ids(&s).len(), 2);

    // DNS names the CA would refuse on every mint are refused here, naming the flag.
    let scoped = ["--selector", "unix:uid:1000", "--node", NODE];
    for bad in ["*.x", "Web.example.org", "web.", "10.0.0.1"] {
        let mut args = scoped.to_vec();
        args.extend(["--dns", bad]);
        refused(&create(&s, "bad-dns", &args), "--dns");
    }
    // The CA's limit: 32 names in one SVID.
    let names: Vec<String> = (0..33).map(|i| format!("h{i}.example.org")).collect();
    let mut args = scoped.to_vec();
    for n in &names {
        args.extend(["--dns", n.as_str()]);
    }
    refused(&create(&s, "many-dns", &args), "--dns");
    args.truncate(args.len() - 2);
    let ok = create(&s, "32-dns", &args);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut args = scoped.to_vec();
    args.extend([
        "--dns",
        "web.example.org",
        "--dns",
        "web.example.org",
        "--output",
        "json",
    ]);
    let out = create(&s, "web", &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["dns_names"], serde_json::json!(["web.example.org"]));
    assert_eq!(entry_ids(&s).len(), 4);
    s.stop();
}

#[test]
fn stored_unix_entry_without_node_is_logged_at_startup_and_listed_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.ok(&[
        "entry",
        "create",
        "--spiffe-id",
        "spiffe://example.org/scoped",
        "--selector",
        "unix:uid:1000",
        "--node",
        NODE,
    ]);
    s.stop();

    // An entry stored before `entry create` refused unscoped unix entries: written
    // straight into the server's SQLite store, since the admin API no longer accepts it.
    const LEGACY: &str = "00000000-0000-4000-8000-0000000001e9";
    use sworn_server::store::{Entry, EntryTarget};
    server_support::store_entry_directly(
        dir.path(),
        Entry::unscoped(
            LEGACY.parse().unwrap(),
            EntryTarget::Id("spiffe://example.org/legacy".into()),
            vec!["unix:uid:1000".parse().unwrap()],
            1,
        ),
    );

    // The server still starts, and says at error level which entry needs fixing.
    let s = Server::start_with(dir.path(), "log_format = \"json\"\n");
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let flagged: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["level"] == "ERROR" && l["fields"]["entry_id"].is_string())
        .map(|l| l["fields"]["entry_id"].clone())
        .collect();
    assert_eq!(
        flagged,
        [LEGACY],
        "one error line, for the unscoped entry only: {log}"
    );

    // `entry list` and `entry show` mark it, and only it.
    let listed: serde_json::Value =
        serde_json::from_str(&s.ok(&["entry", "list", "--output", "json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    for e in listed {
        let want = if e["id"] == LEGACY {
            serde_json::json!("unix entry without --node")
        } else {
            serde_json::Value::Null
        };
        assert_eq!(e["invalid"], want, "{e}");
    }
    let text = s.ok(&["entry", "list"]);
    assert_eq!(
        text.matches("Invalid     : unix entry without --node")
            .count(),
        1,
        "{text}"
    );
    assert!(
        s.ok(&["entry", "show", LEGACY])
            .contains("Invalid     : unix entry without --node")
    );
    let shown: serde_json::Value =
        serde_json::from_str(&s.ok(&["entry", "show", LEGACY, "--output", "json"])).unwrap();
    assert_eq!(shown["invalid"], "unix entry without --node");
    s.stop();
}

/// Entry IDs and agent IDs have one encoding: the CLI refuses any other spelling before
/// calling the server, naming the argument, and so does the admin API (`InvalidArgument`
/// naming the field) for a client that skips the CLI. Nothing is looked up or changed.
#[test]
fn malformed_entry_and_agent_ids_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let created: serde_json::Value = serde_json::from_str(&s.ok(&[
        "entry",
        "create",
        "--spiffe-id",
        "spiffe://example.org/web",
        "--selector",
        "k8s:ns:shop",
        "--output",
        "json",
    ]))
    .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let upper = id.to_uppercase();

    for (args, needle) in [
        (vec!["entry", "show", "not-a-uuid"], "\"not-a-uuid\""),
        (vec!["entry", "show", &upper], upper.as_str()),
        (vec!["entry", "delete", &upper], upper.as_str()),
        (
            vec!["agent", "ban", "spiffe://example.org/web"],
            "is not an agent id",
        ),
        (vec!["agent", "unban", "not-an-id"], "agent id"),
    ] {
        let out = s.cli(&args);
        refused(&out, needle);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("<ID>"), "{args:?}: names the argument: {err}");
    }

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sworn_proto::admin as pb;
        let mut admin = sworn_server::admin::client::connect(&s.socket())
            .await
            .unwrap();
        for bad in ["not-a-uuid", upper.as_str(), ""] {
            let err = admin
                .get_entry(pb::EntryId { id: bad.into() })
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad:?}: {err}");
            assert!(err.message().starts_with("entry id "), "{bad:?}: {err}");
            let err = admin
                .delete_entry(pb::EntryId { id: bad.into() })
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad:?}: {err}");
        }
        for (bad, needle) in [
            ("spiffe://example.org/web", "not an agent id"),
            (
                "spiffe://other.org/sworn/agent/join/x",
                "not in trust domain example.org",
            ),
            ("", "agent id"),
        ] {
            let err = admin
                .ban_agent(pb::AgentId { id: bad.into() })
                .await
                .unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad:?}: {err}");
            assert!(err.message().contains(needle), "{bad:?}: {err}");
        }
        // A well-formed agent ID that never attested is only not found.
        let err = admin
            .ban_agent(pb::AgentId {
                id: "spiffe://example.org/sworn/agent/join/x".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    });
    // The entry refused under another spelling is still there, under its own.
    assert!(
        s.ok(&["entry", "show", &id])
            .contains("spiffe://example.org/web")
    );
    s.stop();
}
