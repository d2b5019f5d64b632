//! The text a failing test prints: the last lines of each file, labelled.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::output::LogFile;

/// How many lines of each file a failure report shows.
pub const TAIL_LINES: usize = 200;

/// The most read from the end of a file to find its last lines (longer lines are cut off
/// at the front of the report, never read into memory whole).
const MAX_TAIL_BYTES: u64 = 4 << 20;

/// The last `n` lines of the file at `path` (fewer if it has fewer), and whether earlier
/// lines were left out. A missing file reads as empty.
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<(Vec<String>, bool)> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), false)),
        Err(e) => return Err(e),
    };
    let size = file.metadata()?.len();
    let mut window = 64 * 1024u64;
    loop {
        let start = size.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        (&mut file).take(size - start).read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        if start > 0 && !lines.is_empty() {
            // The window began inside a line.
            lines.remove(0);
        }
        if lines.len() > n || start == 0 || window >= MAX_TAIL_BYTES {
            let cut = lines.len() > n || start > 0;
            let first = lines.len().saturating_sub(n);
            return Ok((
                lines[first..].iter().map(|l| (*l).to_owned()).collect(),
                cut,
            ));
        }
        window *= 4;
    }
}

/// One labelled block: the last [`TAIL_LINES`] lines of `file`.
pub(crate) fn block(out: &mut String, file: &LogFile) {
    let path = file.path.display();
    match tail_lines(&file.path, TAIL_LINES) {
        Ok((lines, _)) if lines.is_empty() => {
            let _ = writeln!(out, "---- {} : {path} (empty) ----", file.label);
        }
        Ok((lines, cut)) => {
            let which = if cut {
                format!("last {} lines", lines.len())
            } else {
                format!("all {} lines", lines.len())
            };
            let _ = writeln!(out, "---- {} : {path} ({which}) ----", file.label);
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "---- {} : {path} (unreadable: {e}) ----", file.label);
        }
    }
}

/// Files under `dir` that look like output (`*.log`, `*.stdout`, `*.stderr`) but were not
/// registered, e.g. a log file a child was told to write. Bounded in depth and count, as
/// the directory may hold a whole etcd data dir.
pub(crate) fn unregistered_logs(dir: &Path, known: &[LogFile]) -> Vec<LogFile> {
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, usize)> = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() && depth < 6 {
                stack.push((path, depth + 1));
            } else if kind.is_file()
                && path
                    .extension()
                    .is_some_and(|x| x == "log" || x == "stdout" || x == "stderr")
                && !known.iter().any(|k| k.path == path)
                && found.len() < 50
            {
                let label = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                found.push(LogFile { label, path });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tail_of_a_long_file_is_its_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.log");
        let text: String = (1..=100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        let (lines, cut) = tail_lines(&p, 200).unwrap();
        assert!(cut);
        assert_eq!(lines.len(), 200);
        assert_eq!(lines[0], "line 99801");
        assert_eq!(lines[199], "line 100000");
    }

    #[test]
    fn tail_of_a_short_file_is_all_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.log");
        std::fs::write(&p, "a\nb").unwrap();
        assert_eq!(
            tail_lines(&p, 200).unwrap(),
            (vec!["a".to_owned(), "b".to_owned()], false)
        );
        assert_eq!(
            tail_lines(&dir.path().join("missing"), 200).unwrap(),
            (vec![], false)
        );
    }
}
