//! The W1 parser on what a real kernel reports: a real caller is moved into a real cgroup v2
//! directory shaped like a kubelet's pod cgroup under a per-run root, and `Caller` must find
//! the pod UID and container ID only when that root is configured.
//!
//! Needs root and a cgroup v2 hierarchy (`/sys/fs/cgroup` on a unified host, or
//! `/sys/fs/cgroup/unified` on a hybrid one). Every directory is removed leaf-to-root, and
//! every process killed, even when an assertion fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Mode, accept, connect, listener};
use sworn_caller::{Caller, CallerError, CgroupError, CgroupRoots, ContainerRuntime};

/// The mount point of the cgroup v2 hierarchy, after checking we may write to it.
fn cgroup2_mount() -> PathBuf {
    assert_eq!(
        rustix::process::geteuid().as_raw(),
        0,
        "the real-cgroup tests create cgroups and must run as root"
    );
    let fstype = |p: &str| {
        let out = Command::new("stat")
            .args(["-fc", "%T", p])
            .output()
            .expect("stat (coreutils)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    match fstype("/sys/fs/cgroup").as_str() {
        "cgroup2fs" => PathBuf::from("/sys/fs/cgroup"),
        "tmpfs" if fstype("/sys/fs/cgroup/unified") == "cgroup2fs" => {
            PathBuf::from("/sys/fs/cgroup/unified")
        }
        other => panic!(
            "no cgroup v2 hierarchy: /sys/fs/cgroup is {other:?}; mount one with \
             `mount -t cgroup2 none /sys/fs/cgroup/unified`"
        ),
    }
}

/// A chain of cgroup directories, removed leaf-to-root on drop. Processes must be gone first.
struct Tree {
    dirs: Vec<PathBuf>,
}

impl Tree {
    fn create(mount: &Path, relative: &[String]) -> Tree {
        let mut tree = Tree { dirs: Vec::new() };
        let mut dir = mount.to_path_buf();
        for seg in relative {
            dir.push(seg);
            std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            tree.dirs.push(dir.clone());
        }
        tree
    }

    fn leaf(&self) -> &Path {
        self.dirs.last().unwrap()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            // A just-killed process can take a moment to leave its cgroup.
            for _ in 0..200 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

fn container_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Moves `pid` into the cgroup at `dir`.
fn enter(dir: &Path, pid: u32) {
    std::fs::write(dir.join("cgroup.procs"), pid.to_string())
        .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", dir.display()));
}

#[test]
fn cgroupfs_layout_under_a_configured_run_root() {
    let mount = cgroup2_mount();
    let (run, pod, cid) = (
        format!("sworn-caller-test-{}", run_id()),
        uuid::Uuid::new_v4(),
        container_id(),
    );
    let segments = [
        run.clone(),
        "kubepods".into(),
        "besteffort".into(),
        format!("pod{pod}"),
        cid.clone(),
    ];
    // Declared before the connector so it is dropped after the process is killed.
    let tree = Tree::create(&mount, &segments);
    let (_dir, path, listener) = listener();
    let connector = connect(&path, Mode::Exec);
    let stream = accept(&listener);
    let caller = Caller::capture(&stream).unwrap();
    enter(tree.leaf(), connector.pid());

    let roots = CgroupRoots::parse(["/kubepods", &format!("/{run}/kubepods")]).unwrap();
    let found = caller.pod_container(&roots).unwrap();
    assert_eq!(found.pod_uid.to_string(), pod.to_string());
    assert_eq!(found.container_id.as_str(), cid);
    assert_eq!(found.runtime, ContainerRuntime::Unnamed);

    // Without the run root configured, the same real path is a forgery.
    let err = caller.pod_container(&CgroupRoots::default()).unwrap_err();
    assert!(
        matches!(
            err,
            CallerError::Cgroup {
                source: CgroupError::OutsideRoots { .. },
                ..
            }
        ),
        "{err:?}"
    );

    // In the pod's own cgroup, like the pause process: no container.
    enter(&tree.dirs[3], connector.pid());
    let err = caller.pod_container(&roots).unwrap_err();
    assert!(
        matches!(
            err,
            CallerError::Cgroup {
                source: CgroupError::NoContainer { .. },
                ..
            }
        ),
        "{err:?}"
    );
    drop(connector);
}

#[test]
fn systemd_layout_under_a_configured_run_root() {
    let mount = cgroup2_mount();
    let (run, pod, cid) = (
        format!("sworn-caller-test-{}", run_id()),
        uuid::Uuid::new_v4(),
        container_id(),
    );
    let escaped = pod.to_string().replace('-', "_");
    let segments = [
        run.clone(),
        "kubepods.slice".into(),
        "kubepods-burstable.slice".into(),
        format!("kubepods-burstable-pod{escaped}.slice"),
        format!("cri-containerd-{cid}.scope"),
    ];
    let tree = Tree::create(&mount, &segments);
    let (_dir, path, listener) = listener();
    let connector = connect(&path, Mode::Exec);
    let stream = accept(&listener);
    let caller = Caller::capture(&stream).unwrap();
    enter(tree.leaf(), connector.pid());

    let roots = CgroupRoots::parse([format!("/{run}/kubepods.slice")]).unwrap();
    let found = caller.pod_container(&roots).unwrap();
    assert_eq!(found.pod_uid.to_string(), pod.to_string());
    assert_eq!(found.container_id.as_str(), cid);
    assert_eq!(found.runtime, ContainerRuntime::Containerd);
    drop(connector);
}

/// The parser refuses a file with a line it cannot read, and relies on the kernel never
/// letting a cgroup name hold a newline (which could otherwise forge a whole line).
#[test]
fn the_kernel_refuses_newlines_in_cgroup_names() {
    let mount = cgroup2_mount();
    let forged = mount.join(format!("sworn-caller-test-{}\n0::", run_id()));
    let err = std::fs::create_dir(&forged).expect_err("kernel accepted a newline in a cgroup name");
    let _ = std::fs::remove_dir(&forged);
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::INVAL.raw_os_error()),
        "{err}"
    );
}
