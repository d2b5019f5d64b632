//! Fuzz target for the selector parser, `Selector: FromStr` (docs/architecture.md,
//! "Factors": W5 and `policy`).
//!
//! Invariants:
//! - no panic, for any bytes;
//! - one spelling: an accepted selector prints exactly the text it was parsed from
//!   (stored selectors compare by string, so a second spelling of one fact would let an
//!   entry miss or match a workload it should not), and that text parses back equal;
//! - the printed form is `TYPE:KEY:VALUE` with the type `kind()` names;
//! - the value obeys its key's rule, checked here independently of the parser: a uid or
//!   gid is canonical decimal, a path is absolute without NUL or dot segments, a hash is
//!   64 lower-case hex digits, a Kubernetes name is a DNS-1123 label or subdomain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sworn_identity::selector::{
    Selector, is_dns_label, is_dns_subdomain, is_label_key, is_label_value,
};

fn hex64(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn value_obeys_its_rule(kind: &str, key: &str, value: &str) -> bool {
    match (kind, key) {
        ("unix", "uid" | "gid") => value.parse::<u32>().is_ok_and(|n| n.to_string() == value),
        ("unix", "path") => {
            value.starts_with('/')
                && !value.contains('\0')
                && value.split('/').all(|seg| seg != "." && seg != "..")
        }
        ("unix", "sha256") => hex64(value),
        ("k8s", "ns" | "container-name") => is_dns_label(value),
        ("k8s", "sa" | "pod-name" | "node-name") => is_dns_subdomain(value),
        ("k8s", "pod-uid") => value.parse::<sworn_identity::PodUid>().is_ok(),
        ("k8s", "container-image") => value.strip_prefix("sha256:").is_some_and(hex64),
        ("k8s", "pod-label") => value
            .rsplit_once(':')
            .is_some_and(|(k, v)| is_label_key(k) && is_label_value(v)),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(selector) = s.parse::<Selector>() else {
        return;
    };
    let printed = selector.to_string();
    assert_eq!(printed, s, "a second spelling was accepted");
    assert_eq!(printed.parse::<Selector>().as_ref(), Ok(&selector));
    let mut parts = printed.splitn(3, ':');
    let (kind, key, value) = match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(key), Some(value)) => (kind, key, value),
        _ => panic!("{printed:?} is not TYPE:KEY:VALUE"),
    };
    assert_eq!(kind, selector.kind());
    assert!(
        value_obeys_its_rule(kind, key, value),
        "{printed:?} breaks its key's rule"
    );
});
