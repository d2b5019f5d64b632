//! Server configuration: one TOML file, parsed once into types.
//!
//! Only `trust_domain` and `data_dir` are required (docs/architecture.md, "Command line"); every other
//! key has a default documented beside its field. Unknown keys and bad values
//! stop startup with a [`ConfigError`] naming the key; `main` maps it to exit
//! code 64 (`EX_USAGE`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use spiffe::TrustDomain;

pub use crate::agentapi::limits::AgentApiLimits;
use crate::agentapi::limits::RawAgentApi;

/// Exit code for a configuration error (BSD `EX_USAGE`).
pub const EXIT_CONFIG: i32 = 64;

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
        /// The dotted key.
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

/// CA and SVID key algorithm. Only ECDSA P-256 exists today (docs/architecture.md, "Outcomes");
/// the key is here so configs state it explicitly and a future type is not a
/// breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum KeyType {
    /// ECDSA over NIST P-256 with SHA-256.
    #[default]
    #[serde(rename = "ec-p256")]
    EcP256,
}

/// The file as written by a person. Private: callers see [`Config`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    trust_domain: Option<String>,
    data_dir: Option<PathBuf>,
    admin_socket: Option<PathBuf>,
    agent_api_address: Option<SocketAddr>,
    health_address: Option<SocketAddr>,
    #[serde(default, with = "humantime_serde")]
    default_svid_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    agent_svid_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    ca_ttl: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    k8s_call_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    audit_retention: Option<Duration>,
    #[serde(default)]
    danger_allow_lost_datastore: bool,
    key_type: Option<KeyType>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    upstream_ca: Option<UpstreamCa>,
    bundle_file: Option<PathBuf>,
    #[serde(default)]
    clusters: Vec<ClusterConfig>,
    #[serde(default)]
    agent_api: RawAgentApi,
}

/// An upstream CA under which the server runs as an intermediate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamCa {
    /// PEM certificate of the upstream signing CA.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8) of the upstream signing CA.
    pub key_file: PathBuf,
    /// PEM roots to publish as the bundle. Default: `cert_file` itself
    /// (the upstream CA is a root).
    pub bundle_file: Option<PathBuf>,
}

/// One Kubernetes cluster whose agents may attest (docs/architecture.md, "Node attestation").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Name used in agent IDs (`/sworn/agent/k8s/<name>/...`); DNS-1123 label.
    pub name: String,
    /// Kubeconfig for reaching this cluster's API server. Default: in-cluster
    /// configuration (the server's own service account).
    pub kubeconfig: Option<PathBuf>,
    /// Audience of agent tokens. Default `sworn-agent`: dedicated, so a token
    /// minted for anything else cannot attest a node.
    #[serde(default = "default_agent_audience")]
    pub agent_audience: String,
    /// Service accounts (`namespace:name`) agents may run as.
    /// Default `["sworn-system:sworn-agent"]`.
    #[serde(default = "default_agent_service_accounts")]
    pub agent_service_accounts: Vec<String>,
    /// Audience of workload tokens. Default `sworn`.
    #[serde(default = "default_workload_audience")]
    pub workload_audience: String,
    /// Whether pods without a matching entry get `spiffe://<td>/ns/<ns>/sa/<sa>`.
    /// Default true.
    #[serde(default = "default_true")]
    pub default_identity: bool,
    /// The ConfigMap (`namespace/name`) the server keeps the trust bundle in,
    /// for agents to mount as bootstrap trust. Default `sworn-system/sworn-bundle`.
    #[serde(default = "default_bundle_configmap")]
    pub bundle_configmap: String,
}

fn default_agent_audience() -> String {
    "sworn-agent".to_owned()
}
fn default_workload_audience() -> String {
    "sworn".to_owned()
}
fn default_agent_service_accounts() -> Vec<String> {
    vec!["sworn-system:sworn-agent".to_owned()]
}
fn default_true() -> bool {
    true
}
fn default_bundle_configmap() -> String {
    "sworn-system/sworn-bundle".to_owned()
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The trust domain all identities belong to.
    pub trust_domain: TrustDomain,
    /// Where the database, CA keys and admin socket live. Created 0700.
    pub data_dir: PathBuf,
    /// Admin API socket (0600). Default `<data_dir>/admin.sock`.
    pub admin_socket: PathBuf,
    /// Agent API (mTLS). Default `0.0.0.0:8081`.
    pub agent_api_address: SocketAddr,
    /// `/metrics`, `/healthz`, `/readyz`. Default `127.0.0.1:8080`: metrics
    /// reveal entry counts, so they are not exposed beyond the host unless asked.
    pub health_address: SocketAddr,
    /// Workload SVID TTL when an entry sets none. Default 1 h (as SPIRE).
    pub default_svid_ttl: Duration,
    /// Agent SVID TTL. Default 1 h; agents renew at half-life.
    pub agent_svid_ttl: Duration,
    /// Lifetime of each CA key. Default 24 h; rotation at 1/2 and 1/6 left.
    pub ca_ttl: Duration,
    /// Key algorithm. Default `ec-p256`.
    pub key_type: KeyType,
    /// Default `text`.
    pub log_format: LogFormat,
    /// `tracing` filter directive. Default `info`.
    pub log_level: String,
    /// Default none: a self-signed root.
    pub upstream_ca: Option<UpstreamCa>,
    /// Where the trust bundle (PEM) is also written on every change, for
    /// agents on hosts without Kubernetes. Default `<data_dir>/bundle.pem`.
    pub bundle_file: PathBuf,
    /// Kubernetes clusters. Default none (join-token agents only).
    pub clusters: Vec<ClusterConfig>,
    /// Deadline of each Kubernetes API call the server makes (TokenReview, Pod and Node
    /// reads). Default 5 s: long enough for a quorum read on a busy API server, short enough
    /// that an agent's mint answers `Unavailable` well before its own 30 s timeout.
    pub k8s_call_timeout: Duration,
    /// The `[agent_api]` section: connection, handshake, request-size and rate limits.
    pub agent_api: AgentApiLimits,
    /// How long audit events are kept; older ones are pruned in batches by a background
    /// task. Default 30 days: enough to investigate an incident, and the table (which every
    /// decision writes to, so a full disk stops issuance) stays bounded.
    pub audit_retention: Duration,
    /// Start even though the CA keys exist and the datastore is new (lost or deleted). Default
    /// false: a new datastore has forgotten which agent tokens already attested, so a token
    /// still valid could attest once more. Set it once, after restoring what could be
    /// restored, and remove it again (docs/architecture.md, "Storage").
    pub danger_allow_lost_datastore: bool,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let td = raw
            .trust_domain
            .ok_or_else(|| invalid("trust_domain", "is required"))?;
        let trust_domain = TrustDomain::new(&td)
            .map_err(|e| invalid("trust_domain", format!("{td:?} is not a trust domain: {e}")))?;
        if td != trust_domain.as_str() {
            return Err(invalid(
                "trust_domain",
                "must be the bare name in lower case, e.g. \"example.org\"",
            ));
        }
        let data_dir = raw
            .data_dir
            .ok_or_else(|| invalid("data_dir", "is required"))?;
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let admin_socket = raw
            .admin_socket
            .unwrap_or_else(|| data_dir.join("admin.sock"));
        check_socket_path("admin_socket", &admin_socket)?;
        let ca_ttl = positive(
            "ca_ttl",
            raw.ca_ttl.unwrap_or(Duration::from_secs(24 * 3600)),
        )?;
        if ca_ttl < Duration::from_secs(60) {
            return Err(invalid("ca_ttl", "must be at least 1m"));
        }
        let default_svid_ttl = positive(
            "default_svid_ttl",
            raw.default_svid_ttl.unwrap_or(Duration::from_secs(3600)),
        )?;
        let agent_svid_ttl = positive(
            "agent_svid_ttl",
            raw.agent_svid_ttl.unwrap_or(Duration::from_secs(3600)),
        )?;
        let k8s_call_timeout = positive(
            "k8s_call_timeout",
            raw.k8s_call_timeout.unwrap_or(Duration::from_secs(5)),
        )?;
        let audit_retention = positive(
            "audit_retention",
            raw.audit_retention
                .unwrap_or(Duration::from_secs(30 * 24 * 3600)),
        )?;
        let log_level = raw.log_level.unwrap_or_else(|| "info".to_owned());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(invalid(
                "log_level",
                format!("{log_level:?} is not a filter"),
            ));
        }
        let agent_api = raw.agent_api.validate().map_err(|e| ConfigError::Invalid {
            key: e.key,
            reason: e.reason,
        })?;
        let mut names = std::collections::BTreeSet::new();
        for c in &raw.clusters {
            if !is_dns_label(&c.name) {
                return Err(invalid(
                    "clusters.name",
                    format!("{:?} is not a DNS-1123 label", c.name),
                ));
            }
            if !names.insert(c.name.clone()) {
                return Err(invalid(
                    "clusters.name",
                    format!("{:?} appears twice", c.name),
                ));
            }
            for sa in &c.agent_service_accounts {
                match sa.split_once(':') {
                    Some((ns, name)) if is_dns_label(ns) && !name.is_empty() => {}
                    _ => {
                        return Err(invalid(
                            "clusters.agent_service_accounts",
                            format!("{sa:?} is not namespace:name"),
                        ));
                    }
                }
            }
            if c.agent_audience.is_empty() || c.workload_audience.is_empty() {
                return Err(invalid(
                    "clusters.agent_audience",
                    "audiences must not be empty",
                ));
            }
            if c.agent_audience == c.workload_audience {
                return Err(invalid(
                    "clusters.workload_audience",
                    "must differ from agent_audience, or a workload token could attest a node",
                ));
            }
            if !matches!(c.bundle_configmap.split_once('/'), Some((ns, n)) if is_dns_label(ns) && !n.is_empty())
            {
                return Err(invalid(
                    "clusters.bundle_configmap",
                    "must be namespace/name",
                ));
            }
        }
        Ok(Config {
            trust_domain,
            bundle_file: raw
                .bundle_file
                .unwrap_or_else(|| data_dir.join("bundle.pem")),
            data_dir,
            admin_socket,
            agent_api_address: raw
                .agent_api_address
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8081))),
            health_address: raw
                .health_address
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            default_svid_ttl,
            agent_svid_ttl,
            ca_ttl,
            key_type: raw.key_type.unwrap_or_default(),
            log_format: raw.log_format.unwrap_or_default(),
            log_level,
            upstream_ca: raw.upstream_ca,
            clusters: raw.clusters,
            k8s_call_timeout,
            agent_api,
            audit_retention,
            danger_allow_lost_datastore: raw.danger_allow_lost_datastore,
        })
    }

    /// The minimal configuration: a trust domain and a data directory, with
    /// every other key at its default.
    pub fn minimal(trust_domain: TrustDomain, data_dir: PathBuf) -> Self {
        let text = format!(
            "trust_domain = {:?}\ndata_dir = {:?}\n",
            trust_domain.as_str(),
            data_dir.display().to_string()
        );
        match Self::parse(&text) {
            Ok(c) => c,
            // Unreachable for a valid trust domain: every other key defaults.
            Err(_) => Config {
                trust_domain,
                admin_socket: data_dir.join("admin.sock"),
                bundle_file: data_dir.join("bundle.pem"),
                data_dir,
                agent_api_address: SocketAddr::from(([0, 0, 0, 0], 8081)),
                health_address: SocketAddr::from(([127, 0, 0, 1], 8080)),
                default_svid_ttl: Duration::from_secs(3600),
                agent_svid_ttl: Duration::from_secs(3600),
                ca_ttl: Duration::from_secs(24 * 3600),
                key_type: KeyType::EcP256,
                log_format: LogFormat::Text,
                log_level: "info".to_owned(),
                upstream_ca: None,
                clusters: Vec::new(),
                k8s_call_timeout: Duration::from_secs(5),
                agent_api: AgentApiLimits::default(),
                audit_retention: Duration::from_secs(30 * 24 * 3600),
                danger_allow_lost_datastore: false,
            },
        }
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("sworn.db")
    }
}

fn positive(key: &'static str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(invalid(key, "must be greater than zero"))
    } else {
        Ok(d)
    }
}

/// `sun_path` holds 108 bytes including the terminating NUL.
pub(crate) fn check_socket_path(key: &'static str, p: &Path) -> Result<(), ConfigError> {
    let len = p.as_os_str().len();
    if len >= 108 {
        return Err(invalid(
            key,
            format!("socket path is {len} bytes; unix sockets allow at most 107"),
        ));
    }
    Ok(())
}

/// RFC 1123 label: lower-case alphanumerics and `-`, 1..=63, alphanumeric ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = Config::parse("trust_domain = \"example.org\"\ndata_dir = \"/var/lib/sworn\"\n")
            .unwrap();
        assert_eq!(c.admin_socket, Path::new("/var/lib/sworn/admin.sock"));
        assert_eq!(c.ca_ttl, Duration::from_secs(86400));
        assert_eq!(c.default_svid_ttl, Duration::from_secs(3600));
        assert_eq!(c.agent_api_address.port(), 8081);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn bad_values_name_the_key() {
        let base = "trust_domain = \"example.org\"\ndata_dir = \"/d\"\n";
        assert!(err("data_dir = \"/d\"").contains("trust_domain"));
        assert!(err("trust_domain = \"example.org\"").contains("data_dir"));
        assert!(err("trust_domain = \"Example.org\"\ndata_dir=\"/d\"").contains("trust_domain"));
        assert!(err("trust_domain = \"spiffe://x/y\"\ndata_dir=\"/d\"").contains("trust_domain"));
        assert!(err(&format!("{base}default_svid_ttl = \"soon\"")).contains("default_svid_ttl"));
        assert!(err(&format!("{base}ca_ttl = \"0s\"")).contains("ca_ttl"));
        assert!(
            err(&format!("{base}agent_api_address = \"nowhere\"")).contains("agent_api_address")
        );
        assert!(err(&format!("{base}log_format = \"xml\"")).contains("log_format"));
        assert!(err(&format!("{base}key_type = \"rsa-1024\"")).contains("key_type"));
        assert!(err(&format!("{base}colour = \"blue\"")).contains("colour"));
        let long = format!("{base}admin_socket = \"/{}\"", "a".repeat(120));
        assert!(err(&long).contains("admin_socket"));
        let same_aud = format!(
            "{base}[[clusters]]\nname = \"c\"\nagent_audience = \"x\"\nworkload_audience = \"x\"\n"
        );
        assert!(err(&same_aud).contains("workload_audience"));
        assert!(
            err(&format!("{base}[[clusters]]\nname = \"Bad_Name\"\n")).contains("clusters.name")
        );
    }

    #[test]
    fn agent_api_limits_default_and_refuse_zero_or_negative_naming_the_key() {
        let base = "trust_domain = \"example.org\"\ndata_dir = \"/d\"\n";
        let c = Config::parse(base).unwrap();
        assert_eq!(c.agent_api, AgentApiLimits::default());
        assert_eq!(c.agent_api.attest.per_second, 5.0);
        assert_eq!(c.agent_api.attest.burst, 20);
        assert_eq!(c.agent_api.mint.per_second, 500.0);
        assert_eq!(c.agent_api.mint.burst, 2000);
        assert_eq!(c.agent_api.max_attests_in_flight, 32);
        let set = Config::parse(&format!(
            "{base}[agent_api]\nmax_connections = 7\nhandshake_timeout = \"2s\"\n\
             [agent_api.rate_limits]\nattest_per_second = 0.5\nmint_burst = 3\n"
        ))
        .unwrap();
        assert_eq!(set.agent_api.max_connections, 7);
        assert_eq!(set.agent_api.handshake_timeout, Duration::from_secs(2));
        assert_eq!(set.agent_api.attest.per_second, 0.5);
        assert_eq!(set.agent_api.mint.burst, 3);
        for (line, key) in [
            (
                "[agent_api.rate_limits]\nattest_per_second = 0",
                "agent_api.rate_limits.attest_per_second",
            ),
            (
                "[agent_api.rate_limits]\nattest_burst = 0",
                "agent_api.rate_limits.attest_burst",
            ),
            (
                "[agent_api.rate_limits]\nmint_per_second = -1",
                "agent_api.rate_limits.mint_per_second",
            ),
            (
                "[agent_api.rate_limits]\nmint_burst = -5",
                "agent_api.rate_limits.mint_burst",
            ),
            (
                "[agent_api]\nmax_connections = 0",
                "agent_api.max_connections",
            ),
            (
                "[agent_api]\nmax_handshakes = -1",
                "agent_api.max_handshakes",
            ),
            (
                "[agent_api]\nmax_attests_in_flight = 0",
                "agent_api.max_attests_in_flight",
            ),
            (
                "[agent_api]\nmax_request_bytes = 0",
                "agent_api.max_request_bytes",
            ),
            (
                "[agent_api]\nidle_timeout = \"0s\"",
                "agent_api.idle_timeout",
            ),
            (
                "[agent_api]\nhandshake_timeout = \"0s\"",
                "agent_api.handshake_timeout",
            ),
        ] {
            let e = err(&format!("{base}{line}\n"));
            assert!(e.contains(&format!("`{key}`")), "{line}: {e}");
        }
        assert!(
            err(&format!("{base}[agent_api]\nmax_conections = 1\n")).contains("max_conections")
        );
    }
}
