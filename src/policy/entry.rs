//! Validation of a new registration entry, once, at the admin boundary.
//!
//! IDs are checked against the SPIFFE-ID spec and sworn's rules (no
//! `/sworn/` prefix, this trust domain only); selectors are parsed into
//! [`Selector`]s; an entry mixes no selector types (an entry with both unix and
//! k8s selectors could never match, which is a mistake worth reporting).

use std::time::Duration;

use spiffe::TrustDomain;
use sworn_identity::SpiffeIdentity;
use sworn_identity::selector::{Selector, is_dns_subdomain};

use super::template::IdTemplate;
use crate::store::{Entry, EntryTarget};

/// Why an entry was refused.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// Both or neither of ID and template.
    #[error("give exactly one of --spiffe-id and --spiffe-id-template")]
    Target,
    /// The SPIFFE ID is invalid or reserved.
    #[error("spiffe id: {0}")]
    Id(String),
    /// The ID belongs to another trust domain.
    #[error("spiffe id {id} is not in trust domain {trust_domain}")]
    ForeignId {
        /// The ID.
        id: String,
        /// Ours.
        trust_domain: String,
    },
    /// The template is invalid.
    #[error("spiffe id template: {0}")]
    Template(#[from] super::template::TemplateError),
    /// No selectors.
    #[error("at least one --selector is required")]
    NoSelectors,
    /// A selector is invalid.
    #[error(transparent)]
    Selector(#[from] sworn_identity::selector::SelectorError),
    /// unix and k8s selectors in one entry.
    #[error("an entry cannot mix unix and k8s selectors: it could never match")]
    MixedSelectors,
    /// A template needs pod facts, so it needs k8s selectors.
    #[error("templates render pod facts, so they need k8s selectors")]
    TemplateNeedsK8s,
    /// `--node` is not an agent ID.
    #[error("--node {0:?} is not an agent ID (spiffe://<td>/sworn/agent/...)")]
    Node(String),
    /// Bad TTL.
    #[error("--ttl must be between 1s and {max:?}")]
    Ttl {
        /// The cap.
        max: Duration,
    },
    /// Bad DNS name.
    #[error("--dns {0:?} is not a DNS name")]
    Dns(String),
    /// Hint too long or with control characters.
    #[error("--hint must be at most 256 printable characters")]
    Hint,
}

/// A new entry as requested, before validation.
#[derive(Debug, Clone, Default)]
pub struct NewEntry {
    /// Fixed ID, or empty.
    pub spiffe_id: String,
    /// Template, or empty.
    pub spiffe_id_template: String,
    /// `TYPE:KEY:VALUE` strings.
    pub selectors: Vec<String>,
    /// Agent ID, or empty for any agent.
    pub node: String,
    /// Seconds; 0 means the server default.
    pub ttl_seconds: i64,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// Hint.
    pub hint: String,
}

/// Longest TTL an entry may ask for; the CA's remaining life caps it further.
pub const MAX_ENTRY_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Validates `req` into an entry with `id` and `created_at`.
pub fn validate(
    req: NewEntry,
    td: &TrustDomain,
    id: String,
    created_at: i64,
) -> Result<Entry, EntryError> {
    let target = match (req.spiffe_id.is_empty(), req.spiffe_id_template.is_empty()) {
        (false, true) => {
            let sid =
                SpiffeIdentity::parse(&req.spiffe_id).map_err(|e| EntryError::Id(e.to_string()))?;
            if sid.trust_domain() != td {
                return Err(EntryError::ForeignId {
                    id: req.spiffe_id,
                    trust_domain: td.to_string(),
                });
            }
            EntryTarget::Id(sid.as_str().to_owned())
        }
        (true, false) => {
            let t = IdTemplate::parse(&req.spiffe_id_template, td.as_str())?;
            EntryTarget::Template(t.as_str().to_owned())
        }
        _ => return Err(EntryError::Target),
    };
    if req.selectors.is_empty() {
        return Err(EntryError::NoSelectors);
    }
    let mut selectors = req
        .selectors
        .iter()
        .map(|s| s.parse::<Selector>())
        .collect::<Result<Vec<_>, _>>()?;
    selectors.sort();
    selectors.dedup();
    let kinds: std::collections::BTreeSet<&str> = selectors.iter().map(Selector::kind).collect();
    if kinds.len() > 1 {
        return Err(EntryError::MixedSelectors);
    }
    if matches!(target, EntryTarget::Template(_)) && !kinds.contains("k8s") {
        return Err(EntryError::TemplateNeedsK8s);
    }
    let node = if req.node.is_empty() {
        None
    } else {
        let n = SpiffeIdentity::parse_including_reserved(&req.node)
            .map_err(|_| EntryError::Node(req.node.clone()))?;
        if n.trust_domain() != td || !n.path().starts_with("/sworn/agent/") {
            return Err(EntryError::Node(req.node));
        }
        Some(n.as_str().to_owned())
    };
    let ttl = match req.ttl_seconds {
        0 => None,
        s if s > 0 && Duration::from_secs(s.unsigned_abs()) <= MAX_ENTRY_TTL => {
            Some(Duration::from_secs(s.unsigned_abs()))
        }
        _ => return Err(EntryError::Ttl { max: MAX_ENTRY_TTL }),
    };
    for d in &req.dns_names {
        if !is_dns_name(d) {
            return Err(EntryError::Dns(d.clone()));
        }
    }
    if req.hint.len() > 256 || req.hint.chars().any(char::is_control) {
        return Err(EntryError::Hint);
    }
    Ok(Entry {
        id,
        target,
        selectors,
        node,
        ttl,
        dns_names: req.dns_names,
        hint: req.hint,
        created_at,
    })
}

/// A DNS SAN: a lower-case RFC 1123 subdomain, optionally with a leading `*.` wildcard.
pub fn is_dns_name(d: &str) -> bool {
    let base = d.strip_prefix("*.").unwrap_or(d);
    is_dns_subdomain(base) && base.contains(|c: char| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td() -> TrustDomain {
        TrustDomain::new("example.org").unwrap()
    }

    fn req(id: &str, sels: &[&str]) -> NewEntry {
        NewEntry {
            spiffe_id: id.into(),
            selectors: sels.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn accepts_a_plain_entry() {
        let e = validate(
            req("spiffe://example.org/web", &["unix:uid:1000"]),
            &td(),
            "id".into(),
            1,
        )
        .unwrap();
        assert_eq!(e.target, EntryTarget::Id("spiffe://example.org/web".into()));
    }

    #[test]
    fn refuses_bad_ids_with_clear_errors() {
        for id in [
            "spiffe://example.org/a/../b",
            "spiffe://example.org/a%2Fb",
            "spiffe://Example.org/web",
            "spiffe://example.org/web/",
            "spiffe://example.org/sworn/server",
            "spiffe://other.org/web",
            "http://example.org/web",
        ] {
            assert!(
                validate(req(id, &["unix:uid:1"]), &td(), "i".into(), 1).is_err(),
                "{id}"
            );
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(2100));
        assert!(validate(req(&long, &["unix:uid:1"]), &td(), "i".into(), 1).is_err());
        assert!(matches!(
            validate(req("spiffe://example.org/w", &[]), &td(), "i".into(), 1),
            Err(EntryError::NoSelectors)
        ));
        assert!(matches!(
            validate(
                req("spiffe://example.org/w", &["unix:uid:1", "k8s:ns:a"]),
                &td(),
                "i".into(),
                1
            ),
            Err(EntryError::MixedSelectors)
        ));
        let mut r = req("spiffe://example.org/w", &["unix:uid:1"]);
        r.node = "spiffe://example.org/web".into();
        assert!(matches!(
            validate(r, &td(), "i".into(), 1),
            Err(EntryError::Node(_))
        ));
    }
}
