//! Table tests for sworn's SPIFFE ID rules (SPIFFE-ID spec §2, plus the reserved prefix).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spiffe::spiffe_id::SpiffeIdError;
use sworn_identity::{IdError, SpiffeIdentity, TrustDomain, parse_trust_domain};

#[test]
fn accepted_ids_round_trip_unchanged() {
    let at_limit = format!("spiffe://example.org/{}", "a".repeat(2048 - 21));
    assert_eq!(at_limit.len(), 2048);
    for input in [
        "spiffe://example.org/ns/default/sa/web",
        "spiffe://example.org/a",
        "spiffe://example.org/Mixed-Case_path.v1",
        "spiffe://my-td_1.example.org/x",
        "spiffe://example.org/swornish/x",
        "spiffe://example.org/x/sworn",
        &at_limit,
    ] {
        let id = SpiffeIdentity::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(id.as_str(), input);
        assert_eq!(id.to_string(), input);
        assert!(!id.is_reserved(), "{input}");
    }
}

#[test]
fn rejected_ids_name_the_rule_they_break() {
    use IdError::*;
    use SpiffeIdError as S;
    let too_long = format!("spiffe://example.org/{}", "a".repeat(2048 - 20));
    let cases: Vec<(&str, &str, IdError)> = vec![
        ("empty", "", Syntax(S::Empty)),
        ("no_path", "spiffe://example.org", EmptyPath),
        (
            "root_slash",
            "spiffe://example.org/",
            Syntax(S::TrailingSlash),
        ),
        (
            "trailing_slash",
            "spiffe://example.org/a/",
            Syntax(S::TrailingSlash),
        ),
        (
            "empty_segment",
            "spiffe://example.org/a//b",
            Syntax(S::EmptySegment),
        ),
        (
            "dot_dot",
            "spiffe://example.org/a/../b",
            Syntax(S::DotSegment),
        ),
        (
            "dot_dot_last",
            "spiffe://example.org/a/..",
            Syntax(S::DotSegment),
        ),
        ("dot", "spiffe://example.org/./a", Syntax(S::DotSegment)),
        (
            "percent_path",
            "spiffe://example.org/a%2Fb",
            Syntax(S::BadPathSegmentChar),
        ),
        (
            "percent_td",
            "spiffe://exa%41mple.org/a",
            Syntax(S::BadTrustDomainChar),
        ),
        (
            "query",
            "spiffe://example.org/a?x=1",
            Syntax(S::BadPathSegmentChar),
        ),
        (
            "fragment",
            "spiffe://example.org/a#f",
            Syntax(S::BadPathSegmentChar),
        ),
        (
            "userinfo",
            "spiffe://user@example.org/a",
            Syntax(S::BadTrustDomainChar),
        ),
        (
            "port",
            "spiffe://example.org:8443/a",
            Syntax(S::BadTrustDomainChar),
        ),
        (
            "upper_td",
            "spiffe://Example.org/a",
            TrustDomainNotLowerCase,
        ),
        ("upper_scheme", "SPIFFE://example.org/a", SchemeNotLowerCase),
        ("mixed_scheme", "Spiffe://example.org/a", SchemeNotLowerCase),
        (
            "other_scheme",
            "https://example.org/a",
            Syntax(S::WrongScheme),
        ),
        ("no_scheme", "example.org/a", Syntax(S::WrongScheme)),
        ("no_td", "spiffe:///a", Syntax(S::MissingTrustDomain)),
        (
            "space",
            "spiffe://example.org/a b",
            Syntax(S::BadPathSegmentChar),
        ),
        (
            "newline",
            "spiffe://example.org/a\n",
            Syntax(S::BadPathSegmentChar),
        ),
        (
            "non_ascii_td",
            "spiffe://exämple.org/a",
            Syntax(S::BadTrustDomainChar),
        ),
        (
            "non_ascii_path",
            "spiffe://example.org/é",
            Syntax(S::BadPathSegmentChar),
        ),
        ("too_long", &too_long, TooLong { len: 2049 }),
        (
            "reserved_server",
            "spiffe://example.org/sworn/server",
            Reserved,
        ),
        ("reserved_bare", "spiffe://example.org/sworn", Reserved),
        (
            "reserved_case",
            "spiffe://example.org/Sworn/agent/x",
            Reserved,
        ),
    ];
    for (name, input, want) in cases {
        assert_eq!(
            SpiffeIdentity::parse(input).err(),
            Some(want.clone()),
            "{name}"
        );
        assert_eq!(
            input.parse::<SpiffeIdentity>().err(),
            Some(want),
            "{name} via FromStr"
        );
    }
}

#[test]
fn reserved_ids_only_through_sworn_constructors() {
    let td = parse_trust_domain("example.org").unwrap();
    let server = SpiffeIdentity::sworn_server(&td).unwrap();
    assert_eq!(server.as_str(), "spiffe://example.org/sworn/server");
    assert!(server.is_reserved());
    let agent = SpiffeIdentity::sworn_agent(&td, &["k8s", "c1", "node-uid", "pod-uid"]).unwrap();
    assert_eq!(
        agent.as_str(),
        "spiffe://example.org/sworn/agent/k8s/c1/node-uid/pod-uid"
    );
    assert!(agent.is_reserved());
    assert_eq!(
        SpiffeIdentity::parse_including_reserved(agent.as_str()).unwrap(),
        agent
    );
    assert_eq!(
        SpiffeIdentity::sworn_agent(&td, &["..", "x"]).err(),
        Some(IdError::Syntax(SpiffeIdError::DotSegment))
    );
    assert_eq!(
        SpiffeIdentity::from_segments(&td, &["sworn", "server"]).err(),
        Some(IdError::Reserved)
    );
    assert_eq!(
        SpiffeIdentity::from_segments(&td, &[]).err(),
        Some(IdError::EmptyPath)
    );
    assert_eq!(
        SpiffeIdentity::from_segments(&td, &["a/b"]).err(),
        Some(IdError::Syntax(SpiffeIdError::BadPathSegmentChar))
    );
    let long = "a".repeat(2100);
    assert!(matches!(
        SpiffeIdentity::from_segments(&td, &[&long]).err(),
        Some(IdError::TooLong { .. })
    ));
    let ok = SpiffeIdentity::from_segments(&td, &["ns", "prod", "sa", "web"]).unwrap();
    assert_eq!(ok.as_str(), "spiffe://example.org/ns/prod/sa/web");
    assert_eq!(ok.trust_domain(), &TrustDomain::new("example.org").unwrap());
    assert_eq!(ok.path(), "/ns/prod/sa/web");
}

#[test]
fn trust_domains_must_be_bare_lower_case_names() {
    assert_eq!(
        parse_trust_domain("example.org").unwrap().as_str(),
        "example.org"
    );
    let cases = [
        ("Example.org", IdError::TrustDomainNotLowerCase),
        ("spiffe://example.org", IdError::TrustDomainNotBare),
        ("example.org:443", IdError::TrustDomainNotBare),
        ("example.org/x", IdError::TrustDomainNotBare),
        ("", IdError::Syntax(SpiffeIdError::MissingTrustDomain)),
        (
            "exa mple.org",
            IdError::Syntax(SpiffeIdError::BadTrustDomainChar),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(parse_trust_domain(input).err(), Some(want), "{input:?}");
    }
}

#[test]
fn serialises_as_the_uri_string() {
    let id = SpiffeIdentity::parse("spiffe://example.org/a/b").unwrap();
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        "\"spiffe://example.org/a/b\""
    );
}
