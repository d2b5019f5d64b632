//! A real local Kubernetes control plane for tests and demos (docs/architecture.md, "Testing").
//!
//! [`ControlPlane`] starts etcd and kube-apiserver (built at pinned versions by
//! `dev/k8s/build.sh`) on free loopback ports in a private directory, the way
//! controller-runtime's envtest does, and stops them when dropped — also when a
//! test panics. [`Kubelet`] plays the kubelet's part against that real API:
//! Nodes, ServiceAccounts, Pods and their status, bound tokens written in the
//! kubelet's on-disk layout, and "container" processes placed in real cgroups.
//!
//! Invariants:
//! - Nothing here fakes the Kubernetes API. Only tokens the API refuses to mint
//!   (expired, or bound to mismatching objects) are produced locally, by
//!   [`ControlPlane::forge_token_with_apiserver_key`], with the API server's own
//!   service-account key.
//! - Every process started here is in its own process group, gets SIGKILL if its
//!   parent thread dies (`setpriv --pdeathsig`), and is killed and reaped on drop.
//! - Every directory and cgroup created here is private to one run and removed on
//!   drop; a directory dropped during a panic (a failing test) is kept instead,
//!   after printing the end of every child's output in it
//!   ([`sworn_harness::RunDir`]).
//! - Every child's stdout and stderr go to files in such a directory.

mod binaries;
mod cgroup;
mod controlplane;
mod kubelet;
mod pki;
mod process;
mod projected;
mod token;

pub use binaries::default_cache_bin_dir;
pub use binaries::{BinariesError, ETCD_VERSION, K8S_VERSION, KubeBinaries};
pub use cgroup::{CgroupError, CgroupRoot, CgroupStyle, ContainerCgroup};
pub use controlplane::DEFAULT_ISSUER;
pub use controlplane::{ControlPlane, ControlPlaneError, ControlPlaneOptions};
pub use kubelet::{
    ContainerHandle, ContainerKind, ContainerProcess, JOIN_FAILED_EXIT, Kubelet, KubeletError,
    PodHandle, PodParams, TokenVolume, container_id,
};
pub use pki::PkiError;
pub use projected::{ProjectedError, write_projected_file};
pub use token::{ForgedClaims, ObjectRef, TokenError};
