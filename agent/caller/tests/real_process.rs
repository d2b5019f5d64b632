//! `Caller` against real processes over a real unix socket: the facts match what the kernel
//! and `sha256sum` say, and callers that exit or hand their socket away are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::Command;

use common::{Mode, accept, connect, listener, sleep_binary, state_of, wait_for_exec, wait_until};
use sworn_caller::{Caller, CallerError, PeerPidfd, PidHandle};

fn kernel_has_peer_pidfd() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 5)
}

fn sha256sum(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum (coreutils)");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn facts_of_a_real_caller_match_the_kernel_and_sha256sum() {
    let (_dir, path, listener) = listener();
    let connector = connect(&path, Mode::Exec);
    let stream = accept(&listener);
    let caller = Caller::capture(&stream).unwrap();

    assert_eq!(caller.pid(), connector.pid());
    assert_eq!(caller.uid(), rustix::process::geteuid().as_raw());
    assert_eq!(caller.gid(), rustix::process::getegid().as_raw());
    assert!(caller.start_ticks() <= caller.accept_ticks());
    let expected_handle = if kernel_has_peer_pidfd() {
        PidHandle::PeerPidfd
    } else {
        PidHandle::PidfdOpen
    };
    assert_eq!(caller.pid_handle(), expected_handle);

    let sleep = sleep_binary();
    wait_for_exec(connector.pid(), &sleep);
    let facts = caller
        .unix_facts(Some(&sworn_caller::DigestCache::default()))
        .unwrap();
    assert_eq!(facts.uid, caller.uid());
    assert_eq!(facts.gid, caller.gid());
    assert_eq!(facts.exe_link, sleep);
    assert_eq!(
        facts.exe_path.as_ref(),
        Some(&sleep),
        "same file in our mount namespace"
    );
    assert_eq!(facts.exe_sha256.unwrap().to_hex(), sha256sum(&sleep));
    // Asked not to hash: the same facts, without a digest.
    let unhashed = caller.unix_facts(None).unwrap();
    assert_eq!((unhashed.exe_sha256, unhashed.digest_source), (None, None));
    assert_eq!(unhashed.exe_path, facts.exe_path);
    let mut groups: Vec<u32> = rustix::process::getgroups()
        .unwrap()
        .iter()
        .map(|g| g.as_raw())
        .collect();
    let mut got = facts.supplementary_gids.clone();
    groups.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, groups);
}

#[test]
fn a_caller_that_exits_before_inspection_is_refused() {
    let (_dir, path, listener) = listener();
    let mut connector = connect(&path, Mode::WaitExit);
    let mut stream = accept(&listener);
    let caller = Caller::capture(&stream).unwrap();
    caller.verify_unchanged().unwrap();

    stream.write_all(b"x").unwrap();
    assert!(connector.child.wait().unwrap().success());
    let err = caller
        .unix_facts(Some(&sworn_caller::DigestCache::default()))
        .unwrap_err();
    assert!(
        matches!(err, CallerError::Gone { pid } if pid == connector.pid()),
        "{err:?}"
    );
    let err = caller.pod_container(&Default::default()).unwrap_err();
    assert!(matches!(err, CallerError::Gone { .. }), "{err:?}");
}

#[test]
fn a_zombie_caller_is_refused() {
    let (_dir, path, listener) = listener();
    let connector = connect(&path, Mode::WaitExit);
    let mut stream = accept(&listener);
    let caller = Caller::capture(&stream).unwrap();

    stream.write_all(b"x").unwrap();
    // Exited but not reaped: its /proc entry is still readable.
    wait_until("the connector to become a zombie", || {
        state_of(connector.pid()) == Some('Z')
    });
    let err = caller.verify_unchanged().unwrap_err();
    assert!(matches!(err, CallerError::Exited { .. }), "{err:?}");
    let err = caller
        .unix_facts(Some(&sworn_caller::DigestCache::default()))
        .unwrap_err();
    assert!(matches!(err, CallerError::Exited { .. }), "{err:?}");
}

#[test]
fn a_caller_that_hands_its_socket_to_a_child_and_exits_is_refused() {
    let (_dir, path, listener) = listener();
    let mut connector = connect(&path, Mode::WaitHandoff);
    let mut stream = accept(&listener);
    let caller = Caller::capture(&stream).unwrap();

    stream.write_all(b"x").unwrap();
    let heir = connector.handoff_pid();
    assert!(connector.child.wait().unwrap().success());
    // The heir is alive and holds the connection; the process that connected is not.
    assert!(
        matches!(state_of(heir), Some('S' | 'R')),
        "heir {heir} state {:?}",
        state_of(heir)
    );
    let err = caller
        .unix_facts(Some(&sworn_caller::DigestCache::default()))
        .unwrap_err();
    assert!(
        matches!(err, CallerError::Gone { pid } if pid == connector.pid()),
        "{err:?}"
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(heir as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
}

#[test]
fn a_caller_gone_before_accept_is_refused_at_capture() {
    let (_dir, path, listener) = listener();
    let mut connector = connect(&path, Mode::Exit);
    assert!(connector.child.wait().unwrap().success());
    let stream = accept(&listener);
    let err = Caller::capture(&stream).unwrap_err();
    assert!(
        matches!(err, CallerError::Gone { .. } | CallerError::Exited { .. }),
        "{err:?}"
    );
}

#[test]
fn the_startup_probe_agrees_with_the_kernel_version() {
    assert_eq!(
        sworn_caller::peer_pidfd_supported(),
        kernel_has_peer_pidfd()
    );
}

/// The hook the agent's `danger_ignore_peer_pidfd` uses: capture as on a kernel without
/// `SO_PEERPIDFD`. The caller is held by a `pidfd_open` made after accept, and the guard
/// still refuses it once it has exited.
#[test]
fn without_so_peerpidfd_the_caller_is_held_by_pidfd_open_and_still_guarded() {
    let (_dir, path, listener) = listener();
    let mut connector = connect(&path, Mode::WaitExit);
    let mut stream = accept(&listener);
    let caller = Caller::capture_with(&stream, PeerPidfd::Ignore).unwrap();
    assert_eq!(caller.pid_handle(), PidHandle::PidfdOpen);
    assert_eq!(caller.pid(), connector.pid());
    caller.verify_unchanged().unwrap();
    stream.write_all(b"x").unwrap();
    assert!(connector.child.wait().unwrap().success());
    let err = caller.verify_unchanged().unwrap_err();
    assert!(
        matches!(err, CallerError::Gone { .. } | CallerError::Exited { .. }),
        "{err:?}"
    );
}
