//! `sworn-dev`: local sworn environments (docs/architecture.md, "Command line"). Parses the command
//! line and calls into the library.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sworn_dev::cli;
use sworn_dev::k8s::CgroupStyle;

#[derive(Debug, Parser)]
#[command(name = "sworn-dev", about = "Local sworn environments", version)]
struct Cli {
    /// State directory shared by invocations.
    #[arg(long, global = true, default_value = ".sworn-dev")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring an environment up; runs until interrupted.
    Up {
        /// A real local Kubernetes control plane instead of unix mode.
        #[arg(long)]
        kubernetes: bool,
        /// Cgroup naming for pods' containers (cgroupfs or systemd).
        #[arg(long, default_value = "cgroupfs")]
        cgroup_style: CgroupStyle,
    },
    /// Print shell exports for the running environment.
    Env,
    /// Pods (Kubernetes mode).
    Pod {
        #[command(subcommand)]
        command: PodCommand,
    },
    /// Run CMD as a process of a pod (in its container's cgroup).
    Exec {
        /// Pod name.
        pod: String,
        /// Namespace.
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        /// Container (default: the first regular container).
        #[arg(long, short = 'c')]
        container: Option<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
    #[command(name = cli::exec::ENTER_CGROUP, hide = true)]
    EnterCgroup {
        procs: PathBuf,
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
}

#[derive(Debug, Subcommand)]
enum PodCommand {
    /// Create a pod (and its namespace, service account and node when missing).
    Create {
        name: String,
        #[arg(long, short = 'n', default_value = "default")]
        namespace: String,
        #[arg(long)]
        service_account: String,
        #[arg(long)]
        node: String,
        /// Label K=V (repeatable).
        #[arg(long = "label", value_parser = cli::pod::parse_label)]
        labels: Vec<(String, String)>,
        /// Audience of the projected token.
        #[arg(long, default_value = "sworn")]
        audience: String,
    },
}

fn main() -> ExitCode {
    let args = Cli::parse();
    // These two replace the process; keep them free of threads and logging.
    let result = match args.command {
        Command::EnterCgroup { procs, cmd } => {
            cli::exec::enter_cgroup_and_exec(&procs, &cmd).map(|_| ())
        }
        Command::Exec {
            pod,
            namespace,
            container,
            cmd,
        } => cli::exec::exec_in_pod(&args.dir, &namespace, &pod, container.as_deref(), &cmd)
            .map(|_| ()),
        command => run(args.dir, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sworn-dev: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: PathBuf, command: Command) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,kube_client::client::builder=off")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match command {
            Command::Up {
                kubernetes: true,
                cgroup_style,
            } => cli::up::up_kubernetes(&dir, cli::up::UpOptions { cgroup_style }).await,
            Command::Up {
                kubernetes: false, ..
            } => sworn_dev::unix::up(&dir).await,
            Command::Env => {
                for line in cli::env::exports(&dir)? {
                    println!("{line}");
                }
                Ok(())
            }
            Command::Pod {
                command:
                    PodCommand::Create {
                        name,
                        namespace,
                        service_account,
                        node,
                        labels,
                        audience,
                    },
            } => {
                let args = cli::pod::PodCreate {
                    name,
                    namespace,
                    service_account,
                    node,
                    labels: labels.into_iter().collect(),
                    audience,
                };
                cli::pod::create(&dir, args).await.map(|_| ())
            }
            Command::Exec { .. } | Command::EnterCgroup { .. } => Ok(()),
        }
    })
}
