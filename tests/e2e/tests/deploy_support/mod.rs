//! Shared by the `deploy_*` tests: rendering the kustomize base and the Helm
//! chart with the pinned tools, applying manifests with the pinned kubectl,
//! and kubeconfigs that carry a ServiceAccount's token instead of the admin's.
//!
//! Tools are found the way `test.sh` provides them: kubectl from the control
//! plane's binaries (`dev/k8s/build.sh`), helm from `SWORN_HELM` or the cache
//! `deploy/helm/build.sh` fills. A missing tool fails the test and says how to
//! get it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_yaml::Value;
use sworn_dev::k8s::{ControlPlane, KubeBinaries};

/// The helm version `deploy/helm/build.sh` pins.
pub const HELM_VERSION: &str = "v3.22.0";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `deploy/` in the repository.
pub fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

/// The pinned kubectl, without needing a running control plane.
pub fn kubectl_bin() -> PathBuf {
    KubeBinaries::locate()
        .unwrap_or_else(|e| panic!("{e}"))
        .kubectl
}

/// The pinned helm: `$SWORN_HELM`, else the cache of `deploy/helm/build.sh`.
pub fn helm_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SWORN_HELM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "SWORN_HELM={} is not a file: run deploy/helm/build.sh",
            p.display()
        );
        return p;
    }
    let non_empty = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let root = non_empty("SWORN_CACHE_DIR")
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|c| c.join("sworn")))
        .or_else(|| non_empty("HOME").map(|h| h.join(".cache").join("sworn")))
        .expect("set HOME, SWORN_CACHE_DIR or SWORN_HELM, then run deploy/helm/build.sh");
    let p = root
        .join("k8s")
        .join(format!("helm-{HELM_VERSION}"))
        .join("bin")
        .join("helm");
    assert!(
        p.is_file(),
        "helm not found at {}: run deploy/helm/build.sh (or set SWORN_HELM to a helm {HELM_VERSION} binary)",
        p.display()
    );
    p
}

/// Runs `cmd`, feeding `stdin`; panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command, stdin: Option<&str>, what: &str) -> String {
    let out = run(cmd, stdin);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd`, feeding `stdin`, and returns whatever happened.
pub fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if let Some(input) = stdin {
        // Written from a thread: a large manifest must not deadlock on a full pipe.
        let mut pipe = child.stdin.take().unwrap();
        let input = input.to_owned();
        std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    }
    child.wait_with_output().unwrap()
}

/// `kubectl kustomize deploy/kustomize` with the pinned kubectl.
pub fn render_kustomize() -> String {
    run_ok(
        Command::new(kubectl_bin())
            .arg("kustomize")
            .arg(deploy_dir().join("kustomize")),
        None,
        "kubectl kustomize deploy/kustomize",
    )
}

/// `helm template sworn deploy/helm/sworn ARGS...`.
pub fn render_helm(args: &[&str]) -> String {
    let chart = deploy_dir().join("helm/sworn");
    let mut all = vec!["template", "sworn", chart.to_str().unwrap()];
    all.extend_from_slice(args);
    helm(&all)
}

/// Runs the pinned helm with its own state in a temporary directory.
pub fn helm(args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    run_ok(
        Command::new(helm_bin())
            .args(args)
            .env("HELM_CONFIG_HOME", home.path().join("config"))
            .env("HELM_CACHE_HOME", home.path().join("cache"))
            .env("HELM_DATA_HOME", home.path().join("data")),
        None,
        &format!("helm {}", args.join(" ")),
    )
}

/// Every non-empty document of a YAML stream.
pub fn parse_docs(stream: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(stream)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// A document's identity: `kind namespace/name`.
pub fn key(doc: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    format!(
        "{} {}/{}",
        s(&doc["kind"]),
        s(&doc["metadata"]["namespace"]),
        s(&doc["metadata"]["name"])
    )
}

/// Documents by [`key`], refusing duplicates.
pub fn by_key(docs: &[Value]) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for d in docs {
        assert!(
            map.insert(key(d), d.clone()).is_none(),
            "duplicate object {}",
            key(d)
        );
    }
    map
}

/// The documents of one kind.
pub fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Serialises documents back into one YAML stream.
pub fn to_stream<'a>(docs: impl IntoIterator<Item = &'a Value>) -> String {
    docs.into_iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The pinned kubectl against `kubeconfig`.
pub fn kubectl(cp: &ControlPlane, kubeconfig: &Path) -> Command {
    let mut c = Command::new(&cp.binaries().kubectl);
    c.arg("--kubeconfig").arg(kubeconfig);
    c
}

/// The pinned kubectl as the admin.
pub fn admin_kubectl(cp: &ControlPlane) -> Command {
    kubectl(cp, cp.kubeconfig_path())
}

/// `kubectl apply -f -` of `stream` as the admin, for real.
pub fn apply(cp: &ControlPlane, stream: &str) -> String {
    run_ok(
        admin_kubectl(cp).args(["apply", "-f", "-"]),
        Some(stream),
        "kubectl apply",
    )
}

/// Creates, for real, the Namespaces of a rendered stream (a server-side dry
/// run of namespaced objects needs their namespace to exist).
pub fn create_namespaces(cp: &ControlPlane, docs: &[Value]) {
    apply(cp, &to_stream(of_kind(docs, "Namespace")));
}

/// A kubeconfig that authenticates with `token` (a ServiceAccount's bearer
/// token) to the control plane, trusting its CA. Written into `dir`.
pub fn token_kubeconfig(cp: &ControlPlane, dir: &Path, name: &str, token: &str) -> PathBuf {
    let ca = dir.join(format!("{name}-ca.crt"));
    std::fs::write(&ca, cp.ca_cert_pem()).unwrap();
    let path = dir.join(format!("{name}.kubeconfig"));
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: sworn-test
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {name}
  user:
    token: {token}
contexts:
- name: {name}
  context:
    cluster: sworn-test
    user: {name}
current-context: {name}
",
        server = cp.api_url(),
        ca = ca.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `kubectl auth can-i VERB RESOURCE [-n NS]` as `user`: true for "yes".
pub fn can_i(cp: &ControlPlane, user: &str, verb: &str, resource: &str, ns: Option<&str>) -> bool {
    let mut c = admin_kubectl(cp);
    c.args(["auth", "can-i", verb, resource, "--as", user]);
    match ns {
        Some(ns) => c.args(["-n", ns]),
        None => c.arg("--all-namespaces"),
    };
    let out = run(&mut c, None);
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match (out.status.code(), said.as_str()) {
        (Some(0), "yes") => true,
        (Some(1), "no") => false,
        _ => panic!(
            "kubectl auth can-i {verb} {resource} as {user}: {:?} {said} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
