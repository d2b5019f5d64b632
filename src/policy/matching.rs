//! Matching entries against verified evidence.
//!
//! Evidence is turned into the full set of selectors it implies; an entry
//! matches when every one of its selectors is in that set (AND semantics).
//! The server builds the set from what *it* verified (the caller's unix facts
//! as reported by the attested agent, or its own read of the Pod), never from
//! selector strings an agent sends, with the same functions the agent
//! pre-matches with (`sworn_identity::unix::UnixFacts::selectors`,
//! `sworn_identity::pod::PodFacts::selectors`).

use std::collections::BTreeSet;

use sworn_identity::AgentId;
use sworn_identity::selector::Selector;

use crate::store::{AgentMethod, Entry};

/// Whether every selector of `entry` is satisfied.
pub fn entry_matches(entry: &Entry, facts: &BTreeSet<Selector>) -> bool {
    !entry.selectors.is_empty() && entry.selectors.iter().all(|s| facts.contains(s))
}

/// Whether `entry` is a unix entry stored without `--node`. Such an entry is refused at
/// creation; one stored before that rule is scoped to no agent: left out of Sync, every mint
/// for it denied (factor `entry_scope`), and marked invalid in `entry list`.
pub fn unscoped_unix(entry: &Entry) -> bool {
    entry.node.is_none() && entry.selectors.iter().any(|s| s.kind() == "unix")
}

/// Whether `entry` may be used by `agent_id`, or why not. An entry with `--node` belongs to
/// that agent only; a Kubernetes entry without it to every agent (the server re-verifies the
/// pod and its node on every mint); a unix entry without it to none, since a unix caller's
/// facts are only the agent's word.
pub fn check_scope(entry: &Entry, agent_id: &AgentId) -> Result<(), &'static str> {
    match &entry.node {
        Some(n) if n == agent_id => Ok(()),
        Some(_) => Err("entry is scoped to another agent"),
        None if unscoped_unix(entry) => Err("unix entry without --node is scoped to no agent"),
        None => Ok(()),
    }
}

/// Whether `entry` may be used by `agent_id` ([`check_scope`] passes).
pub fn entry_scoped_to(entry: &Entry, agent_id: &AgentId) -> bool {
    check_scope(entry, agent_id).is_ok()
}

/// Whether `entry` is in the Sync state of `agent_id`, which attested by `method`: it is
/// scoped to the agent ([`check_scope`]), and an entry without `--node` only for a Kubernetes
/// agent. Such an entry is a Kubernetes entry, and a join-token agent's callers bring unix
/// evidence (`agent_method`), which no `k8s:` selector matches, so it can apply to none of them.
pub fn entry_synced_to(entry: &Entry, agent_id: &AgentId, method: AgentMethod) -> bool {
    entry_scoped_to(entry, agent_id) && (entry.node.is_some() || method == AgentMethod::K8s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EntryTarget;
    use sworn_identity::unix::UnixFacts;

    /// The agent ID `spiffe://td/sworn/agent/<name>`.
    fn agent(name: &str) -> AgentId {
        format!("spiffe://td/sworn/agent/{name}").parse().unwrap()
    }

    fn entry(sels: &[&str], node: Option<&str>) -> Entry {
        Entry {
            id: sworn_identity::EntryId::generate(),
            target: EntryTarget::Id("spiffe://td/w".into()),
            selectors: sels.iter().map(|s| s.parse().unwrap()).collect(),
            node: node.map(agent),
            ttl: None,
            dns_names: vec![],
            hint: String::new(),
            created_at: 0,
        }
    }

    #[test]
    fn all_selectors_must_match() {
        let f = UnixFacts {
            uid: 1000,
            gid: 100,
            supplementary_gids: vec![27],
            path: "/usr/bin/app".into(),
            sha256: "a".repeat(64),
        }
        .selectors();
        assert!(entry_matches(&entry(&["unix:uid:1000"], None), &f));
        assert!(entry_matches(
            &entry(&["unix:uid:1000", "unix:gid:27"], None),
            &f
        ));
        assert!(!entry_matches(
            &entry(&["unix:uid:1000", "unix:gid:0"], None),
            &f
        ));
        assert!(!entry_matches(
            &entry(&["unix:path:/usr/bin/other"], None),
            &f
        ));
        assert!(entry_scoped_to(
            &entry(&["unix:uid:1"], Some("a")),
            &agent("a")
        ));
        assert!(!entry_scoped_to(
            &entry(&["unix:uid:1"], Some("b")),
            &agent("a")
        ));
    }

    #[test]
    fn a_unix_entry_without_node_is_scoped_to_no_agent() {
        let unscoped = entry(&["unix:uid:1"], None);
        assert!(unscoped_unix(&unscoped));
        assert!(!entry_scoped_to(&unscoped, &agent("a")));
        assert!(check_scope(&unscoped, &agent("a")).is_err());
        // Kubernetes entries without a node stay usable by every agent of the cluster.
        let k8s = entry(&["k8s:ns:default"], None);
        assert!(!unscoped_unix(&k8s));
        assert!(entry_scoped_to(&k8s, &agent("a")));
        assert!(!entry_scoped_to(
            &entry(&["k8s:ns:default"], Some("b")),
            &agent("a")
        ));
    }

    #[test]
    fn sync_holds_unscoped_kubernetes_entries_for_kubernetes_agents_only() {
        let a = agent("a");
        let k8s = entry(&["k8s:ns:default"], None);
        assert!(entry_synced_to(&k8s, &a, AgentMethod::K8s));
        assert!(!entry_synced_to(&k8s, &a, AgentMethod::JoinToken));
        for method in [AgentMethod::K8s, AgentMethod::JoinToken] {
            assert!(entry_synced_to(
                &entry(&["unix:uid:1"], Some("a")),
                &a,
                method
            ));
            assert!(!entry_synced_to(
                &entry(&["unix:uid:1"], Some("b")),
                &a,
                method
            ));
            assert!(!entry_synced_to(&entry(&["unix:uid:1"], None), &a, method));
        }
    }
}
