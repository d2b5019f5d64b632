//! Kubernetes mode, sworn only (SPIRE's k8s workload attestor needs a real kubelet): pod
//! Running → SVID in the pod's hands.
//!
//! Per run: a fresh dev environment, `sworn-dev up --kubernetes` (a real kube-apiserver and
//! etcd on loopback; the sworn server and one agent per dev node, attested through the real
//! Kubernetes flow, in the `sworn-dev` process; docs in dev/README.md). Pods come from
//! `sworn-dev pod create` (the pod is bound to `node-a`, reported Running and given its
//! projected token before the command returns; the clock starts then), and each pod's
//! workload is the worker started in the pod's container cgroup by `sworn-dev exec`, polling
//! FetchX509SVID on `node-a`'s agent every [`POLL_MS`] until it holds the pod's default
//! identity; it exits then. The workload first answers a no-op command, so the rows also
//! say how much of the time is the workload process starting. Patterns, each in its own namespace: for every count in
//! `k8s_paced`, that many pods created one every `k8s_interval_ms`; and `k8s_burst` pods
//! created at once. Rows: p50 and p99 over each pattern's pods.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use super::collect::{Collector, Row};
use crate::context::Ctx;
use crate::peer::{Kind, log_file, run_cmd, signal};
use crate::stats::percentile;
use crate::wire::{Command as Wire, Reply, now_ns};

/// Retry interval of a pod's workload without an SVID.
const POLL_MS: u64 = 5;
/// The dev node the pods run on.
const NODE: &str = "node-a";

/// Runs the scenario.
pub async fn k8s(ctx: &mut Ctx) -> Result<Vec<Row>> {
    let mut c = Collector::new("k8s");
    if !ctx.kinds.contains(&Kind::Sworn) {
        return Ok(c.rows());
    }
    let pairs = ctx.sizes.pairs;
    for rep in 0..pairs {
        ctx.progress("k8s", rep, Kind::Sworn);
        let dir = ctx.instance_dir("k8s", Kind::Sworn)?;
        let env = DevEnv::up(&ctx.bins.sworn_dev, &dir).await?;
        let result = patterns(ctx, &env, &mut c).await;
        env.down().await;
        result?;
    }
    Ok(c.rows())
}

async fn patterns(ctx: &Ctx, env: &DevEnv, c: &mut Collector) -> Result<()> {
    let interval = Duration::from_millis(ctx.sizes.k8s_interval_ms);
    for (i, &n) in ctx.sizes.k8s_paced.iter().enumerate() {
        let ms = pods(ctx, env, &format!("paced{i}"), n, interval).await?;
        let name = format!(
            "pod Running → SVID, {n} pods one every {} ms",
            interval.as_millis()
        );
        record(c, &name, &ms);
    }
    let n = ctx.sizes.k8s_burst;
    let ms = pods(ctx, env, "burst", n, Duration::ZERO).await?;
    record(c, &format!("pod Running → SVID, {n} pods at once"), &ms);
    Ok(())
}

fn record(c: &mut Collector, name: &str, times: &[PodTimes]) {
    let total: Vec<f64> = times.iter().map(|t| t.total_ms).collect();
    let start: Vec<f64> = times.iter().map(|t| t.start_ms).collect();
    c.low(
        &format!("{name}, p50"),
        "ms",
        Kind::Sworn,
        percentile(&total, 50.0).unwrap_or(0.0),
    );
    c.low(
        &format!("{name}, p99"),
        "ms",
        Kind::Sworn,
        percentile(&total, 99.0).unwrap_or(0.0),
    );
    let start_name = format!("{name}: of which the workload's start, p50");
    c.low(
        &start_name,
        "ms",
        Kind::Sworn,
        percentile(&start, 50.0).unwrap_or(0.0),
    );
    c.note(
        &start_name,
        "sworn-dev exec into the pod's cgroup plus the worker's own start",
    );
}

/// Creates `n` pods in namespace `bench-<label>`, one every `every` (all at once when
/// zero); returns each pod's times.
async fn pods(
    ctx: &Ctx,
    env: &DevEnv,
    label: &str,
    n: usize,
    every: Duration,
) -> Result<Vec<PodTimes>> {
    let ns = format!("bench-{label}");
    let started = Instant::now();
    let tasks = (0..n).map(|i| {
        let ns = ns.clone();
        async move {
            tokio::time::sleep_until((started + every * i as u32).into()).await;
            env.pod_to_svid(&ctx.worker_bin, &ns, &format!("p{i}"))
                .await
        }
    });
    let results = join_all(tasks).await;
    let mut ms = Vec::with_capacity(n);
    for r in results {
        ms.push(r?);
    }
    Ok(ms)
}

/// One pod's times from Running, ms.
#[derive(Debug, Clone, Copy)]
struct PodTimes {
    /// Running → the workload holds its SVID.
    total_ms: f64,
    /// Running → the workload process answers (`sworn-dev exec` and the worker's own start).
    start_ms: f64,
}

/// A running `sworn-dev up --kubernetes`.
struct DevEnv {
    bin: PathBuf,
    dir: PathBuf,
    child: Child,
    socket: String,
}

impl DevEnv {
    async fn up(bin: &Path, dir: &Path) -> Result<Self> {
        let state = dir.join("dev");
        let mut child = Command::new(bin)
            .arg("--dir")
            .arg(&state)
            .args(["up", "--kubernetes"])
            .stdout(Stdio::piped())
            .stderr(log_file(&dir.join("sworn-dev.log"))?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!(
                    "spawning {} (SWORN_K8S_BIN, see dev/README.md)",
                    bin.display()
                )
            })?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(300), async {
            while let Some(line) = lines.next_line().await? {
                if line.starts_with("kubeconfig:") {
                    return Ok::<_, anyhow::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        // Keep draining stdout so the environment never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        match ready {
            Ok(Ok(true)) => {}
            _ => bail!(
                "sworn-dev up --kubernetes did not become ready; see {}",
                dir.join("sworn-dev.log").display()
            ),
        }
        let socket = state
            .join("k8s")
            .join("agents")
            .join(format!("{NODE}.sock"));
        Ok(Self {
            bin: bin.to_owned(),
            dir: state,
            child,
            socket: format!("unix://{}", socket.display()),
        })
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--dir").arg(&self.dir).kill_on_drop(true);
        c
    }

    /// Creates pod `ns/name`, starts its workload, returns its times.
    async fn pod_to_svid(&self, worker: &Path, ns: &str, name: &str) -> Result<PodTimes> {
        run_cmd(self.cmd().args([
            "pod",
            "create",
            name,
            "-n",
            ns,
            "--service-account",
            "bench",
            "--node",
            NODE,
        ]))
        .await?;
        let t0 = now_ns();
        let mut child = self
            .cmd()
            .args(["exec", name, "-n", ns, "--"])
            .arg(worker)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("sworn-dev exec")?;
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut line = serde_json::to_vec(&Wire::FetchUntilOk {
            socket: self.socket.clone(),
            interval_ms: POLL_MS,
            timeout_ms: 60_000,
        })?;
        line.push(b'\n');
        let mut lines = BufReader::new(stdout).lines();
        // The first command is a no-op whose answer says the workload process is up.
        stdin.write_all(b"{\"cmd\":\"close_streams\"}\n").await?;
        tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .map_err(|_| anyhow!("pod {ns}/{name}: its workload did not start"))??;
        let started = now_ns();
        stdin.write_all(&line).await?;
        let reply = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .map_err(|_| anyhow!("pod {ns}/{name}: no answer from its workload"))??;
        let _ = stdin.write_all(b"{\"cmd\":\"exit\"}\n").await;
        drop(stdin);
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        match reply.as_deref().map(serde_json::from_str::<Reply>) {
            Some(Ok(Reply::Fetched { at_ns, .. })) => Ok(PodTimes {
                total_ms: at_ns.saturating_sub(t0) as f64 / 1e6,
                start_ms: started.saturating_sub(t0) as f64 / 1e6,
            }),
            Some(Ok(Reply::Error { message })) => bail!("pod {ns}/{name}: {message}"),
            other => bail!("pod {ns}/{name}: unexpected answer {other:?}"),
        }
    }

    /// Stops the environment (SIGTERM: it tears the control plane and cgroups down).
    async fn down(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = signal(pid, "TERM").await;
        }
        if tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
