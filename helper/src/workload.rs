//! The Workload API connection (SPIFFE Workload Endpoint spec §4): the endpoint address, and
//! a [`MaterialWatch`] following an `X509Source` from the public `spiffe` crate, so any
//! conforming agent works.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use spiffe::x509_source::SvidPicker;
use spiffe::{SpiffeId, X509Source, X509Svid};
use tokio_util::sync::CancellationToken;

use crate::tls::{MaterialError, MaterialWatch};

/// Why the Workload API could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The source could not be built or did not sync in time.
    #[error("workload api at {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: Endpoint,
        /// The `spiffe` crate's error.
        source: spiffe::X509SourceError,
    },
    /// The first SVID is unusable.
    #[error("workload api: {0}")]
    Material(#[from] MaterialError),
}

/// Why an endpoint address was refused.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Neither `unix:` nor `tcp:`, nor an absolute path.
    #[error(
        "workload api endpoint must be unix:///absolute/path, tcp://ip:port or an absolute path, got {0:?}"
    )]
    Scheme(String),
}

/// A Workload API endpoint URI (`unix:///path` or `tcp://ip:port`); a bare absolute path is
/// taken as `unix://` + path. The `spiffe` crate validates the rest when connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(String);

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with('/') {
            return Ok(Endpoint(format!("unix://{s}")));
        }
        if s.starts_with("unix:") || s.starts_with("tcp:") {
            return Ok(Endpoint(s.to_owned()));
        }
        Err(EndpointError::Scheme(s.to_owned()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Endpoint {
    /// The URI text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Connects, waits (up to `initial_timeout`) for the first SVID and bundle, and follows
    /// updates until `shutdown`. Uses the first SVID the Workload API lists (its default).
    pub async fn follow(
        &self,
        initial_timeout: Duration,
        shutdown: CancellationToken,
    ) -> Result<(MaterialWatch, tokio::task::JoinHandle<()>), WorkloadError> {
        self.follow_id(None, initial_timeout, shutdown).await
    }

    /// Like [`Endpoint::follow`], but uses the SVID with ID `pick` when given (a workload
    /// entitled to several identities chooses one); waits until it is offered.
    pub async fn follow_id(
        &self,
        pick: Option<SpiffeId>,
        initial_timeout: Duration,
        shutdown: CancellationToken,
    ) -> Result<(MaterialWatch, tokio::task::JoinHandle<()>), WorkloadError> {
        let mut builder = X509Source::builder().endpoint(&self.0);
        if let Some(id) = pick {
            builder = builder.picker(IdPicker(id));
        }
        let source = builder
            .initial_sync_timeout(initial_timeout)
            .reconnect_backoff(Duration::from_millis(200), Duration::from_secs(10))
            .build()
            .await
            .map_err(|source| WorkloadError::Connect {
                endpoint: self.clone(),
                source,
            })?;
        Ok(MaterialWatch::follow(source, shutdown)?)
    }
}

/// Picks the SVID with one SPIFFE ID.
#[derive(Debug)]
struct IdPicker(SpiffeId);

impl SvidPicker for IdPicker {
    fn pick_svid(&self, svids: &[Arc<X509Svid>]) -> Option<usize> {
        svids.iter().position(|s| s.spiffe_id() == &self.0)
    }
}
