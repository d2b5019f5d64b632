//! Fuzz target for `parse_proc_cgroup` (docs/architecture.md, "Workload attestation" W1).
//!
//! Input: the first byte picks a root configuration, the rest is the file's contents.
//! Invariants checked on every input:
//! - no panic (libFuzzer reports one as a crash);
//! - a success names a canonical lowercase dashed UUID and 64 lowercase hex digits;
//! - a success is anchored: some line's path, after dropping leading `/..`, starts with a
//!   configured root followed by `/` and holds both the pod UID (in either driver's spelling)
//!   and the container ID.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sworn_caller::{CgroupRoots, parse_proc_cgroup};

const ROOT_SETS: [&[&str]; 3] = [
    &["/kubepods", "/kubepods.slice"],
    &["/docker/abc/kubepods", "/kubepods.slice"],
    &[
        "/sworn-test/kubepods",
        "/x/kubelet.slice/kubelet-kubepods.slice",
    ],
];

fn uuid_shaped(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

fn hex64(s: &str) -> bool {
    s.len() == 64
        && s.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fuzz_target!(|data: &[u8]| {
    let Some((selector, contents)) = data.split_first() else {
        return;
    };
    let set = ROOT_SETS[usize::from(*selector) % ROOT_SETS.len()];
    let roots = CgroupRoots::parse(set).unwrap();
    let Ok(found) = parse_proc_cgroup(contents, &roots) else {
        return;
    };
    let uid = found.pod_uid.to_string();
    let cid = found.container_id.as_str();
    assert!(uuid_shaped(&uid), "pod uid {uid:?}");
    assert!(hex64(cid), "container id {cid:?}");
    let text = std::str::from_utf8(contents).expect("a parsed file is utf-8");
    let escaped = uid.replace('-', "_");
    let anchored = text.lines().any(|line| {
        let Some(mut path) = line.splitn(3, ':').nth(2) else {
            return false;
        };
        while path.starts_with("/../") {
            path = &path[3..];
        }
        set.iter().any(|root| path.starts_with(&format!("{root}/")))
            && (path.contains(&uid) || path.contains(&escaped))
            && path.contains(cid)
    });
    assert!(anchored, "unanchored success {found:?} from {text:?}");
});
