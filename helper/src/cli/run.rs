//! What each subcommand runs, and the errors that stop it (mapped to exit codes once).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span};

use super::args::{Cli, ClientArgs, Command, FilesArgs, ProxyMode, ServerArgs, SourceArgs};
use crate::files::{self, FilesConfig, Notify, PidTarget};
use crate::metrics::{self, Metrics};
use crate::proxy;
use crate::tls::{self, MaterialWatch, TlsOptions};
use crate::{Authorizer, AuthorizerError, WorkloadError};

/// Exit code for bad flags or values (EX_USAGE).
pub const EXIT_USAGE: i32 = 64;
/// Exit code when the Workload API gave no usable SVID in time (EX_UNAVAILABLE).
pub const EXIT_UNAVAILABLE: i32 = 69;

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
    tokio::spawn(
        async move {
            if let Err(error) = serve.await {
                error!(%error, "metrics server stopped");
            }
        }
        .instrument(info_span!("metrics_server")),
    );
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
    tokio::spawn(
        async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    changed = rx.changed() => if changed.is_err() { break },
                }
                metrics.rotations.inc();
            }
        }
        .instrument(info_span!("rotation_counter")),
    );
}
