//! A pool of workload processes, each under its own uid (the runner is root), driven over
//! the [`crate::wire`] protocol.
//!
//! Distinct uids make distinct workloads for both agents' unix attestors: each uid has its
//! own registration entry and its own SVID. The worker executable is a copy in the run
//! directory (world-readable), the file both agents hash for `unix:sha256`.

use std::ops::Range;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command as Proc};
use tokio::sync::mpsc;

use crate::wire::{Command, Reply};

/// How long one command may take before the worker is declared stuck.
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// One worker process.
#[derive(Debug)]
pub struct Worker {
    /// Its uid (and gid).
    pub uid: u32,
    child: Child,
    stdin: ChildStdin,
    replies: mpsc::UnboundedReceiver<Reply>,
}

impl Worker {
    /// Sends one command and waits for its reply.
    pub async fn call(&mut self, cmd: &Command) -> Result<Reply> {
        let mut line = serde_json::to_vec(cmd)?;
        line.push(b'\n');
        self.stdin
            .write_all(&line)
            .await
            .with_context(|| format!("worker uid {} stdin", self.uid))?;
        match tokio::time::timeout(CALL_TIMEOUT, self.replies.recv()).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => bail!("worker uid {} exited", self.uid),
            Err(_) => bail!("worker uid {} did not answer in {CALL_TIMEOUT:?}", self.uid),
        }
    }

    /// The worker's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Worker processes plus the stream events they report.
#[derive(Debug)]
pub struct Pool {
    /// The workers, in uid order.
    pub workers: Vec<Worker>,
    events: mpsc::UnboundedReceiver<(u32, Reply)>,
    events_tx: mpsc::UnboundedSender<(u32, Reply)>,
}

impl Pool {
    /// An empty pool.
    pub fn new() -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        Self {
            workers: Vec::new(),
            events,
            events_tx,
        }
    }

    /// Starts one worker per uid in `uids`, running `bin` with its stderr appended to `log`.
    pub async fn spawn(&mut self, bin: &Path, uids: Range<u32>, log: &Path) -> Result<()> {
        for uid in uids {
            let err = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            let mut child = Proc::new(bin)
                .uid(uid)
                .gid(uid)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(err))
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("spawning worker {}", bin.display()))?;
            let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
            let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
            let (tx, replies) = mpsc::unbounded_channel();
            let events = self.events_tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Ok(reply) = serde_json::from_str::<Reply>(&line) else {
                        continue;
                    };
                    let sent = if reply.is_event() {
                        events.send((uid, reply)).is_ok()
                    } else {
                        tx.send(reply).is_ok()
                    };
                    if !sent {
                        break;
                    }
                }
            });
            self.workers.push(Worker {
                uid,
                child,
                stdin,
                replies,
            });
        }
        Ok(())
    }

    /// Sends `cmd(worker)` to the workers at `idx` at once and collects the replies in order.
    pub async fn call_each<F>(&mut self, idx: Range<usize>, mut cmd: F) -> Result<Vec<Reply>>
    where
        F: FnMut(&Worker) -> Command,
    {
        let calls = self.workers[idx].iter_mut().map(|w| {
            let c = cmd(w);
            async move { w.call(&c).await }
        });
        join_all(calls).await.into_iter().collect()
    }

    /// Like [`Pool::call_each`] with one command, failing on any `Error` reply.
    pub async fn call_all_ok(&mut self, idx: Range<usize>, cmd: &Command) -> Result<Vec<Reply>> {
        let replies = self.call_each(idx, |_| cmd.clone()).await?;
        if let Some(Reply::Error { message }) =
            replies.iter().find(|r| matches!(r, Reply::Error { .. }))
        {
            let n = replies
                .iter()
                .filter(|r| matches!(r, Reply::Error { .. }))
                .count();
            bail!("{n} workers failed {cmd:?}; first: {message}");
        }
        Ok(replies)
    }

    /// Stream events received so far.
    pub fn drain_events(&mut self) -> Vec<(u32, Reply)> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    /// Waits up to `d` for the next stream event.
    pub async fn next_event(&mut self, d: Duration) -> Option<(u32, Reply)> {
        tokio::time::timeout(d, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// Asks every worker to exit and reaps them.
    pub async fn shutdown(mut self) {
        let exits = self.workers.iter_mut().map(|w| async move {
            let _ = w.stdin.write_all(b"{\"cmd\":\"exit\"}\n").await;
            if tokio::time::timeout(Duration::from_secs(5), w.child.wait())
                .await
                .is_err()
            {
                let _ = w.child.kill().await;
            }
        });
        join_all(exits).await;
    }
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}
