//! Fuzz target for sworn-identity's ID parsers: `SpiffeIdentity` (both entry points),
//! `parse_trust_domain`, `AgentId`, `EntryId`/`Grant`, `PodUid`, `ContainerId` and `Serial`
//! (docs/architecture.md, "Node attestation", "The CA"). Every parser sees every input.
//!
//! Invariants, for each parser that accepts the input:
//! - one spelling: the value prints exactly the accepted text, and that text parses back
//!   to an equal value (so `print(parse(s)) == s` and the parse is stable);
//! - the value keeps its type's rules: a SPIFFE ID is at most 2048 bytes, lower-case
//!   `spiffe://`, a lower-case bare trust domain and a non-empty path; a workload ID is
//!   never reserved; an agent ID is exactly a SPIFFE ID under `/sworn/agent/<more>`, and
//!   building it from its segments gives the same ID; an entry ID and a pod UID follow
//!   one rule; a serial is 1..=20 octets without a leading zero octet;
//! - the parsers agree with each other where their rules overlap (`parse` is
//!   `parse_including_reserved` minus the reserved prefix, an agent ID of trust domain T
//!   passes `parse_in(_, T)` and fails for any other).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sworn_identity::{
    AgentId, ContainerId, EntryId, Grant, MAX_SERIAL_OCTETS, MAX_SPIFFE_ID_BYTES, PodUid, Serial,
    SpiffeIdentity, TrustDomain, parse_trust_domain,
};

fn spiffe_ids(s: &str) {
    let any = SpiffeIdentity::parse_including_reserved(s);
    let workload = SpiffeIdentity::parse(s);
    match &any {
        Ok(id) => {
            assert_eq!(id.as_str(), s);
            assert_eq!(id.to_string(), s);
            assert!(s.len() <= MAX_SPIFFE_ID_BYTES);
            assert!(s.starts_with("spiffe://"));
            let td = id.trust_domain().as_str();
            assert_eq!(
                parse_trust_domain(td).as_ref().map(TrustDomain::as_str),
                Ok(td)
            );
            assert_eq!(s, format!("spiffe://{td}{}", id.path()));
            assert!(id.path().starts_with('/') && id.path().len() > 1);
            assert_eq!(SpiffeIdentity::parse_including_reserved(s).as_ref(), Ok(id));
            assert_eq!(workload.is_ok(), !id.is_reserved());
            if let Ok(w) = &workload {
                assert_eq!(w, id);
                let segments: Vec<&str> = id.path()[1..].split('/').collect();
                let built = SpiffeIdentity::from_segments(id.trust_domain(), &segments);
                assert_eq!(built.as_ref(), Ok(id), "built from the segments of {s:?}");
            }
        }
        Err(_) => assert!(
            workload.is_err(),
            "parse accepted what the wider parse refused"
        ),
    }

    match s.parse::<AgentId>() {
        Ok(agent) => {
            assert_eq!(agent.as_str(), s);
            let id = any.as_ref().expect("an agent id is a spiffe id");
            assert_eq!(agent.spiffe_identity(), id);
            assert!(id.is_reserved());
            let rest = id
                .path()
                .strip_prefix("/sworn/agent/")
                .expect("under /sworn/agent/");
            assert!(!rest.is_empty());
            let segments: Vec<&str> = rest.split('/').collect();
            let built = AgentId::new(id.trust_domain(), &segments).expect("rebuilds");
            assert_eq!(built, agent);
            assert_eq!(AgentId::parse_in(s, id.trust_domain()).as_ref(), Ok(&agent));
            let other = TrustDomain::new("other.invalid").expect("a trust domain");
            if id.trust_domain() != &other {
                assert!(AgentId::parse_in(s, &other).is_err());
            }
        }
        Err(_) => {
            if let Ok(id) = &any {
                let under = id.path().strip_prefix("/sworn/agent/");
                assert!(
                    under.is_none_or(str::is_empty),
                    "{s:?} refused as an agent id"
                );
            }
        }
    }

    if let Ok(td) = parse_trust_domain(s) {
        assert_eq!(td.as_str(), s);
        let id = SpiffeIdentity::parse(&format!("spiffe://{s}/w")).expect("an id in it");
        assert_eq!(id.trust_domain(), &td);
    }
}

fn uuids(s: &str) {
    let entry = s.parse::<EntryId>();
    let pod = s.parse::<PodUid>();
    assert_eq!(entry.is_ok(), pod.is_ok(), "one uuid rule: {s:?}");
    if let (Ok(entry), Ok(pod)) = (entry, pod) {
        assert_eq!(entry.to_string(), s);
        assert_eq!(pod.to_string(), s);
        assert_eq!(entry.as_uuid(), pod.as_uuid());
        assert_eq!(s.parse::<EntryId>(), Ok(entry));
    }
    match Grant::from_wire(s) {
        Ok(grant) => {
            assert_eq!(grant.to_wire(), s);
            assert_eq!(grant.entry().is_none(), s.is_empty());
        }
        Err(_) => assert!(!s.is_empty() && s.parse::<EntryId>().is_err()),
    }
    if let Ok(c) = s.parse::<ContainerId>() {
        assert_eq!(c.as_str(), s);
        assert!(ContainerId::is_valid(s));
        let status = ContainerId::from_status(&format!("containerd://{s}"));
        assert_eq!(status, Ok(c));
    } else {
        assert!(!ContainerId::is_valid(s));
    }
}

fn serial_text(s: &str) {
    if let Ok(serial) = s.parse::<Serial>() {
        assert_eq!(serial.to_string(), s);
        assert_eq!(Serial::from_magnitude(serial.magnitude()), Ok(serial));
    }
}

fn serial_octets(octets: &[u8]) {
    for serial in [
        Serial::from_magnitude(octets),
        Serial::from_der_integer(octets),
    ]
    .into_iter()
    .flatten()
    {
        let m = serial.magnitude();
        assert!(!m.is_empty() && m.len() <= MAX_SERIAL_OCTETS && m[0] != 0);
        assert!(octets.ends_with(m));
        assert!(octets[..octets.len() - m.len()].iter().all(|b| *b == 0));
        assert_eq!(serial.to_string().parse::<Serial>(), Ok(serial));
    }
}

fuzz_target!(|data: &[u8]| {
    serial_octets(data);
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    spiffe_ids(s);
    uuids(s);
    serial_text(s);
});
