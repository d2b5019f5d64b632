//! sworn node agent (docs/architecture.md, "Components", "Node attestation", "Trust model", "Protocols", "The agent").
//!
//! Attests its node to the server (join token or Kubernetes token), keeps an agent SVID,
//! follows the server's Sync stream, and serves the SPIFFE Workload API on a unix socket,
//! minting workload SVIDs for keys it generates itself. Embed it with [`Agent::start`] or
//! [`run`]; the `sworn-agent` binary is a thin wrapper.

mod agent;
mod backoff;
mod cache;
mod cert;
pub mod config;
pub mod fetch;
pub mod hostpid;
pub mod k8s;
mod key;
mod node;
pub mod probe;
mod socket_path;
mod status;
mod storage;
mod sync;
pub mod telemetry;
mod tls;
mod upstream;
mod workload_api;

pub use agent::{Agent, AgentError, RunningAgent, run};
pub use config::{
    Bootstrap, Config, ConfigError, ConnectionConfig, EXIT_CONFIG, JoinToken, LogFormat,
    NodeAttestation, ServerAddress,
};
pub use node::NodeError;
pub use socket_path::{MAX_SOCKET_PATH_BYTES, SocketPath, SocketPathError};
pub use status::Readiness;
pub use sync::{SyncState, SyncedEntry};
pub use workload_api::{
    DEFAULT_MAX_CONNECTIONS, MAX_CONNECTIONS_PER_TENANT, MAX_REQUEST_BYTES, MAX_STREAMS_PER_PID,
    MAX_STREAMS_PER_TENANT, SECURITY_HEADER,
};
