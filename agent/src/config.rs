//! Agent configuration: one TOML file, parsed once into types (docs/architecture.md, "Command line").
//!
//! Only `trust_domain`, `data_dir` and `server_address` are required; every other key has a
//! default documented beside its field. Unknown keys and bad values stop startup with a
//! [`ConfigError`] naming the key; `main` maps it to exit code 64 (`EX_USAGE`). Embedders
//! (sworn-dev) build a [`Config`] with [`Config::new`] and set the public fields directly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spiffe::TrustDomain;
// `http` comes with tonic; its `Authority` parser handles IPv6 brackets and ports.
use tonic::codegen::http::uri::Authority;

use crate::socket_path::SocketPath;

/// Exit code for a configuration error (BSD `EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;

/// Default Workload API socket (docs/architecture.md, "Protocols").
pub const DEFAULT_SOCKET_PATH: &str = "/run/sworn/agent.sock";
/// Default metrics/health address: loopback only, the probes run on the node.
pub const DEFAULT_HEALTH_ADDRESS: &str = "127.0.0.1:8082";
/// Default path of the agent pod's projected token (audience `sworn-agent`).
pub const DEFAULT_AGENT_TOKEN_PATH: &str = "/var/run/secrets/tokens/sworn-agent";

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config {path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A key has a value of the right type that cannot be used.
    #[error("config: key `{key}`: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The server's agent API address, `https://host:port` in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl ServerAddress {
    /// Parses `https://host:port` (the port is required; TLS is always on).
    pub fn parse(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("https://")
            .ok_or("must start with https:// (the agent API is always TLS)")?;
        let rest = rest.trim_end_matches('/');
        let uri: Authority = rest
            .parse()
            .map_err(|_| format!("{rest:?} is not host:port"))?;
        let port = uri
            .port_u16()
            .ok_or("a port is required (https://host:port)")?;
        let host = uri.host();
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        // A DNS name or IPv4 literal as written, or an IPv6 literal in brackets (kept without
        // them); anything else the URI grammar admits (`!`, a stray bracket) is no host.
        let host = match host.strip_prefix('[') {
            Some(inner) => inner
                .strip_suffix(']')
                .filter(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
                .ok_or_else(|| format!("{host:?} is not an IPv6 address in brackets"))?,
            None if host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) =>
            {
                host
            }
            None => return Err(format!("{host:?} is not a host name or IP address")),
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

/// How the agent gets its first trust in the server (docs/architecture.md, "Node attestation").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// Roots from a PEM file (normally the ConfigMap the server publishes). Key `bundle_file`.
    BundleFile(PathBuf),
    /// Roots given in memory (DER), for embedders that run the server in-process.
    Roots(Vec<Vec<u8>>),
    /// Trust whoever answers the first `Attest` (key `danger_insecure_bootstrap`).
    DangerInsecure,
}

/// How the agent proves which node it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAttestation {
    /// Unix mode: a one-time join token (docs/architecture.md, "Trust model"). `None` when the agent is expected to
    /// carry on with the SVID persisted in `data_dir`.
    JoinToken(Option<JoinToken>),
    /// Kubernetes: the agent pod's projected token, re-read for every (re-)attestation.
    K8s {
        /// The cluster name configured on the server (key `cluster`).
        cluster: String,
        /// Where the kubelet projects the token (key `agent_token_path`).
        token_path: PathBuf,
    },
}

/// A join token; redacted in `Debug` so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken(String);

impl JoinToken {
    /// Wraps a token (surrounding whitespace trimmed).
    pub fn new(token: &str) -> Self {
        Self(token.trim().to_owned())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinToken(<redacted>)")
    }
}

impl std::str::FromStr for JoinToken {
    type Err = std::convert::Infallible;

    /// For the `--join-token` flag: the parsed arguments derive `Debug`, this type redacts.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl<'de> Deserialize<'de> for JoinToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|t| Self::new(&t))
    }
}

/// The agent's configuration, parsed.
#[derive(Debug, Clone)]
pub struct Config {
    /// Key `trust_domain` (required).
    pub trust_domain: TrustDomain,
    /// Key `data_dir` (required): agent key, SVID and last bundle, 0600 files.
    pub data_dir: PathBuf,
    /// Key `server_address` (required), `https://host:port`.
    pub server_address: ServerAddress,
    /// Keys `bundle_file` / `danger_insecure_bootstrap` (default false). One is required.
    pub bootstrap: Bootstrap,
    /// Key `attestation`: `"join_token"` (default) or `"k8s"`, with `join_token` /
    /// `join_token_file` or `cluster` / `agent_token_path`.
    pub attestation: NodeAttestation,
    /// Key `node_name`; default env `MY_NODE_NAME` (informational in unix mode).
    pub node_name: Option<String>,
    /// Key `socket_path`; default `/run/sworn/agent.sock`.
    pub socket_path: SocketPath,
    /// Key `health_address`; default `127.0.0.1:8082` (`/healthz`, `/readyz`, `/metrics`).
    /// Port 0 picks a free port (tests, sworn-dev).
    pub health_address: SocketAddr,
    /// Key `log_format`; default `text`.
    pub log_format: LogFormat,
    /// Key `log_level`; default `info` (an `EnvFilter` directive).
    pub log_level: String,
    /// Kubernetes workload attestation (used when `attestation = "k8s"`): keys
    /// `kubelet_root` (default `/var/lib/kubelet`), `cgroup_roots` (default
    /// `["/kubepods", "/kubepods.slice"]`), `workload_audience` (default
    /// `sworn`), `allow_ephemeral` (default false), `pod_wait` (default `10s`).
    pub k8s_workload: crate::k8s::K8sWorkloadConfig,
    /// Key `kubeconfig`: credentials for the node's pod watch; default the
    /// in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// Workload API connection bounds: keys `max_connections` (default 8192),
    /// `workload_api_request_timeout` (default `10s`), `workload_api_idle_timeout` (default
    /// `5m`); docs/architecture.md, "Workload API connections".
    pub connections: ConnectionConfig,
    /// Key `max_exe_hash_bytes`; default 256 MiB. Unix mode: a caller whose executable is
    /// larger is refused unhashed (`exe too large`), so a huge sparse binary cannot keep the
    /// agent hashing; far above any ordinary binary, and hashed well within the 2 s cap.
    pub max_exe_hash_bytes: u64,
    /// Not a key: how long hashing one executable may take; default 2 s
    /// (`sworn_caller::DEFAULT_HASH_TIMEOUT`). Embedders' tests raise it to keep a caller
    /// inside a long inspection.
    pub exe_hash_timeout: std::time::Duration,
    /// Not a key: a hook for embedders' tests. Capture Workload API callers as on a kernel
    /// without `SO_PEERPIDFD` (and log the warning that goes with it). Default false.
    pub danger_ignore_peer_pidfd: bool,
}

/// Bounds on Workload API connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Connections open at once, in total. Each tenant (a pod, or a uid in unix mode) may
    /// hold at most 128 of them.
    pub max_connections: usize,
    /// A new connection must complete its first request's headers within this.
    pub request_timeout: std::time::Duration,
    /// A connection with no open stream for this long is closed. Open streams are never
    /// timed out.
    pub idle_timeout: std::time::Duration,
}

/// Default cap on Workload API connections in total (including callers whose capture
/// failed); key `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;

impl Default for ConnectionConfig {
    fn default() -> Self {
        let guard = sworn_h2guard::Limits::default();
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            request_timeout: guard.first_headers_within,
            idle_timeout: guard.idle_after,
        }
    }
}

impl Config {
    /// A config with every optional key at its default, join-token attestation without a
    /// token (set [`Config::attestation`]) and bootstrap trust from `roots`.
    pub fn new(
        trust_domain: TrustDomain,
        data_dir: PathBuf,
        server_address: ServerAddress,
        bootstrap: Bootstrap,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            trust_domain,
            data_dir,
            server_address,
            bootstrap,
            attestation: NodeAttestation::JoinToken(None),
            node_name: None,
            socket_path: SocketPath::new(DEFAULT_SOCKET_PATH)
                .map_err(|e| invalid("socket_path", e.to_string()))?,
            health_address: default_health_address(),
            log_format: LogFormat::Text,
            log_level: "info".into(),
            k8s_workload: crate::k8s::K8sWorkloadConfig::default(),
            kubeconfig: None,
            connections: ConnectionConfig::default(),
            max_exe_hash_bytes: sworn_caller::DEFAULT_MAX_EXE_HASH_BYTES,
            exe_hash_timeout: sworn_caller::DEFAULT_HASH_TIMEOUT,
            danger_ignore_peer_pidfd: false,
        })
    }

    /// Combinations of keys that are each valid but not together; checked when a file is
    /// parsed and again by `Agent::start` for embedders that set the fields directly.
    pub fn check(&self) -> Result<(), ConfigError> {
        if matches!(self.attestation, NodeAttestation::K8s { .. })
            && self.bootstrap == Bootstrap::DangerInsecure
        {
            return Err(invalid(
                "danger_insecure_bootstrap",
                "is refused in kubernetes mode (attestation = \"k8s\"): whoever answered first \
                 would receive the agent's token and every workload's; set bundle_file",
            ));
        }
        if self.max_exe_hash_bytes == 0 {
            return Err(invalid("max_exe_hash_bytes", "must be at least 1"));
        }
        Ok(())
    }

    /// Reads and parses a TOML file. `node_name_env` is the value of `MY_NODE_NAME` (passed
    /// in so tests never touch the process environment).
    pub fn from_file(path: &Path, node_name_env: Option<String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, node_name_env).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses config text as [`Config::from_file`] does a file's contents (a `Parse` error
    /// carries an empty path). `join_token_file` is still read from the file system.
    pub fn parse(text: &str, node_name_env: Option<String>) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        raw.resolve(node_name_env)
    }
}

fn default_health_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8082))
}

/// The file as written by a person. Private: callers see [`Config`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    trust_domain: Option<String>,
    data_dir: Option<PathBuf>,
    server_address: Option<String>,
    bundle_file: Option<PathBuf>,
    #[serde(default)]
    danger_insecure_bootstrap: bool,
    attestation: Option<String>,
    join_token: Option<JoinToken>,
    join_token_file: Option<PathBuf>,
    node_name: Option<String>,
    agent_token_path: Option<PathBuf>,
    cluster: Option<String>,
    socket_path: Option<PathBuf>,
    health_address: Option<String>,
    #[serde(default)]
    log_format: LogFormat,
    log_level: Option<String>,
    kubelet_root: Option<PathBuf>,
    cgroup_roots: Option<Vec<String>>,
    workload_audience: Option<String>,
    #[serde(default)]
    allow_ephemeral: bool,
    #[serde(default, with = "humantime_serde")]
    pod_wait: Option<std::time::Duration>,
    kubeconfig: Option<PathBuf>,
    max_connections: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    workload_api_request_timeout: Option<std::time::Duration>,
    #[serde(default, with = "humantime_serde")]
    workload_api_idle_timeout: Option<std::time::Duration>,
    max_exe_hash_bytes: Option<u64>,
}

impl RawConfig {
    fn resolve(self, node_name_env: Option<String>) -> Result<Config, ConfigError> {
        let connections = self.connections()?;
        let td = self
            .trust_domain
            .ok_or_else(|| invalid("trust_domain", "required"))?;
        let trust_domain = sworn_identity::parse_trust_domain(&td)
            .map_err(|e| invalid("trust_domain", e.to_string()))?;
        let data_dir = self
            .data_dir
            .ok_or_else(|| invalid("data_dir", "required"))?;
        if !data_dir.is_absolute() {
            return Err(invalid("data_dir", "must be an absolute path"));
        }
        let address = self
            .server_address
            .ok_or_else(|| invalid("server_address", "required"))?;
        let server_address =
            ServerAddress::parse(&address).map_err(|e| invalid("server_address", e))?;
        let bootstrap = match (self.bundle_file, self.danger_insecure_bootstrap) {
            (Some(_), true) => {
                return Err(invalid(
                    "danger_insecure_bootstrap",
                    "cannot be true when bundle_file is set",
                ));
            }
            (Some(f), false) => Bootstrap::BundleFile(f),
            (None, true) => Bootstrap::DangerInsecure,
            (None, false) => {
                return Err(invalid(
                    "bundle_file",
                    "required (the server's trust bundle, PEM) unless danger_insecure_bootstrap = true",
                ));
            }
        };
        let attestation = match self.attestation.as_deref().unwrap_or("join_token") {
            "join_token" => {
                let token = match (self.join_token, self.join_token_file) {
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            "join_token_file",
                            "set join_token or join_token_file, not both",
                        ));
                    }
                    (Some(t), None) => Some(t),
                    (None, Some(f)) => Some(JoinToken::new(&std::fs::read_to_string(&f).map_err(
                        |e| {
                            invalid(
                                "join_token_file",
                                format!("cannot read {}: {e}", f.display()),
                            )
                        },
                    )?)),
                    (None, None) => None,
                };
                if token.as_ref().is_some_and(|t| t.expose().is_empty()) {
                    return Err(invalid("join_token", "is empty"));
                }
                NodeAttestation::JoinToken(token)
            }
            "k8s" => {
                let cluster = self
                    .cluster
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| invalid("cluster", "required when attestation = \"k8s\""))?;
                NodeAttestation::K8s {
                    cluster,
                    token_path: self
                        .agent_token_path
                        .unwrap_or_else(|| DEFAULT_AGENT_TOKEN_PATH.into()),
                }
            }
            other => {
                return Err(invalid(
                    "attestation",
                    format!("{other:?} is unknown; use \"join_token\" or \"k8s\""),
                ));
            }
        };
        let socket_path = SocketPath::new(
            self.socket_path
                .unwrap_or_else(|| DEFAULT_SOCKET_PATH.into()),
        )
        .map_err(|e| invalid("socket_path", e.to_string()))?;
        let health_address = match self.health_address {
            None => default_health_address(),
            Some(a) => a
                .parse()
                .map_err(|_| invalid("health_address", format!("{a:?} is not ip:port")))?,
        };
        let log_level = self.log_level.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log_level",
                format!("{log_level:?} is not a filter directive"),
            ));
        }
        let mut k8s_workload = crate::k8s::K8sWorkloadConfig::default();
        if let Some(root) = self.kubelet_root {
            if !root.is_absolute() {
                return Err(invalid("kubelet_root", "must be an absolute path"));
            }
            k8s_workload.kubelet_root = root;
        }
        if let Some(roots) = self.cgroup_roots {
            if roots.is_empty() {
                return Err(invalid("cgroup_roots", "must name at least one root"));
            }
            k8s_workload.cgroup_roots = sworn_caller::CgroupRoots::parse(&roots)
                .map_err(|e| invalid("cgroup_roots", e.to_string()))?;
        }
        if let Some(aud) = self.workload_audience {
            if aud.is_empty() {
                return Err(invalid("workload_audience", "must not be empty"));
            }
            k8s_workload.workload_audience = aud;
        }
        k8s_workload.allow_ephemeral = self.allow_ephemeral;
        if let Some(wait) = self.pod_wait {
            if wait.is_zero() || wait > std::time::Duration::from_secs(300) {
                return Err(invalid("pod_wait", "must be between 1ms and 5m"));
            }
            k8s_workload.pod_wait = wait;
        }
        let node_name = self.node_name.or(node_name_env).filter(|n| !n.is_empty());
        if matches!(attestation, NodeAttestation::K8s { .. }) && node_name.is_none() {
            return Err(invalid(
                "node_name",
                "required in kubernetes mode (or set MY_NODE_NAME from the downward API)",
            ));
        }
        let config = Config {
            trust_domain,
            data_dir,
            server_address,
            bootstrap,
            attestation,
            node_name,
            socket_path,
            health_address,
            log_format: self.log_format,
            log_level,
            k8s_workload,
            kubeconfig: self.kubeconfig,
            connections,
            max_exe_hash_bytes: self
                .max_exe_hash_bytes
                .unwrap_or(sworn_caller::DEFAULT_MAX_EXE_HASH_BYTES),
            exe_hash_timeout: sworn_caller::DEFAULT_HASH_TIMEOUT,
            danger_ignore_peer_pidfd: false,
        };
        config.check()?;
        Ok(config)
    }

    fn connections(&self) -> Result<ConnectionConfig, ConfigError> {
        use std::time::Duration;
        let mut c = ConnectionConfig::default();
        if let Some(n) = self.max_connections {
            if !(16..=1_000_000).contains(&n) {
                return Err(invalid("max_connections", "must be between 16 and 1000000"));
            }
            c.max_connections = n;
        }
        if let Some(t) = self.workload_api_request_timeout {
            if t < Duration::from_millis(100) || t > Duration::from_secs(300) {
                return Err(invalid(
                    "workload_api_request_timeout",
                    "must be between 100ms and 5m",
                ));
            }
            c.request_timeout = t;
        }
        if let Some(t) = self.workload_api_idle_timeout {
            if t < Duration::from_secs(1) || t > Duration::from_secs(24 * 3600) {
                return Err(invalid(
                    "workload_api_idle_timeout",
                    "must be between 1s and 24h",
                ));
            }
            c.idle_timeout = t;
        }
        Ok(c)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
