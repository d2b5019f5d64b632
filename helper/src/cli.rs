//! The `sworn-helper` command line (DESIGN.md §8) and what each subcommand runs. Parsed once
//! into types at the edge; `main.rs` only installs tracing, calls [`run`] and maps errors to
//! exit codes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use spiffe::{SpiffeId, TrustDomain};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::files::{self, FilesConfig, Notify, PidTarget, SignalName};
use crate::metrics::{self, Metrics};
use crate::proxy::{self, HostPort, Limits};
use crate::tls::{self, MaterialWatch, TlsOptions};
use crate::{Authorizer, AuthorizerError, Endpoint, IdPrefix, WorkloadError};

/// Exit code for bad flags or values (EX_USAGE).
pub const EXIT_USAGE: i32 = 64;
/// Exit code when the Workload API gave no usable SVID in time (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: i32 = 69;

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
    fn limits(&self) -> Limits {
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

/// Why a subcommand stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A flag value was refused.
    #[error("{0}")]
    Usage(String),
    /// No usable SVID from the Workload API.
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    /// Writing the files failed.
    #[error(transparent)]
    Write(#[from] files::WriteError),
    /// A listener could not be bound.
    #[error("binding {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The TLS configuration was refused.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Client mode could not start.
    #[error(transparent)]
    ClientMode(#[from] proxy::client::ClientModeError),
}

impl From<AuthorizerError> for RunError {
    fn from(e: AuthorizerError) -> Self {
        RunError::Usage(e.to_string())
    }
}

impl RunError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Usage(_) | RunError::ClientMode(_) => EXIT_USAGE,
            RunError::Workload(_) => EXIT_UNAVAILABLE,
            _ => 1,
        }
    }
}

/// Runs the parsed command until it finishes or `shutdown` is cancelled.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> Result<(), RunError> {
    match cli.command {
        Command::Files(args) => run_files(args, shutdown).await,
        Command::Proxy {
            mode: ProxyMode::Server(args),
        } => run_server(args, shutdown).await,
        Command::Proxy {
            mode: ProxyMode::Client(args),
        } => run_client(args, shutdown).await,
    }
}

async fn bind(address: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Bind { address, source })
}

/// Binds the metrics listener (if asked) and starts serving it.
async fn start_metrics(
    addr: Option<SocketAddr>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    let Some(addr) = addr else { return Ok(()) };
    let listener = metrics::bind(addr).await.map_err(|source| RunError::Bind {
        address: addr,
        source,
    })?;
    info!(address = %listener.local_addr().unwrap_or(addr), "metrics listening");
    let serve = metrics.clone().serve(listener, shutdown.clone());
    tokio::spawn(async move {
        if let Err(error) = serve.await {
            error!(%error, "metrics server stopped");
        }
    });
    Ok(())
}

async fn follow(
    source: &SourceArgs,
    shutdown: &CancellationToken,
) -> Result<MaterialWatch, RunError> {
    let (watch, _task) = source
        .socket
        .follow_id(
            source.spiffe_id.clone(),
            source.initial_timeout,
            shutdown.clone(),
        )
        .await?;
    Ok(watch)
}

async fn run_files(args: FilesArgs, shutdown: CancellationToken) -> Result<(), RunError> {
    let notify = match (args.signal, args.pid, args.pid_file, args.exec) {
        (Some(signal), Some(target), _, _) => Notify::Signal { signal, target },
        (Some(signal), None, Some(file), _) => Notify::Signal {
            signal,
            target: PidTarget::PidFile(file),
        },
        (None, _, _, Some(cmd)) => Notify::Exec(cmd),
        _ => Notify::Nothing,
    };
    let config = FilesConfig {
        dir: args.dir,
        notify,
    };
    let metrics = Metrics::new();
    let watch = follow(&args.source, &shutdown).await?;
    if args.once {
        files::write_once(&watch, &config).await?;
        shutdown.cancel();
        return Ok(());
    }
    start_metrics(args.source.metrics, &metrics, &shutdown).await?;
    files::run(watch, config, metrics, shutdown).await?;
    Ok(())
}

async fn run_server(args: ServerArgs, shutdown: CancellationToken) -> Result<(), RunError> {
    let authorizer = Authorizer::new(args.allow_id, args.allow_trust_domain, args.allow_prefix)?;
    let metrics = Metrics::new();
    let listener = bind(args.listen).await?;
    start_metrics(args.proxy.source.metrics, &metrics, &shutdown).await?;
    let watch = follow(&args.proxy.source, &shutdown).await?;
    count_rotations(&watch, &metrics, &shutdown);
    let mut options = TlsOptions::new(authorizer);
    options.danger_allow_tls12 = args.proxy.danger_allow_tls12;
    options.on_denial = Some(metrics.denial_hook());
    let tls = Arc::new(tls::server_config(watch, options.clone())?);
    info!(
        address = %listener.local_addr().unwrap_or(args.listen),
        backend = %args.backend,
        allow = %options.authorizer,
        "proxy server listening"
    );
    proxy::server::run(
        listener,
        args.backend,
        tls,
        args.proxy.limits(),
        metrics,
        shutdown,
    )
    .await
    .map_err(|source| RunError::Bind {
        address: args.listen,
        source,
    })
}

async fn run_client(args: ClientArgs, shutdown: CancellationToken) -> Result<(), RunError> {
    if !args.listen.ip().is_loopback() && !args.danger_listen_non_loopback {
        return Err(RunError::Usage(format!(
            "--listen {} is not a loopback address: plaintext there lets anyone who reaches it speak as this workload (use --danger-listen-non-loopback to allow)",
            args.listen
        )));
    }
    let authorizer = Authorizer::ids(args.expect_id)?;
    let metrics = Metrics::new();
    let listener = bind(args.listen).await?;
    start_metrics(args.proxy.source.metrics, &metrics, &shutdown).await?;
    let watch = follow(&args.proxy.source, &shutdown).await?;
    count_rotations(&watch, &metrics, &shutdown);
    let mut options = TlsOptions::new(authorizer);
    options.danger_allow_tls12 = args.proxy.danger_allow_tls12;
    options.on_denial = Some(metrics.denial_hook());
    let tls = Arc::new(tls::client_config(watch, options.clone())?);
    info!(
        address = %listener.local_addr().unwrap_or(args.listen),
        upstream = %args.upstream,
        expect = %options.authorizer,
        "proxy client listening"
    );
    proxy::client::run(
        listener,
        args.upstream,
        tls,
        args.proxy.limits(),
        metrics,
        shutdown,
    )
    .await?;
    Ok(())
}

fn count_rotations(watch: &MaterialWatch, metrics: &Arc<Metrics>, shutdown: &CancellationToken) {
    let mut rx = watch.subscribe();
    let metrics = metrics.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = rx.changed() => if changed.is_err() { break },
            }
            metrics.rotations.inc();
        }
    });
}
