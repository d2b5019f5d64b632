//! A temporary directory that a failing test keeps, and reports on.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::output::{ChildOutput, LogFile, Logs};
use crate::report::{TAIL_LINES, block, unregistered_logs};
use crate::trace;

thread_local! {
    /// Where this (panicking) thread already saved the in-process tracing, so that several
    /// directories dropped by one failing test print it once.
    static TRACE_SAVED: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
    /// Files this (panicking) thread already printed: a directory nested in another one is
    /// reported first (it is dropped first), and the outer report skips its files.
    static PRINTED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
}

/// The name of the saved in-process tracing inside a kept directory.
const TRACE_FILE: &str = "in-process-tracing.log";

/// A temporary directory for one test (or one component of it) whose children write their
/// output into files inside it.
///
/// Dropped normally, it is removed. Dropped while its thread panics — a failing test
/// unwinding — it prints a report to stderr (captured and shown by the test runner): the
/// last [`TAIL_LINES`] lines of every registered output file and of any other `*.log`,
/// `*.stdout` or `*.stderr` file inside it, each labelled with the child's name and path,
/// then the in-process tracing if [`trace::capture`] is on. The directory is then kept, and
/// its path printed, for a look at everything else.
#[derive(Debug)]
pub struct RunDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    logs: Logs,
}

impl RunDir {
    /// A fresh directory in the system temp dir, named `<prefix><random>`.
    pub fn new(prefix: &str) -> std::io::Result<RunDir> {
        Self::new_in(std::env::temp_dir(), prefix)
    }

    /// A fresh directory in `parent` (created if missing), named `<prefix><random>`. Unix
    /// socket paths are limited to 108 bytes: tests that bind sockets inside use a short
    /// parent such as `/tmp`.
    pub fn new_in(parent: impl AsRef<Path>, prefix: &str) -> std::io::Result<RunDir> {
        std::fs::create_dir_all(parent.as_ref())?;
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        Ok(RunDir {
            path: dir.path().to_path_buf(),
            dir: Some(dir),
            logs: Logs::default(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files the report prints; register any further log file with [`Logs::add`].
    pub fn logs(&self) -> &Logs {
        &self.logs
    }

    /// Output files for a child called `name`: `<name>.stdout` and `<name>.stderr` (a name
    /// used before gets a numeric suffix).
    pub fn child(&self, name: &str) -> std::io::Result<ChildOutput> {
        self.logs.child(&self.path, name, false)
    }

    /// One output file for a child called `name` that gets both streams: `<name>.log`.
    pub fn child_combined(&self, name: &str) -> std::io::Result<ChildOutput> {
        self.logs.child(&self.path, name, true)
    }

    /// `Stdio` handles into a new child's files, for commands built elsewhere (`tokio`):
    /// `cmd.stdout(out).stderr(err)`.
    pub fn stdio(&self, name: &str) -> std::io::Result<(Stdio, Stdio)> {
        self.child(name)?.stdio()
    }

    /// Spawns `cmd` as child `name`, stdout and stderr into its files.
    pub fn spawn(&self, name: &str, cmd: &mut Command) -> std::io::Result<Child> {
        self.child(name)?.spawn(cmd)
    }

    /// Spawns `cmd` as child `name`; stdout goes to its file and to `child.stdout`.
    pub fn spawn_piped(&self, name: &str, cmd: &mut Command) -> std::io::Result<Child> {
        self.child(name)?.spawn_piped(cmd)
    }

    /// Runs `cmd` as child `name` like [`Command::output`], keeping its output in files.
    pub fn output(&self, name: &str, cmd: &mut Command) -> std::io::Result<Output> {
        self.child(name)?.output(cmd)
    }

    /// The failure report for this directory, as printed when dropped during a panic.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "==== test failed: output of the children of {} ====",
            self.path.display()
        );
        let printing = std::thread::panicking();
        let mut files = self.files();
        files.retain(|f| f.path.file_name().is_none_or(|n| n != TRACE_FILE));
        let before = files.len();
        files.retain(|f| !PRINTED.with_borrow(|p| p.contains(&f.path)));
        if before > files.len() {
            let _ = writeln!(
                out,
                "({} files inside were printed above)",
                before - files.len()
            );
        } else if files.is_empty() {
            let _ = writeln!(out, "(no child output was recorded here)");
        }
        for file in &files {
            block(&mut out, file);
            if printing {
                PRINTED.with_borrow_mut(|p| p.push(file.path.clone()));
            }
        }
        self.trace_section(&mut out);
        let _ = writeln!(out, "==== kept {} ====", self.path.display());
        out
    }

    /// The in-process tracing: the last lines once per failing thread, and all kept lines
    /// saved into the first directory reported.
    fn trace_section(&self, out: &mut String) {
        if !trace::is_capturing() {
            return;
        }
        if let Some(saved) = TRACE_SAVED.with_borrow(Clone::clone) {
            let _ = writeln!(
                out,
                "---- in-process tracing: printed above, saved in {} ----",
                saved.display()
            );
            return;
        }
        let (lines, dropped) = trace::lines();
        let file = self.path.join(TRACE_FILE);
        let mut all = lines.join("\n");
        all.push('\n');
        let saved = std::fs::write(&file, all).is_ok();
        if saved && std::thread::panicking() {
            TRACE_SAVED.set(Some(file.clone()));
        }
        let shown = &lines[lines.len().saturating_sub(TAIL_LINES)..];
        let _ = writeln!(
            out,
            "---- in-process tracing (every test of this process; under nextest only this one): {} (last {} of {} lines{}) ----",
            if saved {
                file.display().to_string()
            } else {
                "not saved".to_owned()
            },
            shown.len(),
            lines.len() as u64 + dropped,
            if dropped > 0 {
                format!(", {dropped} oldest not kept")
            } else {
                String::new()
            }
        );
        for line in shown {
            let _ = writeln!(out, "{line}");
        }
    }

    /// Keeps the directory after this value is gone and returns its path.
    pub fn keep(mut self) -> PathBuf {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
        self.path.clone()
    }

    /// The files the report prints: those registered, then any other `*.log`, `*.stdout` or
    /// `*.stderr` file inside.
    pub fn files(&self) -> Vec<LogFile> {
        let known = self.logs.files();
        let mut all = known.clone();
        all.extend(unregistered_logs(&self.path, &known));
        all
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Some(dir) = self.dir.take() else {
            return;
        };
        let _ = dir.keep();
        // `eprint!`, not a raw write: the test runner captures it and shows it with the
        // failure.
        eprint!("{}", self.report());
    }
}
