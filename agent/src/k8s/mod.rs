//! Kubernetes mode of the agent: the node's pod watch (W2), the pod's own
//! token (W3), workload attestation combining them with the kernel's view
//! (W1), and the pods' half of the SVID cache (docs/architecture.md,
//! "Workload attestation" and "The agent's SVID cache").

pub mod pods;
pub mod svids;
pub mod token;
pub mod workload;

pub use pods::{PodChange, PodIndex};
pub use svids::{PodDriver, PodWorkloads};
pub use workload::{K8sFacts, K8sRefusal, K8sWorkloadConfig};
