//! Telling the consumer that new files are in place: a signal to a process (by pid or pid
//! file, re-read every time because the process may have restarted) or a command run through
//! `/bin/sh -c` with `SWORN_HELPER_DIR` set. Always after the files are published.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rustix::process::{Pid, Signal, kill_process};
use tracing::{info, warn};

/// Why a notification setting was refused or a notification failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The signal name is not one we send.
    #[error("unsupported signal {0:?} (use SIGHUP, SIGUSR1, SIGUSR2, SIGINT, SIGQUIT or SIGTERM)")]
    UnknownSignal(String),
    /// The pid is not a positive number.
    #[error("invalid pid {0:?}")]
    BadPid(String),
    /// The pid file could not be read.
    #[error("reading pid file {path}: {source}")]
    PidFile {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `kill(2)` failed.
    #[error("sending {signal} to pid {pid}: {source}")]
    Kill {
        /// The signal name.
        signal: SignalName,
        /// The pid.
        pid: i32,
        /// The error.
        source: std::io::Error,
    },
    /// The command could not be started.
    #[error("running the reload command: {0}")]
    Exec(std::io::Error),
    /// The command did not finish in time and was killed.
    #[error("the reload command did not finish within {0:?} and was killed")]
    ExecTimeout(std::time::Duration),
    /// The command exited unsuccessfully.
    #[error("the reload command exited with {0}")]
    ExecStatus(std::process::ExitStatus),
}

/// How long `--exec` may run before it is killed.
pub const EXEC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A signal we are willing to send, parsed from `SIGHUP` or `HUP` (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalName {
    name: &'static str,
    signal: Signal,
}

impl FromStr for SignalName {
    type Err = NotifyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        let (name, signal) = match bare {
            "HUP" => ("SIGHUP", Signal::HUP),
            "USR1" => ("SIGUSR1", Signal::USR1),
            "USR2" => ("SIGUSR2", Signal::USR2),
            "INT" => ("SIGINT", Signal::INT),
            "QUIT" => ("SIGQUIT", Signal::QUIT),
            "TERM" => ("SIGTERM", Signal::TERM),
            _ => return Err(NotifyError::UnknownSignal(s.to_owned())),
        };
        Ok(SignalName { name, signal })
    }
}

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Which process to signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidTarget {
    /// A fixed pid.
    Pid(i32),
    /// A file whose first line is the pid, read at each notification.
    PidFile(PathBuf),
}

/// What to do after each publication.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Notify {
    /// Nothing.
    #[default]
    Nothing,
    /// Send a signal.
    Signal {
        /// Which signal.
        signal: SignalName,
        /// To whom.
        target: PidTarget,
    },
    /// Run `/bin/sh -c CMD` and wait for it (at most [`EXEC_TIMEOUT`]).
    Exec(String),
}

fn parse_pid(text: &str) -> Result<i32, NotifyError> {
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| NotifyError::BadPid(text.trim().to_owned()))?;
    if pid <= 0 {
        return Err(NotifyError::BadPid(text.trim().to_owned()));
    }
    Ok(pid)
}

impl PidTarget {
    fn resolve(&self) -> Result<i32, NotifyError> {
        match self {
            PidTarget::Pid(pid) => Ok(*pid),
            PidTarget::PidFile(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| NotifyError::PidFile {
                        path: path.clone(),
                        source,
                    })?;
                // The first line: daemons such as PostgreSQL put more after it.
                parse_pid(text.lines().next().unwrap_or_default())
            }
        }
    }
}

impl FromStr for PidTarget {
    type Err = NotifyError;

    /// Parses a pid (for `--pid`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_pid(s).map(PidTarget::Pid)
    }
}

impl Notify {
    /// Runs the notification for files published in `dir`.
    pub async fn run(&self, dir: &Path) -> Result<(), NotifyError> {
        match self {
            Notify::Nothing => Ok(()),
            Notify::Signal { signal, target } => {
                let pid = target.resolve()?;
                let raw = Pid::from_raw(pid).ok_or_else(|| NotifyError::BadPid(pid.to_string()))?;
                kill_process(raw, signal.signal).map_err(|e| NotifyError::Kill {
                    signal: *signal,
                    pid,
                    source: e.into(),
                })?;
                info!(%signal, pid, "signalled the process");
                Ok(())
            }
            Notify::Exec(cmd) => {
                let mut child = tokio::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(cmd)
                    .env("SWORN_HELPER_DIR", dir)
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(NotifyError::Exec)?;
                // A hung command must not hold back the next rotation forever.
                let status = match tokio::time::timeout(EXEC_TIMEOUT, child.wait()).await {
                    Ok(status) => status.map_err(NotifyError::Exec)?,
                    Err(_) => {
                        let _ = child.kill().await;
                        return Err(NotifyError::ExecTimeout(EXEC_TIMEOUT));
                    }
                };
                if status.success() {
                    info!("the reload command succeeded");
                    Ok(())
                } else {
                    warn!(%status, "the reload command failed");
                    Err(NotifyError::ExecStatus(status))
                }
            }
        }
    }
}
