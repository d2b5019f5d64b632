//! The agent's host-PID-namespace check (`agent/src/hostpid.rs`, whose unit
//! tests cover the rule on observations) in real PID namespaces: the
//! `hostpid-verdict` program, which runs the agent's own check, is started
//! inside `unshare --pid --fork --mount-proc`, as PID 1 or below a shell that
//! is PID 1, and for two cases in real cgroups from the dev harness: a private
//! PID namespace whose PID 1 is the "pod sandbox" in a sibling container
//! cgroup (`shareProcessNamespace` without `hostPID`: refused), and one whose
//! PID 1 is outside the agent's pod (a `hostPID` pod on a node that is itself
//! a container, as in kind: accepted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use sworn_dev::k8s::{CgroupRoot, CgroupStyle, ContainerCgroup};

/// The program that prints the verdict from inside the namespace.
const VERDICT: &str = env!("CARGO_BIN_EXE_hostpid-verdict");

/// Runs `unshare --pid --fork --mount-proc <args>` and returns the verdict line
/// the program printed (without its marker).
fn unshare(args: &[&str]) -> String {
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .args(args)
        .output()
        .expect("unshare (util-linux) must be installed to run this test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "unshare --pid --fork --mount-proc failed (root is required): {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("HOSTPID-VERDICT ").map(str::to_owned))
        .unwrap_or_else(|| panic!("the verdict program printed no verdict:\n{stdout}"))
}

/// In a new PID namespace: a shell stays PID 1 (moved into `pid1`'s cgroup
/// when given), and the verdict program runs below it in `agent`'s cgroup.
fn verdict_in_cgroups(pid1: Option<&ContainerCgroup>, agent: &ContainerCgroup) -> String {
    let procs = |c: &ContainerCgroup| c.procs_file().display().to_string();
    let script = r#"P1="$1"; shift
if [ -n "$P1" ]; then echo $$ > "$P1"; fi
sh -c 'echo $$ > "$1"; shift; exec "$@"' inner "$@"
exit $?"#;
    let pid1 = pid1.map(procs).unwrap_or_default();
    let agent = procs(agent);
    unshare(&["sh", "-c", script, "outer", &pid1, &agent, VERDICT])
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
fn a_real_private_pid_namespace_is_refused() {
    // Like a pod without hostPID: the agent is PID 1 and sees nothing else.
    let v = unshare(&[VERDICT]);
    assert!(v.starts_with("REFUSE "), "{v}");
    assert!(v.contains("PID 1 of its namespace"), "{v}");
    assert!(v.contains("hostPID: true"), "{v}");
    assert!(v.ends_with("SELF=1"), "{v}");
}

#[test]
fn a_real_nested_namespace_below_its_init_is_accepted() {
    // Like a CI container: a shell is PID 1 and the agent runs below it
    // (two commands, so the shell cannot exec the program in its place).
    let v = unshare(&["sh", "-c", "\"$0\"; exit $?", VERDICT]);
    assert!(v.starts_with("ACCEPT BelowSharedInit"), "{v}");
    assert!(!v.ends_with("SELF=1"), "{v}");
}

#[test]
fn pod_sandbox_as_pid_1_in_a_sibling_cgroup_is_refused() {
    for style in [CgroupStyle::Cgroupfs, CgroupStyle::Systemd] {
        let root = CgroupRoot::create_unique("sworn-hostpid").unwrap();
        let c = pod(&root, style, &["a1a1a1a1", "b2b2b2b2"]);
        let v = verdict_in_cgroups(Some(&c[0]), &c[1]);
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
    let v = verdict_in_cgroups(None, &c[0]);
    assert_eq!(v, "ACCEPT SeesOtherProcesses { pid: 1 } SELF=2");
}
