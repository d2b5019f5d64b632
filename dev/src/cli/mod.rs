//! `sworn-dev` subcommands for Kubernetes mode (docs/architecture.md, "Command line").
//!
//! `up --kubernetes` runs a [`crate::k8s::ControlPlane`] and records in the
//! state directory what later invocations need ([`state`]): the kubeconfig,
//! the kubelet root, the per-run cgroup root, and each pod's container IDs.
//! `env`, `pod create` and `exec` are separate processes that act on that
//! state; none of them keeps anything running.

pub mod env;
pub mod exec;
pub mod pod;
pub mod state;
pub mod sworn;
pub mod up;
