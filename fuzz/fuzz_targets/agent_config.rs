//! Fuzz target for the agent's config parser, `Config::parse` (TOML text to the typed
//! `Config`; README.md, "Agent configuration").
//!
//! Texts that set `join_token_file` are skipped: that key makes the parser read a file the
//! text names, and a fuzzer naming `/dev/zero` or a FIFO measures the file system, not the
//! parser. The key is found with the same TOML parser, so no spelling of it slips through.
//!
//! Invariants, for every other text it accepts, each value is within its documented bounds:
//! - `trust_domain` is a bare lower-case name; `data_dir` and `kubelet_root` are absolute;
//! - `server_address` has a non-empty host, and `https://<host>:<port>` (IPv6 in brackets)
//!   parses back to the same address;
//! - exactly one bootstrap: a bundle file or `danger_insecure_bootstrap`;
//! - a join token, when given, is non-empty and trimmed;
//! - Kubernetes attestation has a non-empty cluster and a non-empty node name, and is never
//!   accepted with `danger_insecure_bootstrap`;
//! - the socket path is absolute, without NUL, and fits `sun_path`;
//! - `pod_wait` is within (0, 5m]; the workload audience is non-empty; each cgroup root is
//!   absolute with plain named segments (no `..`, `.`, empty segment or `:`);
//! - `max_connections` is within 16..=1000000, `workload_api_request_timeout` within
//!   [100ms, 5m], `workload_api_idle_timeout` within [1s, 24h], `max_exe_hash_bytes` ≥ 1.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sworn_agent::MAX_SOCKET_PATH_BYTES;
use sworn_agent::config::{Bootstrap, Config, NodeAttestation, ServerAddress};
use sworn_identity::parse_trust_domain;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = text.parse::<toml::Table>() else {
        return;
    };
    if table.contains_key("join_token_file") {
        return;
    }
    let Ok(c) = Config::parse(text, None) else {
        return;
    };
    let td = c.trust_domain.as_str();
    assert_eq!(
        parse_trust_domain(td).map(|t| t.to_string()).as_deref(),
        Ok(td)
    );
    assert!(c.data_dir.is_absolute(), "{:?}", c.data_dir);

    let ServerAddress { host, port } = &c.server_address;
    assert!(!host.is_empty());
    let shown = match host.contains(':') {
        true => format!("https://[{host}]:{port}"),
        false => format!("https://{host}:{port}"),
    };
    assert_eq!(
        ServerAddress::parse(&shown).as_ref(),
        Ok(&c.server_address),
        "{shown}"
    );

    let danger = table.get("danger_insecure_bootstrap") == Some(&toml::Value::Boolean(true));
    match &c.bootstrap {
        Bootstrap::BundleFile(_) => assert!(table.contains_key("bundle_file") && !danger),
        Bootstrap::DangerInsecure => assert!(danger && !table.contains_key("bundle_file")),
        Bootstrap::Roots(_) => panic!("roots are for embedders, not files"),
    }
    match &c.attestation {
        NodeAttestation::JoinToken(Some(token)) => {
            let t = token.expose();
            assert!(!t.is_empty() && t.trim() == t, "join token {:?}", t.len());
        }
        NodeAttestation::JoinToken(None) => {}
        NodeAttestation::K8s { cluster, .. } => {
            assert!(!cluster.is_empty());
            assert!(
                !danger,
                "Kubernetes attestation with danger_insecure_bootstrap"
            );
            assert!(c.node_name.as_deref().is_some_and(|n| !n.is_empty()));
        }
    }
    let socket = c.socket_path.as_path();
    assert!(socket.is_absolute() && socket.as_os_str().len() <= MAX_SOCKET_PATH_BYTES);
    assert!(!socket.as_os_str().as_encoded_bytes().contains(&0));

    let w = &c.connections;
    assert!((16..=1_000_000).contains(&w.max_connections));
    assert!(
        w.request_timeout >= Duration::from_millis(100)
            && w.request_timeout <= Duration::from_secs(300)
    );
    assert!(
        w.idle_timeout >= Duration::from_secs(1) && w.idle_timeout <= Duration::from_secs(86_400)
    );
    assert!(c.max_exe_hash_bytes >= 1);

    let k = &c.k8s_workload;
    assert!(k.kubelet_root.is_absolute());
    assert!(!k.pod_wait.is_zero() && k.pod_wait <= Duration::from_secs(300));
    assert!(!k.workload_audience.is_empty());
    for root in k.cgroup_roots.iter() {
        let root = root.to_string();
        let plain = root
            .strip_prefix('/')
            .is_some_and(|r| r.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
        assert!(plain && !root.contains(':'), "cgroup root {root:?}");
    }
});
