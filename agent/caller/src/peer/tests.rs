//! The guard against real processes, through the test-only constructor that takes the
//! accept time as an argument (a real socket's accept time is always "now").

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::*;

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_sleep() -> Reaped {
    Reaped(
        Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep (coreutils) for the guard tests"),
    )
}

fn ids() -> (u32, u32) {
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

#[test]
fn a_process_started_after_the_accept_is_refused() {
    let (uid, gid) = ids();
    let accept = boot_ticks_now();
    // Several clock ticks (10 ms each at the usual 100 Hz) between the accept and the start.
    std::thread::sleep(Duration::from_millis(60));
    let child = spawn_sleep();
    let err = Caller::for_test(child.0.id(), uid, gid, accept).unwrap_err();
    assert!(
        matches!(err, CallerError::StartedAfterAccept { start_ticks, accept_ticks, .. }
            if start_ticks > accept_ticks && accept_ticks == accept),
        "{err:?}"
    );
}

#[test]
fn a_process_started_before_the_accept_is_captured_and_held() {
    let (uid, gid) = ids();
    let child = spawn_sleep();
    let caller = Caller::for_test(child.0.id(), uid, gid, boot_ticks_now()).unwrap();
    assert!(caller.start_ticks() <= caller.accept_ticks());
    assert_eq!(caller.pid_handle(), PidHandle::PidfdOpen);
    caller.verify_unchanged().unwrap();
}

#[test]
fn a_caller_that_exits_after_capture_is_refused() {
    let (uid, gid) = ids();
    let mut child = spawn_sleep();
    let caller = Caller::for_test(child.0.id(), uid, gid, boot_ticks_now()).unwrap();
    child.0.kill().unwrap();
    // Not reaped yet: a zombie, whose stat is still readable.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match caller.verify_unchanged() {
            Err(CallerError::Exited { pid }) => {
                assert_eq!(pid, child.0.id());
                break;
            }
            other => assert!(Instant::now() < deadline, "still accepted: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reaped: the held /proc directory now refuses every read.
    child.0.wait().unwrap();
    let err = caller.inspect(|proc| proc.cgroup()).unwrap_err();
    assert!(matches!(err, CallerError::Gone { .. }), "{err:?}");
}
