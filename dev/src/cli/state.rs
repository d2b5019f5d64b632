//! The Kubernetes-mode state directory shared by `sworn-dev` invocations.
//!
//! Layout under `<dir>/k8s/`:
//!
//! ```text
//! state.json            written by `up` at start, marked ready once every agent
//!                       serves, removed when it stops
//! kubeconfig            admin kubeconfig (0600)
//! kubelet/              the kubelet root: kubelet/pods/<uid>/volumes/...
//! pods/<ns>/<name>.json one record per pod created by `pod create`
//! agents/<node>.socket  absolute path of the agent socket serving <node>
//! run/                  the control plane's private directory
//! ```
//!
//! `agents/<node>.socket` is the hook through which a node agent started by the
//! dev environment announces its Workload API socket; `exec` then sets
//! `SPIFFE_ENDPOINT_SOCKET` for processes of pods on that node.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::k8s::{CgroupStyle, PodHandle};

/// What `up --kubernetes` records once the control plane is ready.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct K8sState {
    /// Pid of the `up` process.
    pub up_pid: u32,
    /// Pids of its etcd and kube-apiserver.
    pub control_plane_pids: [u32; 2],
    /// `https://127.0.0.1:<port>`.
    pub api_url: String,
    /// `--service-account-issuer`.
    pub issuer: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// Directory holding the pinned `kubectl`.
    pub bin_dir: PathBuf,
    /// The kubelet root.
    pub kubelet_root: PathBuf,
    /// The per-run cgroup root, as shown in `/proc/<pid>/cgroup`.
    pub cgroup_root: PathBuf,
    /// Cgroup naming for containers.
    pub cgroup_style: CgroupStyle,
    /// Whether every dev node's agent is attested and synced. `up` records the
    /// state first with `false` (so a second `up` sees it running, and one
    /// that dies is cleaned up) and sets it once the agents serve; `env`
    /// refuses until then.
    #[serde(default)]
    pub ready: bool,
}

/// A pod created by `pod create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodRecord {
    /// The pod.
    pub pod: PodHandle,
    /// Where its token file is, if it has one.
    pub token_path: Option<PathBuf>,
}

/// Paths inside a state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory `dir` (made absolute; created if missing).
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let root =
            std::path::absolute(dir).with_context(|| format!("resolving {}", dir.display()))?;
        Ok(Self { root })
    }

    /// `<dir>/k8s`.
    pub fn k8s(&self) -> PathBuf {
        self.root.join("k8s")
    }

    /// `<dir>/k8s/state.json`.
    pub fn state_file(&self) -> PathBuf {
        self.k8s().join("state.json")
    }

    /// `<dir>/k8s/kubeconfig`.
    pub fn kubeconfig(&self) -> PathBuf {
        self.k8s().join("kubeconfig")
    }

    /// `<dir>/k8s/kubelet`.
    pub fn kubelet_root(&self) -> PathBuf {
        self.k8s().join("kubelet")
    }

    /// `<dir>/k8s/run`.
    pub fn run_dir(&self) -> PathBuf {
        self.k8s().join("run")
    }

    /// `<dir>/k8s/pods/<ns>/<name>.json`.
    pub fn pod_file(&self, namespace: &str, name: &str) -> PathBuf {
        self.k8s()
            .join("pods")
            .join(namespace)
            .join(format!("{name}.json"))
    }

    /// `<dir>/k8s/agents/<node>.socket`.
    pub fn agent_socket_file(&self, node: &str) -> PathBuf {
        self.k8s().join("agents").join(format!("{node}.socket"))
    }

    /// The state of a running `up --kubernetes`, or an error saying how to start one.
    pub fn load(&self) -> Result<K8sState> {
        let file = self.state_file();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no kubernetes dev environment in {}: start one with `sworn-dev --dir {} up --kubernetes`",
                self.root.display(),
                self.root.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
        };
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))
    }

    /// Records the state (written to a temp file, then renamed).
    pub fn save(&self, state: &K8sState) -> Result<()> {
        write_json(&self.state_file(), state)
    }

    /// Records a pod.
    pub fn save_pod(&self, record: &PodRecord) -> Result<()> {
        write_json(
            &self.pod_file(&record.pod.namespace, &record.pod.name),
            record,
        )
    }

    /// A pod recorded by `pod create`.
    pub fn load_pod(&self, namespace: &str, name: &str) -> Result<PodRecord> {
        let file = self.pod_file(namespace, name);
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "pod {namespace}/{name} was not created by `sworn-dev pod create` in this dir ({})",
                file.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))
    }

    /// Every pod recorded by `pod create` (unreadable records are skipped).
    pub fn list_pods(&self) -> Vec<PodRecord> {
        let Ok(namespaces) = std::fs::read_dir(self.k8s().join("pods")) else {
            return Vec::new();
        };
        namespaces
            .flatten()
            .filter_map(|ns| std::fs::read_dir(ns.path()).ok())
            .flat_map(|files| files.flatten())
            .filter_map(|f| std::fs::read(f.path()).ok())
            .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
            .collect()
    }

    /// Hook: records that the agent serving `node` listens on `socket`.
    pub fn record_agent_socket(&self, node: &str, socket: &Path) -> Result<()> {
        let file = self.agent_socket_file(node);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, socket.as_os_str().as_encoded_bytes())
            .with_context(|| format!("writing {}", file.display()))
    }

    /// Hook: the socket of the agent serving `node`, if one was recorded.
    pub fn agent_socket_for_node(&self, node: &str) -> Option<PathBuf> {
        let text = std::fs::read_to_string(self.agent_socket_file(node)).ok()?;
        let path = PathBuf::from(text.trim());
        path.is_absolute().then_some(path)
    }
}

/// Writes `value` as JSON to `path` atomically (a temp file, then a rename), so a
/// reader never sees half a file.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let parent = path.parent().context("state file has no parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(parent)?;
    serde_json::to_writer_pretty(&tmp, value)?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A client for the recorded kubeconfig.
pub async fn client(state: &K8sState) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(&state.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}
