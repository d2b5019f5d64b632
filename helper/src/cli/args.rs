//! Flags of `sworn-helper` (docs/architecture.md, "Command line"), parsed into types once, at the edge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use spiffe::{SpiffeId, TrustDomain};

use crate::files::{PidTarget, SignalName};
use crate::proxy::{HostPort, Limits};
use crate::{Endpoint, IdPrefix};

/// mTLS bootstrap from the SPIFFE Workload API.
#[derive(Debug, Parser)]
#[command(name = "sworn-helper", version)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Keep svid.pem, svid.key and bundle.pem current in a directory; signal or run a command
    /// on every rotation.
    Files(FilesArgs),
    /// A TLS proxy that authorizes peers by SPIFFE ID.
    Proxy {
        /// Server or client mode.
        #[command(subcommand)]
        mode: ProxyMode,
    },
}

/// Proxy modes.
#[derive(Debug, Subcommand)]
pub enum ProxyMode {
    /// Accept mTLS, authorize the client's SPIFFE ID, forward plaintext to --backend.
    Server(ServerArgs),
    /// Accept plaintext on loopback, connect to --upstream with mTLS, require --expect-id.
    Client(ClientArgs),
}

/// Where the SVIDs come from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Workload API endpoint (unix:///path, or an absolute socket path).
    #[arg(
        long = "socket",
        env = "SPIFFE_ENDPOINT_SOCKET",
        value_name = "ENDPOINT"
    )]
    pub socket: Endpoint,
    /// Use the SVID with this SPIFFE ID (default: the first one the Workload API lists).
    #[arg(long, value_name = "ID")]
    pub spiffe_id: Option<SpiffeId>,
    /// How long to wait for the first SVID.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub initial_timeout: Duration,
    /// Serve Prometheus /metrics (and /healthz) on this address.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
}

/// `sworn-helper files`.
#[derive(Debug, Args)]
pub struct FilesArgs {
    /// Source settings.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Output directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Write once and exit 0 (init containers).
    #[arg(long)]
    pub once: bool,
    /// Signal to send after each write (needs --pid or --pid-file).
    #[arg(long, requires = "target", conflicts_with = "exec")]
    pub signal: Option<SignalName>,
    /// Pid to signal.
    #[arg(long, group = "target", requires = "signal")]
    pub pid: Option<PidTarget>,
    /// File whose first line is the pid to signal (read at each rotation).
    #[arg(long, group = "target", requires = "signal")]
    pub pid_file: Option<PathBuf>,
    /// Command run with /bin/sh -c after each write (SWORN_HELPER_DIR is set).
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
}

/// Connection bounds and protocol.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Source settings.
    #[command(flatten)]
    pub source: SourceArgs,
    /// Connections open at once.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Time allowed for a TLS handshake (and the TCP connect behind it).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// Also allow TLS 1.2 (default: TLS 1.3 only).
    #[arg(long)]
    pub danger_allow_tls12: bool,
}

impl ProxyArgs {
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
            ..Limits::default()
        }
    }
}

/// `sworn-helper proxy server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Common proxy settings.
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Address to accept mTLS on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Plaintext backend (host:port).
    #[arg(long)]
    pub backend: HostPort,
    /// Allow this SPIFFE ID (repeatable).
    #[arg(long, value_name = "ID")]
    pub allow_id: Vec<SpiffeId>,
    /// Allow every ID of this trust domain (repeatable).
    #[arg(long, value_name = "TD")]
    pub allow_trust_domain: Vec<TrustDomain>,
    /// Allow IDs at or beneath this prefix, on path-segment boundaries (repeatable).
    #[arg(long, value_name = "spiffe://TD/PATH/")]
    pub allow_prefix: Vec<IdPrefix>,
}

/// `sworn-helper proxy client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Common proxy settings.
    #[command(flatten)]
    pub proxy: ProxyArgs,
    /// Loopback address to accept plaintext on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Upstream mTLS server (host:port).
    #[arg(long)]
    pub upstream: HostPort,
    /// The SPIFFE ID the upstream must present (repeatable: any of them).
    #[arg(long, value_name = "ID", required = true)]
    pub expect_id: Vec<SpiffeId>,
    /// Accept plaintext on a non-loopback address (anyone who reaches it speaks as us).
    #[arg(long)]
    pub danger_listen_non_loopback: bool,
}
