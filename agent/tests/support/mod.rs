//! Test harness: a real sworn server in-process (SQLite, self-signed CA, admin socket), real
//! agents (in-process or as the `sworn-agent` binary) on real unix sockets, and a Workload API
//! client. Nothing is faked.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sworn_agent::{Agent, Bootstrap, Config, JoinToken, NodeAttestation, RunningAgent, SocketPath};
use sworn_proto::admin::admin_api_client::AdminApiClient;
use sworn_proto::admin::{CreateEntryRequest, EntryId, GenerateJoinTokenRequest};
use sworn_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use sworn_server::server::RunningServer;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub const TD: &str = "example.org";

pub struct Env {
    pub dir: TempDir,
    pub server: RunningServer,
    pub admin: AdminApiClient<Channel>,
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,sworn_agent=debug"))
        .with_test_writer()
        .try_init();
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
        let dir = tempfile::Builder::new()
            .prefix("sw")
            .tempdir_in("/tmp")
            .unwrap();
        let td = sworn_identity::parse_trust_domain(TD).unwrap();
        let mut config = sworn_server::config::Config::minimal(td, dir.path().join("server"));
        config.agent_api_address = "127.0.0.1:0".parse().unwrap();
        config.health_address = "127.0.0.1:0".parse().unwrap();
        config.admin_socket = dir.path().join("admin.sock");
        tune(&mut config);
        Self::boot(dir, config, clock).await
    }

    /// Stops the server; `restart_server` brings it back on the same port and data.
    pub async fn stop_server(self) -> (TempDir, sworn_server::config::Config) {
        let mut config = self.server.shared.config.clone();
        config.agent_api_address = self.server.agent_api_addr;
        self.server.shutdown(Duration::from_secs(5)).await;
        (self.dir, config)
    }

    /// Starts a server on `config` (its data in `dir`).
    pub async fn restart_server(dir: TempDir, config: sworn_server::config::Config) -> Env {
        Self::boot(dir, config, Arc::new(sworn_server::clock::SystemClock)).await
    }

    async fn boot(
        dir: TempDir,
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
        let mut config = self.agent_config(name);
        config.attestation =
            NodeAttestation::JoinToken(Some(JoinToken::new(&self.join_token().await)));
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

    pub async fn delete_entry(&self, id: &str) {
        self.admin
            .clone()
            .delete_entry(EntryId { id: id.into() })
            .await
            .unwrap();
    }
}

pub fn my_uid() -> u32 {
    rustix::process::geteuid().as_raw()
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

/// Polls `f` every 50 ms until it returns true or `deadline` passes.
pub async fn eventually(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + deadline;
    while tokio::time::Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
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
