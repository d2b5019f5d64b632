//! `sworn-dev up --kubernetes`: a control plane for a person to use, with a
//! sworn server and one agent per dev node ([`super::sworn`]).
//!
//! Starts etcd and kube-apiserver, creates the kubelet root and a per-run
//! cgroup root, records everything in the state directory, prints the
//! kubeconfig path, and runs until SIGINT or SIGTERM. Then it kills every
//! process left in the run's cgroups, stops the control plane and removes the
//! state it wrote. While running, it refreshes the tokens of recorded pods at
//! 80% of their lifetime, as the kubelet does. A state file left by an `up` that died is detected (its pid
//! is gone) and cleaned up before starting.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{SignalKind, signal};

use super::state::{K8sState, StateDir};
use crate::k8s::{
    CgroupRoot, CgroupStyle, ControlPlane, ControlPlaneOptions, K8S_VERSION, Kubelet,
};

/// Options of `up --kubernetes`.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Cgroup naming for pods' containers.
    pub cgroup_style: CgroupStyle,
}

/// Runs the Kubernetes dev environment until interrupted.
pub async fn up_kubernetes(dir: &Path, options: UpOptions) -> Result<()> {
    // Handlers first: a signal that arrives during startup is then acted on
    // once startup is done, instead of killing us before cleanup can run.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let sd = StateDir::new(dir)?;
    clear_stale(&sd)?;

    let cp = ControlPlane::start_with(ControlPlaneOptions {
        parent_dir: Some(sd.run_dir()),
        ..ControlPlaneOptions::default()
    })
    .await
    .context("starting the control plane")?;
    let cgroups = CgroupRoot::create_unique("sworn-dev")?;
    std::fs::create_dir_all(sd.kubelet_root())?;
    std::fs::copy(cp.kubeconfig_path(), sd.kubeconfig()).context("writing the kubeconfig")?;
    let state = K8sState {
        up_pid: std::process::id(),
        control_plane_pids: cp.pids(),
        api_url: cp.api_url().to_owned(),
        issuer: cp.issuer().to_owned(),
        kubeconfig: sd.kubeconfig(),
        bin_dir: cp.binaries().dir.clone(),
        kubelet_root: sd.kubelet_root(),
        cgroup_root: cgroups.cgroup_path().to_path_buf(),
        cgroup_style: options.cgroup_style,
    };
    sd.save(&state)?;

    println!(
        "sworn-dev: kubernetes {K8S_VERSION} control plane at {}",
        state.api_url
    );
    println!("kubeconfig: {}", state.kubeconfig.display());
    println!(
        "try: eval \"$(sworn-dev --dir {dir} env)\" && kubectl get --raw /version",
        dir = dir.display()
    );
    let refresher = Kubelet::from_parts(
        cp.client(),
        &state.issuer,
        state.kubelet_root.clone(),
        CgroupRoot::open(&state.cgroup_root)?,
    );
    let sworn = super::sworn::start(&sd, &state, &refresher).await?;
    println!("sworn-dev: running; interrupt (Ctrl-C) to stop");

    let mut tick = tokio::time::interval(REFRESH_EVERY);
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = tick.tick() => refresh_tokens(&sd, &refresher).await,
        }
    }
    eprintln!("sworn-dev: stopping");
    sworn.stop().await;

    let _ = std::fs::remove_file(sd.state_file());
    drop(cgroups);
    cp.stop().await;
    remove_k8s_dir(&sd)?;
    eprintln!("sworn-dev: stopped");
    Ok(())
}

/// How often recorded pods' tokens are checked for refresh.
const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// Keeps the tokens of pods created by `pod create` fresh, as the kubelet does.
async fn refresh_tokens(sd: &StateDir, kubelet: &Kubelet) {
    for record in sd.list_pods() {
        if let Err(error) = kubelet.refresh_token_if_due(&record.pod).await {
            // A pod deleted behind our back has no token to refresh.
            tracing::debug!(%error, pod = %record.pod.key(), "token not refreshed");
        }
    }
}

/// Refuses to start over a live `up`; cleans up after a dead one.
fn clear_stale(sd: &StateDir) -> Result<()> {
    if let Ok(old) = sd.load() {
        let alive = rustix::process::Pid::from_raw(i32::try_from(old.up_pid).unwrap_or(0))
            .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok());
        if alive && old.up_pid != std::process::id() {
            bail!(
                "sworn-dev up is already running for this dir (pid {})",
                old.up_pid
            );
        }
        if let Ok(root) = CgroupRoot::open(&old.cgroup_root)
            && let Err(error) = root.remove()
        {
            tracing::warn!(%error, "could not remove the stale cgroup root");
        }
    }
    remove_k8s_dir(sd)
}

fn remove_k8s_dir(sd: &StateDir) -> Result<()> {
    match std::fs::remove_dir_all(sd.k8s()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", sd.k8s().display()))
        }
        _ => Ok(()),
    }
}
