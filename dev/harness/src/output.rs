//! Where children's output goes: one file per stream under a directory, registered in a
//! [`Logs`] list that the failure report reads.
//!
//! A child's stdout may also be needed live (a test parses the JSON a probe prints, or reads
//! lines as they come). [`ChildOutput::spawn_piped`] then copies the stream into its file and
//! on into a pipe the caller reads as the child's ordinary `stdout`, so reading it live and
//! keeping it for the report are not a choice.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

/// One file the failure report prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// Who wrote it and what it is, e.g. `kube-apiserver (stdout+stderr)`.
    pub label: String,
    /// The file.
    pub path: PathBuf,
}

/// The files a failure report prints, in the order they were registered. Cloning shares the
/// list.
#[derive(Debug, Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<LogFile>>>);

impl Logs {
    /// Registers `path` under `label` (a path registered twice is listed once).
    pub fn add(&self, label: impl Into<String>, path: impl Into<PathBuf>) {
        let path = path.into();
        let mut files = self.lock();
        if !files.iter().any(|f| f.path == path) {
            files.push(LogFile {
                label: label.into(),
                path,
            });
        }
    }

    /// The registered files.
    pub fn files(&self) -> Vec<LogFile> {
        self.lock().clone()
    }

    /// Output files for a child called `name` in `dir`: `<name>.stdout` and `<name>.stderr`,
    /// or, with `combined`, both streams interleaved in `<name>.log` (daemons that log to
    /// either). A name already used in `dir` gets a `-2`, `-3`, ... suffix, so a program run
    /// several times keeps every run.
    pub fn child(&self, dir: &Path, name: &str, combined: bool) -> std::io::Result<ChildOutput> {
        std::fs::create_dir_all(dir)?;
        let name = sanitize(name);
        // Holding the list while choosing the name makes the choice unique across threads.
        let mut files = self.lock();
        let taken = |n: &str| {
            ["log", "stdout", "stderr"].iter().any(|ext| {
                let p = dir.join(format!("{n}.{ext}"));
                p.exists() || files.iter().any(|f| f.path == p)
            })
        };
        let mut chosen = name.clone();
        let mut n = 2;
        while taken(&chosen) {
            chosen = format!("{name}-{n}");
            n += 1;
        }
        let output = if combined {
            let log = dir.join(format!("{chosen}.log"));
            ChildOutput {
                name: chosen.clone(),
                stdout: log.clone(),
                stderr: log,
            }
        } else {
            ChildOutput {
                name: chosen.clone(),
                stdout: dir.join(format!("{chosen}.stdout")),
                stderr: dir.join(format!("{chosen}.stderr")),
            }
        };
        // Created now, so the name stays taken and an empty file shows the child said nothing.
        File::options()
            .create(true)
            .append(true)
            .open(&output.stdout)?;
        File::options()
            .create(true)
            .append(true)
            .open(&output.stderr)?;
        if combined {
            files.push(LogFile {
                label: format!("{chosen} (stdout+stderr)"),
                path: output.stdout.clone(),
            });
        } else {
            files.push(LogFile {
                label: format!("{chosen} stdout"),
                path: output.stdout.clone(),
            });
            files.push(LogFile {
                label: format!("{chosen} stderr"),
                path: output.stderr.clone(),
            });
        }
        Ok(output)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LogFile>> {
        // A panic while holding the lock cannot leave the list half-updated.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps a child's name usable as a file name.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("child{s}")
    } else {
        s
    }
}

/// The files one child writes its output to. Opening them appends, so a restarted process
/// continues the same files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildOutput {
    /// The child's name as used in the file names (unique in its directory).
    pub name: String,
    /// Where stdout goes.
    pub stdout: PathBuf,
    /// Where stderr goes (the same file as `stdout` when combined).
    pub stderr: PathBuf,
}

impl ChildOutput {
    /// `Stdio` handles appending to the stdout and stderr files, for any command type
    /// (`std` or `tokio`): `cmd.stdout(out).stderr(err)`.
    pub fn stdio(&self) -> std::io::Result<(Stdio, Stdio)> {
        let out = append(&self.stdout)?;
        let err = if self.stderr == self.stdout {
            out.try_clone()?
        } else {
            append(&self.stderr)?
        };
        Ok((out.into(), err.into()))
    }

    /// Spawns `cmd` with stdout and stderr going to the files (stdin as `cmd` sets it).
    pub fn spawn(&self, cmd: &mut Command) -> std::io::Result<Child> {
        let (out, err) = self.stdio()?;
        let child = cmd.stdout(out).stderr(err).spawn();
        // `cmd` would otherwise keep the files open for as long as it lives.
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        child
    }

    /// Spawns `cmd` with stderr going to its file and stdout both to its file and to
    /// `child.stdout`, which the caller reads as usual (a reader that stops early only stops
    /// the copy to the pipe, not to the file). The copy runs on a thread that ends when the
    /// child's stdout closes.
    pub fn spawn_piped(&self, cmd: &mut Command) -> std::io::Result<Child> {
        let (from_child, to_tee) = std::io::pipe()?;
        let (from_tee, to_reader) = std::io::pipe()?;
        let file = append(&self.stdout)?;
        let err: Stdio = if self.stderr == self.stdout {
            file.try_clone()?.into()
        } else {
            append(&self.stderr)?.into()
        };
        let spawned = cmd.stdout(to_tee).stderr(err).spawn();
        // Dropping `cmd`'s copy of the pipe's write end lets the copy see end of file.
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = spawned?;
        std::thread::Builder::new()
            .name(format!("tee {}", self.name))
            .spawn(move || tee(from_child, file, to_reader))?;
        child.stdout = Some(ChildStdout::from(OwnedFd::from(from_tee)));
        Ok(child)
    }

    /// Runs `cmd` to completion like [`Command::output`] (stdin null), with its output also
    /// left in the files for the report.
    pub fn output(&self, cmd: &mut Command) -> std::io::Result<Output> {
        let start_out = len(&self.stdout);
        let start_err = len(&self.stderr);
        let status = self.spawn(cmd.stdin(Stdio::null()))?.wait()?;
        let stdout = read_from(&self.stdout, start_out)?;
        let stderr = if self.stderr == self.stdout {
            Vec::new()
        } else {
            read_from(&self.stderr, start_err)?
        };
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }

    /// Everything written to stdout so far.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stdout).unwrap_or_default()).into_owned()
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    File::options().create(true).append(true).open(path)
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn read_from(path: &Path, offset: u64) -> std::io::Result<Vec<u8>> {
    let bytes = std::fs::read(path)?;
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    Ok(bytes[start..].to_vec())
}

/// Copies `from` into `file` and, while someone reads it, into `to`.
fn tee(mut from: std::io::PipeReader, mut file: File, to: std::io::PipeWriter) {
    let mut to = Some(to);
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let chunk = &buf[..n];
        let _ = file.write_all(chunk);
        if let Some(w) = to.as_mut()
            && w.write_all(chunk).is_err()
        {
            // The reader is gone; keep the file complete.
            to = None;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_name_used_twice_keeps_both_runs() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Logs::default();
        let first = logs.child(dir.path(), "probe", false).unwrap();
        let second = logs.child(dir.path(), "probe", false).unwrap();
        assert_eq!(first.name, "probe");
        assert_eq!(second.name, "probe-2");
        first
            .output(Command::new("sh").args(["-c", "echo one; echo oops >&2"]))
            .unwrap();
        let out = second.output(Command::new("echo").arg("two")).unwrap();
        assert_eq!(out.stdout, b"two\n");
        assert_eq!(first.stdout_text(), "one\n");
        assert_eq!(first.stderr_text(), "oops\n");
        assert_eq!(logs.files().len(), 4);
    }

    #[test]
    fn piped_stdout_reaches_both_the_reader_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = Logs::default().child(dir.path(), "p", false).unwrap();
        let child = out
            .spawn_piped(Command::new("sh").args(["-c", "echo a; echo b; echo c >&2"]))
            .unwrap();
        let got = child.wait_with_output().unwrap();
        assert_eq!(got.stdout, b"a\nb\n");
        // The copy to the file is written before the pipe, so it is complete once the
        // reader saw end of file.
        assert_eq!(out.stdout_text(), "a\nb\n");
        assert_eq!(out.stderr_text(), "c\n");
    }

    #[test]
    fn combined_output_interleaves_both_streams_in_one_log() {
        let dir = tempfile::tempdir().unwrap();
        let out = Logs::default().child(dir.path(), "d", true).unwrap();
        assert_eq!(out.stdout, dir.path().join("d.log"));
        out.output(Command::new("sh").args(["-c", "echo 1; echo 2 >&2; echo 3"]))
            .unwrap();
        assert_eq!(out.stdout_text(), "1\n2\n3\n");
    }
}
