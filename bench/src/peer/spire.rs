//! SPIRE under test, at its defaults except for what both systems need in common (RESULTS.md
//! lists these): the `sql` datastore on SQLite, `ca_key_type = "ec-p256"`,
//! `default_x509_svid_ttl = "1h"`, `join_token` node attestation, the `unix` workload
//! attestor, disk key managers (the agent's keeps its node key across restarts, since a join
//! token attests once), loopback addresses and health listeners (the readiness the cold
//! start and restart rows poll). `discover_workload_path = true` only when the instance's
//! entries require the executable's path and digest ([`PeerOptions::exe`]); SPIRE's default
//! (off) otherwise. Sync interval, SVID cache size and the rest stay at SPIRE's defaults.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::json;
use tokio::process::{Child, Command};

use super::process::{AgentProc, agent_name, free_port, http_ok, log_file, run_cmd, wait_for};
use super::spec::{Binaries, EntrySpec, PeerOptions, TRUST_DOMAIN};

/// Entries per `entry create -data` batch.
const CREATE_BATCH: usize = 1000;

/// A running SPIRE server + agents.
#[derive(Debug)]
pub struct Spire {
    dir: PathBuf,
    server_bin: PathBuf,
    agent_bin: PathBuf,
    opts: PeerOptions,
    pub(super) server: Child,
    pub(super) agents: Vec<AgentProc>,
    api_port: u16,
    pub(super) server_health_port: u16,
}

impl Spire {
    pub(super) async fn start(bins: &Binaries, dir: &Path, opts: &PeerOptions) -> Result<Self> {
        let server_bin = bins
            .spire_server
            .clone()
            .ok_or_else(|| anyhow!("spire-server is not built: run bench/spire/build.sh"))?;
        let agent_bin = bins
            .spire_agent
            .clone()
            .ok_or_else(|| anyhow!("spire-agent is not built: run bench/spire/build.sh"))?;
        let server_data = dir.join("server");
        std::fs::create_dir_all(&server_data)?;
        std::fs::create_dir_all(dir.join("public"))?;
        let api_port = free_port()?;
        let server_health_port = free_port()?;
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
health_checks {{
    listener_enabled = true
    bind_address = "127.0.0.1"
    bind_port = "{server_health_port}"
    live_path = "/live"
    ready_path = "/ready"
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
            opts: opts.clone(),
            server,
            agents: Vec::new(),
            api_port,
            server_health_port,
        };
        me.wait_server().await?;
        let bundle = run_cmd(
            me.server_cmd()
                .args(["bundle", "show", "-socketPath"])
                .arg(server_socket(dir)),
        )
        .await?;
        std::fs::write(dir.join("bundle.pem"), bundle)?;
        me.add_agent().await?;
        Ok(me)
    }

    /// Starts one more agent (join token, own data dir, socket and health port) and waits
    /// until it is ready; returns its index.
    pub(super) async fn add_agent(&mut self) -> Result<usize> {
        let i = self.agents.len();
        let out = run_cmd(
            self.server_cmd()
                .args([
                    "token",
                    "generate",
                    "-ttl",
                    "3600",
                    "-output",
                    "json",
                    "-socketPath",
                ])
                .arg(server_socket(&self.dir)),
        )
        .await?;
        let token = serde_json::from_str::<serde_json::Value>(&out)?["value"]
            .as_str()
            .ok_or_else(|| anyhow!("spire-server token generate: no token in {out:?}"))?
            .to_owned();
        let name = agent_name(i);
        let data = self.dir.join(&name);
        std::fs::create_dir_all(&data)?;
        let socket = self.dir.join("public").join(format!("{name}.sock"));
        let health_port = free_port()?;
        let discover = if self.opts.exe.is_some() {
            "discover_workload_path = true"
        } else {
            ""
        };
        let conf = |join: &str| {
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
            {discover}
        }}
    }}
}}
health_checks {{
    listener_enabled = true
    bind_address = "127.0.0.1"
    bind_port = "{health_port}"
    live_path = "/live"
    ready_path = "/ready"
}}
"#,
                data = data.display(),
                api_port = self.api_port,
                sock = socket.display(),
                bundle = self.dir.join("bundle.pem").display(),
            )
        };
        let first = self.dir.join(format!("{name}.conf"));
        std::fs::write(&first, conf(&format!("join_token = \"{token}\"")))?;
        let resume_conf = self.dir.join(format!("{name}-resume.conf"));
        std::fs::write(&resume_conf, conf(""))?;
        let child = self.spawn_agent(&first, &name)?;
        self.agents.push(AgentProc {
            child: Some(child),
            id: format!("spiffe://{TRUST_DOMAIN}/spire/agent/join_token/{token}"),
            health_port,
            socket,
            resume_conf,
        });
        self.wait_agent_ready(i).await?;
        Ok(i)
    }

    fn server_cmd(&self) -> Command {
        Command::new(&self.server_bin)
    }

    async fn wait_server(&self) -> Result<()> {
        let port = self.server_health_port;
        wait_for("the SPIRE server /ready", Duration::from_secs(600), || {
            http_ok(port, "/ready")
        })
        .await
        .with_context(|| format!("see {}", self.dir.join("server.log").display()))
    }

    pub(super) async fn wait_agent_ready(&self, i: usize) -> Result<()> {
        let port = self.agents[i].health_port;
        wait_for("the SPIRE agent /ready", Duration::from_secs(120), || {
            http_ok(port, "/ready")
        })
        .await
        .with_context(|| format!("see the agent logs in {}", self.dir.display()))
    }

    fn spawn_agent(&self, conf: &Path, name: &str) -> Result<Child> {
        Command::new(&self.agent_bin)
            .arg("run")
            .arg("-config")
            .arg(conf)
            .stdout(log_file(&self.dir.join(format!("{name}.log")))?)
            .stderr(log_file(&self.dir.join(format!("{name}.log")))?)
            .kill_on_drop(true)
            .spawn()
            .context("spawning spire-agent")
    }

    pub(super) async fn create_entries(&mut self, specs: &[EntrySpec]) -> Result<()> {
        for (i, chunk) in specs.chunks(CREATE_BATCH).enumerate() {
            let entries: Vec<_> = chunk
                .iter()
                .map(|s| {
                    let mut selectors =
                        vec![json!({"type": "unix", "value": format!("uid:{}", s.uid)})];
                    let parent = match s.fake_node {
                        None => {
                            if let Some(e) = &self.opts.exe {
                                selectors.push(
                                    json!({"type": "unix", "value": format!("path:{}", e.path)}),
                                );
                                selectors.push(
                                    json!({"type": "unix", "value": format!("sha256:{}", e.sha256)}),
                                );
                            }
                            self.agents.get(s.agent).map(|a| a.id.clone()).unwrap_or_default()
                        }
                        Some(k) => {
                            format!("spiffe://{TRUST_DOMAIN}/spire/agent/join_token/fake-{k}")
                        }
                    };
                    let mut e = json!({
                        "selectors": selectors,
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

    /// Spawns the server again on its datastore; returns the spawn instant.
    pub(super) fn respawn_server(&mut self) -> Result<Instant> {
        let started = Instant::now();
        self.server = spawn_server(&self.server_bin, &self.dir)?;
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
