//! Test harness: a real sworn server in-process (SQLite, self-signed CA, admin socket), real
//! agents (in-process or as the `sworn-agent` binary) on real unix sockets, and a Workload API
//! client. Nothing is faked.
//!
//! A failing test shows everything: `Env::dir` is a [`RunDir`] (kept and reported on when the
//! test panics), in-process tracing is captured for that report, and a `sworn-agent` binary a
//! test runs should write into the dir through [`RunDir::spawn`] / [`RunDir::output`] /
//! [`RunDir::stdio`]. Wait on conditions with `sworn_harness::wait_until` and friends, never a sleep.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sworn_agent::{Agent, Bootstrap, Config, JoinToken, NodeAttestation, RunningAgent, SocketPath};
use sworn_harness::RunDir;
use sworn_proto::admin::admin_api_client::AdminApiClient;
use sworn_proto::admin::{CreateEntryRequest, EntryId, GenerateJoinTokenRequest};
use sworn_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use sworn_server::server::RunningServer;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub const TD: &str = "example.org";

pub struct Env {
    pub dir: RunDir,
    pub server: RunningServer,
    pub admin: AdminApiClient<Channel>,
}

/// Keeps in-process tracing (server and agents) for the failure report of [`RunDir`].
pub fn init_tracing() {
    sworn_harness::trace::capture();
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(|_| {}).await
    }

    /// Starts a server whose config `tune` may adjust (e.g. a short agent SVID TTL).
    pub async fn start_with(tune: impl FnOnce(&mut sworn_server::config::Config)) -> Env {
        Self::start_with_clock(tune, Arc::new(sworn_server::clock::SystemClock)).await
    }

    /// Starts a server on `clock` (a `FakeClock` drives CA rotation).
    pub async fn start_with_clock(
        tune: impl FnOnce(&mut sworn_server::config::Config),
        clock: Arc<dyn sworn_server::clock::Clock>,
    ) -> Env {
        init_tracing();
        // Short paths: unix socket paths are limited to 108 bytes.
        let dir = RunDir::new_in("/tmp", "sw").unwrap();
        let td = sworn_identity::parse_trust_domain(TD).unwrap();
        let mut config = sworn_server::config::Config::minimal(td, dir.path().join("server"));
        config.agent_api_address = "127.0.0.1:0".parse().unwrap();
        config.health_address = "127.0.0.1:0".parse().unwrap();
        config.admin_socket = dir.path().join("admin.sock");
        tune(&mut config);
        Self::boot(dir, config, clock).await
    }

    /// Stops the server; `restart_server` brings it back on the same port and data.
    pub async fn stop_server(self) -> (RunDir, sworn_server::config::Config) {
        let mut config = self.server.shared.config.clone();
        config.agent_api_address = self.server.agent_api_addr;
        self.server.shutdown(Duration::from_secs(5)).await;
        (self.dir, config)
    }

    /// Starts a server on `config` (its data in `dir`).
    pub async fn restart_server(dir: RunDir, config: sworn_server::config::Config) -> Env {
        Self::boot(dir, config, Arc::new(sworn_server::clock::SystemClock)).await
    }

    async fn boot(
        dir: RunDir,
        config: sworn_server::config::Config,
        clock: Arc<dyn sworn_server::clock::Clock>,
    ) -> Env {
        let server = sworn_server::server::start(config, clock)
            .await
            .expect("start the sworn server in-process");
        let admin = sworn_server::admin::client::connect(&server.admin_socket)
            .await
            .unwrap();
        Env { dir, server, admin }
    }

    /// Lets callers of other uids reach the agents' sockets in the run directory.
    pub fn open_to_other_uids(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn server_bundle_file(&self) -> PathBuf {
        self.server.shared.config.bundle_file.clone()
    }

    pub async fn join_token(&self) -> String {
        self.admin
            .clone()
            .generate_join_token(GenerateJoinTokenRequest { ttl_seconds: 600 })
            .await
            .unwrap()
            .into_inner()
            .token
    }

    /// An agent config in `<dir>/<name>`, socket `<dir>/<name>.sock`.
    pub fn agent_config(&self, name: &str) -> Config {
        let td = sworn_identity::parse_trust_domain(TD).unwrap();
        let address = sworn_agent::ServerAddress {
            host: "127.0.0.1".into(),
            port: self.server.agent_api_addr.port(),
        };
        let mut config = Config::new(
            td,
            self.dir.path().join(name),
            address,
            Bootstrap::BundleFile(self.server_bundle_file()),
        )
        .unwrap();
        config.socket_path = SocketPath::new(self.dir.path().join(format!("{name}.sock"))).unwrap();
        config.health_address = "127.0.0.1:0".parse().unwrap();
        config
    }

    /// Starts an attested, synced agent in-process with a fresh join token.
    pub async fn agent(&self, name: &str) -> RunningAgent {
        self.agent_with(name, |_| {}).await
    }

    /// [`Env::agent`] with its config adjusted by `tune` first (another socket path, caps).
    pub async fn agent_with(&self, name: &str, tune: impl FnOnce(&mut Config)) -> RunningAgent {
        let mut config = self.agent_config(name);
        config.attestation =
            NodeAttestation::JoinToken(Some(JoinToken::new(&self.join_token().await)));
        tune(&mut config);
        let agent = Agent::start(config, CancellationToken::new())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), agent.ready())
            .await
            .expect("agent ready in time")
            .expect("agent ready");
        agent
    }

    /// Creates an entry scoped to `node` (an agent ID; unix entries must have one, "" leaves a
    /// k8s entry unscoped); returns its ID.
    pub async fn entry(
        &self,
        spiffe_id: &str,
        selectors: &[String],
        node: &str,
        ttl: i64,
    ) -> String {
        self.admin
            .clone()
            .create_entry(CreateEntryRequest {
                spiffe_id: spiffe_id.into(),
                selectors: selectors.to_vec(),
                node: node.into(),
                ttl_seconds: ttl,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .id
    }

    /// Creates an entry for this process's uid scoped to `agent` and waits (bounded) until
    /// the agent holds it; returns its ID.
    pub async fn entry_for_me(&self, agent: &RunningAgent, spiffe_id: &str) -> String {
        let node = agent.agent_id().unwrap().to_string();
        let id = self
            .entry(spiffe_id, &uid_selector(my_uid()), &node, 600)
            .await;
        synced(agent, &[&id]).await;
        id
    }

    pub async fn delete_entry(&self, id: &str) {
        self.admin
            .clone()
            .delete_entry(EntryId { id: id.into() })
            .await
            .unwrap();
    }
}

/// Waits (bounded) until `agent`'s synced state holds `entries`.
pub async fn synced(agent: &RunningAgent, entries: &[&str]) {
    tokio::time::timeout(Duration::from_secs(10), agent.entries_synced(entries))
        .await
        .expect("the entries reach the agent in time")
        .unwrap();
}

pub fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Fails the test at once unless it runs as root: its callers run under uids of their own.
pub fn require_root() {
    assert_eq!(
        my_uid(),
        0,
        "the callers run under their own uids: run as root"
    );
}

pub fn uid_selector(uid: u32) -> Vec<String> {
    vec![format!("unix:uid:{uid}")]
}

pub async fn client(socket: &Path) -> SpiffeWorkloadApiClient<Channel> {
    sworn_agent::fetch::connect(socket).await.unwrap()
}

pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Whether `f` comes true within `deadline`. Prefer `sworn_harness::wait_until`, which fails naming
/// the condition and the time spent.
pub async fn eventually(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    sworn_harness::poll_for("", deadline, async || f().then_some(()))
        .await
        .is_ok()
}

/// The next message of a Workload API stream before `until`; panics naming what the stream did
/// instead (ended, failed, or stayed silent).
pub async fn next_before<T>(stream: &mut tonic::Streaming<T>, until: tokio::time::Instant) -> T {
    match tokio::time::timeout_at(until, stream.message()).await {
        Ok(Ok(Some(msg))) => msg,
        Ok(Ok(None)) => panic!("the stream ended"),
        Ok(Err(status)) => panic!("the stream failed: {status:?}"),
        Err(_) => panic!("no message before the deadline"),
    }
}

/// `notAfter` of the leaf of an X509-SVID (DER chain, leaf first).
pub fn leaf_not_after(x509_svid: &[u8]) -> std::time::SystemTime {
    let chain = sworn_agent::fetch::split_der(x509_svid).unwrap();
    let leaf = x509_parser::parse_x509_certificate(&chain[0]).unwrap().1;
    let secs = leaf.validity().not_after.timestamp();
    std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(secs.try_into().unwrap())
}

/// The agent's `/metrics` text.
pub async fn metrics_text(agent: &RunningAgent) -> String {
    sworn_agent::probe::get(agent.health_address(), "/metrics")
        .await
        .unwrap()
        .body
}

/// The value of `series` (exact name and labels) on the agent's `/metrics`; `None` if the
/// agent does not expose it.
pub async fn metric(agent: &RunningAgent, series: &str) -> Option<f64> {
    sworn_harness::metrics::value(&metrics_text(agent).await, series)
}

/// A copy of the `sworn-agent` binary at `dir/name` (its own inode), mode 0755 in a 0755
/// directory, so callers of any uid can run it.
pub fn copy_agent_binary(dir: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join(name);
    std::fs::copy(env!("CARGO_BIN_EXE_sworn-agent"), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `exe fetch x509 --socket socket` (one fetch, printing the SPIFFE IDs), as `uid` (and gid
/// `uid`) if given; output piped, killed on drop.
pub fn fetch_command(exe: &Path, socket: &Path, uid: Option<u32>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["fetch", "x509", "--socket"]).arg(socket);
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// An output's status and text, for assertion messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout {}\nstderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
