//! Table test of the W1 cgroup parser over `/proc/<pid>/cgroup` contents as kubelets,
//! runtimes and cgroup namespaces produce them, and as an attacker would forge them.
//!
//! Every fixture is written here by hand from the documented naming schemes (kubelet
//! cgroupfs and systemd drivers, containerd, CRI-O, Docker, kind); the IDs below are
//! arbitrary. Each case is named after what its content carries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sworn_caller::{CgroupError, CgroupRoots, ContainerRuntime, parse_proc_cgroup};

const UID: &str = "0c4a1a6e-3b5d-4f7e-9a2b-1c2d3e4f5a6b";
const UID_: &str = "0c4a1a6e_3b5d_4f7e_9a2b_1c2d3e4f5a6b";
const VICTIM: &str = "9e8d7c6b-5a49-4382-b1a0-f9e8d7c6b5a4";
const CID: &str = "3f1c9a7be2d04c58a6e1b7d9f0a2c4e68b1d3f5a7c9e0b2d4f6a8c0e2b4d6f81";
const CID2: &str = "aa11bb22cc33dd44ee55ff6600778899aabbccddeeff00112233445566778899";
const NODE: &str = "5d2e8f0a1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6";
const STATIC: &str = "6f3b8a21c9d04e7fa1b2c3d4e5f60718";

/// What a case must produce.
enum Want {
    Found(ContainerRuntime),
    Fails(fn(&CgroupError) -> bool),
}
use Want::{Fails, Found};

struct Case {
    name: &'static str,
    roots: &'static [&'static str],
    contents: String,
    want: Want,
}

const DEFAULT: &[&str] = &["/kubepods", "/kubepods.slice"];

fn case(name: &'static str, contents: impl Into<String>, want: Want) -> Case {
    Case {
        name,
        roots: DEFAULT,
        contents: contents.into(),
        want,
    }
}

fn rooted(
    name: &'static str,
    roots: &'static [&'static str],
    contents: String,
    want: Want,
) -> Case {
    Case {
        name,
        roots,
        contents,
        want,
    }
}

/// The same path on every v1 hierarchy of a typical hybrid host, plus the v2 line.
fn all_hierarchies(path: &str, unified: &str) -> String {
    let v1 = [
        "cpu,cpuacct",
        "memory",
        "pids",
        "devices",
        "freezer",
        "blkio",
        "name=systemd",
    ];
    let mut out: String = v1
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}:{c}:{path}\n", 12 - i))
        .collect();
    out.push_str(&format!("0::{unified}\n"));
    out
}

/// `Fails` with a check that the error is the given `CgroupError` variant (and pattern).
macro_rules! fails {
    ($variant:ident) => { Fails(|e| matches!(e, CgroupError::$variant)) };
    ($variant:ident $($pat:tt)+) => { Fails(|e| matches!(e, CgroupError::$variant $($pat)+)) };
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let fs_pod = format!("/kubepods/besteffort/pod{UID}");
    let sd_pod =
        format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice");
    vec![
        // Accepted.
        case("cgroupfs_v2_besteffort_plain_id", format!("0::{fs_pod}/{CID}\n"), Found(ContainerRuntime::Unnamed)),
        case("cgroupfs_v2_guaranteed_no_qos_level", format!("0::/kubepods/pod{UID}/{CID}\n"), Found(ContainerRuntime::Unnamed)),
        case("cgroupfs_v1_every_hierarchy_agrees", all_hierarchies(&format!("/kubepods/burstable/pod{UID}/{CID}"), &format!("/kubepods/burstable/pod{UID}/{CID}")), Found(ContainerRuntime::Unnamed)),
        case("cgroupfs_crio_prefixed_id", format!("0::{fs_pod}/crio-{CID}\n"), Found(ContainerRuntime::CriO)),
        case("systemd_escaped_uid", format!("0::{sd_pod}/cri-containerd-{CID}.scope\n"), Found(ContainerRuntime::Containerd)),
        case("systemd_guaranteed_crio", format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-{CID}.scope\n"), Found(ContainerRuntime::CriO)),
        case("systemd_v1_docker_every_hierarchy", all_hierarchies(&format!("{sd_pod}/docker-{CID}.scope"), &format!("{sd_pod}/docker-{CID}.scope")), Found(ContainerRuntime::Docker)),
        case("containerd_colon_form", format!("0::{sd_pod}:cri-containerd:{CID}\n"), Found(ContainerRuntime::Containerd)),
        case("crun_container_subgroup", format!("0::{sd_pod}/crio-{CID}.scope/container\n"), Found(ContainerRuntime::CriO)),
        case("cgroupns_dotdot_prefix", format!("0::/../../kubepods/besteffort/pod{UID}/{CID}\n"), Found(ContainerRuntime::Unnamed)),
        case("hybrid_v2_left_in_service_cgroup", all_hierarchies(&format!("{fs_pod}/{CID}"), "/system.slice/containerd.service"), Found(ContainerRuntime::Unnamed)),
        case("v1_controller_left_in_root", format!("13:misc:/\n4:memory:{fs_pod}/{CID}\n0::{fs_pod}/{CID}\n"), Found(ContainerRuntime::Unnamed)),
        case("no_trailing_newline", format!("0::{fs_pod}/{CID}"), Found(ContainerRuntime::Unnamed)),
        rooted("kind_docker_prefix_configured", &["/docker/5d2e8f0a1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6/kubepods"], format!("0::/docker/{NODE}/kubepods/besteffort/pod{UID}/{CID}\n"), Found(ContainerRuntime::Unnamed)),
        rooted("kind_systemd_kubelet_slice_configured", &["/docker/5d2e8f0a1b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6/kubelet.slice/kubelet-kubepods.slice"], format!("0::/docker/{NODE}/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope\n"), Found(ContainerRuntime::Containerd)),
        rooted("test_harness_root_configured", &["/kubepods", "/sworn-test-1234/kubepods"], format!("0::/sworn-test-1234/kubepods/pod{UID}/{CID}\n"), Found(ContainerRuntime::Unnamed)),
        // Forged or out-of-place subtrees.
        case("forged_under_user_slice", format!("0::/user.slice/user-1000.slice/user@1000.service/app.slice/kubepods/besteffort/pod{VICTIM}/{CID}\n"), fails!(OutsideRoots { line: 1, .. })),
        case("forged_systemd_names_under_user_slice", format!("0::/user.slice/user-1000.slice/user@1000.service/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope\n"), fails!(OutsideRoots { .. })),
        case("forged_under_writable_container_cgroupfs", format!("0::/system.slice/docker-{CID2}.scope/kubepods/pod{VICTIM}/{CID}\n"), fails!(OutsideRoots { .. })),
        case("kind_docker_prefix_not_configured", format!("0::/docker/{NODE}/kubepods/besteffort/pod{UID}/{CID}\n"), fails!(OutsideRoots { .. })),
        case("test_harness_root_not_configured", format!("0::/sworn-test-1234/kubepods/pod{UID}/{CID}\n"), fails!(OutsideRoots { .. })),
        case("cgroupns_relative_to_sibling_pod", format!("0::/../../../burstable/pod{UID}/{CID}\n"), fails!(OutsideRoots { .. })),
        case("plain_docker_container_not_a_pod", format!("0::/docker/{CID}\n"), fails!(OutsideRoots { .. })),
        case("pod_below_an_extra_level", format!("0::/kubepods/besteffort/extra/pod{UID}/{CID}\n"), fails!(UnexpectedLayout { .. })),
        case("systemd_missing_qos_slice", format!("0::/kubepods.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope\n"), fails!(UnexpectedLayout { .. })),
        case("systemd_qos_slice_mismatch", format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope\n"), fails!(UnexpectedLayout { .. })),
        case("process_in_qos_cgroup", "0::/kubepods/besteffort\n", fails!(UnexpectedLayout { .. })),
        case("process_in_root_cgroup_itself", "0::/kubepods.slice\n", fails!(UnexpectedLayout { .. })),
        // Disagreement.
        case("conflicting_pods_across_lines", format!("4:memory:{fs_pod}/{CID}\n0::/kubepods/besteffort/pod{VICTIM}/{CID}\n"), fails!(ConflictingIds { .. })),
        case("conflicting_containers_across_lines", format!("4:memory:{fs_pod}/{CID}\n0::{fs_pod}/{CID2}\n"), fails!(ConflictingIds { .. })),
        case("same_hierarchy_disagreeing", format!("0::/user.slice/x\n0::{fs_pod}/{CID}\n"), fails!(HierarchyDisagrees { hierarchy: 0 })),
        case("same_hierarchy_repeated", format!("0::{fs_pod}/{CID}\n0::{fs_pod}/{CID}\n"), fails!(Malformed { line: 2, .. })),
        // Nesting.
        case("nested_pod_under_container", format!("0::{fs_pod}/{CID}/kubepods/besteffort/pod{VICTIM}/{CID2}\n"), fails!(NestedSegments { .. })),
        case("nested_pod_under_pod", format!("0::{fs_pod}/pod{VICTIM}/{CID}\n"), fails!(NestedSegments { .. })),
        case("nested_container_under_container", format!("0::{fs_pod}/{CID}/{CID2}\n"), fails!(NestedSegments { .. })),
        case("nested_container_under_colon_form", format!("0::{sd_pod}:cri-containerd:{CID}/docker-{CID2}.scope\n"), fails!(NestedSegments { .. })),
        // Pods and containers that cannot be matched.
        case("static_pod_hash_uid", format!("0::/kubepods/besteffort/pod{STATIC}/{CID}\n"), fails!(StaticPodUid { .. })),
        case("static_pod_hash_uid_systemd", format!("0::/kubepods.slice/kubepods-pod{STATIC}.slice/cri-containerd-{CID}.scope\n"), fails!(StaticPodUid { .. })),
        case("pause_process_in_pod_cgroup", format!("0::{fs_pod}\n"), fails!(NoContainer { .. })),
        case("crio_conmon_scope", format!("0::{sd_pod}/crio-conmon-{CID}.scope\n"), fails!(UnrecognisedContainer { .. })),
        case("short_container_id", format!("0::{fs_pod}/{}\n", &CID[..63]), fails!(UnrecognisedContainer { .. })),
        case("uppercase_container_id", format!("0::{fs_pod}/{}\n", CID.to_uppercase()), fails!(UnrecognisedContainer { .. })),
        case("unknown_runtime_in_colon_form", format!("0::{sd_pod}:rkt:{CID}\n"), fails!(UnrecognisedContainer { .. })),
        case("systemd_uid_with_dashes", format!("0::/kubepods.slice/kubepods-pod{UID}.slice/crio-{CID}.scope\n"), fails!(InvalidPodUid { .. })),
        case("cgroupfs_uid_with_underscores", format!("0::/kubepods/pod{UID_}/{CID}\n"), fails!(InvalidPodUid { .. })),
        case("uppercase_pod_uid", format!("0::/kubepods/pod{}/{CID}\n", UID.to_uppercase()), fails!(InvalidPodUid { .. })),
        // Host processes.
        case("host_process_in_root_cgroup", "0::/\n", fails!(NotInPod)),
        case("host_process_in_system_slice", all_hierarchies("/system.slice/sshd.service", "/system.slice/sshd.service"), fails!(NotInPod)),
        case("podman_scope_is_not_a_pod", "0::/user.slice/user-1000.slice/user@1000.service/user.slice/podman-4242.scope\n", fails!(NotInPod)),
        // Malformed.
        case("empty_file", "", fails!(Malformed { line: 0, .. })),
        case("missing_field", format!("0:{fs_pod}/{CID}\n"), fails!(Malformed { line: 1, .. })),
        case("relative_path", format!("0::kubepods/pod{UID}/{CID}\n"), fails!(Malformed { .. })),
        case("hierarchy_not_a_number", "x::/\n", fails!(Malformed { .. })),
        case("hierarchy_signed", "+0::/\n", fails!(Malformed { .. })),
        case("v1_line_without_controllers", format!("3::{fs_pod}/{CID}\n"), fails!(Malformed { .. })),
        case("v2_line_with_controllers", format!("0:memory:{fs_pod}/{CID}\n"), fails!(Malformed { .. })),
        case("blank_line_between", format!("4:memory:{fs_pod}/{CID}\n\n0::{fs_pod}/{CID}\n"), fails!(Malformed { line: 2, .. })),
        case("unparseable_line_after_a_good_one", format!("0::{fs_pod}/{CID}\ngarbage\n"), fails!(Malformed { line: 2, .. })),
        case("dotdot_after_named_segment", format!("0::/user.slice/../kubepods/pod{UID}/{CID}\n"), fails!(Malformed { .. })),
        case("dot_segment", format!("0::/kubepods/./pod{UID}/{CID}\n"), fails!(Malformed { .. })),
        case("double_slash", format!("0::/kubepods//pod{UID}/{CID}\n"), fails!(Malformed { .. })),
        case("trailing_slash", format!("0::{fs_pod}/{CID}/\n"), fails!(Malformed { .. })),
    ]
}

#[test]
fn cgroup_table() {
    let mut failures = Vec::new();
    for case in cases() {
        let roots = CgroupRoots::parse(case.roots).unwrap();
        let got = parse_proc_cgroup(case.contents.as_bytes(), &roots);
        let ok = match (&case.want, &got) {
            (Found(runtime), Ok(found)) => {
                found.pod_uid.to_string() == UID
                    && found.container_id.as_str() == CID
                    && found.runtime == *runtime
            }
            (Fails(check), Err(e)) => check(e),
            _ => false,
        };
        if !ok {
            failures.push(format!("{}: got {got:?}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn non_utf8_is_malformed() {
    let got = parse_proc_cgroup(b"0::/kubepods/\xff\n", &CgroupRoots::default());
    assert!(
        matches!(got, Err(CgroupError::Malformed { line: 0, .. })),
        "{got:?}"
    );
}

#[test]
fn longest_configured_root_wins() {
    // `/a` alone would see `kubepods` as an unexpected level; the longer root anchors the pod.
    let roots = CgroupRoots::parse(["/a", "/a/kubepods"]).unwrap();
    let got = parse_proc_cgroup(
        format!("0::/a/kubepods/pod{UID}/{CID}\n").as_bytes(),
        &roots,
    )
    .unwrap();
    assert_eq!(got.pod_uid.to_string(), UID);
}
