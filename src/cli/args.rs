//! The command line's shape: subcommands, flags and their defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sworn_identity::{AgentId, EntryId};

/// Default admin socket when neither `--admin-socket` nor `SWORN_ADMIN_SOCKET`
/// is given: the default of a server whose `data_dir` is `/var/lib/sworn/server`.
pub const DEFAULT_ADMIN_SOCKET: &str = "/var/lib/sworn/server/admin.sock";

/// sworn server: issues SPIFFE X509-SVIDs only when every attestation factor agrees.
#[derive(Debug, Parser)]
#[command(name = "sworn-server", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Run {
        /// TOML config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Registration entries.
    #[command(subcommand)]
    Entry(EntryCommand),
    /// Attested agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// The trust bundle.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Mint an X509-SVID directly (for services outside any agent).
    #[command(subcommand)]
    X509(X509Command),
    /// Join tokens for unix-mode agents.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show the audit log.
    Audit {
        /// Keep printing new events.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Exit 0 when the server is serving.
    Healthcheck {
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// Where the admin socket is.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// Admin socket of the server.
    #[arg(long, env = "SWORN_ADMIN_SOCKET", default_value = DEFAULT_ADMIN_SOCKET, value_name = "PATH")]
    pub admin_socket: PathBuf,
}

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Output {
    /// Human-readable.
    #[default]
    Text,
    /// JSON, for scripts.
    Json,
}

/// `--output`.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `entry` subcommands.
#[derive(Debug, Subcommand)]
pub enum EntryCommand {
    /// Create an entry.
    Create {
        /// The SPIFFE ID to grant.
        #[arg(
            long,
            required_unless_present = "spiffe_id_template",
            conflicts_with = "spiffe_id_template"
        )]
        spiffe_id: Option<String>,
        /// A SPIFFE ID template, e.g. spiffe://td/ns/{namespace}/app/{label:app}. Each
        /// pod-controlled value ({label:...}, {pod_name}, {service_account}) fills a whole
        /// path segment, and {namespace} is then required.
        #[arg(long, value_parser = template_arg)]
        spiffe_id_template: Option<String>,
        /// TYPE:KEY:VALUE; repeat for AND.
        #[arg(long = "selector", required = true, value_name = "TYPE:VALUE")]
        selectors: Vec<String>,
        /// Scope the entry to one agent (its SPIFFE ID, see `agent list`); required with
        /// unix selectors.
        #[arg(long, value_name = "AGENT-ID")]
        node: Option<String>,
        /// SVID TTL (e.g. 1h); default: the server's default_svid_ttl.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// DNS SAN (a lower-case host name, no wildcard); repeatable, at most 32.
        #[arg(long = "dns", value_name = "NAME")]
        dns_names: Vec<String>,
        /// Workload API hint.
        #[arg(long)]
        hint: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List entries.
    List {
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show one entry.
    Show {
        /// Entry ID (a lowercase hyphenated UUID, as `entry list` prints it).
        id: EntryId,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Delete an entry; agents redact its SVIDs within a second.
    Delete {
        /// Entry ID (a lowercase hyphenated UUID, as `entry list` prints it).
        id: EntryId,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// The rules for pod-controlled values in `--spiffe-id-template`, checked before any call
/// (the server checks them again, with the trust domain).
fn template_arg(s: &str) -> Result<String, String> {
    match crate::policy::template::pod_controlled_defect(s) {
        None => Ok(s.to_owned()),
        Some(e) => Err(e.to_string()),
    }
}

/// `agent` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// List attested agents.
    List {
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Ban an agent: refused at once, cannot re-attest until unbanned. A Kubernetes agent's
    /// ban covers its node (same cluster, and the node's UID or its name): every agent pod on
    /// it, now or re-created, is refused until `agent unban` of this ID.
    Ban {
        /// Agent SPIFFE ID (`spiffe://<td>/sworn/agent/...`).
        id: AgentId,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Lift a ban (for a Kubernetes agent, its node's ban and every agent of that node).
    Unban {
        /// Agent SPIFFE ID (`spiffe://<td>/sworn/agent/...`).
        id: AgentId,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// Bundle formats.
#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum BundleFormat {
    /// Concatenated PEM certificates.
    #[default]
    Pem,
    /// SPIFFE bundle (JWKS with `x509-svid` keys).
    Jwks,
}

/// `bundle` subcommands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Print the trust bundle.
    Show {
        /// Format.
        #[arg(long, value_enum, default_value_t = BundleFormat::Pem)]
        format: BundleFormat,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// `x509` subcommands.
#[derive(Debug, Subcommand)]
pub enum X509Command {
    /// Mint an X509-SVID; the key is generated here and never sent.
    Mint {
        /// The SPIFFE ID.
        #[arg(long)]
        spiffe_id: String,
        /// TTL (default: the server's default_svid_ttl).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// DNS SAN; repeatable.
        #[arg(long = "dns", value_name = "NAME")]
        dns_names: Vec<String>,
        /// Directory for svid.pem, svid.key (0600) and bundle.pem.
        #[arg(long, value_name = "DIR")]
        write: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Generate a one-time join token.
    Generate {
        /// How long the token may be used (default 1h).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
        ttl: Duration,
        #[command(flatten)]
        admin: AdminArgs,
    },
}
