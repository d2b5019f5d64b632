//! sworn under test: `sworn-server run` and `sworn-agent run` with TOML configs; entries and
//! join tokens through the admin API on the server's unix socket (the same API the
//! `sworn-server` CLI uses; there is no batch call, so entries are created concurrently).
//! sworn has no switch for executable hashing: it derives `unix:sha256` when an entry needs
//! it, so [`PeerOptions::exe`] only changes the entries' selectors.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use futures::{StreamExt, TryStreamExt};
use hyper_util::rt::TokioIo;
use sworn_proto::admin::admin_api_client::AdminApiClient;
use sworn_proto::admin::{CreateEntryRequest, GenerateJoinTokenRequest, ListAgentsRequest};
use tokio::process::{Child, Command};
use tonic::transport::{Channel, Endpoint, Uri};

use super::process::{AgentProc, agent_name, free_port, http_ok, log_file, wait_for};
use super::spec::{Binaries, EntrySpec, PeerOptions, TRUST_DOMAIN};

/// Concurrent CreateEntry calls in flight.
const CREATE_CONCURRENCY: usize = 32;

/// A running sworn server + agents.
#[derive(Debug)]
pub struct Sworn {
    dir: PathBuf,
    bins: Binaries,
    opts: PeerOptions,
    pub(super) server: Child,
    pub(super) agents: Vec<AgentProc>,
    admin: AdminApiClient<Channel>,
    api_port: u16,
    pub(super) server_health_port: u16,
}

impl Sworn {
    pub(super) async fn start(bins: &Binaries, dir: &Path, opts: &PeerOptions) -> Result<Self> {
        let server_dir = dir.join("server");
        std::fs::create_dir_all(&server_dir)?;
        std::fs::create_dir_all(dir.join("public"))?;
        let api_port = free_port()?;
        let server_health_port = free_port()?;
        std::fs::write(
            dir.join("server.toml"),
            format!(
                "trust_domain = \"{TRUST_DOMAIN}\"\n\
                 data_dir = \"{}\"\n\
                 agent_api_address = \"127.0.0.1:{api_port}\"\n\
                 health_address = \"127.0.0.1:{server_health_port}\"\n\
                 default_svid_ttl = \"1h\"\n\
                 key_type = \"ec-p256\"\n\
                 log_level = \"warn\"\n",
                server_dir.display(),
            ),
        )?;
        let server = spawn_server(bins, dir)?;
        let admin_sock = server_dir.join("admin.sock");
        wait_for("the sworn admin socket", Duration::from_secs(60), || {
            let p = admin_sock.clone();
            async move { p.exists() && connect_admin(&p).await.is_ok() }
        })
        .await?;
        let admin = connect_admin(&admin_sock).await?;
        let mut me = Self {
            dir: dir.to_owned(),
            bins: bins.clone(),
            opts: opts.clone(),
            server,
            agents: Vec::new(),
            admin,
            api_port,
            server_health_port,
        };
        me.add_agent().await?;
        Ok(me)
    }

    /// Starts one more agent (join token, own data dir, socket and health port) and waits
    /// until it is ready; returns its index.
    pub(super) async fn add_agent(&mut self) -> Result<usize> {
        let i = self.agents.len();
        let token = self
            .admin
            .generate_join_token(GenerateJoinTokenRequest { ttl_seconds: 3600 })
            .await?
            .into_inner()
            .token;
        let health_port = free_port()?;
        let name = agent_name(i);
        let socket = self.dir.join("public").join(format!("{name}.sock"));
        let conf = format!(
            "trust_domain = \"{TRUST_DOMAIN}\"\n\
             data_dir = \"{}\"\n\
             server_address = \"https://127.0.0.1:{}\"\n\
             bundle_file = \"{}\"\n\
             socket_path = \"{}\"\n\
             health_address = \"127.0.0.1:{health_port}\"\n\
             log_level = \"warn\"\n",
            self.dir.join(&name).display(),
            self.api_port,
            self.dir.join("server").join("bundle.pem").display(),
            socket.display(),
        );
        std::fs::create_dir_all(self.dir.join(&name))?;
        let first = self.dir.join(format!("{name}.toml"));
        std::fs::write(&first, format!("{conf}join_token = \"{token}\"\n"))?;
        // Later restarts resume with the stored agent SVID: the join token is spent.
        let resume_conf = self.dir.join(format!("{name}-resume.toml"));
        std::fs::write(&resume_conf, conf)?;
        let known: Vec<String> = self.agents.iter().map(|a| a.id.clone()).collect();
        let child = self.spawn_agent(&first, &name)?;
        self.agents.push(AgentProc {
            child: Some(child),
            id: String::new(),
            health_port,
            socket,
            resume_conf,
        });
        self.wait_agent_ready(i).await?;
        let listed = self
            .admin
            .list_agents(ListAgentsRequest {})
            .await?
            .into_inner()
            .agents;
        self.agents[i].id = listed
            .into_iter()
            .map(|a| a.id)
            .find(|id| !known.contains(id))
            .ok_or_else(|| anyhow!("sworn agent {i} is ready but the server lists no new agent"))?;
        Ok(i)
    }

    pub(super) fn spawn_agent(&self, conf: &Path, name: &str) -> Result<Child> {
        Command::new(&self.bins.sworn_agent)
            .arg("run")
            .arg("--config")
            .arg(conf)
            .stdout(log_file(&self.dir.join(format!("{name}.log")))?)
            .stderr(log_file(&self.dir.join(format!("{name}.log")))?)
            .kill_on_drop(true)
            .spawn()
            .context("spawning sworn-agent")
    }

    pub(super) async fn wait_agent_ready(&self, i: usize) -> Result<()> {
        let port = self.agents[i].health_port;
        wait_for("the sworn agent /readyz", Duration::from_secs(120), || {
            http_ok(port, "/readyz")
        })
        .await
        .with_context(|| format!("see the agent logs in {}", self.dir.display()))
    }

    pub(super) async fn create_entries(&mut self, specs: &[EntrySpec]) -> Result<()> {
        let nodes: Vec<String> = self.agents.iter().map(|a| a.id.clone()).collect();
        let admin = self.admin.clone();
        let exe = self.opts.exe.clone();
        futures::stream::iter(specs.iter().copied())
            .map(|spec| {
                let mut admin = admin.clone();
                let mut selectors = vec![format!("unix:uid:{}", spec.uid)];
                let node = match spec.fake_node {
                    None => {
                        if let Some(e) = &exe {
                            selectors.push(format!("unix:path:{}", e.path));
                            selectors.push(format!("unix:sha256:{}", e.sha256));
                        }
                        nodes.get(spec.agent).cloned().unwrap_or_default()
                    }
                    Some(k) => format!("spiffe://{TRUST_DOMAIN}/sworn/agent/join/fake-{k}"),
                };
                async move {
                    admin
                        .create_entry(CreateEntryRequest {
                            spiffe_id: spec.spiffe_id(),
                            selectors,
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

    /// Spawns the server again on its datastore; returns the spawn instant.
    pub(super) fn respawn_server(&mut self) -> Result<Instant> {
        let started = Instant::now();
        self.server = spawn_server(&self.bins, &self.dir)?;
        // The admin channel reconnects by itself on its next call.
        Ok(started)
    }

    /// Spawns agent `i` again with its stored identity; returns the spawn instant.
    pub(super) fn respawn_agent(&mut self, i: usize) -> Result<Instant> {
        let name = agent_name(i);
        let started = Instant::now();
        let child = self.spawn_agent(&self.agents[i].resume_conf.clone(), &name)?;
        self.agents[i].child = Some(child);
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
