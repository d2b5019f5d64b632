//! Local sworn environments (docs/architecture.md, "Components" `dev/`, "Command line" `sworn-dev`, "Testing" testing).
//!
//! - [`k8s`]: a real local Kubernetes control plane (etcd + kube-apiserver built
//!   from Go modules by `dev/k8s/build.sh`) and a kubelet stand-in that plays the
//!   kubelet's part against it. Used by tests across the workspace and by
//!   `sworn-dev up --kubernetes`.
//! - [`cli`]: the `sworn-dev` subcommands for Kubernetes mode, acting on a state
//!   directory shared between invocations.
//! - [`unix`]: the unix-mode quickstart.

pub mod cli;
pub mod k8s;
pub mod unix;
