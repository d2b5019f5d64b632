//! Property tests: every identifier sworn stores, compares or audits has one spelling
//! (docs/architecture.md, "Testing").
//!
//! For each type, on generated input:
//! - a generated valid value prints as the text it was built from, and that text parses
//!   back to an equal value (`parse(print(x)) == x`, `print(parse(s)) == s`);
//! - every other spelling of the same value (upper case, padding, another UUID form, a
//!   leading zero) is refused rather than normalised, so two strings never name one thing;
//! - generated invalid text (a dot segment, a character outside the alphabet, one octet
//!   too many) is refused, with the error that names the rule it breaks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use spiffe::SpiffeId;
use sworn_identity::selector::{Selector, SelectorError};
use sworn_identity::{
    AgentId, AgentIdError, ContainerId, EntryId, IdError, MAX_SERIAL_OCTETS, MAX_SPIFFE_ID_BYTES,
    PodUid, Serial, SerialError, SpiffeIdentity, TrustDomain, parse_trust_domain,
};

/// A DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?"
}

/// A DNS-1123 subdomain of one to three labels.
fn dns_subdomain() -> impl Strategy<Value = String> {
    prop::collection::vec(dns_label(), 1..=3).prop_map(|l| l.join("."))
}

/// A trust domain name as the SPIFFE-ID spec allows it: `[a-z0-9._-]`, here as dotted
/// labels that may also hold `_`.
fn trust_domain() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-z0-9]([a-z0-9_-]{0,10}[a-z0-9])?", 1..=3).prop_map(|l| l.join("."))
}

/// A path segment: `[A-Za-z0-9._-]+`, neither `.` nor `..`.
fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,12}".prop_filter("a dot segment", |s| s != "." && s != "..")
}

/// A workload path: segments whose first is not the reserved `sworn` in any case.
fn workload_segments() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(segment(), 1..=5)
        .prop_filter("reserved", |s| !s[0].eq_ignore_ascii_case("sworn"))
}

fn td(name: &str) -> TrustDomain {
    parse_trust_domain(name).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

proptest! {
    #[test]
    fn a_workload_id_prints_as_it_parses(name in trust_domain(), segments in workload_segments()) {
        let text = format!("spiffe://{name}/{}", segments.join("/"));
        let id = SpiffeIdentity::parse(&text).unwrap();
        prop_assert_eq!(id.as_str(), text.as_str());
        prop_assert_eq!(id.trust_domain().as_str(), name.as_str());
        prop_assert_eq!(id.path(), &text[9 + name.len()..]);
        prop_assert_eq!(SpiffeIdentity::parse(id.as_str()).unwrap(), id.clone());
        let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
        prop_assert_eq!(SpiffeIdentity::from_segments(&td(&name), &parts).unwrap(), id);
        let parsed = td(&name);
        prop_assert_eq!(parsed.as_str(), name.as_str());
    }

    #[test]
    fn another_case_of_the_scheme_or_trust_domain_is_refused_not_normalised(
        name in trust_domain().prop_filter("has a letter", |n| n.bytes().any(|b| b.is_ascii_lowercase())),
        segments in workload_segments(),
        upper_scheme in any::<bool>(),
    ) {
        let path = segments.join("/");
        let canonical = format!("spiffe://{name}/{path}");
        let other = match upper_scheme {
            true => format!("SPIFFE://{name}/{path}"),
            false => format!("spiffe://{}/{path}", name.to_ascii_uppercase()),
        };
        // The public crate would read both as one ID; sworn accepts only the canonical text.
        prop_assert_eq!(SpiffeId::new(&other).unwrap().to_string(), canonical.clone());
        let expected = match upper_scheme {
            true => IdError::SchemeNotLowerCase,
            false => IdError::TrustDomainNotLowerCase,
        };
        prop_assert_eq!(SpiffeIdentity::parse(&other), Err(expected));
        prop_assert!(SpiffeIdentity::parse(&canonical).is_ok());
        if !upper_scheme {
            prop_assert_eq!(
                parse_trust_domain(&name.to_ascii_uppercase()).map(|t| t.to_string()),
                Err(IdError::TrustDomainNotLowerCase)
            );
        }
    }

    #[test]
    fn a_bad_segment_anywhere_is_refused(
        name in trust_domain(),
        segments in workload_segments(),
        at in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec![".", "..", "", "a b", "a%2e", "a?b", "a#b", "a:b", "é"]),
    ) {
        let mut segments = segments;
        let at = at.index(segments.len() + 1);
        segments.insert(at, bad.to_owned());
        let text = format!("spiffe://{name}/{}", segments.join("/"));
        prop_assert!(
            matches!(SpiffeIdentity::parse_including_reserved(&text), Err(IdError::Syntax(_))),
            "{} accepted", text
        );
    }

    #[test]
    fn the_reserved_prefix_in_any_case_is_refused_for_workloads(
        name in trust_domain(),
        rest in prop::collection::vec(segment(), 0..=3),
        case in "[sS][wW][oO][rR][nN]",
    ) {
        let mut path = vec![case];
        path.extend(rest);
        let text = format!("spiffe://{name}/{}", path.join("/"));
        prop_assert_eq!(SpiffeIdentity::parse(&text), Err(IdError::Reserved));
        let reserved = SpiffeIdentity::parse_including_reserved(&text).unwrap();
        prop_assert!(reserved.is_reserved());
        prop_assert_eq!(reserved.as_str(), text.as_str());
    }

    #[test]
    fn an_id_past_2048_bytes_is_refused(name in trust_domain(), extra in 1usize..64) {
        let prefix = format!("spiffe://{name}/");
        let text = format!("{prefix}{}", "a".repeat(MAX_SPIFFE_ID_BYTES - prefix.len() + extra));
        prop_assert_eq!(SpiffeIdentity::parse(&text), Err(IdError::TooLong { len: text.len() }));
        let at_limit = &text[..MAX_SPIFFE_ID_BYTES];
        let id = SpiffeIdentity::parse(at_limit).unwrap();
        prop_assert_eq!(id.as_str(), at_limit);
    }

    #[test]
    fn an_agent_id_prints_as_it_parses_in_its_trust_domain_only(
        name in trust_domain(),
        other in trust_domain(),
        segments in prop::collection::vec(segment(), 1..=4),
    ) {
        let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
        let built = AgentId::new(&td(&name), &parts).unwrap();
        let text = format!("spiffe://{name}/sworn/agent/{}", segments.join("/"));
        prop_assert_eq!(built.as_str(), text.as_str());
        prop_assert_eq!(text.parse::<AgentId>().unwrap(), built.clone());
        prop_assert_eq!(AgentId::parse_in(&text, &td(&name)).unwrap(), built.clone());
        prop_assert!(built.spiffe_identity().is_reserved());
        if other != name {
            prop_assert!(
                matches!(
                    AgentId::parse_in(&text, &td(&other)),
                    Err(AgentIdError::ForeignTrustDomain { .. })
                ),
                "{} accepted in {}", text, other
            );
        }
    }

    #[test]
    fn a_spiffe_id_outside_sworn_agent_is_no_agent_id(
        name in trust_domain(),
        second in segment().prop_filter("the agent segment", |s| s != "agent"),
        rest in prop::collection::vec(segment(), 0..=2),
    ) {
        let rest: String = rest.iter().map(|s| format!("/{s}")).collect();
        for path in [
            format!("sworn/{second}{rest}"),
            "sworn/agent".to_owned(),
            format!("Sworn/agent/{second}{rest}"),
            format!("w{second}/sworn/agent{rest}"),
        ] {
            let text = format!("spiffe://{name}/{path}");
            prop_assert_eq!(text.parse::<AgentId>(), Err(AgentIdError::NotAgent(text.clone())));
        }
    }

    #[test]
    fn a_uuid_has_one_spelling_as_entry_id_and_pod_uid(value in any::<u128>()) {
        let uuid = uuid::Uuid::from_u128(value);
        let text = uuid.hyphenated().to_string();
        let entry: EntryId = text.parse().unwrap();
        let pod: PodUid = text.parse().unwrap();
        prop_assert_eq!(entry.to_string(), text.clone());
        prop_assert_eq!(pod.to_string(), text.clone());
        prop_assert_eq!(entry.as_uuid(), &uuid);
        prop_assert_eq!(pod.as_uuid(), &uuid);
        prop_assert_eq!(text.parse::<EntryId>().unwrap(), entry);
        let mut others = vec![
            uuid.simple().to_string(),
            uuid.braced().to_string(),
            uuid.urn().to_string(),
            format!(" {text}"),
            format!("{text}\n"),
        ];
        if text.bytes().any(|b| b.is_ascii_lowercase()) {
            others.push(text.to_ascii_uppercase());
        }
        for other in others {
            prop_assert!(other.parse::<EntryId>().is_err(), "entry id {:?} accepted", other);
            prop_assert!(other.parse::<PodUid>().is_err(), "pod uid {:?} accepted", other);
        }
    }

    #[test]
    fn a_container_id_is_64_lowercase_hex_digits_and_nothing_else(
        bytes in any::<[u8; 32]>(),
        runtime in "(containerd|cri-o|docker)",
    ) {
        let text = hex(&bytes);
        let id: ContainerId = text.parse().unwrap();
        prop_assert_eq!(id.as_str(), text.as_str());
        prop_assert_eq!(ContainerId::from_status(&format!("{runtime}://{text}")).unwrap(), id);
        prop_assert!(text[1..].parse::<ContainerId>().is_err());
        let long = format!("{text}0");
        prop_assert!(long.parse::<ContainerId>().is_err(), "65 digits accepted");
        if text.bytes().any(|b| b.is_ascii_lowercase()) {
            prop_assert!(text.to_ascii_uppercase().parse::<ContainerId>().is_err());
        }
        prop_assert!(ContainerId::from_status(&text).is_err(), "no runtime scheme");
    }

    #[test]
    fn a_serial_prints_its_magnitude_and_reads_back(
        magnitude in prop::collection::vec(any::<u8>(), 1..=MAX_SERIAL_OCTETS)
            .prop_filter("leading zero", |m| m[0] != 0),
        zeros in 0usize..3,
    ) {
        let serial = Serial::from_magnitude(&magnitude).unwrap();
        let text = serial.to_string();
        prop_assert_eq!(text.clone(), hex(&magnitude));
        prop_assert_eq!(text.parse::<Serial>().unwrap(), serial.clone());
        prop_assert_eq!(serial.magnitude(), magnitude.as_slice());
        // Leading zero octets and the DER sign octet are not part of the value...
        let padded = [vec![0; zeros], magnitude.clone()].concat();
        prop_assert_eq!(Serial::from_magnitude(&padded).unwrap(), serial.clone());
        let der = [vec![0], magnitude.clone()].concat();
        prop_assert_eq!(Serial::from_der_integer(&der).unwrap(), serial.clone());
        // ...so text that spells them, or upper case, is another spelling and refused.
        let zero_octet = format!("00{text}");
        prop_assert!(zero_octet.parse::<Serial>().is_err(), "{} accepted", zero_octet);
        if text.bytes().any(|b| b.is_ascii_lowercase()) {
            prop_assert!(text.to_ascii_uppercase().parse::<Serial>().is_err());
        }
        if magnitude[0] & 0x80 != 0 {
            prop_assert_eq!(Serial::from_der_integer(&magnitude), Err(SerialError::Negative));
        }
    }

    #[test]
    fn a_serial_past_20_octets_is_refused(
        magnitude in prop::collection::vec(any::<u8>(), MAX_SERIAL_OCTETS + 1..=40)
            .prop_filter("leading zero", |m| m[0] != 0),
    ) {
        let len = magnitude.len();
        prop_assert_eq!(Serial::from_magnitude(&magnitude), Err(SerialError::TooLong(len)));
        prop_assert_eq!(hex(&magnitude).parse::<Serial>(), Err(SerialError::TooLong(len)));
    }

    #[test]
    fn numeric_selectors_are_canonical_decimal(n in any::<u32>(), gid in any::<bool>()) {
        let (key, built) = match gid {
            true => ("gid", Selector::unix_gid(n)),
            false => ("uid", Selector::unix_uid(n)),
        };
        let text = format!("unix:{key}:{n}");
        prop_assert_eq!(built.to_string(), text.clone());
        prop_assert_eq!(text.parse::<Selector>().unwrap(), built);
        for other in [format!("unix:{key}:0{n}"), format!("unix:{key}:+{n}"), format!("unix:{key}: {n}")] {
            prop_assert!(
                matches!(other.parse::<Selector>(), Err(SelectorError::Value { .. })),
                "{} accepted", other
            );
        }
        let too_big = format!("unix:{key}:{}", u64::from(n) + u64::from(u32::MAX) + 1);
        prop_assert!(too_big.parse::<Selector>().is_err());
    }

    #[test]
    fn path_selectors_are_absolute_without_dot_segments(
        segments in prop::collection::vec(segment(), 1..=5),
        at in any::<prop::sample::Index>(),
        dots in prop::sample::select(vec![".", ".."]),
    ) {
        let path = format!("/{}", segments.join("/"));
        let text = format!("unix:path:{path}");
        let built = Selector::unix_path(&path).unwrap();
        prop_assert_eq!(built.to_string(), text.clone());
        prop_assert_eq!(text.parse::<Selector>().unwrap(), built);
        prop_assert!(Selector::unix_path(&path[1..]).is_err(), "relative");
        let mut with_dots = segments.clone();
        with_dots.insert(at.index(segments.len() + 1), dots.to_owned());
        let bad = format!("unix:path:/{}", with_dots.join("/"));
        prop_assert!(bad.parse::<Selector>().is_err(), "{} accepted", bad);
    }

    #[test]
    fn kubernetes_name_selectors_print_as_they_parse(
        label in dns_label(),
        subdomain in dns_subdomain(),
        digest in any::<[u8; 32]>(),
        uid in any::<u128>(),
    ) {
        let uid: PodUid = uuid::Uuid::from_u128(uid).hyphenated().to_string().parse().unwrap();
        let image = format!("sha256:{}", hex(&digest));
        let cases = [
            (format!("k8s:ns:{label}"), Selector::k8s_namespace(&label)),
            (format!("k8s:container-name:{label}"), Selector::k8s_container_name(&label)),
            (format!("k8s:sa:{subdomain}"), Selector::k8s_service_account(&subdomain)),
            (format!("k8s:pod-name:{subdomain}"), Selector::k8s_pod_name(&subdomain)),
            (format!("k8s:node-name:{subdomain}"), Selector::k8s_node_name(&subdomain)),
            (format!("k8s:pod-uid:{uid}"), Ok(Selector::k8s_pod_uid(&uid))),
            (format!("k8s:container-image:{image}"), Selector::k8s_container_image(&image)),
            (format!("unix:sha256:{}", hex(&digest)), Selector::unix_sha256(&hex(&digest))),
        ];
        for (text, built) in cases {
            let built = built.unwrap();
            prop_assert_eq!(built.to_string(), text.clone());
            prop_assert_eq!(text.parse::<Selector>().unwrap(), built);
            // An upper-case value is another spelling (or another name): refused, never
            // folded.
            let (head, value) = text.rsplit_once(':').unwrap();
            if value.bytes().any(|b| b.is_ascii_lowercase()) {
                let shouted = format!("{head}:{}", value.to_ascii_uppercase());
                prop_assert!(shouted.parse::<Selector>().is_err(), "{} accepted", shouted);
            }
        }
    }

    #[test]
    fn pod_label_selectors_print_as_they_parse(
        prefix in prop::option::of(dns_subdomain()),
        name in "[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?",
        value in "([A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?)?",
        bad in prop::sample::select(vec!["/", ":", " ", "-", "é"]),
    ) {
        let key = match &prefix {
            Some(p) => format!("{p}/{name}"),
            None => name.clone(),
        };
        let text = format!("k8s:pod-label:{key}:{value}");
        let built = Selector::k8s_pod_label(&key, &value).unwrap();
        prop_assert_eq!(built.to_string(), text.clone());
        prop_assert_eq!(text.parse::<Selector>().unwrap(), built);
        // A value may not end (or be) outside the label alphabet.
        let broken = format!("k8s:pod-label:{key}:{value}{bad}");
        prop_assert!(broken.parse::<Selector>().is_err(), "{} accepted", broken);
    }
}
