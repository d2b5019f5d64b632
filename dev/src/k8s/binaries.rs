//! Locating the pinned control-plane binaries built by `dev/k8s/build.sh`.
//!
//! Lookup order: `$SWORN_K8S_BIN` (a directory holding `etcd`, `kube-apiserver`
//! and `kubectl`), then the build cache
//! `${SWORN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sworn}/k8s/<k8s>-etcd<etcd>/bin`,
//! which is exactly where `build.sh` puts them. A missing binary is an error that
//! says how to build it: tests must fail loudly, never skip.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The kube-apiserver and kubectl version `build.sh` pins.
pub const K8S_VERSION: &str = "v1.37.2";
/// The etcd version `build.sh` pins.
pub const ETCD_VERSION: &str = "v3.6.16";

/// Errors locating the binaries.
#[derive(Debug, thiserror::Error)]
pub enum BinariesError {
    /// A binary is missing from the directory that was searched.
    #[error(
        "{binary} not found in {dir}: run dev/k8s/build.sh (or set SWORN_K8S_BIN to a directory holding etcd, kube-apiserver and kubectl)"
    )]
    Missing {
        /// The binary's file name.
        binary: &'static str,
        /// The directory searched.
        dir: PathBuf,
    },
    /// Neither `SWORN_K8S_BIN` nor a home or cache directory is set.
    #[error(
        "cannot locate the binary cache: set HOME, SWORN_CACHE_DIR or SWORN_K8S_BIN, then run dev/k8s/build.sh"
    )]
    NoCacheDir,
}

/// Paths of the three pinned binaries.
#[derive(Debug, Clone)]
pub struct KubeBinaries {
    /// The directory holding them.
    pub dir: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
    /// `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// `kubectl`.
    pub kubectl: PathBuf,
}

impl KubeBinaries {
    /// Finds the binaries through `SWORN_K8S_BIN` or the build cache.
    pub fn locate() -> Result<Self, BinariesError> {
        let dir = match std::env::var_os("SWORN_K8S_BIN") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => default_cache_bin_dir()?,
        };
        Self::in_dir(&dir)
    }

    /// Uses the binaries in `dir`, checking that all three are there.
    pub fn in_dir(dir: &Path) -> Result<Self, BinariesError> {
        let find = |binary: &'static str| {
            let path = dir.join(binary);
            if path.is_file() {
                Ok(path)
            } else {
                Err(BinariesError::Missing {
                    binary,
                    dir: dir.to_path_buf(),
                })
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            etcd: find("etcd")?,
            kube_apiserver: find("kube-apiserver")?,
            kubectl: find("kubectl")?,
        })
    }
}

/// The `bin` directory `build.sh` fills for the pinned versions.
pub fn default_cache_bin_dir() -> Result<PathBuf, BinariesError> {
    cache_bin_dir(|name| std::env::var_os(name))
}

/// [`default_cache_bin_dir`] for the environment `var` reads.
fn cache_bin_dir(var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf, BinariesError> {
    let non_empty = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let root = non_empty("SWORN_CACHE_DIR")
        .or_else(|| non_empty("XDG_CACHE_HOME").map(|c| c.join("sworn")))
        .or_else(|| non_empty("HOME").map(|h| h.join(".cache").join("sworn")))
        .ok_or(BinariesError::NoCacheDir)?;
    let etcd = ETCD_VERSION.trim_start_matches('v');
    Ok(root
        .join("k8s")
        .join(format!("{K8S_VERSION}-etcd{etcd}"))
        .join("bin"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::{Command, Output};

    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let empty = tempfile::tempdir().unwrap();
        let message = KubeBinaries::in_dir(empty.path()).unwrap_err().to_string();
        assert!(message.contains("run dev/k8s/build.sh"), "{message}");
    }

    /// `name` on this process's `PATH`.
    fn on_path(name: &str) -> PathBuf {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{name} not found on PATH"))
    }

    /// Runs `dev/k8s/build.sh` with exactly `vars` and a `PATH` holding only
    /// `date`: no Go toolchain, so it can only answer from the cache or fail.
    fn build_sh(vars: &[(&str, PathBuf)], tools: &Path) -> Output {
        Command::new(on_path("bash"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s/build.sh"))
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (*k, v)))
            .env("PATH", tools)
            .output()
            .unwrap()
    }

    /// The value of `NAME=value` in a shell script.
    fn pinned<'a>(script: &'a str, name: &str) -> &'a str {
        script
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("build.sh pins no {name}"))
    }

    #[test]
    fn cache_dir_matches_build_sh() {
        let script =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s/build.sh"))
                .unwrap();
        assert_eq!(pinned(&script, "K8S_VERSION"), K8S_VERSION);
        assert_eq!(pinned(&script, "ETCD_VERSION"), ETCD_VERSION);

        let tools = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(on_path("date"), tools.path().join("date")).unwrap();
        // Each way of naming the cache root, and which one wins (the first
        // listed; `NAME=` is set but empty, which counts as unset).
        let cases: [&[&str]; 5] = [
            &["SWORN_CACHE_DIR"],
            &["SWORN_CACHE_DIR", "XDG_CACHE_HOME", "HOME"],
            &["XDG_CACHE_HOME", "HOME"],
            &["HOME"],
            &["HOME", "SWORN_CACHE_DIR=", "XDG_CACHE_HOME="],
        ];
        for names in cases {
            let tmp = tempfile::tempdir().unwrap();
            let vars: Vec<(&str, PathBuf)> = names
                .iter()
                .map(|n| match n.strip_suffix('=') {
                    Some(empty) => (empty, PathBuf::new()),
                    None => (*n, tmp.path().join(n)),
                })
                .collect();
            let dir = cache_bin_dir(|name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone().into_os_string())
            })
            .unwrap();
            assert!(
                dir.starts_with(tmp.path().join(names[0])),
                "{names:?}: {dir:?}"
            );

            // Empty: build.sh would build, and without Go says so.
            let out = build_sh(&vars, tools.path());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && stderr.contains("go toolchain not found"),
                "{names:?}: {stderr}"
            );
            // The three binaries where we look: build.sh finds them there.
            std::fs::create_dir_all(&dir).unwrap();
            for binary in ["etcd", "kube-apiserver", "kubectl"] {
                let path = dir.join(binary);
                std::fs::write(&path, "#!/bin/sh\n").unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            let out = build_sh(&vars, tools.path());
            assert!(out.status.success(), "{names:?}: {out:?}");
            let stdout = String::from_utf8(out.stdout).unwrap();
            assert_eq!(
                stdout.lines().last(),
                Some(format!("cached at {}", dir.display()).as_str()),
                "{names:?}"
            );
            KubeBinaries::in_dir(&dir).unwrap();
        }
        assert!(matches!(
            cache_bin_dir(|_| None),
            Err(BinariesError::NoCacheDir)
        ));
    }
}
