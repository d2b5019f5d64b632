//! Child processes that cannot outlive their owner.
//!
//! Each child runs in its own process group (so a stop reaches anything it
//! forks), is started through `setpriv --pdeathsig KILL` when util-linux's
//! `setpriv` is on `PATH` (so the kernel kills it if the spawning thread dies,
//! e.g. the test process is SIGKILLed; the death signal survives `execve`), and
//! is sent SIGTERM, then SIGKILL after a grace period, and reaped when dropped. Its
//! stdout and stderr go to a [`ChildOutput`] file, which the owning
//! [`sworn_harness::RunDir`] prints the end of if a test fails.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};
use sworn_harness::ChildOutput;

/// How long a child gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running child process owned by this value.
#[derive(Debug)]
pub(crate) struct Supervised {
    name: &'static str,
    child: Child,
    output: ChildOutput,
    stopped: bool,
}

impl Supervised {
    /// Starts `program` with `args`, stdout and stderr appended to `output`.
    pub(crate) fn spawn<I, S>(
        name: &'static str,
        program: &Path,
        args: I,
        output: &ChildOutput,
    ) -> std::io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (out, err) = output.stdio()?;
        let mut cmd = match find_setpriv() {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(program);
                c
            }
            None => {
                tracing::warn!(
                    process = name,
                    "setpriv not found; the child is not killed if this process dies abruptly"
                );
                Command::new(program)
            }
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn()?;
        tracing::debug!(process = name, pid = child.id(), log = %output.stderr.display(), "started");
        Ok(Self {
            name,
            child,
            output: output.clone(),
            stopped: false,
        })
    }

    /// The child's exit status if it has exited.
    pub(crate) fn try_exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file receiving the child's stderr.
    pub(crate) fn log(&self) -> &Path {
        &self.output.stderr
    }

    /// Kills the whole process group at once with SIGKILL (no chance to shut
    /// down cleanly, as in a crash or an OOM kill) and reaps the child.
    /// Idempotent; afterwards [`Supervised::stop`] does nothing.
    pub(crate) fn kill(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if let Some(pgid) = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0)) {
            let _ = kill_process_group(pgid, Signal::KILL);
        }
        let status = self.child.wait();
        tracing::debug!(process = self.name, ?status, "killed");
    }

    /// Whether the child was neither stopped nor killed by its owner and has
    /// not exited by itself.
    pub(crate) fn is_running(&mut self) -> bool {
        !self.stopped && self.try_exited().is_none()
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL after a grace
    /// period, then reaps the child. Idempotent.
    pub(crate) fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let Some(pgid) = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0)) else {
            return;
        };
        if self.try_exited().is_none() {
            let _ = kill_process_group(pgid, Signal::TERM);
            // Past the grace period SIGKILL follows: not exiting in time is no error.
            let _ =
                sworn_harness::poll_blocking("the child to exit after SIGTERM", STOP_GRACE, || {
                    self.try_exited()
                });
        }
        // Also reaches grandchildren that outlived the leader.
        let _ = kill_process_group(pgid, Signal::KILL);
        let status = self.child.wait();
        tracing::debug!(process = self.name, ?status, "stopped");
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `setpriv` from `PATH`, if present.
pub(crate) fn find_setpriv() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("setpriv"))
        .find(|candidate| candidate.is_file())
}

/// The last `max` bytes of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, max: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
