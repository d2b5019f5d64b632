//! A kubelet stand-in acting against the real API server (docs/architecture.md, "Testing").
//!
//! It does what a kubelet and the missing controllers would: creates Nodes,
//! Namespaces and ServiceAccounts (no controller-manager runs, so none exist by
//! default), creates Pods bound to a node with a projected service-account token
//! volume, reports pod status with `containerd://<64 hex>` container IDs,
//! requests pod-bound tokens with TokenRequest and writes them where a kubelet
//! would (`<kubelet-root>/pods/<uid>/volumes/kubernetes.io~projected/<volume>/<path>`,
//! only for volumes a container mounts), runs "container" processes in real
//! cgroups, and deletes pods with `gracePeriodSeconds: 0` (no kubelet confirms a
//! graceful delete).
//!
//! Container processes write stdout and stderr to files under
//! `<kubelet-root>/logs/` (as a kubelet keeps container logs under
//! `/var/log/pods`); stdout is also readable live from the process. A
//! [`Kubelet::new`] root is a [`sworn_harness::RunDir`]: a failing test prints
//! the end of each container's output and keeps the directory.
//!
//! Ordering invariant: a token carries the node's UID only if the Node exists
//! when the token is requested, so [`Kubelet::create_pod`] creates the Node
//! first.

mod container;
mod error;
mod pod;
mod status;
mod tokens;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde::Serialize;
use serde_json::json;
use sworn_harness::{Logs, RunDir};

pub use container::{ContainerProcess, JOIN_FAILED_EXIT};
pub use error::KubeletError;
use error::api;
pub use pod::{ContainerHandle, ContainerKind, PodHandle, PodParams, TokenVolume};

use super::cgroup::{CgroupRoot, CgroupStyle};
use super::controlplane::ControlPlane;

/// The kubelet stand-in.
pub struct Kubelet {
    client: kube::Client,
    issuer: String,
    kubelet_root: PathBuf,
    cgroups: CgroupRoot,
    logs: Logs,
    _owned_root: Option<RunDir>,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("kubelet_root", &self.kubelet_root)
            .field("cgroups", &self.cgroups)
            .finish_non_exhaustive()
    }
}

impl Kubelet {
    /// A stand-in for `cp` with a fresh kubelet root directory and a fresh
    /// per-run cgroup root; both are removed on drop (cgroup processes killed),
    /// except that a failing test keeps the directory.
    pub fn new(cp: &ControlPlane) -> Result<Self, KubeletError> {
        let dir = RunDir::new("sworn-kubelet-").map_err(|source| KubeletError::Io {
            what: "creating the kubelet root".into(),
            source,
        })?;
        let cgroups = CgroupRoot::create_unique("sworn-test")?;
        Ok(Self {
            client: cp.client(),
            issuer: cp.issuer().to_owned(),
            kubelet_root: dir.path().to_path_buf(),
            cgroups,
            logs: dir.logs().clone(),
            _owned_root: Some(dir),
        })
    }

    /// A stand-in on explicit parts; `kubelet_root` is not removed on drop
    /// (the cgroup root follows its own ownership).
    pub fn from_parts(
        client: kube::Client,
        issuer: &str,
        kubelet_root: PathBuf,
        cgroups: CgroupRoot,
    ) -> Self {
        Self {
            client,
            issuer: issuer.to_owned(),
            kubelet_root,
            cgroups,
            logs: Logs::default(),
            _owned_root: None,
        }
    }

    /// The admin client it uses.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The kubelet root (`--root-dir`; pods live in `<root>/pods/<uid>`).
    pub fn kubelet_root(&self) -> &Path {
        &self.kubelet_root
    }

    /// The per-run cgroup root.
    pub fn cgroup_root(&self) -> &CgroupRoot {
        &self.cgroups
    }

    /// Creates namespace `name` unless it exists.
    pub async fn ensure_namespace(&self, name: &str) -> Result<Namespace, KubeletError> {
        let ns: Namespace = from_json(json!({"metadata": {"name": name}}))?;
        get_or_create(&Api::all(self.client.clone()), name, &ns, "namespace").await
    }

    /// Creates namespace `namespace` and service account `name` in it unless they exist.
    pub async fn create_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ServiceAccount, KubeletError> {
        self.ensure_namespace(namespace).await?;
        let sa: ServiceAccount =
            from_json(json!({"metadata": {"name": name, "namespace": namespace}}))?;
        get_or_create(
            &Api::namespaced(self.client.clone(), namespace),
            name,
            &sa,
            "service account",
        )
        .await
    }

    /// Creates Node `name` unless it exists.
    pub async fn create_node(&self, name: &str) -> Result<Node, KubeletError> {
        let node: Node = from_json(json!({"metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
        }}))?;
        get_or_create(&Api::all(self.client.clone()), name, &node, "node").await
    }

    /// Creates the pod the way a scheduled, started pod looks: ensures its
    /// namespace, service account and node, creates the Pod, reports it
    /// Running, and writes its mounted token volume.
    pub async fn create_pod(&self, params: &PodParams) -> Result<PodHandle, KubeletError> {
        let pod = self.create_pod_object(params).await?;
        self.set_running(&pod).await?;
        self.write_tokens(&pod).await?;
        Ok(pod)
    }

    /// Ensures namespace, service account and node, then creates the Pod
    /// object only: no status (Pending), no token written.
    pub async fn create_pod_object(&self, params: &PodParams) -> Result<PodHandle, KubeletError> {
        self.create_service_account(&params.namespace, &params.service_account)
            .await?;
        self.create_node(&params.node_name).await?;
        let volume_mount = params
            .token_volume
            .as_ref()
            .filter(|v| v.mounted)
            .map(|v| json!([{"name": v.name, "mountPath": v.mount_path, "readOnly": true}]));
        let container = |name: &String| {
            let mut c =
                json!({"name": name, "image": params.image, "imagePullPolicy": "IfNotPresent"});
            if let Some(mounts) = &volume_mount {
                c["volumeMounts"] = mounts.clone();
            }
            c
        };
        let mut spec = json!({
            "nodeName": params.node_name,
            "serviceAccountName": params.service_account,
            // No controller-manager publishes kube-root-ca.crt, so the default
            // kube-api-access volume could never be populated.
            "automountServiceAccountToken": false,
            "containers": params.containers.iter().map(container).collect::<Vec<_>>(),
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 0,
        });
        if !params.init_containers.is_empty() {
            spec["initContainers"] = params.init_containers.iter().map(container).collect();
        }
        if let Some(v) = &params.token_volume {
            spec["volumes"] = json!([{"name": v.name, "projected": {"sources": [{"serviceAccountToken": {
                "audience": v.audience,
                "expirationSeconds": v.expiration_seconds,
                "path": v.path,
            }}]}}]);
        }
        let pod: Pod = from_json(json!({
            "metadata": {"name": params.name, "namespace": params.namespace, "labels": params.labels},
            "spec": spec,
        }))?;
        let created = Api::<Pod>::namespaced(self.client.clone(), &params.namespace)
            .create(&PostParams::default(), &pod)
            .await
            .map_err(api(format!(
                "creating pod {}/{}",
                params.namespace, params.name
            )))?;
        let uid = created
            .metadata
            .uid
            .ok_or(KubeletError::MissingUid("pod"))?;
        let new = |name: &String, kind| ContainerHandle {
            name: name.clone(),
            kind,
            container_id: container_id(),
        };
        let containers = params
            .init_containers
            .iter()
            .map(|n| new(n, ContainerKind::Init))
            .chain(
                params
                    .containers
                    .iter()
                    .map(|n| new(n, ContainerKind::Regular)),
            )
            .collect();
        tracing::debug!(pod = %format!("{}/{}", params.namespace, params.name), pod_uid = %uid, "pod created");
        Ok(PodHandle {
            namespace: params.namespace.clone(),
            name: params.name.clone(),
            uid,
            node_name: params.node_name.clone(),
            service_account: params.service_account.clone(),
            image: params.image.clone(),
            containers,
            token_volume: params.token_volume.clone(),
        })
    }

    /// Reports the pod Running: init containers terminated (Completed), regular
    /// and ephemeral containers running, with their container IDs.
    pub async fn set_running(&self, pod: &PodHandle) -> Result<(), KubeletError> {
        self.patch_status(pod, status::running(pod)).await
    }

    /// Reports the pod Pending with init container `init_container` running
    /// (earlier init containers Completed, later ones and regular containers
    /// waiting).
    pub async fn set_init_running(
        &self,
        pod: &PodHandle,
        init_container: &str,
    ) -> Result<(), KubeletError> {
        if !pod
            .containers
            .iter()
            .any(|c| c.kind == ContainerKind::Init && c.name == init_container)
        {
            return Err(KubeletError::NoSuchContainer {
                pod: pod.key(),
                container: init_container.to_owned(),
            });
        }
        self.patch_status(pod, status::init_running(pod, init_container))
            .await
    }

    /// Adds ephemeral container `name` (targeting the first regular container)
    /// through the `ephemeralcontainers` subresource and reports it running.
    pub async fn add_ephemeral_container(
        &self,
        pod: &mut PodHandle,
        name: &str,
    ) -> Result<ContainerHandle, KubeletError> {
        let target = pod
            .containers
            .iter()
            .find(|c| c.kind == ContainerKind::Regular)
            .map(|c| c.name.clone());
        let patch = json!({"spec": {"ephemeralContainers": [{
            "name": name,
            "image": pod.image,
            "targetContainerName": target,
        }]}});
        self.pods(pod)
            .patch_subresource(
                "ephemeralcontainers",
                &pod.name,
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
            .map_err(api(format!("adding ephemeral container to {}", pod.key())))?;
        let handle = ContainerHandle {
            name: name.to_owned(),
            kind: ContainerKind::Ephemeral,
            container_id: container_id(),
        };
        pod.containers.push(handle.clone());
        self.set_running(pod).await?;
        Ok(handle)
    }

    async fn patch_status(
        &self,
        pod: &PodHandle,
        status: serde_json::Value,
    ) -> Result<(), KubeletError> {
        self.pods(pod)
            .patch_status(
                &pod.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .map_err(api(format!("patching status of {}", pod.key())))?;
        Ok(())
    }

    /// Runs `command` in an arbitrary cgroup (created if missing), the way
    /// [`Kubelet::start_container_process`] does. For deny tests: a process in
    /// a forged path, or in a pod's cgroup under a container ID the pod does
    /// not have.
    pub fn start_process_in(
        &self,
        cgroup: crate::k8s::ContainerCgroup,
        command: &std::process::Command,
    ) -> Result<ContainerProcess, KubeletError> {
        // Named after the cgroup's leaf (a container ID, for the forged paths of
        // deny tests, ends in one): its last 12 characters, as `crictl` shows IDs.
        let leaf = cgroup
            .cgroup_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let from = leaf.char_indices().rev().nth(11).map_or(0, |(i, _)| i);
        let output = self.container_output(&format!("cgroup-{}", &leaf[from..]), command)?;
        container::spawn_in_cgroup(cgroup, command, &output)
    }

    /// Runs `command` as a process of `container` in `pod`, inside a real
    /// cgroup named the way the kubelet's `style` driver names it. The process
    /// moves itself into the cgroup before `exec`ing the program, so it never
    /// runs elsewhere. Its program, arguments, environment and working
    /// directory are taken from `command`; stdin is null; stdout is piped (and
    /// also kept in `<kubelet-root>/logs/<ns>.<pod>.<container>.<program>.stdout`),
    /// stderr goes to the matching `.stderr` file.
    pub fn start_container_process(
        &self,
        pod: &PodHandle,
        container: &str,
        command: &std::process::Command,
        style: CgroupStyle,
    ) -> Result<ContainerProcess, KubeletError> {
        let handle = pod
            .container(container)
            .ok_or_else(|| KubeletError::NoSuchContainer {
                pod: pod.key(),
                container: container.to_owned(),
            })?;
        let cgroup = self
            .cgroups
            .container(style, &pod.uid, &handle.container_id);
        let output = self.container_output(
            &format!("{}.{}.{}", pod.namespace, pod.name, container),
            command,
        )?;
        container::spawn_in_cgroup(cgroup, command, &output)
    }

    /// Output files for a process of `owner` running `command`'s program.
    fn container_output(
        &self,
        owner: &str,
        command: &std::process::Command,
    ) -> Result<sworn_harness::ChildOutput, KubeletError> {
        let program = Path::new(command.get_program())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.logs
            .child(
                &self.kubelet_root.join("logs"),
                &format!("{owner}.{program}"),
                false,
            )
            .map_err(|source| KubeletError::Io {
                what: "creating a container's output files".into(),
                source,
            })
    }

    /// Deletes the pod object with `gracePeriodSeconds: 0` and a UID
    /// precondition, and waits until the API no longer returns it. Processes,
    /// cgroups and token files are left alone (see [`Kubelet::remove_pod_files`]),
    /// so tests can observe a workload that outlives its pod.
    pub async fn delete_pod(&self, pod: &PodHandle) -> Result<(), KubeletError> {
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(pod.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let pods = self.pods(pod);
        match pods.delete(&pod.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(api(format!("deleting pod {}", pod.key()))(e)),
        }
        let timeout = Duration::from_secs(30);
        let deadline = Instant::now() + timeout;
        loop {
            let current = pods
                .get_opt(&pod.name)
                .await
                .map_err(api(format!("reading pod {}", pod.key())))?;
            if current
                .and_then(|p| p.metadata.uid)
                .is_none_or(|uid| uid != pod.uid)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(KubeletError::DeleteTimeout(pod.key(), timeout));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What a kubelet does after a pod is gone: kills processes left in the
    /// pod's cgroups (both driver styles), removes those cgroups, and removes
    /// `<kubelet-root>/pods/<uid>`.
    pub fn remove_pod_files(&self, pod: &PodHandle) -> Result<(), KubeletError> {
        for style in [CgroupStyle::Cgroupfs, CgroupStyle::Systemd] {
            for c in &pod.containers {
                self.cgroups
                    .container(style, &pod.uid, &c.container_id)
                    .remove()?;
            }
            if let Some(first) = pod.containers.first() {
                let container = self.cgroups.container(style, &pod.uid, &first.container_id);
                if let Some(parent) = container.fs_path.parent() {
                    match std::fs::remove_dir(parent) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => {
                            return Err(KubeletError::Io {
                                what: format!("removing {}", parent.display()),
                                source,
                            });
                        }
                    }
                }
            }
        }
        let dir = self.kubelet_root.join("pods").join(&pod.uid);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(KubeletError::Io {
                what: format!("removing {}", dir.display()),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn pods(&self, pod: &PodHandle) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &pod.namespace)
    }
}

/// A fresh containerd-style container ID: 64 lowercase hex digits.
pub fn container_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, KubeletError> {
    serde_json::from_value(value).map_err(|e| KubeletError::Api {
        what: "building an object".to_owned(),
        source: kube::Error::SerdeError(e),
    })
}

async fn get_or_create<K>(
    api: &Api<K>,
    name: &str,
    object: &K,
    what: &str,
) -> Result<K, KubeletError>
where
    K: kube::Resource + Clone + std::fmt::Debug + Serialize + serde::de::DeserializeOwned,
{
    match api.create(&PostParams::default(), object).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            api.get(name).await.map_err(api_err(what, name))
        }
        Err(e) => Err(api_err(what, name)(e)),
    }
}

fn api_err(what: &str, name: &str) -> impl FnOnce(kube::Error) -> KubeletError {
    api(format!("creating {what} {name}"))
}
