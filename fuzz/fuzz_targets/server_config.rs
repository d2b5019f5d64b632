//! Fuzz target for the server's config parser, `Config::parse` (TOML text to the typed
//! `Config`; README.md, "Server configuration").
//!
//! Invariants, for every text it accepts, each value is within its documented bounds:
//! - `trust_domain` is a bare lower-case name (`parse_trust_domain` agrees);
//! - `data_dir` is not empty; the admin socket path fits `sun_path` (at most 107 bytes);
//! - every TTL and `k8s_call_timeout` is positive, `ca_ttl` at least 1 minute;
//! - cluster names are distinct DNS-1123 labels, their audiences non-empty and distinct
//!   from each other, service accounts `namespace:name`, and `bundle_configmap`
//!   `namespace/name`;
//! - `audit_retention` is positive; every `[agent_api]` count and timeout is positive, and each
//!   `[agent_api.rate_limits]` rate is a finite positive number with a positive burst;
//! - `danger_allow_lost_datastore` is on only when the text sets it to `true`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sworn_identity::parse_trust_domain;
use sworn_identity::selector::is_dns_label;
use sworn_server::config::Config;

fn namespaced(s: &str, sep: char) -> bool {
    s.split_once(sep)
        .is_some_and(|(ns, name)| is_dns_label(ns) && !name.is_empty())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = Config::parse(text) else {
        return;
    };
    let table = text.parse::<toml::Table>().ok();
    let td = c.trust_domain.as_str();
    assert_eq!(
        parse_trust_domain(td).map(|t| t.to_string()).as_deref(),
        Ok(td)
    );
    assert!(!c.data_dir.as_os_str().is_empty());
    assert!(
        c.admin_socket.as_os_str().len() <= 107,
        "{:?}",
        c.admin_socket
    );
    for ttl in [c.default_svid_ttl, c.agent_svid_ttl, c.k8s_call_timeout] {
        assert!(!ttl.is_zero());
    }
    assert!(c.ca_ttl >= Duration::from_secs(60));
    assert!(!c.audit_retention.is_zero());
    let a = &c.agent_api;
    assert!(!a.handshake_timeout.is_zero() && !a.idle_timeout.is_zero());
    for n in [
        a.max_handshakes,
        a.max_connections,
        a.max_attests_in_flight,
        a.max_request_bytes,
    ] {
        assert!(n > 0);
    }
    for r in [&a.attest, &a.mint] {
        assert!(r.per_second.is_finite() && r.per_second > 0.0 && r.burst > 0);
    }
    if c.danger_allow_lost_datastore {
        let set = table
            .as_ref()
            .and_then(|t| t.get("danger_allow_lost_datastore"));
        assert_eq!(set, Some(&toml::Value::Boolean(true)));
    }
    let mut names = std::collections::BTreeSet::new();
    for cluster in &c.clusters {
        assert!(is_dns_label(&cluster.name), "{:?}", cluster.name);
        assert!(names.insert(&cluster.name), "{:?} twice", cluster.name);
        assert!(!cluster.agent_audience.is_empty() && !cluster.workload_audience.is_empty());
        assert_ne!(cluster.agent_audience, cluster.workload_audience);
        assert!(
            cluster
                .agent_service_accounts
                .iter()
                .all(|sa| namespaced(sa, ':'))
        );
        assert!(namespaced(&cluster.bundle_configmap, '/'));
    }
});
