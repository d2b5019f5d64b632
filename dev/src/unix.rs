//! Unix-mode quickstart (`sworn-dev up` without `--kubernetes`), the README's
//! first command: a sworn server and one agent in this process, with the
//! embedded defaults — SQLite, a self-signed CA, a join-token node, unix
//! workload attestation — and an entry for the invoking user's uid.
//!
//! State lives in `--dir`; a second `up` on the same dir keeps the CA,
//! entries and audit log. `sworn-dev env` reads `<dir>/unix.json` to print
//! `SPIFFE_ENDPOINT_SOCKET` (a `unix://` URI, as the SPIFFE Workload Endpoint
//! spec requires) and `SWORN_ADMIN_SOCKET`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sworn_agent::{Agent, Bootstrap, JoinToken, NodeAttestation, ServerAddress, SocketPath};
use sworn_proto::admin as apb;
use tokio_util::sync::CancellationToken;

/// The trust domain of the quickstart.
pub const TRUST_DOMAIN: &str = "example.org";

/// What `env` needs from a running unix-mode `up`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnixState {
    /// Workload API socket.
    pub socket: PathBuf,
    /// Admin socket.
    pub admin_socket: PathBuf,
    /// The SPIFFE ID registered for the invoking user.
    pub spiffe_id: String,
}

/// The state file `up` writes and `env` reads.
pub fn state_file(dir: &Path) -> PathBuf {
    dir.join("unix.json")
}

/// Shell exports for a running unix-mode environment, if one was started in `dir`.
pub fn exports(dir: &Path) -> Result<Option<Vec<String>>> {
    let path = state_file(dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let s: UnixState =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(vec![
        format!(
            "export SPIFFE_ENDPOINT_SOCKET=unix://{}",
            s.socket.display()
        ),
        format!("export SWORN_ADMIN_SOCKET={}", s.admin_socket.display()),
    ]))
}

/// The uid to register: the user who ran `sudo`, else the caller.
fn invoking_uid() -> u32 {
    std::env::var("SUDO_UID")
        .ok()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| rustix::process::getuid().as_raw())
}

/// Whether every component of `dir` lets other users reach a socket in it.
fn traversable_by_others(dir: &Path) -> bool {
    dir.ancestors()
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// Runs the quickstart until SIGINT/SIGTERM.
pub async fn up(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let env = start(&dir).await?;
    let uid = invoking_uid();
    println!("sworn is running (unix mode, trust domain {TRUST_DOMAIN})");
    println!("  Workload API socket : {}", env.state.socket.display());
    println!(
        "  admin socket        : {}",
        env.state.admin_socket.display()
    );
    println!("  SPIFFE ID for uid {uid:<5}: {}", env.state.spiffe_id);
    println!("Fetch it from another shell:");
    println!(
        "  SPIFFE_ENDPOINT_SOCKET=unix://{} cargo run -q -p sworn-agent -- fetch x509",
        env.state.socket.display()
    );
    println!("or: eval \"$(sworn-dev --dir {} env)\"", dir.display());
    println!("Press Ctrl-C to stop.");
    sworn_server::server::wait_for_signal().await;
    println!("stopping");
    env.stop().await;
    Ok(())
}

/// A running unix-mode environment (server + agent in this process).
#[derive(Debug)]
pub struct UnixEnv {
    /// What `env` prints.
    pub state: UnixState,
    /// The server.
    pub server: sworn_server::server::RunningServer,
    /// The agent.
    pub agent: sworn_agent::RunningAgent,
    shutdown: CancellationToken,
    dir: PathBuf,
}

impl UnixEnv {
    /// Stops the agent, then the server, and removes the state file.
    pub async fn stop(self) {
        self.shutdown.cancel();
        if let Err(error) = self.agent.shutdown().await {
            tracing::warn!(%error, "agent stopped with an error");
        }
        self.server.shutdown(Duration::from_secs(5)).await;
        let _ = std::fs::remove_file(state_file(&self.dir));
    }
}

/// Starts server and agent with state in `dir` (absolute) and registers the
/// invoking user's uid, with the server's default SVID TTL. Returns, and writes
/// the state file `env` reads, only once the agent holds the entry, so a fetch
/// right after succeeds.
pub async fn start(dir: &Path) -> Result<UnixEnv> {
    start_with(dir, None).await
}

/// Like [`start`], with the registered entry's SVID TTL (tests use a short
/// one to watch rotation).
pub async fn start_with(dir: &Path, svid_ttl: Option<Duration>) -> Result<UnixEnv> {
    let socket = dir.join("agent.sock");
    if socket.as_os_str().len() > sworn_agent::MAX_SOCKET_PATH_BYTES {
        bail!(
            "the socket path {} is too long for a unix socket ({} bytes max); use a shorter --dir",
            socket.display(),
            sworn_agent::MAX_SOCKET_PATH_BYTES
        );
    }
    if !traversable_by_others(dir) {
        eprintln!(
            "note: {} is not traversable by other users, so only this user can reach the Workload API socket; use e.g. --dir /tmp/sworn-dev to share it",
            dir.display()
        );
    }
    let server_config = sworn_server::config::Config::parse(&format!(
        "trust_domain = \"{TRUST_DOMAIN}\"\ndata_dir = \"{}\"\nagent_api_address = \"127.0.0.1:0\"\nhealth_address = \"127.0.0.1:0\"\n",
        dir.join("server").display()
    ))?;
    let server =
        sworn_server::server::start(server_config, Arc::new(sworn_server::clock::SystemClock))
            .await
            .context("starting the server")?;
    let mut admin = sworn_server::admin::client::connect(&server.admin_socket).await?;
    let token = admin
        .generate_join_token(apb::GenerateJoinTokenRequest { ttl_seconds: 600 })
        .await?
        .into_inner()
        .token;
    let td = sworn_identity::parse_trust_domain(TRUST_DOMAIN)?;
    let mut config = sworn_agent::Config::new(
        td,
        dir.join("agent"),
        ServerAddress::parse(&format!(
            "https://127.0.0.1:{}",
            server.agent_api_addr.port()
        ))
        .map_err(anyhow::Error::msg)?,
        Bootstrap::Roots(server.shared.ca.bundle().roots_der),
    )?;
    config.attestation = NodeAttestation::JoinToken(Some(JoinToken::new(&token)));
    config.socket_path = SocketPath::new(&socket)?;
    config.health_address = "127.0.0.1:0".parse()?;
    let shutdown = CancellationToken::new();
    let agent = Agent::start(config, shutdown.clone())
        .await
        .context("starting the agent")?;
    let agent_id = tokio::time::timeout(Duration::from_secs(30), agent.ready())
        .await
        .context("the agent did not attest within 30 s")??;

    // One entry per uid for this agent; re-running `up` reuses it.
    let uid = invoking_uid();
    let spiffe_id = format!("spiffe://{TRUST_DOMAIN}/user/{uid}");
    let selector = format!("unix:uid:{uid}");
    let entries = admin
        .list_entries(apb::ListEntriesRequest {})
        .await?
        .into_inner()
        .entries;
    let existing = entries.iter().find(|e| {
        e.spiffe_id == spiffe_id
            && e.selectors == [selector.clone()]
            && e.node == agent_id.to_string()
    });
    let entry_id = match existing {
        Some(e) => e.id.clone(),
        None => {
            admin
                .create_entry(apb::CreateEntryRequest {
                    spiffe_id: spiffe_id.clone(),
                    selectors: vec![selector],
                    node: agent_id.to_string(),
                    ttl_seconds: svid_ttl
                        .map_or(0, |t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX)),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .id
        }
    };
    // Ready means a fetch now succeeds: the agent's synced state holds the entry.
    tokio::time::timeout(Duration::from_secs(30), agent.entries_synced(&[&entry_id]))
        .await
        .context("the agent did not receive the entry within 30 s")??;
    let state = UnixState {
        socket,
        admin_socket: server.admin_socket.clone(),
        spiffe_id,
    };
    // Atomically: `env` run at the same moment reads all of it or nothing.
    crate::cli::state::write_json(&state_file(dir), &state)?;
    Ok(UnixEnv {
        state,
        server,
        agent,
        shutdown,
        dir: dir.to_owned(),
    })
}
