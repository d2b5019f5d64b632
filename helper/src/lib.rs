//! sworn-helper: mTLS bootstrap for programs that do not speak the SPIFFE Workload API
//! (docs/architecture.md, "Components").
//!
//! Three ways in, all fed by one rotating [`tls::MaterialWatch`] that follows the Workload API
//! (any implementation: the sworn agent, SPIRE, ...):
//! - [`files`]: writes `svid.pem`, `svid.key`, `bundle.pem` atomically and signals or runs a
//!   command on every rotation (the spiffe-helper use case);
//! - [`proxy`]: a TLS 1.3 proxy that authorizes peers by SPIFFE ID, in server mode (mTLS in,
//!   plaintext to a backend) and client mode (plaintext in on loopback, mTLS upstream);
//! - [`tls`]: rustls `ServerConfig`/`ClientConfig` that rotate, for Rust services that want
//!   mTLS without a sidecar.

pub mod authorize;
pub mod cli;
pub mod files;
pub mod metrics;
pub mod proxy;
pub mod tls;
pub mod workload;

pub use authorize::{Authorizer, AuthorizerError, IdPrefix};
pub use workload::{Endpoint, EndpointError, WorkloadError};
