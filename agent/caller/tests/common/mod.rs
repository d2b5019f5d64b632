//! Real callers for the integration tests: perl (part of every Debian base system) connects to
//! a unix socket and then execs `sleep`, exits, or hands the socket to a child. The peer the
//! kernel records is the perl process, whose pid stays the same across `exec`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONNECTOR: &str = r#"
use strict; use Socket;
BEGIN { $^F = 1000 }  # keep the socket open across exec
my ($path, $mode) = @ARGV;
socket(my $s, AF_UNIX, SOCK_STREAM, 0) or die "socket: $!";
connect($s, pack_sockaddr_un($path)) or die "connect: $!";
exit 0 if $mode eq 'exit';
if ($mode eq 'exec') { exec { 'sleep' } 'sleep', '30'; die "exec: $!" }
sysread($s, my $byte, 1);
exit 0 if $mode eq 'wait-exit';
if ($mode eq 'wait-handoff') {
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) { exec { 'sleep' } 'sleep', '30'; die "exec: $!" }
    $| = 1; print "$pid\n"; exit 0;
}
die "unknown mode $mode";
"#;

/// How the connecting process behaves after `connect`.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Exits at once.
    Exit,
    /// Execs `sleep 30`, keeping the socket.
    Exec,
    /// Waits for one byte, then exits.
    WaitExit,
    /// Waits for one byte, forks a `sleep 30` child that keeps the socket, prints the child's
    /// pid and exits.
    WaitHandoff,
}

/// A spawned connector, killed and reaped on drop.
pub struct Connector {
    pub child: Child,
}

impl Connector {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// For `WaitHandoff`: the pid of the child that inherited the socket.
    pub fn handoff_pid(&mut self) -> u32 {
        let mut line = String::new();
        BufReader::new(self.child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim()
            .parse()
            .expect("connector printed its child's pid")
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A listener on a fresh socket path, and the directory that holds it.
pub fn listener() -> (tempfile::TempDir, PathBuf, UnixListener) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    (dir, path, listener)
}

pub fn connect(path: &Path, mode: Mode) -> Connector {
    let mode = match mode {
        Mode::Exit => "exit",
        Mode::Exec => "exec",
        Mode::WaitExit => "wait-exit",
        Mode::WaitHandoff => "wait-handoff",
    };
    let child = Command::new("perl")
        .args(["-e", CONNECTOR])
        .arg(path)
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .expect("these tests need perl (Debian: apt-get install perl-base)");
    Connector { child }
}

/// Accepts one connection, failing the test after ten seconds.
pub fn accept(listener: &UnixListener) -> UnixStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match listener.accept() {
            Ok((stream, _)) => return stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection within 10 s");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Polls `cond` every 5 ms until it holds, failing the test after ten seconds.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The canonical path of the `sleep` that `PATH` finds, as `exec` would.
pub fn sleep_binary() -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH is set");
    std::env::split_paths(&path)
        .map(|dir| dir.join("sleep"))
        .find(|p| p.is_file())
        .expect("sleep (coreutils) on PATH")
        .canonicalize()
        .unwrap()
}

/// Blocks until `pid` has exec'd `binary`.
pub fn wait_for_exec(pid: u32, binary: &Path) {
    wait_until("the connector to exec", || {
        std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| p == binary)
    });
}

/// The state letter of `pid` from `/proc/<pid>/stat`, read independently of the crate.
pub fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}
