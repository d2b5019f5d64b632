//! What a failing test prints and leaves behind, seen from outside: a program that fails on
//! purpose (`sworn-harness-failing-run`) after its child printed 300 lines, and a passing
//! run that leaves nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use sworn_harness::RunDir;

#[test]
fn a_failure_prints_the_last_200_lines_of_every_output_and_keeps_the_directory() {
    let out = Command::new(env!("CARGO_BIN_EXE_sworn-harness-failing-run"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(101), "it panicked:\n{stderr}");
    let mut paths = stdout.lines().map(PathBuf::from);
    let (dir, inner) = (paths.next().unwrap(), paths.next().unwrap());
    assert!(dir.is_dir(), "the run directory {} was kept", dir.display());
    let lines: Vec<&str> = stderr.lines().collect();

    // The nested directory reports first and once; the outer one says so.
    let nested = format!(
        "---- nested stdout : {} (all 1 lines) ----",
        inner.join("nested.stdout").display()
    );
    let at = lines
        .iter()
        .position(|l| *l == nested)
        .unwrap_or_else(|| panic!("no block {nested:?} in:\n{stderr}"));
    assert_eq!(lines[at + 1], "from the inner directory");
    assert_eq!(
        lines.iter().filter(|l| l.contains("nested.stdout")).count(),
        1,
        "printed once:\n{stderr}"
    );
    assert!(
        lines.contains(&"(2 files inside were printed above)"),
        "{stderr}"
    );

    // Each stream of the child, and the log file nobody registered, in a labelled block
    // naming its path, with exactly its last 200 lines.
    for (label, file, prefix) in [
        ("counter stdout", "counter.stdout", "out"),
        ("counter stderr", "counter.stderr", "err"),
        ("daemon.log", "daemon.log", "log"),
    ] {
        let header = format!(
            "---- {label} : {} (last 200 lines) ----",
            dir.join(file).display()
        );
        let at = lines
            .iter()
            .position(|l| *l == header)
            .unwrap_or_else(|| panic!("no block {header:?} in:\n{stderr}"));
        let body: Vec<String> = (101..=300).map(|i| format!("{prefix} {i}")).collect();
        assert_eq!(lines[at + 1..at + 201], body, "block {label}");
        assert!(
            !lines.contains(&format!("{prefix} 100").as_str()),
            "{label}: line 100 is not among the last 200"
        );
        // And the whole output is still there to read.
        let kept = std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(kept.lines().count(), 300, "{file}");
    }

    // In-process tracing: shown, and saved into the kept directory.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("in-process-line") && l.contains("a line of in-process tracing")),
        "{stderr}"
    );
    // Saved by the first report, the nested directory's; the outer one points there.
    let saved = std::fs::read_to_string(inner.join("in-process-tracing.log")).unwrap();
    assert!(saved.contains("in-process-line"), "{saved}");

    assert!(
        lines.contains(
            &format!(
                "---- in-process tracing: printed above, saved in {} ----",
                inner.join("in-process-tracing.log").display()
            )
            .as_str()
        ),
        "{stderr}"
    );
    for kept in [&inner, &dir] {
        assert!(
            lines.contains(&format!("==== kept {} ====", kept.display()).as_str()),
            "the path of the kept directory is printed:\n{stderr}"
        );
    }
    assert!(stderr.contains("failing on purpose"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_passing_run_removes_its_directory_and_prints_nothing() {
    let dir = RunDir::new("sworn-harness-passing-").unwrap();
    let path = dir.path().to_owned();
    let out = dir
        .output("echo", Command::new("echo").arg("hello"))
        .unwrap();
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(
        std::fs::read_to_string(path.join("echo.stdout")).unwrap(),
        "hello\n"
    );
    drop(dir);
    assert!(!path.exists(), "{} removed", path.display());
}

#[test]
fn a_panic_on_another_thread_keeps_that_threads_directory() {
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let dir = RunDir::new("sworn-harness-thread-").unwrap();
        dir.output("say", Command::new("echo").arg("before the panic"))
            .unwrap();
        tx.send(dir.path().to_owned()).unwrap();
        panic!("failing on purpose");
    })
    .join();
    assert!(joined.is_err());
    let path = rx.recv().unwrap();
    assert_eq!(
        std::fs::read_to_string(path.join("say.stdout")).unwrap(),
        "before the panic\n"
    );
    std::fs::remove_dir_all(&path).unwrap();
}
