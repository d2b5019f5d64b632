//! Refuse to run when the agent is plainly not in the node's PID namespace.
//!
//! Workload attestation (docs/architecture.md, "Workload attestation", W1) turns the peer pid of a Workload
//! API connection into `/proc/<pid>/cgroup`. That only works when the agent
//! sees the workloads' processes, which in Kubernetes means `hostPID: true`.
//! Without it the agent sees only its own pod, every caller's pid is
//! meaningless to it, and it must say so at startup instead of denying every
//! workload later.
//!
//! A container cannot in general prove that it is in the *host's* namespace,
//! and a CI runner, a kind node or a dev container legitimately run the agent
//! in a nested PID namespace together with its workloads. So the rule asks a
//! narrower question — can the agent see anything besides its own pod? — and
//! accepts on the first of these that holds:
//!
//! 1. **Kernel threads are visible** (`PF_KTHREAD` in `/proc/<pid>/stat`).
//!    They belong to the initial PID namespace only, so this is a plain host,
//!    a VM, or a `hostPID` pod on a real node.
//! 2. **A process outside the agent's pod is visible**: its cgroup is neither
//!    the agent's own cgroup subtree nor a sibling of it (other containers of
//!    the same pod are siblings under the pod cgroup). This is a `hostPID` pod
//!    on a node that itself runs in a container (kind), where kernel threads
//!    are hidden but the node's init, kubelet and other pods are visible.
//! 3. **PID 1 is neither the agent itself nor in a sibling cgroup** (the pod
//!    sandbox's pause process under `shareProcessNamespace`): the agent runs
//!    below the init of a shared namespace, as in a CI container.
//!
//! Otherwise it refuses: the agent is PID 1 of its own namespace (a pod
//! without `hostPID`), or PID 1 is its pod's sandbox and everything visible
//! is in its pod. Known limit: a pod without `hostPID` whose entrypoint is a
//! wrapper (tini) passes rule 3; the check catches the plain mistake, not
//! every misconfiguration.
//!
//! Cgroup paths are compared per hierarchy exactly as `/proc/<pid>/cgroup`
//! shows them to us; under a private cgroup namespace, paths outside it start
//! with `/..`, and those leading `..` segments are kept, so "outside" stays
//! outside.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `PF_KTHREAD` in the `flags` field of `/proc/<pid>/stat` (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

/// Why the agent will not run, or why the check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HostPidError {
    /// The agent sees only its own pod's processes.
    #[error(
        "the agent is not in the host PID namespace: it sees only its own pod's processes ({visible} visible, {why}); set `hostPID: true` in the agent's pod spec"
    )]
    OwnPodOnly {
        /// How many processes were visible.
        visible: usize,
        /// Which observation decided it.
        why: &'static str,
    },
    /// `/proc` could not be read at all.
    #[error("cannot inspect {path}: {source}")]
    Proc {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why the check accepted (for a startup log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidNamespaceView {
    /// Kernel threads are visible: the initial PID namespace.
    InitialNamespace,
    /// A process outside the agent's pod is visible (e.g. a kind node).
    SeesOtherProcesses {
        /// One such process.
        pid: u32,
    },
    /// The agent runs below the init of a shared namespace (e.g. CI).
    BelowSharedInit,
}

/// One visible process, as far as the rule needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessView {
    /// Pid in the namespace of the `/proc` that was read.
    pub pid: u32,
    /// Whether it is a kernel thread.
    pub kernel_thread: bool,
    /// Cgroup path per hierarchy (`"<id>:<controllers>"`), as in `/proc/<pid>/cgroup`.
    pub cgroups: BTreeMap<String, String>,
}

/// Everything the rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Our own pid in that namespace.
    pub self_pid: u32,
    /// Every process that could be read (ourselves included).
    pub processes: Vec<ProcessView>,
}

/// Checks the running process against the real `/proc`.
pub fn check() -> Result<PidNamespaceView, HostPidError> {
    decide(&observe(Path::new("/proc"))?)
}

/// Reads the observation from a procfs mounted at `proc_root`. Processes that
/// exit while being read are skipped.
pub fn observe(proc_root: &Path) -> Result<Observation, HostPidError> {
    let proc_err = |path: PathBuf| move |source| HostPidError::Proc { path, source };
    let self_link = proc_root.join("self");
    let target = std::fs::read_link(&self_link).map_err(proc_err(self_link.clone()))?;
    let self_pid = target
        .to_str()
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(|| HostPidError::Proc {
            path: self_link,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a pid"),
        })?;
    let entries = std::fs::read_dir(proc_root).map_err(proc_err(proc_root.to_owned()))?;
    let mut processes = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(view) = read_process(&entry.path(), pid) {
            processes.push(view);
        }
    }
    processes.sort_by_key(|p| p.pid);
    Ok(Observation {
        self_pid,
        processes,
    })
}

fn read_process(dir: &Path, pid: u32) -> Option<ProcessView> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let cgroup = std::fs::read_to_string(dir.join("cgroup")).ok()?;
    Some(ProcessView {
        pid,
        kernel_thread: stat_flags(&stat)? & PF_KTHREAD != 0,
        cgroups: parse_cgroups(&cgroup),
    })
}

/// Field 9 (`flags`) of a stat line. The command name in field 2 may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn stat_flags(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // rest: " state ppid pgrp session tty_nr tpgid flags ..."
    rest.split_whitespace().nth(6)?.parse().ok()
}

fn parse_cgroups(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (id, rest) = line.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            Some((format!("{id}:{controllers}"), path.to_owned()))
        })
        .collect()
}

/// The rule of this module's documentation, on an observation.
pub fn decide(obs: &Observation) -> Result<PidNamespaceView, HostPidError> {
    let visible = obs.processes.len();
    if obs.processes.iter().any(|p| p.kernel_thread) {
        return Ok(PidNamespaceView::InitialNamespace);
    }
    let Some(me) = obs.processes.iter().find(|p| p.pid == obs.self_pid) else {
        // We always see ourselves; if not, this procfs is not our namespace's
        // and says nothing about what we can attest.
        return Err(HostPidError::OwnPodOnly {
            visible,
            why: "this /proc does not show the agent itself",
        });
    };
    if let Some(other) = obs
        .processes
        .iter()
        .find(|p| relation(me, p) == Relation::OutsidePod)
    {
        return Ok(PidNamespaceView::SeesOtherProcesses { pid: other.pid });
    }
    if obs.self_pid == 1 {
        return Err(HostPidError::OwnPodOnly {
            visible,
            why: "the agent is PID 1 of its namespace",
        });
    }
    match obs.processes.iter().find(|p| p.pid == 1) {
        Some(init) if relation(me, init) == Relation::Sibling => Err(HostPidError::OwnPodOnly {
            visible,
            why: "PID 1 is another container of the agent's pod (the pod sandbox)",
        }),
        Some(_) => Ok(PidNamespaceView::BelowSharedInit),
        None => Err(HostPidError::OwnPodOnly {
            visible,
            why: "PID 1 is not visible",
        }),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Relation {
    /// In our cgroup or below it.
    OwnContainer,
    /// Below our parent cgroup, but not below ours: another container of our pod.
    Sibling,
    /// Anywhere else.
    OutsidePod,
}

/// How `other` relates to `me`, over the hierarchies both list. A process is
/// outside our pod if any hierarchy says so, and a sibling if any says so and
/// none says outside.
fn relation(me: &ProcessView, other: &ProcessView) -> Relation {
    let mut result = Relation::OwnContainer;
    for (key, mine) in &me.cgroups {
        let Some(theirs) = other.cgroups.get(key) else {
            continue;
        };
        let mine = segments(mine);
        let theirs = segments(theirs);
        if is_beneath(&theirs, &mine) {
            continue;
        }
        if is_beneath(&theirs, &parent(&mine)) {
            result = Relation::Sibling;
        } else {
            return Relation::OutsidePod;
        }
    }
    result
}

/// Path segments with `.` dropped and `x/..` folded; leading `..` are kept.
fn segments(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." if out.last().is_some_and(|s| *s != "..") => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out
}

/// Whether `path` is `base` or below it. A leading `..` after the common
/// prefix climbs out of `base` (the namespace root's parent), so it is not below.
fn is_beneath(path: &[&str], base: &[&str]) -> bool {
    path.starts_with(base) && path.get(base.len()) != Some(&"..")
}

/// The parent of a segment list; the parent of the namespace root is `..`.
fn parent<'a>(segs: &[&'a str]) -> Vec<&'a str> {
    match segs.split_last() {
        Some((last, rest)) if *last != ".." => rest.to_vec(),
        _ => {
            let mut up = segs.to_vec();
            up.push("..");
            up
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn v2(pid: u32, path: &str) -> ProcessView {
        ProcessView {
            pid,
            kernel_thread: false,
            cgroups: BTreeMap::from([("0:".to_owned(), path.to_owned())]),
        }
    }

    fn kthread(pid: u32) -> ProcessView {
        ProcessView {
            kernel_thread: true,
            ..v2(pid, "/")
        }
    }

    fn obs(self_pid: u32, processes: Vec<ProcessView>) -> Observation {
        Observation {
            self_pid,
            processes,
        }
    }

    fn refused(o: &Observation) -> &'static str {
        match decide(o) {
            Err(HostPidError::OwnPodOnly { why, .. }) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn stat_flags_survive_hostile_command_names() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 2097216 0 0";
        assert_eq!(stat_flags(line), Some(2_097_216));
        assert!(stat_flags(line).unwrap() & PF_KTHREAD != 0);
        assert_eq!(stat_flags("garbage"), None);
    }

    #[test]
    fn cgroup_paths_fold_dots_but_keep_leading_parents() {
        assert_eq!(segments("/"), Vec::<&str>::new());
        assert_eq!(segments("/a/./b/../c"), vec!["a", "c"]);
        assert_eq!(segments("/../../x"), vec!["..", "..", "x"]);
        assert_eq!(parent(&[]), vec![".."]);
        assert_eq!(parent(&[".."]), vec!["..", ".."]);
        assert_eq!(parent(&["a", "b"]), vec!["a"]);
        // "/" is beneath "/"; "/../x" (outside a cgroup namespace) is not.
        assert!(is_beneath(&[], &[]));
        assert!(is_beneath(&["a", "b"], &["a"]));
        assert!(!is_beneath(&["..", "x"], &[]));
        assert!(is_beneath(&["..", "x"], &[".."]));
        assert!(!is_beneath(&["..", "..", "x"], &[".."]));
    }

    #[test]
    fn plain_host_and_host_pid_pod_see_kernel_threads() {
        // A hostPID pod on a real node: private cgroupns, so we are "/".
        let o = obs(
            4242,
            vec![v2(1, "/../../../../init.scope"), kthread(2), v2(4242, "/")],
        );
        assert_eq!(decide(&o).unwrap(), PidNamespaceView::InitialNamespace);
    }

    #[test]
    fn host_pid_pod_on_a_kind_node_sees_the_node_and_other_pods() {
        // No kernel threads (the node is a container), but the node's init and
        // another pod are outside our pod.
        let o = obs(
            900,
            vec![
                v2(1, "/../../../../init.scope"),
                v2(
                    300,
                    "/../../kubepods-besteffort-podb.slice/cri-containerd-x.scope",
                ),
                v2(900, "/"),
            ],
        );
        assert_eq!(
            decide(&o).unwrap(),
            PidNamespaceView::SeesOtherProcesses { pid: 1 }
        );
        // The same with the host's cgroup namespace and the cgroupfs driver.
        let pod = "/kubepods/besteffort/poda";
        let o = obs(
            900,
            vec![v2(1, "/init.scope"), v2(900, &format!("{pod}/ctr-agent"))],
        );
        assert!(decide(&o).is_ok());
    }

    #[test]
    fn pod_without_host_pid_is_refused() {
        // The agent is its container's entrypoint: PID 1, alone.
        assert_eq!(
            refused(&obs(1, vec![v2(1, "/")])),
            "the agent is PID 1 of its namespace"
        );
        // ...with `kubectl exec`ed processes beside it (same container).
        assert_eq!(
            refused(&obs(1, vec![v2(1, "/"), v2(17, "/")])),
            "the agent is PID 1 of its namespace"
        );
        // cgroup v1, host cgroup namespace: every hierarchy names our container.
        let ctr = "/kubepods.slice/kubepods-pod1.slice/cri-containerd-a.scope";
        let v1 = |pid| ProcessView {
            pid,
            kernel_thread: false,
            cgroups: BTreeMap::from([
                ("4:memory".to_owned(), ctr.to_owned()),
                ("8:pids".to_owned(), ctr.to_owned()),
            ]),
        };
        assert!(decide(&obs(1, vec![v1(1)])).is_err());
    }

    #[test]
    fn shared_process_namespace_pod_is_refused() {
        // PID 1 is the sandbox's pause process, a sibling container cgroup;
        // another container of the same pod is a sibling too.
        let o = obs(
            12,
            vec![
                v2(1, "/../cri-containerd-pause.scope"),
                v2(7, "/../cri-containerd-app.scope"),
                v2(12, "/"),
            ],
        );
        assert_eq!(
            refused(&o),
            "PID 1 is another container of the agent's pod (the pod sandbox)"
        );
        // The same without a cgroup namespace.
        let pod = "/kubepods/burstable/pod1";
        let o = obs(
            12,
            vec![
                v2(1, &format!("{pod}/pause")),
                v2(12, &format!("{pod}/agent")),
            ],
        );
        assert!(decide(&o).is_err());
    }

    #[test]
    fn ci_container_below_its_init_is_accepted() {
        // Everything in the container's cgroup root, the agent below PID 1.
        let o = obs(
            55,
            vec![v2(1, "/"), v2(20, "/"), v2(55, "/"), v2(56, "/sub")],
        );
        assert_eq!(decide(&o).unwrap(), PidNamespaceView::BelowSharedInit);
    }

    #[test]
    fn a_proc_that_does_not_show_us_is_refused() {
        assert_eq!(
            refused(&obs(99, vec![v2(1, "/")])),
            "this /proc does not show the agent itself"
        );
        assert_eq!(
            refused(&obs(5, vec![v2(5, "/"), v2(6, "/")])),
            "PID 1 is not visible"
        );
    }

    #[test]
    fn this_machine_is_accepted() {
        // The test host is a plain host or a CI container; either is fine.
        let o = observe(Path::new("/proc")).unwrap();
        assert!(o.processes.iter().any(|p| p.pid == o.self_pid));
        check().unwrap();
    }

    #[test]
    fn missing_proc_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = observe(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }

    // The same check in real private PID namespaces (`unshare --pid`) and real
    // cgroups is in tests/e2e/tests/deploy_hostpid.rs.
}
