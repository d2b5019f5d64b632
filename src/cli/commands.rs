//! Each admin subcommand: call the admin API, print the result.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sworn_proto::admin as pb;
use tonic::Code;

use super::args::{
    AdminArgs, AgentCommand, BundleCommand, BundleFormat, Command, EntryCommand, Output,
    TokenCommand, X509Command,
};
use super::output::{self, write_atomic};

/// Exit code when the admin socket cannot be reached (`EX_UNAVAILABLE`).
pub const EXIT_UNAVAILABLE: i32 = 69;

/// A client command's failure, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    /// Exit code.
    pub code: i32,
    /// What to tell the person.
    pub message: String,
}

async fn client(
    a: &AdminArgs,
) -> Result<pb::admin_api_client::AdminApiClient<tonic::transport::Channel>> {
    crate::admin::client::connect(&a.admin_socket).await.map_err(|e| {
        CliError {
            code: EXIT_UNAVAILABLE,
            message: format!(
                "cannot reach the admin socket {}: {e} (is the server running? set --admin-socket or SWORN_ADMIN_SOCKET)",
                a.admin_socket.display()
            ),
        }
        .into()
    })
}

fn status(e: tonic::Status) -> anyhow::Error {
    let code = match e.code() {
        Code::InvalidArgument | Code::NotFound | Code::AlreadyExists | Code::FailedPrecondition => {
            1
        }
        Code::Unavailable => EXIT_UNAVAILABLE,
        _ => 1,
    };
    CliError {
        code,
        message: e.message().to_owned(),
    }
    .into()
}

fn secs(d: Option<Duration>) -> i64 {
    d.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Runs a client subcommand (`run` is handled by `main`).
pub async fn execute(cmd: Command) -> Result<()> {
    match cmd {
        Command::Run { .. } => bail!("run is not a client command"),
        Command::Entry(EntryCommand::Create {
            spiffe_id,
            spiffe_id_template,
            selectors,
            node,
            ttl,
            dns_names,
            hint,
            out,
            admin,
        }) => {
            let e = client(&admin)
                .await?
                .create_entry(pb::CreateEntryRequest {
                    spiffe_id: spiffe_id.unwrap_or_default(),
                    spiffe_id_template: spiffe_id_template.unwrap_or_default(),
                    selectors,
                    node: node.unwrap_or_default(),
                    ttl_seconds: secs(ttl),
                    dns_names,
                    hint: hint.unwrap_or_default(),
                })
                .await
                .map_err(status)?
                .into_inner();
            output::entries(out.output, &[e], true);
        }
        Command::Entry(EntryCommand::List { out, admin }) => {
            let list = client(&admin)
                .await?
                .list_entries(pb::ListEntriesRequest {})
                .await
                .map_err(status)?
                .into_inner();
            output::entries(out.output, &list.entries, false);
        }
        Command::Entry(EntryCommand::Show { id, out, admin }) => {
            let e = client(&admin)
                .await?
                .get_entry(pb::EntryId { id: id.to_string() })
                .await
                .map_err(status)?
                .into_inner();
            output::entries(out.output, &[e], true);
        }
        Command::Entry(EntryCommand::Delete { id, admin }) => {
            client(&admin)
                .await?
                .delete_entry(pb::EntryId { id: id.to_string() })
                .await
                .map_err(status)?;
            println!("deleted entry {id}");
        }
        Command::Agent(AgentCommand::List { out, admin }) => {
            let list = client(&admin)
                .await?
                .list_agents(pb::ListAgentsRequest {})
                .await
                .map_err(status)?
                .into_inner();
            output::agents(out.output, &list.agents);
        }
        Command::Agent(AgentCommand::Ban { id, admin }) => {
            let a = client(&admin)
                .await?
                .ban_agent(pb::AgentId { id: id.to_string() })
                .await
                .map_err(status)?
                .into_inner();
            println!("banned agent {}", a.id);
        }
        Command::Agent(AgentCommand::Unban { id, admin }) => {
            let a = client(&admin)
                .await?
                .unban_agent(pb::AgentId { id: id.to_string() })
                .await
                .map_err(status)?
                .into_inner();
            println!("unbanned agent {}", a.id);
        }
        Command::Bundle(BundleCommand::Show { format, admin }) => {
            let b = client(&admin)
                .await?
                .get_bundle(pb::GetBundleRequest {})
                .await
                .map_err(status)?
                .into_inner();
            match format {
                BundleFormat::Pem => print!("{}", output::pem_certs(&b.roots)),
                BundleFormat::Jwks => println!("{}", output::jwks(&b.roots)?),
            }
        }
        Command::X509(X509Command::Mint {
            spiffe_id,
            ttl,
            dns_names,
            write,
            admin,
        }) => mint(&admin, spiffe_id, ttl, dns_names, &write).await?,
        Command::Token(TokenCommand::Generate { ttl, admin }) => {
            let t = client(&admin)
                .await?
                .generate_join_token(pb::GenerateJoinTokenRequest {
                    ttl_seconds: secs(Some(ttl)),
                })
                .await
                .map_err(status)?
                .into_inner();
            println!("{}", t.token);
        }
        Command::Audit { follow, out, admin } => {
            let mut stream = client(&admin)
                .await?
                .list_audit(pb::ListAuditRequest {
                    follow,
                    after_id: 0,
                    limit: 0,
                })
                .await
                .map_err(status)?
                .into_inner();
            while let Some(ev) = stream.message().await.map_err(status)? {
                output::audit(out.output, &ev);
            }
        }
        Command::Healthcheck { admin } => {
            let h = client(&admin)
                .await?
                .health(pb::HealthRequest {})
                .await
                .map_err(status)?
                .into_inner();
            if !h.serving {
                return Err(CliError {
                    code: 1,
                    message: "server is not serving".into(),
                }
                .into());
            }
            println!("serving trust domain {}", h.trust_domain);
        }
    }
    Ok(())
}

async fn mint(
    admin: &AdminArgs,
    spiffe_id: String,
    ttl: Option<Duration>,
    dns_names: Vec<String>,
    dir: &Path,
) -> Result<()> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generating the SVID key")?;
    // The server takes only the public key and proof of possession from the CSR.
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .context("building the CSR")?;
    let resp = client(admin)
        .await?
        .mint_x509_svid(pb::MintX509SvidRequest {
            spiffe_id,
            ttl_seconds: secs(ttl),
            csr: csr.der().to_vec(),
            dns_names,
        })
        .await
        .map_err(status)?
        .into_inner();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(&dir.join("svid.key"), key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(
        &dir.join("svid.pem"),
        output::pem_certs(&resp.chain).as_bytes(),
        0o644,
    )?;
    write_atomic(
        &dir.join("bundle.pem"),
        output::pem_certs(&resp.bundle).as_bytes(),
        0o644,
    )?;
    println!(
        "wrote {}/svid.pem, svid.key, bundle.pem (expires {})",
        dir.display(),
        output::time(resp.expires_at)
    );
    Ok(())
}

/// Maps a command error to an exit code.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    e.downcast_ref::<CliError>().map_or(1, |c| c.code)
}

impl From<Output> for bool {
    fn from(o: Output) -> bool {
        o == Output::Json
    }
}
