//! The kubelet's on-disk layout for projected volumes.
//!
//! The kubelet's atomic writer puts a volume's files in a timestamped hidden
//! directory, points `..data` at it, and exposes each top-level name as a
//! symlink through `..data`:
//!
//! ```text
//! <volume>/..2026_11_26_15_20_00.1234567890/token
//! <volume>/..data -> ..2026_11_26_15_20_00.1234567890
//! <volume>/token  -> ..data/token
//! ```
//!
//! An update writes a new timestamped directory and swaps `..data` with a
//! rename, so readers see either the old or the new set of files, never a mix.

use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::{Component, Path, PathBuf};

/// Errors writing a projected volume.
#[derive(Debug, thiserror::Error)]
pub enum ProjectedError {
    /// The file path is not a plain relative path.
    #[error("projected path {0:?} must be relative without '..' or hidden first components")]
    BadPath(String),
    /// A filesystem operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Writes (or atomically replaces) the files of projected volume `volume_dir`
/// in the kubelet's layout. Each file is `(relative path, contents)`, written
/// with mode 0600. Returns the user-visible paths (`<volume_dir>/<path>`).
pub fn write_projected_file(
    volume_dir: &Path,
    files: &[(&str, &[u8])],
) -> Result<Vec<PathBuf>, ProjectedError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| ProjectedError::Io { what, path, source }
    };
    for (path, _) in files {
        let p = Path::new(path);
        let plain = p.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || path.is_empty() || path.starts_with("..") {
            return Err(ProjectedError::BadPath((*path).to_owned()));
        }
    }
    std::fs::create_dir_all(volume_dir).map_err(io("creating", volume_dir))?;

    let stamp = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y_%m_%d_%H_%M_%S")
        .to_string();
    let ts_name = format!("..{stamp}.{:010}", rand::random::<u32>());
    let ts_dir = volume_dir.join(&ts_name);
    std::fs::create_dir(&ts_dir).map_err(io("creating", &ts_dir))?;
    for (path, contents) in files {
        let target = ts_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(io("creating", &target))?;
        std::io::Write::write_all(&mut f, contents).map_err(io("writing", &target))?;
    }

    let data = volume_dir.join("..data");
    let old = std::fs::read_link(&data).ok();
    let data_tmp = volume_dir.join("..data_tmp");
    let _ = std::fs::remove_file(&data_tmp);
    symlink(&ts_name, &data_tmp).map_err(io("linking", &data_tmp))?;
    std::fs::rename(&data_tmp, &data).map_err(io("renaming", &data))?;

    let mut visible = Vec::with_capacity(files.len());
    for (path, _) in files {
        let first = Path::new(path)
            .components()
            .next()
            .map(|c| c.as_os_str().to_owned());
        if let Some(first) = first {
            let link = volume_dir.join(&first);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(&first), &link).map_err(io("linking", &link))?;
            }
        }
        visible.push(volume_dir.join(path));
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != ts_name.as_str()) {
        let _ = std::fs::remove_dir_all(volume_dir.join(old));
    }
    Ok(visible)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn kubelet_layout_and_atomic_update() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("sworn-token");
        let paths = write_projected_file(&vol, &[("token", b"one")]).unwrap();
        assert_eq!(paths, vec![vol.join("token")]);
        assert_eq!(
            std::fs::read_link(vol.join("token")).unwrap(),
            Path::new("..data/token")
        );
        let first = std::fs::read_link(vol.join("..data")).unwrap();
        assert!(first.to_string_lossy().starts_with("..20"));
        assert_eq!(std::fs::read(vol.join("token")).unwrap(), b"one");

        write_projected_file(&vol, &[("token", b"two")]).unwrap();
        assert_eq!(std::fs::read(vol.join("token")).unwrap(), b"two");
        assert!(
            !vol.join(first).exists(),
            "the previous generation is removed"
        );
        assert!(write_projected_file(&vol, &[("../escape", b"x")]).is_err());
    }
}
