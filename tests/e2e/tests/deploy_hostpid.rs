//! The host-PID-namespace check of `agent/src/hostpid.rs`: its unit tests
//! (a real `unshare --pid --fork --mount-proc` child among them) are compiled
//! here until the agent crate declares the module, and two more cases need
//! real cgroups from the dev harness: a private PID namespace whose PID 1 is
//! the "pod sandbox" in a sibling container cgroup (`shareProcessNamespace`
//! without `hostPID`: refused), and one whose PID 1 is outside the agent's
//! pod (a `hostPID` pod on a node that is itself a container, as in kind:
//! accepted).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../../../agent/src/hostpid.rs"]
mod hostpid;

use std::process::Command;

use sworn_dev::k8s::{CgroupRoot, CgroupStyle, ContainerCgroup};

const CHILD_ENV: &str = "SWORN_HOSTPID_CGROUP_CHILD";

/// Runs in the child: prints the verdict for the parent.
#[test]
fn cgroup_child_entry() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let verdict = match hostpid::check() {
        Ok(v) => format!("ACCEPT {v:?}"),
        Err(e) => format!("REFUSE {e}"),
    };
    println!("CGROUP-VERDICT {verdict} SELF={}", std::process::id());
}

/// In a new PID namespace: a shell stays PID 1 (moved into `pid1`'s cgroup
/// when given), and this test binary runs below it in `agent`'s cgroup.
fn verdict(pid1: Option<&ContainerCgroup>, agent: &ContainerCgroup) -> String {
    let exe = std::env::current_exe().unwrap();
    let procs = |c: &ContainerCgroup| c.procs_file().display().to_string();
    let script = r#"P1="$1"; shift
if [ -n "$P1" ]; then echo $$ > "$P1"; fi
sh -c 'echo $$ > "$1"; shift; exec "$@"' inner "$@"
exit $?"#;
    let out = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            script,
            "outer",
        ])
        .arg(pid1.map(procs).unwrap_or_default())
        .arg(procs(agent))
        .arg(&exe)
        .args([
            "--exact",
            "cgroup_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("unshare (util-linux) must be installed to run this test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "unshare failed (root is required): {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .split_once("CGROUP-VERDICT ")
        .map(|(_, v)| v.lines().next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("child printed no verdict:\n{stdout}"))
}

fn pod(root: &CgroupRoot, style: CgroupStyle, containers: &[&str]) -> Vec<ContainerCgroup> {
    let uid = "6f1c1f0e-9a51-4c4e-8d1e-0a4f6b1b2c3d";
    containers
        .iter()
        .map(|id| {
            let c = root.container(style, uid, id);
            c.create().unwrap();
            c
        })
        .collect()
}

#[test]
fn pod_sandbox_as_pid_1_in_a_sibling_cgroup_is_refused() {
    for style in [CgroupStyle::Cgroupfs, CgroupStyle::Systemd] {
        let root = CgroupRoot::create_unique("sworn-hostpid").unwrap();
        let c = pod(&root, style, &["a1a1a1a1", "b2b2b2b2"]);
        let v = verdict(Some(&c[0]), &c[1]);
        assert!(
            v.starts_with("REFUSE ") && v.contains("PID 1 is another container"),
            "{style:?}: {v}"
        );
        assert!(v.contains("hostPID: true"), "{v}");
        assert!(v.ends_with("SELF=2"), "{v}");
    }
}

#[test]
fn pid_1_outside_the_agents_pod_is_accepted() {
    let root = CgroupRoot::create_unique("sworn-hostpid").unwrap();
    let c = pod(&root, CgroupStyle::Systemd, &["c3c3c3c3"]);
    // PID 1 stays in the test's own cgroup, outside the "pod".
    let v = verdict(None, &c[0]);
    assert_eq!(v, "ACCEPT SeesOtherProcesses { pid: 1 } SELF=2");
}
