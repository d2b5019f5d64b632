//! End to end through the `sworn-dev` binary (docs/architecture.md, "Command line"): `up --kubernetes`,
//! `env`, `pod create`, `exec`, the pinned kubectl, and a clean stop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::alive;
use rustix::process::{Pid, Signal, kill_process};

const SWORN_DEV: &str = env!("CARGO_BIN_EXE_sworn-dev");

/// A running `sworn-dev up --kubernetes`; SIGKILLed if the test fails early.
struct Up {
    child: Option<Child>,
    kubeconfig: PathBuf,
}

impl Up {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(SWORN_DEV)
            .arg("--dir")
            .arg(dir)
            .args(["up", "--kubernetes"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(path) = line.strip_prefix("kubeconfig: ") {
                    let _ = tx.send(PathBuf::from(path));
                }
            }
        });
        let kubeconfig = rx
            .recv_timeout(Duration::from_secs(180))
            .expect("`up` printed the kubeconfig path");
        Self {
            child: Some(child),
            kubeconfig,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.as_ref().unwrap().id()).unwrap()).unwrap()
    }

    fn signal_and_wait(mut self, signal: Signal) -> std::process::ExitStatus {
        kill_process(self.pid(), signal).unwrap();
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "`up` did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sworn_dev(dir: &Path, args: &[&str]) -> Output {
    Command::new(SWORN_DEV)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn state(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("k8s/state.json")).unwrap()).unwrap()
}

fn cgroup_fs_dir(relative: &str) -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = info
        .lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            post.starts_with("cgroup2 ")
                .then(|| pre.split(' ').nth(4).unwrap().to_owned())
        })
        .unwrap();
    Path::new(&mount).join(relative.trim_start_matches('/'))
}

#[test]
fn up_env_pod_create_exec_and_stop() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let up = Up::start(&dir);
    assert!(up.kubeconfig.is_absolute() && up.kubeconfig.exists());

    // env: KUBECONFIG and the pinned kubectl first on PATH.
    let env = stdout(&sworn_dev(&dir, &["env"]));
    let kubeconfig_line = format!("export KUBECONFIG='{}'", up.kubeconfig.display());
    assert!(env.lines().any(|l| l == kubeconfig_line), "{env}");
    let st = state(&dir);
    let bin_dir = st["bin_dir"].as_str().unwrap().to_owned();
    assert!(
        env.lines()
            .any(|l| l == format!("export PATH='{bin_dir}'\":$PATH\"")),
        "{env}"
    );
    let evaluated = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{env}\ncommand -v kubectl && kubectl get --raw /version"
        ))
        .output()
        .unwrap();
    let out = stdout(&evaluated);
    assert!(out.starts_with(&format!("{bin_dir}/kubectl\n")), "{out}");
    let version: serde_json::Value =
        serde_json::from_str(out.lines().skip(1).collect::<String>().as_str()).unwrap();
    assert_eq!(version["gitVersion"], "v1.37.2", "{version}");

    // pod create: namespace, SA and node created on the way.
    let created = stdout(&sworn_dev(
        &dir,
        &[
            "pod",
            "create",
            "web",
            "--namespace",
            "demo",
            "--service-account",
            "web",
            "--node",
            "node-1",
            "--label",
            "app=web",
            "--audience",
            "sworn",
        ],
    ));
    let uid = created
        .lines()
        .find_map(|l| l.strip_prefix("pod demo/web uid "))
        .expect("uid line")
        .to_owned();
    let token_path = created
        .lines()
        .find_map(|l| l.strip_prefix("token "))
        .expect("token line");
    let kubelet_root = st["kubelet_root"].as_str().unwrap();
    assert_eq!(
        PathBuf::from(token_path),
        Path::new(kubelet_root).join(format!(
            "pods/{uid}/volumes/kubernetes.io~projected/sworn-token/token"
        ))
    );
    assert!(!std::fs::read_to_string(token_path).unwrap().is_empty());
    let kubectl = Path::new(&bin_dir).join("kubectl");
    let pod_json = stdout(
        &Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&up.kubeconfig)
            .args(["get", "pod", "web", "-n", "demo", "-o", "json"])
            .output()
            .unwrap(),
    );
    let pod: serde_json::Value = serde_json::from_str(&pod_json).unwrap();
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["metadata"]["labels"]["app"], "web");
    assert_eq!(pod["spec"]["nodeName"], "node-1");
    let container_id = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .to_owned();
    let cid = container_id.strip_prefix("containerd://").unwrap();
    assert_eq!(cid.len(), 64);

    // exec: CMD runs in the pod's container cgroup; stdout passes through.
    let cgroup_root = st["cgroup_root"].as_str().unwrap().to_owned();
    let out = stdout(&sworn_dev(
        &dir,
        &[
            "exec",
            "web",
            "--namespace",
            "demo",
            "--",
            "cat",
            "/proc/self/cgroup",
        ],
    ));
    let want = format!("0::{cgroup_root}/kubepods/besteffort/pod{uid}/{cid}");
    assert!(out.lines().any(|l| l == want), "expected {want} in\n{out}");

    // The exit code passes through unchanged.
    let failed = sworn_dev(
        &dir,
        &["exec", "web", "-n", "demo", "--", "sh", "-c", "exit 7"],
    );
    assert_eq!(failed.status.code(), Some(7));

    // The agent-socket hook sets SPIFFE_ENDPOINT_SOCKET for pods on that node.
    let no_agent = stdout(&sworn_dev(
        &dir,
        &[
            "exec",
            "web",
            "-n",
            "demo",
            "--",
            "sh",
            "-c",
            "echo \"[$SPIFFE_ENDPOINT_SOCKET]\"",
        ],
    ));
    assert_eq!(no_agent, "[]\n");
    std::fs::create_dir_all(dir.join("k8s/agents")).unwrap();
    std::fs::write(
        dir.join("k8s/agents/node-1.socket"),
        "/run/sworn-test/agent.sock",
    )
    .unwrap();
    let with_agent = stdout(&sworn_dev(
        &dir,
        &[
            "exec",
            "web",
            "-n",
            "demo",
            "--",
            "sh",
            "-c",
            "echo \"[$SPIFFE_ENDPOINT_SOCKET]\"",
        ],
    ));
    assert_eq!(with_agent, "[unix:///run/sworn-test/agent.sock]\n");

    // A second `up` on the same dir is refused while the first runs.
    let second = sworn_dev(&dir, &["up", "--kubernetes"]);
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already running"));

    // SIGTERM: everything stops and the state is removed.
    let pids: Vec<u32> = st["control_plane_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    assert!(pids.iter().all(|p| alive(*p)));
    let status = up.signal_and_wait(Signal::TERM);
    assert!(status.success(), "{status:?}");
    for pid in pids {
        assert!(!alive(pid), "control plane process {pid} left running");
    }
    assert!(!dir.join("k8s").exists(), "state left behind");
    assert!(
        !cgroup_fs_dir(&cgroup_root).exists(),
        "cgroup root left behind"
    );
    let after = sworn_dev(&dir, &["env"]);
    assert!(!after.status.success());
    assert!(String::from_utf8_lossy(&after.stderr).contains("up --kubernetes"));
}

#[test]
fn a_killed_up_takes_its_control_plane_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let up = Up::start(&dir);
    let st = state(&dir);
    let pids: Vec<u32> = st["control_plane_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect();
    assert!(pids.iter().all(|p| alive(*p)));
    // SIGKILL: no cleanup code runs; the parent-death signal must still stop
    // etcd and kube-apiserver.
    up.signal_and_wait(Signal::KILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in &pids {
        assert!(
            !alive(*pid),
            "control plane process {pid} outlived a SIGKILLed `up`"
        );
    }
    // The next `up` on the same dir cleans up what the dead one left.
    let cgroup_root = st["cgroup_root"].as_str().unwrap().to_owned();
    assert!(cgroup_fs_dir(&cgroup_root).exists());
    let up = Up::start(&dir);
    assert!(
        !cgroup_fs_dir(&cgroup_root).exists(),
        "stale cgroup root removed"
    );
    assert!(up.signal_and_wait(Signal::INT).success());
    assert!(!dir.join("k8s").exists());
}
