//! The binary's flag handling: refusals exit 64 with a message naming the problem, before any
//! Workload API connection is attempted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(support::helper_bin())
        .args(args)
        .env_remove("SPIFFE_ENDPOINT_SOCKET")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SOCKET: &str = "unix:///nonexistent/agent.sock";

#[test]
fn bad_flags_exit_64_with_a_reason() {
    // Client mode refuses plaintext on a non-loopback address.
    let (code, err) = run(&[
        "proxy",
        "client",
        "--socket",
        SOCKET,
        "--listen",
        "0.0.0.0:0",
        "--upstream",
        "127.0.0.1:1",
        "--expect-id",
        "spiffe://example.org/b",
    ]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
    // Server mode needs at least one rule.
    let (code, err) = run(&[
        "proxy",
        "server",
        "--socket",
        SOCKET,
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "127.0.0.1:1",
    ]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("no authorization rule"), "{err}");
    // Values are parsed at the edge.
    for (args, needle) in [
        (
            &[
                "proxy",
                "server",
                "--socket",
                SOCKET,
                "--listen",
                "127.0.0.1:0",
                "--backend",
                "127.0.0.1:1",
                "--allow-id",
                "https://x/y",
            ][..],
            "--allow-id",
        ),
        (
            &[
                "proxy",
                "server",
                "--socket",
                SOCKET,
                "--listen",
                "127.0.0.1:0",
                "--backend",
                "::1:80",
                "--allow-trust-domain",
                "example.org",
            ][..],
            "--backend",
        ),
        (
            &[
                "proxy",
                "server",
                "--socket",
                SOCKET,
                "--listen",
                "127.0.0.1:0",
                "--backend",
                "127.0.0.1:1",
                "--allow-prefix",
                "spiffe://td//",
            ][..],
            "--allow-prefix",
        ),
        (
            &[
                "files",
                "--socket",
                "relative/agent.sock",
                "--dir",
                "/tmp/x",
            ][..],
            "--socket",
        ),
        (
            &[
                "files", "--socket", SOCKET, "--dir", "/tmp/x", "--signal", "SIGKILL", "--pid", "1",
            ][..],
            "--signal",
        ),
        (
            &[
                "files", "--socket", SOCKET, "--dir", "/tmp/x", "--signal", "SIGHUP",
            ][..],
            "--pid",
        ),
        (
            &[
                "files", "--socket", SOCKET, "--dir", "/tmp/x", "--signal", "SIGHUP", "--pid", "0",
            ][..],
            "--pid",
        ),
        (
            &[
                "files", "--socket", SOCKET, "--dir", "/tmp/x", "--exec", "true", "--signal",
                "SIGHUP", "--pid", "1",
            ][..],
            "--exec",
        ),
        (&["files", "--dir", "/tmp/x"][..], "--socket"),
    ] {
        let (code, err) = run(args);
        assert_eq!(code, Some(64), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
}
