//! Fuzz target for SPIFFE ID templates: `IdTemplate::parse` and `IdTemplate::render`
//! (docs/architecture.md, "Workload attestation" W5).
//!
//! Input: the first line is the template; each further line sets one pod fact, `ns=`,
//! `sa=`, `pod=`, `uid=`, `node=` (empty: unscheduled) or `label=KEY=VALUE`. Facts not
//! given keep a plausible default, so most inputs render.
//!
//! Invariants:
//! - a template is accepted only as written for this trust domain: it prints back its
//!   source, starts with `spiffe://<td>/`, and one that uses a pod-controlled value
//!   (`{pod_name}`, `{label:...}`) also contains `{namespace}`;
//! - an accepted template renders only valid, non-reserved SPIFFE IDs of that trust
//!   domain (`SpiffeIdentity::parse` accepts the result unchanged), with no brace left;
//! - a rendering of a template with `{namespace}` contains the pod's namespace.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sworn_identity::SpiffeIdentity;
use sworn_identity::pod::PodFacts;
use sworn_server::policy::template::IdTemplate;

const TRUST_DOMAIN: &str = "example.org";
const DEFAULT_UID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

fn facts(lines: std::str::Lines<'_>) -> Option<PodFacts> {
    let mut facts = PodFacts {
        namespace: "default".into(),
        service_account: "web".into(),
        pod_name: "web-1".into(),
        pod_uid: DEFAULT_UID.parse().ok()?,
        node_name: Some("node-a".into()),
        labels: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
        deleting: false,
        containers: Vec::new(),
    };
    for line in lines {
        let (key, value) = line.split_once('=')?;
        match key {
            "ns" => facts.namespace = value.into(),
            "sa" => facts.service_account = value.into(),
            "pod" => facts.pod_name = value.into(),
            // The UID is the API server's, always canonical: other spellings are not facts.
            "uid" => facts.pod_uid = value.parse().ok()?,
            "node" => facts.node_name = Some(value).filter(|v| !v.is_empty()).map(Into::into),
            "label" => {
                let (k, v) = value.split_once('=')?;
                facts.labels.insert(k.into(), v.into());
            }
            _ => return None,
        }
    }
    Some(facts)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let source = lines.next().unwrap_or_default();
    let Ok(template) = IdTemplate::parse(source, TRUST_DOMAIN) else {
        return;
    };
    assert_eq!(template.as_str(), source);
    assert!(source.starts_with(&format!("spiffe://{TRUST_DOMAIN}/")));
    let pod_controlled = source.contains("{pod_name}") || source.contains("{label:");
    assert!(
        !pod_controlled || source.contains("{namespace}"),
        "{source:?} accepted without {{namespace}}"
    );
    let Some(facts) = facts(lines) else {
        return;
    };
    let Ok(rendered) = template.render(&facts) else {
        return;
    };
    let id = SpiffeIdentity::parse(&rendered)
        .unwrap_or_else(|e| panic!("{source:?} rendered {rendered:?}, not an id: {e}"));
    assert_eq!(id.as_str(), rendered);
    assert_eq!(id.trust_domain().as_str(), TRUST_DOMAIN);
    assert!(!rendered.contains(['{', '}']), "{rendered:?}");
    if source.contains("{namespace}") {
        assert!(
            rendered.contains(&facts.namespace),
            "{rendered:?} {facts:?}"
        );
    }
});
