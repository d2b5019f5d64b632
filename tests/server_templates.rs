//! ID templates as a user meets them through the `sworn-server` binary
//! (docs/architecture.md, "ID templates"): a template in which a pod-controlled value shares
//! a path segment is refused by the CLI before any call (exit 2) and by the admin API
//! (`InvalidArgument` naming the rule); one stored before the rule is logged at `error` on
//! startup and listed invalid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod server_support;

use server_support::Server;

const COLLIDING: &str = "spiffe://example.org/svc/{namespace}-{label:app}";
const LEGACY: &str = "00000000-0000-4000-8000-00000000c011";

#[test]
fn a_template_sharing_a_segment_is_refused_at_creation_and_marked_invalid_when_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let create = |t: &str| {
        s.cli(&[
            "entry",
            "create",
            "--spiffe-id-template",
            t,
            "--selector",
            "k8s:ns:prod",
        ])
    };
    let out = create(COLLIDING);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("{label:app} is pod-controlled and must fill a whole path segment"),
        "{stderr}"
    );
    // The admin API refuses it too, for clients other than this CLI.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(async {
        sworn_server::admin::client::connect(&s.socket())
            .await
            .unwrap()
            .create_entry(sworn_proto::admin::CreateEntryRequest {
                spiffe_id_template: COLLIDING.into(),
                selectors: vec!["k8s:ns:prod".into()],
                ..Default::default()
            })
            .await
            .unwrap_err()
    });
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("whole path segment"), "{err:?}");
    // The same values each in a segment of their own are accepted.
    let ok = create("spiffe://example.org/svc/{namespace}/{label:app}");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    s.stop();

    // Stored before the rule: written straight into the server's SQLite store.
    use sworn_server::store::{Entry, EntryTarget};
    server_support::store_entry_directly(
        dir.path(),
        Entry::unscoped(
            LEGACY.parse().unwrap(),
            EntryTarget::Template(COLLIDING.into()),
            vec!["k8s:ns:prod".parse().unwrap()],
            1,
        ),
    );
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
        "one error line, for the stored template: {log}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&s.ok(&["entry", "list", "--output", "json"])).unwrap();
    for e in listed.as_array().unwrap() {
        let want = if e["id"] == LEGACY {
            serde_json::json!("template lets a pod-controlled value share a path segment")
        } else {
            serde_json::Value::Null
        };
        assert_eq!(e["invalid"], want, "{e}");
    }
    s.stop();
}
