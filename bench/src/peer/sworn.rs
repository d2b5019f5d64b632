//! sworn under test: `sworn-server run` and `sworn-agent run` with TOML configs; entries and
//! join tokens through the admin API on the server's unix socket (the same API the
//! `sworn-server` CLI uses; there is no batch call, so entries are created concurrently).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::{StreamExt, TryStreamExt};
use hyper_util::rt::TokioIo;
use sworn_proto::admin::admin_api_client::AdminApiClient;
use sworn_proto::admin::{CreateEntryRequest, GenerateJoinTokenRequest, ListAgentsRequest};
use tokio::process::{Child, Command};
use tonic::transport::{Channel, Endpoint, Uri};

use super::process::{free_port, http_ok, log_file, wait_for};
use super::spec::{Binaries, EntrySpec, TRUST_DOMAIN};

/// Concurrent CreateEntry calls in flight.
const CREATE_CONCURRENCY: usize = 32;

/// A running sworn server + agent.
#[derive(Debug)]
pub struct Sworn {
    dir: PathBuf,
    bins: Binaries,
    pub(super) server: Child,
    pub(super) agent: Option<Child>,
    admin: AdminApiClient<Channel>,
    agent_id: String,
    agent_health_port: u16,
}

impl Sworn {
    pub(super) async fn start(bins: &Binaries, dir: &Path) -> Result<Self> {
        let server_dir = dir.join("server");
        let agent_dir = dir.join("agent");
        std::fs::create_dir_all(&server_dir)?;
        std::fs::create_dir_all(&agent_dir)?;
        let api_port = free_port()?;
        let server_conf = dir.join("server.toml");
        std::fs::write(
            &server_conf,
            format!(
                "trust_domain = \"{TRUST_DOMAIN}\"\n\
                 data_dir = \"{}\"\n\
                 agent_api_address = \"127.0.0.1:{api_port}\"\n\
                 health_address = \"127.0.0.1:{}\"\n\
                 default_svid_ttl = \"1h\"\n\
                 key_type = \"ec-p256\"\n\
                 log_level = \"warn\"\n",
                server_dir.display(),
                free_port()?
            ),
        )?;
        let server = spawn_server(bins, dir)?;
        let admin_sock = server_dir.join("admin.sock");
        wait_for("the sworn admin socket", Duration::from_secs(60), || {
            let p = admin_sock.clone();
            async move { p.exists() && connect_admin(&p).await.is_ok() }
        })
        .await?;
        let mut admin = connect_admin(&admin_sock).await?;
        let token = admin
            .generate_join_token(GenerateJoinTokenRequest { ttl_seconds: 3600 })
            .await?
            .into_inner()
            .token;
        let agent_health_port = free_port()?;
        std::fs::write(
            dir.join("agent.toml"),
            format!(
                "trust_domain = \"{TRUST_DOMAIN}\"\n\
                 data_dir = \"{}\"\n\
                 server_address = \"https://127.0.0.1:{api_port}\"\n\
                 bundle_file = \"{}\"\n\
                 join_token = \"{token}\"\n\
                 socket_path = \"{}\"\n\
                 health_address = \"127.0.0.1:{agent_health_port}\"\n\
                 log_level = \"warn\"\n",
                agent_dir.display(),
                server_dir.join("bundle.pem").display(),
                dir.join("public").join("agent.sock").display(),
            ),
        )?;
        let mut me = Self {
            dir: dir.to_owned(),
            bins: bins.clone(),
            server,
            agent: None,
            admin,
            agent_id: String::new(),
            agent_health_port,
        };
        me.spawn_agent("agent.toml")?;
        me.wait_agent_ready().await?;
        let agents = me
            .admin
            .list_agents(ListAgentsRequest {})
            .await?
            .into_inner()
            .agents;
        me.agent_id = agents
            .into_iter()
            .next()
            .map(|a| a.id)
            .ok_or_else(|| anyhow!("the sworn agent is ready but the server lists no agent"))?;
        // Later restarts resume with the stored agent SVID: the join token is spent.
        let conf = std::fs::read_to_string(dir.join("agent.toml"))?;
        let resumed: String = conf
            .lines()
            .filter(|l| !l.starts_with("join_token"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(dir.join("agent-resume.toml"), resumed)?;
        Ok(me)
    }

    pub(super) fn socket(&self) -> PathBuf {
        self.dir.join("public").join("agent.sock")
    }

    fn spawn_agent(&mut self, conf: &str) -> Result<()> {
        let child = Command::new(&self.bins.sworn_agent)
            .arg("run")
            .arg("--config")
            .arg(self.dir.join(conf))
            .stdout(log_file(&self.dir.join("agent.log"))?)
            .stderr(log_file(&self.dir.join("agent.log"))?)
            .kill_on_drop(true)
            .spawn()
            .context("spawning sworn-agent")?;
        self.agent = Some(child);
        Ok(())
    }

    async fn wait_agent_ready(&self) -> Result<()> {
        let port = self.agent_health_port;
        wait_for("the sworn agent /readyz", Duration::from_secs(60), || {
            http_ok(port, "/readyz")
        })
        .await
        .with_context(|| format!("see {}", self.dir.join("agent.log").display()))
    }

    pub(super) async fn create_entries(&mut self, specs: &[EntrySpec]) -> Result<()> {
        let agent_id = self.agent_id.clone();
        let admin = self.admin.clone();
        futures::stream::iter(specs.iter().copied())
            .map(|spec| {
                let mut admin = admin.clone();
                let node = match spec.fake_node {
                    None => agent_id.clone(),
                    Some(k) => format!("spiffe://{TRUST_DOMAIN}/sworn/agent/join/fake-{k}"),
                };
                async move {
                    admin
                        .create_entry(CreateEntryRequest {
                            spiffe_id: spec.spiffe_id(),
                            selectors: vec![format!("unix:uid:{}", spec.uid)],
                            node,
                            ttl_seconds: spec.ttl_seconds.map(i64::from).unwrap_or(0),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ())
                        .map_err(|s| anyhow!("create entry uid {}: {}", spec.uid, s.message()))
                }
            })
            .buffer_unordered(CREATE_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    pub(super) async fn restart(&mut self) -> Result<Instant> {
        let started = Instant::now();
        self.server = spawn_server(&self.bins, &self.dir)?;
        self.spawn_agent("agent-resume.toml")?;
        // The admin channel reconnects by itself on its next call.
        Ok(started)
    }
}

fn spawn_server(bins: &Binaries, dir: &Path) -> Result<Child> {
    Command::new(&bins.sworn_server)
        .arg("run")
        .arg("--config")
        .arg(dir.join("server.toml"))
        .stdout(log_file(&dir.join("server.log"))?)
        .stderr(log_file(&dir.join("server.log"))?)
        .kill_on_drop(true)
        .spawn()
        .context("spawning sworn-server")
}

async fn connect_admin(socket: &Path) -> Result<AdminApiClient<Channel>> {
    let socket = socket.to_owned();
    // The URI is required by the API but unused: the connector dials the socket.
    let channel = Endpoint::from_static("http://admin.sock")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(AdminApiClient::new(channel).max_decoding_message_size(256 * 1024 * 1024))
}
