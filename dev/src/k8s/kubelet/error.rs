//! Errors from the kubelet stand-in.

use std::time::Duration;

use crate::k8s::cgroup::CgroupError;
use crate::k8s::projected::ProjectedError;

/// Errors from the kubelet stand-in.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The API server refused or failed a request.
    #[error("{what}: {source}")]
    Api {
        /// The request.
        what: String,
        /// The client error.
        source: kube::Error,
    },
    /// A cgroup operation failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// Writing a projected volume failed.
    #[error(transparent)]
    Projected(#[from] ProjectedError),
    /// A filesystem or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The pod has no container of that name.
    #[error("pod {pod} has no container {container}")]
    NoSuchContainer {
        /// `namespace/name`.
        pod: String,
        /// The container asked for.
        container: String,
    },
    /// An object the API returned lacks a field it always sets.
    #[error("{0} returned by the API server has no uid")]
    MissingUid(&'static str),
    /// TokenRequest answered without a token.
    #[error("the token request returned no token")]
    EmptyToken,
    /// The pod was still present after deletion.
    #[error("pod {0} still exists {1:?} after deletion")]
    DeleteTimeout(String, Duration),
}

pub(super) fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeletError {
    let what = what.into();
    move |source| KubeletError::Api { what, source }
}
