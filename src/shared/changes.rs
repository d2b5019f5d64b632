//! Which Sync streams a change concerns (docs/architecture.md, "Sync"). Each open stream
//! registers the agent it serves; a change names the agents it can affect, and only their
//! streams are woken. A stream that is not woken neither reads the datastore nor sends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sworn_identity::AgentId;
use tokio::sync::Notify;

use crate::policy::matching::unscoped_unix;
use crate::store::{AgentMethod, AttestedAgent, Entry};

/// How often an open stream re-checks its agent's standing with nothing signalled: a ban
/// written where no change is signalled, and the datastore's revision (a writer that did not
/// signal) are seen within this.
pub const RECHECK: Duration = Duration::from_secs(30);

/// The agents a change can affect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Affected {
    /// One agent: an entry scoped to it (`--node`), a join-token agent's ban.
    Agent(AgentId),
    /// The agents of one Kubernetes node, as a node ban covers them (docs/architecture.md,
    /// "Bans"): the same cluster, and the same node UID or node name.
    Node {
        /// Cluster name.
        cluster: String,
        /// Node UID.
        node_uid: String,
        /// Node name.
        node_name: String,
    },
    /// Every Kubernetes agent: an entry without `--node`.
    KubernetesAgents,
    /// No agent: an entry no agent's Sync holds (a unix entry without `--node`).
    Nobody,
}

impl Affected {
    /// Whose Sync `entry` is in (`policy::matching::entry_synced_to`).
    pub fn of_entry(entry: &Entry) -> Self {
        match &entry.node {
            Some(agent) => Affected::Agent(agent.clone()),
            None if unscoped_unix(entry) => Affected::Nobody,
            None => Affected::KubernetesAgents,
        }
    }

    /// Whose ban the ban or unban of `agent` is.
    pub fn of_ban(agent: &AttestedAgent) -> Self {
        match agent.method {
            AgentMethod::K8s => Affected::Node {
                cluster: agent.cluster.clone(),
                node_uid: agent.node_uid.clone(),
                node_name: agent.node_name.clone(),
            },
            AgentMethod::JoinToken => Affected::Agent(agent.id.clone()),
        }
    }

    fn covers(&self, agent: &AttestedAgent) -> bool {
        match self {
            Affected::Agent(id) => *id == agent.id,
            Affected::Node {
                cluster,
                node_uid,
                node_name,
            } => {
                agent.method == AgentMethod::K8s
                    && agent.cluster == *cluster
                    && (agent.node_uid == *node_uid || agent.node_name == *node_name)
            }
            Affected::KubernetesAgents => agent.method == AgentMethod::K8s,
            Affected::Nobody => false,
        }
    }
}

type Streams = Mutex<HashMap<u64, (AttestedAgent, Arc<Notify>)>>;

/// The open Sync streams, by the agent each serves.
#[derive(Debug, Default)]
pub struct Changes {
    streams: Arc<Streams>,
    next_key: AtomicU64,
    /// Test hook (no config key): the re-check period in milliseconds, 0 for [`RECHECK`].
    recheck_millis: AtomicU64,
}

impl Changes {
    /// Registers a stream for `agent`; it is woken until the subscription is dropped.
    pub fn subscribe(&self, agent: AttestedAgent) -> Subscription {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        lock(&self.streams).insert(key, (agent, notify.clone()));
        Subscription {
            streams: self.streams.clone(),
            key,
            notify,
        }
    }

    /// Wakes the streams of the agents `affected` names; how many.
    pub fn notify(&self, affected: &Affected) -> u64 {
        let mut woken = 0;
        for (agent, notify) in lock(&self.streams).values() {
            if affected.covers(agent) {
                // A stream busy elsewhere keeps the permit and looks at once when it is done.
                notify.notify_one();
                woken += 1;
            }
        }
        woken
    }

    /// How often a stream re-checks with nothing signalled.
    pub fn recheck_period(&self) -> Duration {
        match self.recheck_millis.load(Ordering::Relaxed) {
            0 => RECHECK,
            ms => Duration::from_millis(ms),
        }
    }

    /// Test hook (no config key reaches it): sets the re-check period, so a test can watch
    /// re-checks happen without waiting [`RECHECK`].
    pub fn set_recheck_period(&self, period: Duration) {
        let ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        self.recheck_millis.store(ms, Ordering::Relaxed);
    }
}

fn lock(
    streams: &Streams,
) -> std::sync::MutexGuard<'_, HashMap<u64, (AttestedAgent, Arc<Notify>)>> {
    // The map is consistent after every statement: a panic elsewhere leaves nothing half done.
    streams.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One stream's registration; dropping it unregisters the stream.
#[derive(Debug)]
pub struct Subscription {
    streams: Arc<Streams>,
    key: u64,
    notify: Arc<Notify>,
}

impl Subscription {
    /// Resolves once a change concerning this stream's agent was signalled since the last
    /// time it resolved (signals in between count once).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        lock(&self.streams).remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str, method: AgentMethod, node_uid: &str, node_name: &str) -> AttestedAgent {
        AttestedAgent {
            id: format!("spiffe://td/sworn/agent/{name}").parse().unwrap(),
            method,
            node_name: node_name.into(),
            node_uid: node_uid.into(),
            pod_uid: String::new(),
            cluster: if method == AgentMethod::K8s { "c" } else { "" }.into(),
        }
    }

    #[test]
    fn a_change_wakes_the_streams_of_the_agents_it_can_affect_and_no_other() {
        let changes = Changes::default();
        let unix_a = agent("join/a", AgentMethod::JoinToken, "", "");
        let unix_b = agent("join/b", AgentMethod::JoinToken, "", "");
        let k8s_1 = agent("k8s/c/u1/p1", AgentMethod::K8s, "u1", "n1");
        // A surge agent on the same node, and one on a node re-created under the same name.
        let k8s_1_surge = agent("k8s/c/u1/p2", AgentMethod::K8s, "u1", "n1");
        let k8s_1_renamed = agent("k8s/c/u9/p3", AgentMethod::K8s, "u9", "n1");
        let k8s_2 = agent("k8s/c/u2/p4", AgentMethod::K8s, "u2", "n2");
        let all = [
            &unix_a,
            &unix_b,
            &k8s_1,
            &k8s_1_surge,
            &k8s_1_renamed,
            &k8s_2,
        ];
        let _subs: Vec<Subscription> = all
            .iter()
            .map(|a| changes.subscribe((*a).clone()))
            .collect();
        assert_eq!(changes.notify(&Affected::Agent(unix_a.id.clone())), 1);
        assert_eq!(changes.notify(&Affected::of_ban(&unix_b)), 1);
        assert_eq!(
            changes.notify(&Affected::of_ban(&k8s_1)),
            3,
            "the node's agents"
        );
        assert_eq!(changes.notify(&Affected::KubernetesAgents), 4);
        assert_eq!(changes.notify(&Affected::Nobody), 0);
        drop(_subs);
        assert_eq!(
            changes.notify(&Affected::KubernetesAgents),
            0,
            "dropped streams are gone"
        );
    }

    #[test]
    fn an_entry_affects_its_agent_or_every_kubernetes_agent_or_nobody() {
        let id = sworn_identity::EntryId::generate();
        let target = crate::store::EntryTarget::Id("spiffe://td/w".into());
        let mut e = Entry::unscoped(id, target, vec!["k8s:ns:a".parse().unwrap()], 0);
        assert_eq!(Affected::of_entry(&e), Affected::KubernetesAgents);
        e.selectors = vec!["unix:uid:1".parse().unwrap()];
        assert_eq!(Affected::of_entry(&e), Affected::Nobody);
        let node: AgentId = "spiffe://td/sworn/agent/join/a".parse().unwrap();
        e.node = Some(node.clone());
        assert_eq!(Affected::of_entry(&e), Affected::Agent(node));
    }

    #[tokio::test]
    async fn a_signal_sent_while_the_stream_is_busy_is_kept_for_its_next_wait() {
        let changes = Changes::default();
        let a = agent("join/a", AgentMethod::JoinToken, "", "");
        let sub = changes.subscribe(a.clone());
        changes.notify(&Affected::Agent(a.id.clone()));
        changes.notify(&Affected::Agent(a.id));
        tokio::time::timeout(Duration::from_secs(5), sub.changed())
            .await
            .expect("the signal was kept");
    }
}
