//! A real sworn server and real sworn agents, in-process, on real unix sockets (unix mode:
//! join-token node attestation, uid workload selectors). Each agent is a "node"; entries are
//! scoped to one node so the helper on node A and the helper on node B get different IDs even
//! though every process of the test runs under the same uid.
//!
//! `Cluster::dir` is a [`RunDir`]: a failing test keeps it and prints the end of the in-process
//! tracing of the server and agents.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sworn_agent::{Agent, Bootstrap, Config, JoinToken, NodeAttestation, RunningAgent, SocketPath};
use sworn_harness::RunDir;
use sworn_proto::admin::admin_api_client::AdminApiClient;
use sworn_proto::admin::{CreateEntryRequest, GenerateJoinTokenRequest};
use sworn_server::server::RunningServer;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub const TD: &str = "example.org";

pub struct Cluster {
    pub dir: RunDir,
    pub server: RunningServer,
    admin: AdminApiClient<Channel>,
}

pub struct Node {
    pub agent: RunningAgent,
    pub id: String,
}

impl Node {
    /// `unix:///abs/path` of this node's Workload API socket.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.agent.socket_path().as_path().display())
    }

    pub fn socket(&self) -> PathBuf {
        self.agent.socket_path().as_path().to_owned()
    }
}

impl Cluster {
    pub async fn start() -> Cluster {
        sworn_harness::trace::capture();
        // Short paths: unix socket paths are limited to 108 bytes.
        let dir = RunDir::new_in("/tmp", "swh").unwrap();
        let td = sworn_identity::parse_trust_domain(TD).unwrap();
        let mut config = sworn_server::config::Config::minimal(td, dir.path().join("server"));
        config.agent_api_address = "127.0.0.1:0".parse().unwrap();
        config.health_address = "127.0.0.1:0".parse().unwrap();
        config.admin_socket = dir.path().join("admin.sock");
        let server =
            sworn_server::server::start(config, Arc::new(sworn_server::clock::SystemClock))
                .await
                .expect("start the sworn server in-process");
        let admin = sworn_server::admin::client::connect(&server.admin_socket)
            .await
            .unwrap();
        Cluster { dir, server, admin }
    }

    /// Starts an attested agent named `name` (its own node).
    pub async fn node(&self, name: &str) -> Node {
        let token = self
            .admin
            .clone()
            .generate_join_token(GenerateJoinTokenRequest { ttl_seconds: 600 })
            .await
            .unwrap()
            .into_inner()
            .token;
        let address = sworn_agent::ServerAddress {
            host: "127.0.0.1".into(),
            port: self.server.agent_api_addr.port(),
        };
        let mut config = Config::new(
            sworn_identity::parse_trust_domain(TD).unwrap(),
            self.dir.path().join(name),
            address,
            Bootstrap::BundleFile(self.server.shared.config.bundle_file.clone()),
        )
        .unwrap();
        config.socket_path = SocketPath::new(self.dir.path().join(format!("{name}.sock"))).unwrap();
        config.health_address = "127.0.0.1:0".parse().unwrap();
        config.attestation = NodeAttestation::JoinToken(Some(JoinToken::new(&token)));
        let agent = Agent::start(config, CancellationToken::new())
            .await
            .unwrap();
        let id = tokio::time::timeout(Duration::from_secs(20), agent.ready())
            .await
            .expect("agent ready in time")
            .expect("agent ready")
            .to_string();
        Node { agent, id }
    }

    /// Entitles every process of this uid on `node` to `spiffe_id`, with SVID lifetime `ttl`.
    pub async fn entitle(&self, node: &Node, spiffe_id: &str, ttl: Duration) {
        let uid = rustix::process::geteuid().as_raw();
        self.admin
            .clone()
            .create_entry(CreateEntryRequest {
                spiffe_id: spiffe_id.into(),
                selectors: vec![format!("unix:uid:{uid}")],
                node: node.id.clone(),
                ttl_seconds: ttl.as_secs() as i64,
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

impl Cluster {
    /// An SVID minted through the admin API (what `sworn-server x509 mint` does): (chain, key).
    pub async fn mint(&self, spiffe_id: &str) -> (Vec<Vec<u8>>, Vec<u8>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let resp = self
            .admin
            .clone()
            .mint_x509_svid(sworn_proto::admin::MintX509SvidRequest {
                spiffe_id: spiffe_id.into(),
                ttl_seconds: 600,
                csr: csr.der().to_vec(),
                dns_names: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        (resp.chain, key.serialize_der())
    }
}

// The tests that run a cluster run one at a time (the `helper-agent-cluster` test group of
// .config/nextest.toml, one process per test): every Workload API connection makes an agent hash
// the caller's executable, and several clusters at once on a small machine starve each other.
