//! Validation of a new registration entry, once, at the admin boundary.
//!
//! IDs are checked against the SPIFFE-ID spec and sworn's rules (no
//! `/sworn/` prefix, this trust domain only); selectors are parsed into
//! [`Selector`]s; an entry mixes no selector types (an entry with both unix and
//! k8s selectors could never match, which is a mistake worth reporting).
//!
//! Unix entries are always scoped to one agent (`--node`): unix facts (a uid, a
//! path) mean nothing across machines, and an unscoped unix entry would let any
//! agent mint it. [`entry_defect`], over the rule policy applies
//! ([`unscoped_unix`]), is what everyone asks: `entry create` refuses what it
//! reports, the server logs stored entries it reports at startup, and
//! `entry list`/`entry show` mark them. DNS names follow the CA's own rule
//! ([`sworn_identity::dns`]), so an accepted entry can always be minted.

use std::time::Duration;

use spiffe::TrustDomain;
use sworn_identity::dns::{DnsNameError, check_dns_names};
use sworn_identity::selector::Selector;
use sworn_identity::{AgentId, EntryId, SpiffeIdentity};

use super::matching::unscoped_unix;
use super::template::{IdTemplate, pod_controlled_defect};
use crate::store::{Entry, EntryTarget};

/// An entry's target as both protocols carry it: (`spiffe_id`, `spiffe_id_template`),
/// exactly one non-empty.
pub fn target_fields(target: &EntryTarget) -> (String, String) {
    match target {
        EntryTarget::Id(s) => (s.clone(), String::new()),
        EntryTarget::Template(t) => (String::new(), t.clone()),
    }
}

/// An entry's TTL as both protocols carry it: seconds, 0 for the server's default.
pub fn ttl_seconds(ttl: Option<Duration>) -> i64 {
    ttl.map_or(0, |t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
}

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
    /// `--node` is not an agent ID of this trust domain.
    #[error("--node {0:?} is not an agent ID (spiffe://<td>/sworn/agent/...)")]
    Node(String),
    /// Unix selectors and no `--node`: see [`EntryDefect::UnscopedUnix`].
    #[error("unix entries must be scoped to an agent: give --node AGENT-ID")]
    UnscopedUnix,
    /// Bad TTL.
    #[error("--ttl must be between 1s and {max:?}")]
    Ttl {
        /// The cap.
        max: Duration,
    },
    /// The DNS names break the CA's rule (a bad name, or too many).
    #[error("--dns: {0}")]
    Dns(#[from] DnsNameError),
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
    /// Agent ID, or empty for any agent (k8s entries only).
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

/// Why an entry, once stored, can never be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryDefect {
    /// Unix selectors and no node ([`unscoped_unix`]): the entry is scoped to no agent, so
    /// it is left out of every agent's Sync and every mint for it is denied (factor
    /// `entry_scope`).
    #[error("unix entry without --node")]
    UnscopedUnix,
    /// A template in which a pod-controlled value does not fill a whole path segment (or
    /// lacks `{namespace}`), stored before that rule ([`pod_controlled_defect`]): it could
    /// render one ID for two different pods, so it is never rendered (factor `entry`).
    #[error("template lets a pod-controlled value share a path segment")]
    TemplateSegment,
}

/// What makes `entry` unusable, if anything. `entry create` refuses every such entry;
/// ones stored before the rule existed are reported by the server at startup and marked
/// by `entry list` and `entry show`.
pub fn entry_defect(entry: &Entry) -> Option<EntryDefect> {
    if unscoped_unix(entry) {
        return Some(EntryDefect::UnscopedUnix);
    }
    match &entry.target {
        EntryTarget::Template(t) if pod_controlled_defect(t).is_some() => {
            Some(EntryDefect::TemplateSegment)
        }
        _ => None,
    }
}

/// Validates `req` into an entry with `id` and `created_at`.
pub fn validate(
    req: NewEntry,
    td: &TrustDomain,
    id: EntryId,
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
        Some(AgentId::parse_in(&req.node, td).map_err(|_| EntryError::Node(req.node))?)
    };
    let ttl = match req.ttl_seconds {
        0 => None,
        s if s > 0 && Duration::from_secs(s.unsigned_abs()) <= MAX_ENTRY_TTL => {
            Some(Duration::from_secs(s.unsigned_abs()))
        }
        _ => return Err(EntryError::Ttl { max: MAX_ENTRY_TTL }),
    };
    let dns_names = check_dns_names(&req.dns_names)?;
    if req.hint.len() > 256 || req.hint.chars().any(char::is_control) {
        return Err(EntryError::Hint);
    }
    let entry = Entry {
        id,
        target,
        selectors,
        node,
        ttl,
        dns_names,
        hint: req.hint,
        created_at,
    };
    // A template breaking the pod-controlled rules was refused by `IdTemplate::parse`.
    match entry_defect(&entry) {
        Some(EntryDefect::UnscopedUnix) => Err(EntryError::UnscopedUnix),
        Some(EntryDefect::TemplateSegment) | None => Ok(entry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "spiffe://example.org/sworn/agent/join/n1";

    fn td() -> TrustDomain {
        TrustDomain::new("example.org").unwrap()
    }

    fn new_id() -> EntryId {
        EntryId::generate()
    }

    fn req(id: &str, sels: &[&str]) -> NewEntry {
        NewEntry {
            spiffe_id: id.into(),
            selectors: sels.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn scoped(id: &str, sels: &[&str]) -> NewEntry {
        NewEntry {
            node: NODE.into(),
            ..req(id, sels)
        }
    }

    fn with_dns(names: &[&str]) -> NewEntry {
        NewEntry {
            dns_names: names.iter().map(|s| s.to_string()).collect(),
            ..scoped("spiffe://example.org/web", &["unix:uid:1000"])
        }
    }

    #[test]
    fn accepts_a_plain_entry() {
        let e = validate(
            scoped("spiffe://example.org/web", &["unix:uid:1000"]),
            &td(),
            new_id(),
            1,
        )
        .unwrap();
        assert_eq!(e.target, EntryTarget::Id("spiffe://example.org/web".into()));
        assert_eq!(e.node.as_ref().map(AgentId::as_str), Some(NODE));
        assert_eq!(entry_defect(&e), None);
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
                validate(scoped(id, &["unix:uid:1"]), &td(), new_id(), 1).is_err(),
                "{id}"
            );
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(2100));
        assert!(validate(scoped(&long, &["unix:uid:1"]), &td(), new_id(), 1).is_err());
        assert!(matches!(
            validate(scoped("spiffe://example.org/w", &[]), &td(), new_id(), 1),
            Err(EntryError::NoSelectors)
        ));
        assert!(matches!(
            validate(
                scoped("spiffe://example.org/w", &["unix:uid:1", "k8s:ns:a"]),
                &td(),
                new_id(),
                1
            ),
            Err(EntryError::MixedSelectors)
        ));
        let mut r = req("spiffe://example.org/w", &["unix:uid:1"]);
        r.node = "spiffe://example.org/web".into();
        assert!(matches!(
            validate(r, &td(), new_id(), 1),
            Err(EntryError::Node(_))
        ));
    }

    #[test]
    fn node_must_be_an_agent_id_of_this_trust_domain() {
        for bad in [
            "spiffe://other.org/sworn/agent/join/n1",
            "spiffe://example.org/sworn/server",
            "spiffe://example.org/sworn/agent",
            "spiffe://example.org/web",
            "example.org/sworn/agent/join/n1",
        ] {
            let mut r = req("spiffe://example.org/w", &["unix:uid:1"]);
            r.node = bad.into();
            let err = validate(r, &td(), new_id(), 1).expect_err(bad);
            assert!(
                matches!(&err, EntryError::Node(n) if n == bad),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("--node"), "{err}");
        }
    }

    #[test]
    fn unix_entries_need_a_node_and_k8s_entries_do_not() {
        for sel in [
            "unix:uid:1000",
            "unix:gid:100",
            "unix:path:/usr/bin/app",
            &format!("unix:sha256:{}", "a".repeat(64)),
        ] {
            let err =
                validate(req("spiffe://example.org/w", &[sel]), &td(), new_id(), 1).expect_err(sel);
            assert!(matches!(err, EntryError::UnscopedUnix), "{sel}: {err}");
            assert!(err.to_string().contains("--node"), "{err}");
        }
        let k8s = validate(
            req("spiffe://example.org/w", &["k8s:ns:shop"]),
            &td(),
            new_id(),
            1,
        )
        .unwrap();
        assert_eq!(k8s.node, None);
        assert_eq!(entry_defect(&k8s), None);
    }

    #[test]
    fn a_stored_unix_entry_without_node_is_defective() {
        let mut e = validate(
            scoped("spiffe://example.org/w", &["unix:uid:1"]),
            &td(),
            new_id(),
            1,
        )
        .unwrap();
        // What an entry stored before the rule looks like.
        e.node = None;
        assert_eq!(entry_defect(&e), Some(EntryDefect::UnscopedUnix));
        assert_eq!(
            EntryDefect::UnscopedUnix.to_string(),
            "unix entry without --node"
        );
    }

    #[test]
    fn dns_names_follow_the_ca_rule() {
        for bad in [
            "*.x",
            "*.example.org",
            "Web.example.org",
            "web.",
            "10.0.0.1",
        ] {
            let err = validate(with_dns(&[bad]), &td(), new_id(), 1).expect_err(bad);
            assert!(matches!(err, EntryError::Dns(_)), "{bad}: {err}");
            assert!(err.to_string().contains("--dns"), "{err}");
        }
        let over: Vec<String> = (0..=sworn_identity::dns::MAX_DNS_NAMES)
            .map(|i| format!("h{i}.example.org"))
            .collect();
        let over: Vec<&str> = over.iter().map(String::as_str).collect();
        assert!(matches!(
            validate(with_dns(&over), &td(), new_id(), 1),
            Err(EntryError::Dns(DnsNameError::TooMany(_)))
        ));
        let e = validate(
            with_dns(&["web.example.org", "web", "web.example.org"]),
            &td(),
            new_id(),
            1,
        )
        .unwrap();
        assert_eq!(e.dns_names, ["web.example.org", "web"]);
    }
}
