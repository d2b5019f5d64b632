//! `sworn-dev exec POD -- CMD...`: run CMD as a process of the pod.
//!
//! Two steps, neither needing `unsafe`:
//! 1. [`exec_in_pod`] resolves the pod's container cgroup from the state
//!    directory, then replaces itself (`execve`) with
//!    `sworn-dev __enter-cgroup <cgroup.procs> -- CMD...`.
//! 2. [`enter_cgroup_and_exec`], single-threaded and without an async
//!    runtime, writes its own pid into `cgroup.procs` and only then `execve`s
//!    CMD.
//!
//! The pid never changes, so CMD's stdout, stderr, signals and exit code are
//! the caller's directly; CMD never runs outside the cgroup.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::state::StateDir;
use crate::k8s::{CgroupRoot, ContainerKind};

/// Name of the hidden subcommand that enters the cgroup.
pub const ENTER_CGROUP: &str = "__enter-cgroup";

/// Resolves the pod's cgroup and re-executes into it. Returns only on error.
pub fn exec_in_pod(
    dir: &Path,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[OsString],
) -> Result<std::convert::Infallible> {
    let sd = StateDir::new(dir)?;
    let st = sd.load()?;
    let record = sd.load_pod(namespace, pod)?;
    let handle = match container {
        Some(name) => record
            .pod
            .container(name)
            .with_context(|| format!("pod {namespace}/{pod} has no container {name}"))?,
        None => record
            .pod
            .containers
            .iter()
            .find(|c| c.kind == ContainerKind::Regular)
            .with_context(|| format!("pod {namespace}/{pod} has no regular container"))?,
    };
    let cgroup = CgroupRoot::open(&st.cgroup_root)?.container(
        st.cgroup_style,
        &record.pod.uid,
        &handle.container_id,
    );
    cgroup.create()?;
    let exe = std::env::current_exe().context("locating the sworn-dev executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg(ENTER_CGROUP)
        .arg(cgroup.procs_file())
        .arg("--")
        .args(command);
    if let Some(socket) = agent_socket_hook(&sd, &record.pod.node_name) {
        cmd.env(
            "SPIFFE_ENDPOINT_SOCKET",
            format!("unix://{}", socket.display()),
        );
    }
    Err(cmd.exec()).context("re-executing sworn-dev")
}

/// Hook for the node agent: the Workload API socket of the agent serving
/// `node`, when the dev environment recorded one (`<dir>/k8s/agents/<node>.socket`).
pub fn agent_socket_hook(sd: &StateDir, node: &str) -> Option<std::path::PathBuf> {
    sd.agent_socket_for_node(node)
}

/// Moves this process into the cgroup whose `cgroup.procs` is `procs`, then
/// `execve`s `command`. Returns only on error.
pub fn enter_cgroup_and_exec(
    procs: &Path,
    command: &[OsString],
) -> Result<std::convert::Infallible> {
    let Some((program, args)) = command.split_first() else {
        bail!("no command given");
    };
    std::fs::write(procs, format!("{}\n", std::process::id()))
        .with_context(|| format!("joining cgroup via {}", procs.display()))?;
    Err(Command::new(program).args(args).exec())
        .with_context(|| format!("executing {}", program.to_string_lossy()))
}
