//! `sworn-dev up --kubernetes`: a control plane for a person to use, with a
//! sworn server and one agent per dev node ([`super::sworn`]).
//!
//! Starts etcd and kube-apiserver, creates the kubelet root and a per-run
//! cgroup root, records everything in the state directory, starts the sworn
//! server and one agent per dev node, and only once every agent is attested and
//! synced marks the state ready and prints the kubeconfig path and how to get
//! the environment: whatever a user runs after that line works at once. Then
//! it runs until SIGINT or SIGTERM, kills every process left in the run's
//! cgroups, stops the control plane and removes the state it wrote. While
//! running, it refreshes the tokens of recorded pods at 80% of their lifetime,
//! as the kubelet does. A state file left by an `up` that died is detected
//! (its pid is gone) and cleaned up before starting.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{SignalKind, signal};

use super::state::{K8sState, StateDir};
use super::sworn::Sworn;
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
    let env = start(dir, options).await?;

    // Announced only now that every agent serves: what this prints works at once.
    println!(
        "sworn-dev: kubernetes {K8S_VERSION} control plane at {}",
        env.state.api_url
    );
    println!("kubeconfig: {}", env.state.kubeconfig.display());
    println!(
        "try: eval \"$(sworn-dev --dir {dir} env)\" && kubectl get --raw /version",
        dir = dir.display()
    );
    println!("sworn-dev: running; interrupt (Ctrl-C) to stop");

    let mut tick = tokio::time::interval(REFRESH_EVERY);
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = tick.tick() => env.refresh_tokens().await,
        }
    }
    eprintln!("sworn-dev: stopping");
    env.stop().await?;
    eprintln!("sworn-dev: stopped");
    Ok(())
}

/// A running Kubernetes dev environment: the control plane, the per-run cgroup
/// root, and the sworn server with one attested, synced agent per dev node.
#[derive(Debug)]
pub struct KubernetesEnv {
    /// What `env`, `pod create` and `exec` read.
    pub state: K8sState,
    /// The server and the agents.
    pub sworn: Sworn,
    sd: StateDir,
    kubelet: Kubelet,
    cgroups: CgroupRoot,
    cp: ControlPlane,
}

/// Starts the environment in `dir` and returns once every dev node's agent is
/// attested and synced, with the state marked ready for `env`. A state left by
/// an `up` that died is cleaned up first; one of a live `up` is refused.
pub async fn start(dir: &Path, options: UpOptions) -> Result<KubernetesEnv> {
    let sd = StateDir::new(dir)?;
    clear_stale(&sd)?;
    match start_in(&sd, options).await {
        Ok(env) => Ok(env),
        Err(error) => {
            // Whatever had started is stopped by now (dropped); leave no state
            // claiming an environment runs.
            let _ = remove_k8s_dir(&sd);
            Err(error)
        }
    }
}

async fn start_in(sd: &StateDir, options: UpOptions) -> Result<KubernetesEnv> {
    let cp = ControlPlane::start_with(ControlPlaneOptions {
        parent_dir: Some(sd.run_dir()),
        ..ControlPlaneOptions::default()
    })
    .await
    .context("starting the control plane")?;
    let cgroups = CgroupRoot::create_unique("sworn-dev")?;
    std::fs::create_dir_all(sd.kubelet_root())?;
    std::fs::copy(cp.kubeconfig_path(), sd.kubeconfig()).context("writing the kubeconfig")?;
    let mut state = K8sState {
        up_pid: std::process::id(),
        control_plane_pids: cp.pids(),
        api_url: cp.api_url().to_owned(),
        issuer: cp.issuer().to_owned(),
        kubeconfig: sd.kubeconfig(),
        bin_dir: cp.binaries().dir.clone(),
        kubelet_root: sd.kubelet_root(),
        cgroup_root: cgroups.cgroup_path().to_path_buf(),
        cgroup_style: options.cgroup_style,
        ready: false,
    };
    // Recorded before the agents start, so that a second `up` sees this one
    // and the next `up` can clean up after it if it dies while starting.
    sd.save(&state)?;
    let kubelet = Kubelet::from_parts(
        cp.client(),
        &state.issuer,
        state.kubelet_root.clone(),
        CgroupRoot::open(&state.cgroup_root)?,
    );
    // Returns once each agent is attested and synced (`RunningAgent::ready`).
    let sworn = super::sworn::start(sd, &state, &kubelet).await?;
    state.ready = true;
    sd.save(&state)?;
    Ok(KubernetesEnv {
        state,
        sworn,
        sd: sd.clone(),
        kubelet,
        cgroups,
        cp,
    })
}

impl KubernetesEnv {
    /// Keeps the tokens of pods created by `pod create` fresh, as the kubelet does.
    pub async fn refresh_tokens(&self) {
        for record in self.sd.list_pods() {
            if let Err(error) = self.kubelet.refresh_token_if_due(&record.pod).await {
                // A pod deleted behind our back has no token to refresh.
                tracing::debug!(%error, pod = %record.pod.key(), "token not refreshed");
            }
        }
    }

    /// Stops the agents and the server, kills every process left in the run's
    /// cgroups, stops the control plane and removes the state.
    pub async fn stop(self) -> Result<()> {
        self.sworn.stop().await;
        let _ = std::fs::remove_file(self.sd.state_file());
        drop(self.kubelet);
        drop(self.cgroups);
        self.cp.stop().await;
        remove_k8s_dir(&self.sd)
    }
}

/// How often recorded pods' tokens are checked for refresh.
const REFRESH_EVERY: Duration = Duration::from_secs(30);

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use sworn_agent::fetch::FetchError;

    use super::*;
    use crate::cli::sworn::NODES;

    /// What `up --kubernetes` announces works at once: the moment `start`
    /// returns, `env` answers, every dev node's agent socket is recorded, and
    /// each agent answers the Workload API as an attested, synced agent does —
    /// a caller outside any pod is refused (`PermissionDenied`), not told the
    /// agent is not ready yet (`Unavailable`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_environment_is_ready_when_start_returns() {
        sworn_harness::trace::capture();
        let tmp = sworn_harness::RunDir::new_in("/tmp", "sworn-dev-up-").unwrap();
        let dir = tmp.path().join("d");
        let env = start(&dir, UpOptions::default()).await.unwrap();

        let lines = crate::cli::env::exports(&dir).unwrap();
        for var in ["KUBECONFIG", "PATH", "SWORN_ADMIN_SOCKET"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("export {var}="))),
                "{var} in {lines:?}"
            );
        }
        let sd = StateDir::new(&dir).unwrap();
        for node in NODES {
            let socket = sd
                .agent_socket_for_node(node)
                .unwrap_or_else(|| panic!("no agent socket recorded for {node}"));
            match sworn_agent::fetch::fetch_x509(&socket).await {
                Err(FetchError::Status { code, message }) => assert_eq!(
                    code,
                    tonic::Code::PermissionDenied,
                    "the agent on {node} answered {code:?}: {message}"
                ),
                other => panic!("the agent on {node}: {other:?}"),
            }
        }

        env.stop().await.unwrap();
        assert!(!dir.join("k8s").exists(), "the state was removed");
        let after = crate::cli::env::exports(&dir);
        assert!(after.is_err(), "{after:?}");
    }

    /// While `up` is still starting, `env` refuses instead of handing out an
    /// environment whose agents cannot serve yet.
    #[test]
    fn env_refuses_a_state_that_is_not_ready() {
        let tmp = tempfile::tempdir().unwrap();
        let sd = StateDir::new(tmp.path()).unwrap();
        let state = K8sState {
            up_pid: std::process::id(),
            control_plane_pids: [0, 0],
            api_url: "https://127.0.0.1:1".into(),
            issuer: "https://kubernetes.default.svc.cluster.local".into(),
            kubeconfig: sd.kubeconfig(),
            bin_dir: tmp.path().into(),
            kubelet_root: sd.kubelet_root(),
            cgroup_root: "/sworn-dev-none".into(),
            cgroup_style: CgroupStyle::Cgroupfs,
            ready: false,
        };
        sd.save(&state).unwrap();
        let err = crate::cli::env::exports(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("still starting"), "{err:#}");
        sd.save(&K8sState {
            ready: true,
            ..state
        })
        .unwrap();
        let lines = crate::cli::env::exports(tmp.path()).unwrap();
        assert!(lines[0].starts_with("export KUBECONFIG="), "{lines:?}");
    }
}
