//! Fails on purpose, to show (and test) what a failing test prints: a child that writes 300
//! lines to stdout and to stderr, a log file nobody registered, a line of in-process
//! tracing, a directory nested in the first with a child of its own, then a panic. Prints the
//! two directories' paths, outer first.

use std::process::Command;

fn main() {
    sworn_harness::trace::capture();
    let dir = sworn_harness::RunDir::new("sworn-harness-failing-run-").unwrap_or_else(|e| {
        eprintln!("cannot create the run directory: {e}");
        std::process::exit(2);
    });
    println!("{}", dir.path().display());
    let script =
        r#"i=1; while [ $i -le 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done"#;
    let status = dir
        .output("counter", Command::new("sh").args(["-c", script]))
        .map(|o| o.status);
    let log: String = (1..=300).map(|i| format!("log {i}\n")).collect();
    let written = std::fs::write(dir.path().join("daemon.log"), log);
    // A directory inside another (a control plane's inside a test's) reports first, being
    // dropped first; the outer report does not print its files again.
    let inner = sworn_harness::RunDir::new_in(dir.path(), "inner-").unwrap_or_else(|e| {
        eprintln!("cannot create the inner directory: {e}");
        std::process::exit(2);
    });
    println!("{}", inner.path().display());
    let nested = inner
        .output(
            "nested",
            Command::new("echo").arg("from the inner directory"),
        )
        .map(|o| o.status);
    tracing::info!(marker = "in-process-line", "a line of in-process tracing");
    let _ = nested;
    panic!("failing on purpose (child: {status:?}, log file: {written:?})");
}
