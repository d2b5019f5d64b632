//! Driving the child processes of both systems: loopback ports, readiness polls, one-shot
//! commands and log files.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A free loopback TCP port (bound and released; fine for a benchmark on loopback).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `GET http://127.0.0.1:port{path}` answers 200.
pub async fn http_ok(port: u16, path: &str) -> bool {
    let Ok(Ok(mut s)) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    else {
        return false;
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..n]);
    head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200")
}

/// Runs a command to completion, failing with its stderr when it fails; returns stdout.
pub async fn run_cmd(cmd: &mut tokio::process::Command) -> Result<String> {
    let out = cmd.kill_on_drop(true).output().await?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.as_std().get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Opens (appending) a log file for a child's stdout/stderr.
pub fn log_file(path: &Path) -> Result<std::process::Stdio> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(std::process::Stdio::from(f))
}

/// One agent process of an instance, with what restarts and addresses it.
#[derive(Debug)]
pub struct AgentProc {
    /// The running process, `None` once stopped.
    pub child: Option<tokio::process::Child>,
    /// Its agent SPIFFE ID (entries name it as their node / parent).
    pub id: String,
    /// Its health port (`/readyz` on sworn, `/ready` on SPIRE).
    pub health_port: u16,
    /// Its Workload API socket.
    pub socket: std::path::PathBuf,
    /// The config it resumes with (its join token is spent after the first start).
    pub resume_conf: std::path::PathBuf,
}

impl AgentProc {
    /// Its pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }
}

/// Sends `signal` (a `kill -<signal>` name, e.g. `STOP`, `CONT`) to `pid`.
pub async fn signal(pid: u32, signal: &str) -> Result<()> {
    run_cmd(
        tokio::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string()),
    )
    .await
    .map(|_| ())
}

/// Agent `i`'s name: its data directory and socket are named after it.
pub fn agent_name(i: usize) -> String {
    if i == 0 {
        "agent".to_owned()
    } else {
        format!("agent-{i}")
    }
}
