//! Kubernetes mode of the agent: the node's pod watch (W2), the pod's own
//! token (W3), and workload attestation combining them with the kernel's
//! view (W1), DESIGN.md §3.2 and §6.

pub mod pods;
pub mod svids;
pub mod token;
pub mod workload;

pub use pods::{PodChange, PodIndex};
pub use svids::K8sSvids;
pub use workload::{K8sFacts, K8sRefusal, K8sWorkloadConfig};
