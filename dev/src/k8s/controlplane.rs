//! etcd + kube-apiserver on loopback, envtest style.
//!
//! One [`ControlPlane`] owns a private directory (certificates, keys, etcd data,
//! logs, kubeconfig), an etcd on two free loopback ports and a kube-apiserver on
//! a third. The API server authenticates clients by certificate (an admin in
//! `system:masters`), authorises with RBAC, and signs service-account tokens
//! with an ECDSA P-256 key that it also verifies with. Startup waits for
//! `/readyz`; a port lost to a race with another process is retried on new
//! ports. Dropping the value stops the API server, then etcd, then removes the
//! directory — or, when dropped by a failing test, prints the last lines of
//! `etcd.log` and `kube-apiserver.log` and keeps it ([`sworn_harness::RunDir`]).
//!
//! For outage tests the API server alone can be SIGKILLed
//! ([`ControlPlane::kill_apiserver`]) and started again with exactly the same
//! command line — ports, certificates, keys, etcd — so clients reconnect to the
//! same cluster ([`ControlPlane::restart_apiserver`]). etcd keeps running
//! throughout, and the log file is appended to, so it spans both runs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use sworn_harness::{ChildOutput, RunDir};

use super::binaries::{BinariesError, KubeBinaries};
use super::pki::{self, ADMIN_USER, Pki, PkiError};
use super::process::{Supervised, log_tail};
use super::token::{ForgedClaims, TokenError, sign_es256};

/// Default `--service-account-issuer`.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// How many times startup is retried when a picked port was taken meanwhile.
const START_ATTEMPTS: u32 = 3;

/// Errors starting the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// The binaries are missing.
    #[error(transparent)]
    Binaries(#[from] BinariesError),
    /// Key material could not be generated or written.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A filesystem or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A process exited during startup.
    #[error("{process} exited during startup ({status}); last log lines:\n{log}")]
    Exited {
        /// `etcd` or `kube-apiserver`.
        process: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// A process did not become ready in time.
    #[error("{process} not ready after {timeout:?}; last log lines:\n{log}")]
    Timeout {
        /// `etcd` or `kube-apiserver`.
        process: &'static str,
        /// The limit.
        timeout: Duration,
        /// The end of its log.
        log: String,
    },
    /// [`ControlPlane::restart_apiserver`] was called while the API server
    /// still runs: a second one could not bind the port.
    #[error("kube-apiserver is still running (pid {pid}); kill it first")]
    ApiServerRunning {
        /// The running API server's pid.
        pid: u32,
    },
    /// The kubeconfig this harness wrote could not be loaded.
    #[error("loading the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// The Kubernetes client could not be built.
    #[error("building the kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// How to start a [`ControlPlane`]. `Default` suits tests.
#[derive(Debug, Clone)]
pub struct ControlPlaneOptions {
    /// Parent of the control plane's private directory (default: the system
    /// temp dir). The private directory itself is always created fresh and
    /// removed on drop (kept if dropped during a panic).
    pub parent_dir: Option<PathBuf>,
    /// Binaries to run (default: [`KubeBinaries::locate`]).
    pub binaries: Option<KubeBinaries>,
    /// `--service-account-issuer` (default: [`DEFAULT_ISSUER`]).
    pub issuer: String,
    /// How long to wait for `/readyz` (default 120 s: two busy cores can be slow).
    pub startup_timeout: Duration,
}

impl Default for ControlPlaneOptions {
    fn default() -> Self {
        Self {
            parent_dir: None,
            binaries: None,
            issuer: DEFAULT_ISSUER.to_owned(),
            startup_timeout: Duration::from_secs(120),
        }
    }
}

/// A running etcd + kube-apiserver pair. Stops both and removes its directory
/// when dropped.
pub struct ControlPlane {
    // Field order matters for drop: processes first (explicitly in `Drop`),
    // then the directory.
    apiserver: Supervised,
    etcd: Supervised,
    // The API server's exact command line and output file, for restarts.
    apiserver_args: Vec<String>,
    apiserver_output: ChildOutput,
    client: kube::Client,
    kubeconfig: PathBuf,
    api_url: String,
    issuer: String,
    pki: Pki,
    binaries: KubeBinaries,
    dir: RunDir,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("api_url", &self.api_url)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Starts a control plane with default options.
    pub async fn start() -> Result<Self, ControlPlaneError> {
        Self::start_with(ControlPlaneOptions::default()).await
    }

    /// Starts a control plane.
    pub async fn start_with(options: ControlPlaneOptions) -> Result<Self, ControlPlaneError> {
        let binaries = match options.binaries.clone() {
            Some(b) => b,
            None => KubeBinaries::locate()?,
        };
        let mut attempt = 1;
        loop {
            match Self::start_once(&options, &binaries).await {
                Err(e @ ControlPlaneError::Exited { .. })
                    if attempt < START_ATTEMPTS
                        && e.to_string().contains("address already in use") =>
                {
                    tracing::warn!(
                        attempt,
                        "control plane port taken meanwhile; retrying on new ports"
                    );
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn start_once(
        options: &ControlPlaneOptions,
        binaries: &KubeBinaries,
    ) -> Result<Self, ControlPlaneError> {
        let started = Instant::now();
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| ControlPlaneError::Io { what, source }
        };
        let parent = options
            .parent_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&parent).map_err(io("creating the control plane parent dir"))?;
        let dir =
            RunDir::new_in(&parent, "sworn-k8s-").map_err(io("creating the control plane dir"))?;
        let d = dir.path();

        let pki = Pki::generate()?;
        pki.write_server_files(d)?;
        let [etcd_client, etcd_peer, secure] = free_ports().map_err(io("picking free ports"))?;

        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let mut etcd = Supervised::spawn(
            "etcd",
            &binaries.etcd,
            [
                "--name=default".to_owned(),
                format!("--data-dir={}", d.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync=true".to_owned(),
                "--log-level=warn".to_owned(),
            ],
            &dir.child_combined("etcd")
                .map_err(io("creating etcd's log"))?,
        )
        .map_err(io("starting etcd"))?;
        wait_tcp(&mut etcd, "etcd", etcd_client, options.startup_timeout).await?;

        let api_url = format!("https://127.0.0.1:{secure}");
        let p = |name: &str| d.join(name).display().to_string();
        let apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={secure}"),
            format!("--cert-dir={}", p("certs")),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            format!("--service-account-issuer={}", options.issuer),
            "--authorization-mode=RBAC".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--allow-privileged=true".to_owned(),
            "--profiling=false".to_owned(),
            "--shutdown-delay-duration=0s".to_owned(),
            // The "kubernetes" Service endpoint cannot point at loopback.
            "--endpoint-reconciler-type=none".to_owned(),
        ];
        let apiserver_output = dir
            .child_combined("kube-apiserver")
            .map_err(io("creating kube-apiserver's log"))?;
        let mut apiserver = Supervised::spawn(
            "kube-apiserver",
            &binaries.kube_apiserver,
            &apiserver_args,
            &apiserver_output,
        )
        .map_err(io("starting kube-apiserver"))?;

        let kubeconfig = d.join("kubeconfig");
        write_kubeconfig(&kubeconfig, &api_url, &pki)?;
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        let client = kube::Client::try_from(config)?;
        wait_ready(&mut apiserver, &client, options.startup_timeout).await?;
        tracing::info!(
            api_url = %api_url,
            dir = %d.display(),
            elapsed_ms = started.elapsed().as_millis(),
            "control plane ready"
        );
        Ok(Self {
            apiserver,
            etcd,
            apiserver_args,
            apiserver_output,
            client,
            kubeconfig,
            api_url,
            issuer: options.issuer.clone(),
            pki,
            binaries: binaries.clone(),
            dir,
        })
    }

    /// A client authenticated as the admin (`system:masters`).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// The admin kubeconfig (mode 0600), usable by `kubectl --kubeconfig`.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The private directory (removed on drop, kept if dropped during a panic).
    /// Holds `etcd.log` and `kube-apiserver.log` (each process's stdout and
    /// stderr).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `--service-account-issuer`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The CA that signed the serving and client certificates (PEM).
    pub fn ca_cert_pem(&self) -> &str {
        &self.pki.ca_cert_pem
    }

    /// The service-account verification key (PEM SubjectPublicKeyInfo).
    pub fn sa_public_key_pem(&self) -> &str {
        &self.pki.sa_public_pem
    }

    /// The API server's service-account signing key (PEM PKCS#8). Test
    /// material: whoever holds it can mint tokens this cluster accepts.
    pub fn sa_signing_key_pem(&self) -> &str {
        &self.pki.sa_key_pem
    }

    /// Pids of etcd and kube-apiserver, in that order.
    pub fn pids(&self) -> [u32; 2] {
        [self.etcd.pid(), self.apiserver.pid()]
    }

    /// The binaries this control plane runs.
    pub fn binaries(&self) -> &KubeBinaries {
        &self.binaries
    }

    /// Signs `claims` with the API server's own service-account key, as
    /// kube-apiserver would. Only for tokens the real API refuses to issue
    /// (expired ones, or ones bound to mismatching objects): anything the
    /// TokenRequest API can produce must come from it.
    pub fn forge_token_with_apiserver_key(
        &self,
        claims: &ForgedClaims,
    ) -> Result<String, TokenError> {
        sign_es256(
            &self.pki.sa_key_pkcs8,
            &self.pki.sa_key_id,
            &claims.to_json(),
        )
    }

    /// Kills kube-apiserver with SIGKILL — no graceful shutdown, as in a crash
    /// — and reaps it. etcd keeps running, so nothing stored is lost. Clients
    /// see refused connections until [`ControlPlane::restart_apiserver`].
    /// Idempotent. Returns the instant the process was reaped, i.e. when the
    /// API was certainly gone.
    pub fn kill_apiserver(&mut self) -> Instant {
        self.apiserver.kill();
        tracing::info!(api_url = %self.api_url, "kube-apiserver killed");
        Instant::now()
    }

    /// Starts kube-apiserver again with exactly the command line of the first
    /// start (same flags, port, certificates, service-account keys and etcd),
    /// then waits up to `timeout` for `/readyz` to answer `ok`. Returns the
    /// instant that answer arrived; readiness began at most one poll interval
    /// (100 ms) earlier.
    ///
    /// The new process is spawned from the calling thread, which its
    /// parent-death signal is tied to: call this from a thread that lives as
    /// long as the control plane (an async worker thread, as the first start
    /// did, not a short-lived `spawn_blocking` thread).
    pub async fn restart_apiserver(
        &mut self,
        timeout: Duration,
    ) -> Result<Instant, ControlPlaneError> {
        if self.apiserver.is_running() {
            return Err(ControlPlaneError::ApiServerRunning {
                pid: self.apiserver.pid(),
            });
        }
        // Replacing the value drops the old one, which was already reaped.
        self.apiserver = Supervised::spawn(
            "kube-apiserver",
            &self.binaries.kube_apiserver,
            &self.apiserver_args,
            &self.apiserver_output,
        )
        .map_err(|source| ControlPlaneError::Io {
            what: "restarting kube-apiserver".to_owned(),
            source,
        })?;
        let ready = self.wait_apiserver_ready(timeout).await?;
        tracing::info!(api_url = %self.api_url, "kube-apiserver restarted and ready");
        Ok(ready)
    }

    /// Waits up to `timeout` for kube-apiserver's `/readyz` to answer `ok`
    /// and returns the instant it did. Fails at once if the process exited.
    pub async fn wait_apiserver_ready(
        &mut self,
        timeout: Duration,
    ) -> Result<Instant, ControlPlaneError> {
        wait_ready(&mut self.apiserver, &self.client, timeout).await
    }

    /// Stops both processes and removes the directory, without blocking the
    /// async runtime.
    pub async fn stop(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.apiserver.stop();
        self.etcd.stop();
        tracing::debug!(dir = %self.dir.path().display(), "control plane stopped");
    }
}

/// Three distinct free loopback ports (held together while picked, so they
/// differ; another process may still take one before it is used, which startup
/// detects and retries).
fn free_ports() -> std::io::Result<[u16; 3]> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    let c = TcpListener::bind("127.0.0.1:0")?;
    Ok([
        a.local_addr()?.port(),
        b.local_addr()?.port(),
        c.local_addr()?.port(),
    ])
}

fn write_kubeconfig(path: &Path, api_url: &str, pki: &Pki) -> Result<(), ControlPlaneError> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    // JSON is YAML, so kubectl and kube-rs both read this.
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sworn-dev", "cluster": {
            "server": api_url,
            "certificate-authority-data": b64(&pki.ca_cert_pem),
        }}],
        "users": [{"name": ADMIN_USER, "user": {
            "client-certificate-data": b64(&pki.admin_cert_pem),
            "client-key-data": b64(&pki.admin_key_pem),
        }}],
        "contexts": [{"name": "sworn-dev", "context": {"cluster": "sworn-dev", "user": ADMIN_USER}}],
        "current-context": "sworn-dev",
    });
    pki::write(path, &format!("{config:#}\n"), 0o600)?;
    Ok(())
}

async fn wait_tcp(
    proc: &mut Supervised,
    name: &'static str,
    port: u16,
    timeout: Duration,
) -> Result<(), ControlPlaneError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = proc.try_exited() {
            return Err(ControlPlaneError::Exited {
                process: name,
                status,
                log: log_tail(proc.log(), 4000),
            });
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ControlPlaneError::Timeout {
                process: name,
                timeout,
                log: log_tail(proc.log(), 4000),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How often `/readyz` is polled; bounds how late a readiness instant is.
const READY_POLL: Duration = Duration::from_millis(100);

/// Polls `/readyz` until it answers `ok`; returns the instant it did.
async fn wait_ready(
    apiserver: &mut Supervised,
    client: &kube::Client,
    timeout: Duration,
) -> Result<Instant, ControlPlaneError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = apiserver.try_exited() {
            return Err(ControlPlaneError::Exited {
                process: "kube-apiserver",
                status,
                log: log_tail(apiserver.log(), 4000),
            });
        }
        if let Ok(req) = http::Request::get("/readyz").body(Vec::new()) {
            // Bounded per request too: a half-started server may accept and stall.
            let left = deadline.saturating_duration_since(Instant::now());
            let answer =
                tokio::time::timeout(left.min(Duration::from_secs(5)), client.request_text(req))
                    .await;
            if let Ok(Ok(body)) = answer
                && body.trim() == "ok"
            {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > deadline {
            return Err(ControlPlaneError::Timeout {
                process: "kube-apiserver",
                timeout,
                log: log_tail(apiserver.log(), 4000),
            });
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;
    use kube::api::PostParams;

    use super::*;

    /// The restarted API server is the same cluster: same URL, same serving
    /// and client CAs (the client built before the kill still works), same
    /// etcd data.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_api_server_restarts_as_the_same_cluster() {
        let mut cp = ControlPlane::start().await.unwrap();
        let maps = Api::<ConfigMap>::namespaced(cp.client(), "default");
        let map: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "survives"}})).unwrap();
        maps.create(&PostParams::default(), &map).await.unwrap();
        let [etcd_pid, old_pid] = cp.pids();

        let err = cp.restart_apiserver(Duration::from_secs(5)).await;
        assert!(matches!(
            err,
            Err(ControlPlaneError::ApiServerRunning { .. })
        ));

        let killed = cp.kill_apiserver();
        assert!(
            maps.get("survives").await.is_err(),
            "the API answered after SIGKILL"
        );
        let ready = cp
            .restart_apiserver(Duration::from_secs(120))
            .await
            .unwrap();
        assert!(ready > killed);
        let [etcd_after, new_pid] = cp.pids();
        assert_eq!(etcd_after, etcd_pid, "etcd kept running");
        assert_ne!(new_pid, old_pid);
        maps.get("survives").await.unwrap();
        cp.stop().await;
    }
}
