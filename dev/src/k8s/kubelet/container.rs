//! "Container" processes: real processes in a container's cgroup.
//!
//! The child is `sh -c` with a two-line script: write its own pid (`$$`) into
//! the cgroup's `cgroup.procs`, then `exec` the program. It therefore never
//! runs the program outside the cgroup, with no `unsafe` `pre_exec` hook. If
//! util-linux `setpriv` is available the child also gets SIGKILL as its
//! parent-death signal. Its stdout is copied into a file as it is read, and its
//! stderr goes to a file ([`ChildOutput`]), so a failing test can show both.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use sworn_harness::ChildOutput;

use super::error::KubeletError;
use crate::k8s::cgroup::ContainerCgroup;
use crate::k8s::process::find_setpriv;

/// Exit status of the wrapper when it cannot join the cgroup.
pub const JOIN_FAILED_EXIT: i32 = 125;

const JOIN_SCRIPT: &str = r#"echo $$ > "$1" || { echo "sworn-dev: cannot join cgroup via $1" >&2; exit 125; }
shift
exec "$@""#;

/// A running "container" process. Dropping it kills it (and anything else in
/// its cgroup), reaps it, and removes the container's cgroup directory.
#[derive(Debug)]
pub struct ContainerProcess {
    child: Option<Child>,
    cgroup: ContainerCgroup,
}

pub(super) fn spawn_in_cgroup(
    cgroup: ContainerCgroup,
    command: &Command,
    output: &ChildOutput,
) -> Result<ContainerProcess, KubeletError> {
    cgroup.create()?;
    let mut wrapped = match find_setpriv() {
        Some(setpriv) => {
            let mut c = Command::new(setpriv);
            c.args(["--pdeathsig", "KILL", "--", "sh"]);
            c
        }
        None => Command::new("sh"),
    };
    wrapped
        .arg("-c")
        .arg(JOIN_SCRIPT)
        .arg("sworn-container")
        .arg(cgroup.procs_file())
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped.stdin(Stdio::null());
    let child = output
        .spawn_piped(&mut wrapped)
        .map_err(|source| KubeletError::Io {
            what: format!("starting {:?}", command.get_program()),
            source,
        })?;
    tracing::debug!(pid = child.id(), cgroup = %cgroup.cgroup_path.display(), stdout = %output.stdout.display(), "container process started");
    Ok(ContainerProcess {
        child: Some(child),
        cgroup,
    })
}

impl ContainerProcess {
    /// The process id (the program's, after the wrapper `exec`s it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The cgroup it runs in.
    pub fn cgroup(&self) -> &ContainerCgroup {
        &self.cgroup
    }

    /// The `cgroup` path expected in `/proc/<pid>/cgroup`'s `0::` line.
    pub fn cgroup_path(&self) -> PathBuf {
        self.cgroup.cgroup_path.clone()
    }

    /// The child, e.g. to take its piped stdout.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Waits for the process to exit and collects its stdout, off the async
    /// runtime's threads. The cgroup is removed afterwards.
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        let child = self
            .child
            .take()
            .ok_or_else(|| io::Error::other("process already taken"))?;
        tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .map_err(io::Error::other)?
    }

    /// Kills the process and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        self.kill();
        if let Err(error) = self.cgroup.remove() {
            tracing::warn!(%error, cgroup = %self.cgroup.cgroup_path.display(), "could not remove container cgroup");
        }
    }
}
