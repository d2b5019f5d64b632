//! SPIRE under test, configured to match sworn: `sql` datastore on SQLite,
//! `ca_key_type = "ec-p256"`, `default_x509_svid_ttl = "1h"`, `join_token` node attestation,
//! the `unix` workload attestor with `discover_workload_path = true` (sworn always derives
//! `unix:path` and `unix:sha256`, so both agents hash the caller's executable on every call),
//! disk key managers (the agent's keeps its node key across the cold-start restart, since a
//! join token attests once). Everything else is left
//! at SPIRE's defaults (sync interval, SVID cache size, ...): the peer is not tuned.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::json;
use tokio::process::{Child, Command};

use super::process::{free_port, http_ok, log_file, run_cmd, wait_for};
use super::spec::{Binaries, EntrySpec, TRUST_DOMAIN};

/// Entries per `entry create -data` batch.
const CREATE_BATCH: usize = 1000;

/// A running SPIRE server + agent.
#[derive(Debug)]
pub struct Spire {
    dir: PathBuf,
    server_bin: PathBuf,
    agent_bin: PathBuf,
    pub(super) server: Child,
    pub(super) agent: Option<Child>,
    agent_id: String,
    agent_health_port: u16,
}

impl Spire {
    pub(super) async fn start(bins: &Binaries, dir: &Path) -> Result<Self> {
        let server_bin = bins
            .spire_server
            .clone()
            .ok_or_else(|| anyhow!("spire-server is not built: run bench/spire/build.sh"))?;
        let agent_bin = bins
            .spire_agent
            .clone()
            .ok_or_else(|| anyhow!("spire-agent is not built: run bench/spire/build.sh"))?;
        let server_data = dir.join("server");
        let agent_data = dir.join("agent");
        std::fs::create_dir_all(&server_data)?;
        std::fs::create_dir_all(&agent_data)?;
        std::fs::create_dir_all(dir.join("public"))?;
        let api_port = free_port()?;
        std::fs::write(
            dir.join("server.conf"),
            format!(
                r#"server {{
    bind_address = "127.0.0.1"
    bind_port = "{api_port}"
    socket_path = "{sock}"
    trust_domain = "{TRUST_DOMAIN}"
    data_dir = "{data}"
    log_level = "WARN"
    ca_key_type = "ec-p256"
    default_x509_svid_ttl = "1h"
}}
plugins {{
    DataStore "sql" {{
        plugin_data {{
            database_type = "sqlite3"
            connection_string = "{data}/datastore.sqlite3"
        }}
    }}
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "disk" {{
        plugin_data {{
            keys_path = "{data}/keys.json"
        }}
    }}
}}
"#,
                sock = server_socket(dir).display(),
                data = server_data.display(),
            ),
        )?;
        let server = spawn_server(&server_bin, dir)?;
        let mut me = Self {
            dir: dir.to_owned(),
            server_bin,
            agent_bin,
            server,
            agent: None,
            agent_id: String::new(),
            agent_health_port: free_port()?,
        };
        me.wait_server().await?;
        let bundle = run_cmd(
            me.server_cmd()
                .args(["bundle", "show", "-socketPath"])
                .arg(server_socket(dir)),
        )
        .await?;
        std::fs::write(dir.join("bundle.pem"), bundle)?;
        let out = run_cmd(
            me.server_cmd()
                .args([
                    "token",
                    "generate",
                    "-ttl",
                    "3600",
                    "-output",
                    "json",
                    "-socketPath",
                ])
                .arg(server_socket(dir)),
        )
        .await?;
        let token = serde_json::from_str::<serde_json::Value>(&out)?["value"]
            .as_str()
            .ok_or_else(|| anyhow!("spire-server token generate: no token in {out:?}"))?
            .to_owned();
        me.agent_id = format!("spiffe://{TRUST_DOMAIN}/spire/agent/join_token/{token}");
        let agent_conf = |join: &str| {
            format!(
                r#"agent {{
    data_dir = "{data}"
    log_level = "WARN"
    server_address = "127.0.0.1"
    server_port = "{api_port}"
    socket_path = "{sock}"
    trust_bundle_path = "{bundle}"
    trust_domain = "{TRUST_DOMAIN}"
    {join}
}}
plugins {{
    NodeAttestor "join_token" {{
        plugin_data {{}}
    }}
    KeyManager "disk" {{
        plugin_data {{
            directory = "{data}"
        }}
    }}
    WorkloadAttestor "unix" {{
        plugin_data {{
            discover_workload_path = true
        }}
    }}
}}
health_checks {{
    listener_enabled = true
    bind_address = "127.0.0.1"
    bind_port = "{hp}"
    live_path = "/live"
    ready_path = "/ready"
}}
"#,
                data = agent_data.display(),
                sock = me.socket().display(),
                bundle = dir.join("bundle.pem").display(),
                hp = me.agent_health_port,
            )
        };
        std::fs::write(
            dir.join("agent.conf"),
            agent_conf(&format!("join_token = \"{token}\"")),
        )?;
        std::fs::write(dir.join("agent-resume.conf"), agent_conf(""))?;
        me.spawn_agent("agent.conf")?;
        let port = me.agent_health_port;
        wait_for("the SPIRE agent /ready", Duration::from_secs(120), || {
            http_ok(port, "/ready")
        })
        .await
        .with_context(|| format!("see {}", dir.join("agent.log").display()))?;
        Ok(me)
    }

    pub(super) fn socket(&self) -> PathBuf {
        self.dir.join("public").join("api.sock")
    }

    fn server_cmd(&self) -> Command {
        Command::new(&self.server_bin)
    }

    async fn wait_server(&self) -> Result<()> {
        let sock = server_socket(&self.dir);
        let bin = self.server_bin.clone();
        wait_for(
            "the SPIRE server healthcheck",
            Duration::from_secs(600),
            || {
                let (sock, bin) = (sock.clone(), bin.clone());
                async move {
                    Command::new(&bin)
                        .args(["healthcheck", "-socketPath"])
                        .arg(&sock)
                        .output()
                        .await
                        .is_ok_and(|o| o.status.success())
                }
            },
        )
        .await
        .with_context(|| format!("see {}", self.dir.join("server.log").display()))
    }

    fn spawn_agent(&mut self, conf: &str) -> Result<()> {
        let child = Command::new(&self.agent_bin)
            .arg("run")
            .arg("-config")
            .arg(self.dir.join(conf))
            .stdout(log_file(&self.dir.join("agent.log"))?)
            .stderr(log_file(&self.dir.join("agent.log"))?)
            .kill_on_drop(true)
            .spawn()
            .context("spawning spire-agent")?;
        self.agent = Some(child);
        Ok(())
    }

    pub(super) async fn create_entries(&mut self, specs: &[EntrySpec]) -> Result<()> {
        for (i, chunk) in specs.chunks(CREATE_BATCH).enumerate() {
            let entries: Vec<_> = chunk
                .iter()
                .map(|s| {
                    let parent = match s.fake_node {
                        None => self.agent_id.clone(),
                        Some(k) => {
                            format!("spiffe://{TRUST_DOMAIN}/spire/agent/join_token/fake-{k}")
                        }
                    };
                    let mut e = json!({
                        "selectors": [{"type": "unix", "value": format!("uid:{}", s.uid)}],
                        "spiffe_id": s.spiffe_id(),
                        "parent_id": parent,
                    });
                    if let Some(ttl) = s.ttl_seconds {
                        e["x509_svid_ttl"] = json!(ttl);
                    }
                    e
                })
                .collect();
            let file = self.dir.join(format!("entries-{i}.json"));
            std::fs::write(&file, serde_json::to_vec(&json!({ "entries": entries }))?)?;
            let out = run_cmd(
                self.server_cmd()
                    .args(["entry", "create", "-output", "json", "-socketPath"])
                    .arg(server_socket(&self.dir))
                    .arg("-data")
                    .arg(&file),
            )
            .await?;
            let _ = std::fs::remove_file(&file);
            let failed = out.matches("\"code\":").count() - out.matches("\"code\":0").count();
            if failed > 0 {
                anyhow::bail!(
                    "spire-server entry create: {failed} entries failed: {}",
                    out.chars().take(400).collect::<String>()
                );
            }
        }
        Ok(())
    }

    pub(super) async fn restart(&mut self) -> Result<Instant> {
        let started = Instant::now();
        self.server = spawn_server(&self.server_bin, &self.dir)?;
        self.spawn_agent("agent-resume.conf")?;
        Ok(started)
    }
}

fn server_socket(dir: &Path) -> PathBuf {
    dir.join("server-api.sock")
}

fn spawn_server(bin: &Path, dir: &Path) -> Result<Child> {
    Command::new(bin)
        .arg("run")
        .arg("-config")
        .arg(dir.join("server.conf"))
        .stdout(log_file(&dir.join("server.log"))?)
        .stderr(log_file(&dir.join("server.log"))?)
        .kill_on_drop(true)
        .spawn()
        .context("spawning spire-server")
}
