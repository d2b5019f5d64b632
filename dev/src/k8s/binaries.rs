//! Locating the pinned control-plane binaries built by `dev/k8s/build.sh`.
//!
//! Lookup order: `$SWORN_K8S_BIN` (a directory holding `etcd`, `kube-apiserver`
//! and `kubectl`), then the build cache
//! `${SWORN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sworn}/k8s/<k8s>-etcd<etcd>/bin`,
//! which is exactly where `build.sh` puts them. A missing binary is an error that
//! says how to build it: tests must fail loudly, never skip.

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
    let non_empty = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
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
    use super::*;

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let empty = tempfile::tempdir().unwrap();
        let message = KubeBinaries::in_dir(empty.path()).unwrap_err().to_string();
        assert!(message.contains("run dev/k8s/build.sh"), "{message}");
    }

    #[test]
    fn cache_dir_matches_build_sh() {
        let dir = default_cache_bin_dir().unwrap();
        assert!(
            dir.ends_with("k8s/v1.37.2-etcd3.6.16/bin"),
            "{}",
            dir.display()
        );
    }
}
