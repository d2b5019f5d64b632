//! `sworn-agent`: parses the command line, installs tracing, calls the library, maps errors to
//! exit codes (64 for configuration errors, 1 otherwise).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sworn_agent::{Config, EXIT_CONFIG, JoinToken, LogFormat, NodeAttestation, config};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "sworn-agent", version, about = "sworn node agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the agent.
    Run {
        /// The TOML config file.
        #[arg(long)]
        config: PathBuf,
        /// A one-time join token (overrides `join_token` in the file).
        #[arg(long, conflicts_with = "join_token_file")]
        join_token: Option<JoinToken>,
        /// A file holding the join token.
        #[arg(long)]
        join_token_file: Option<PathBuf>,
    },
    /// Workload API client commands.
    Fetch {
        #[command(subcommand)]
        what: Fetch,
    },
    /// Exits 0 when the agent's /readyz says it is attested.
    Healthcheck {
        /// The agent's health address.
        #[arg(long, default_value = config::DEFAULT_HEALTH_ADDRESS, conflicts_with = "config")]
        address: SocketAddr,
        /// Read `health_address` from this config file instead.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum Fetch {
    /// Fetches X509-SVIDs and prints their SPIFFE IDs and expiry.
    X509 {
        /// The Workload API socket (path or unix:///path).
        #[arg(long, env = "SPIFFE_ENDPOINT_SOCKET", default_value = config::DEFAULT_SOCKET_PATH)]
        socket: String,
        /// Write svid.pem, svid.key and bundle.pem (first SVID) into this directory.
        #[arg(long)]
        write: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sworn-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Run {
                config,
                join_token,
                join_token_file,
            } => run(config, join_token, join_token_file).await,
            Command::Fetch {
                what: Fetch::X509 { socket, write },
            } => fetch(&socket, write).await,
            Command::Healthcheck { address, config } => healthcheck(address, config).await,
        }
    })
}

fn config_error(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("sworn-agent: {e}");
    ExitCode::from(EXIT_CONFIG as u8)
}

async fn run(path: PathBuf, token: Option<JoinToken>, token_file: Option<PathBuf>) -> ExitCode {
    let mut config = match Config::from_file(&path, std::env::var("MY_NODE_NAME").ok()) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    let token = match (token, token_file) {
        (Some(t), _) => Some(t),
        (None, Some(f)) => match std::fs::read_to_string(&f) {
            Ok(t) => Some(JoinToken::new(&t)),
            Err(e) => return config_error(format!("--join-token-file {}: {e}", f.display())),
        },
        (None, None) => None,
    };
    if let Some(token) = token {
        match &mut config.attestation {
            NodeAttestation::JoinToken(slot) => *slot = Some(token),
            NodeAttestation::K8s { .. } => {
                return config_error("--join-token needs attestation = \"join_token\"");
            }
        }
    }
    install_tracing(&config);
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received; shutting down");
        signals.cancel();
    });
    match sworn_agent::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "sworn-agent stopped");
            eprintln!("sworn-agent: {e}");
            match e {
                sworn_agent::AgentError::Socket(_)
                | sworn_agent::AgentError::Config(_)
                | sworn_agent::AgentError::Health { .. }
                | sworn_agent::AgentError::BootstrapBundle(_)
                | sworn_agent::AgentError::BootstrapTrust(_)
                | sworn_agent::AgentError::TrustDomain(_) => ExitCode::from(EXIT_CONFIG as u8),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn install_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn fetch(socket: &str, write: Option<PathBuf>) -> ExitCode {
    let result = async {
        let path = sworn_agent::fetch::socket_address(socket)?;
        let svids = sworn_agent::fetch::fetch_x509(&path).await?;
        for svid in &svids {
            let expires = humantime::format_rfc3339_seconds(svid.not_after);
            println!("{} expires {expires}", svid.spiffe_id);
        }
        if let (Some(dir), Some(first)) = (write, svids.first()) {
            sworn_agent::fetch::write_files(&dir, first)?;
            println!("wrote {}/{{svid.pem,svid.key,bundle.pem}}", dir.display());
        }
        Ok::<_, sworn_agent::fetch::FetchError>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sworn-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck(address: SocketAddr, config: Option<PathBuf>) -> ExitCode {
    let address = match config {
        Some(path) => match Config::from_file(&path, None) {
            Ok(c) => c.health_address,
            Err(e) => return config_error(e),
        },
        None => address,
    };
    match sworn_agent::probe::readyz(address).await {
        Ok(answer) if answer.status == 200 => {
            println!("{}", answer.body);
            ExitCode::SUCCESS
        }
        Ok(answer) => {
            println!("{}", answer.body);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sworn-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parsed_command_line_never_prints_the_join_token() {
        let cli = Cli::parse_from([
            "sworn-agent",
            "run",
            "--config",
            "/etc/sworn/agent.toml",
            "--join-token",
            "s3cret-token",
        ]);
        let printed = format!("{cli:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}
