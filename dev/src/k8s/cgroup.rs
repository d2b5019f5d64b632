//! Real cgroups for "container" processes, kubelet style (docs/architecture.md, "Workload attestation" W1).
//!
//! Everything lives under a per-run root directly below the cgroup v2 mount
//! (found in `/proc/self/mountinfo`; `/sys/fs/cgroup` on unified hosts,
//! `/sys/fs/cgroup/unified` on hybrid ones), e.g. `/sworn-test-1f2e3d4c`, so
//! parallel runs never share a cgroup. Below it, container cgroups follow the
//! kubelet's two drivers (QoS class BestEffort):
//!
//! - cgroupfs: `<root>/kubepods/besteffort/pod<uid>/<container-id>`
//! - systemd:  `<root>/kubepods.slice/kubepods-besteffort.slice/`
//!   `kubepods-besteffort-pod<uid with '_' for '-'>.slice/cri-containerd-<container-id>.scope`
//!
//! A process's `/proc/<pid>/cgroup` then shows `0::<root>/...`. An owned root
//! kills every process left in it and removes its directories when dropped.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors handling cgroups.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup v2 hierarchy is mounted.
    #[error(
        "no cgroup2 mount found in /proc/self/mountinfo: the kubelet stand-in needs cgroup v2 (mount it, e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`)"
    )]
    NoCgroup2,
    /// A cgroup file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cgroup file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Processes were still in the cgroup after being killed.
    #[error("processes remain in {0} after kill")]
    Busy(PathBuf),
}

/// The kubelet cgroup driver whose naming to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupStyle {
    /// `kubepods/besteffort/pod<uid>/<cid>`.
    #[default]
    Cgroupfs,
    /// `kubepods.slice/.../cri-containerd-<cid>.scope`.
    Systemd,
}

impl std::str::FromStr for CgroupStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cgroupfs" => Ok(Self::Cgroupfs),
            "systemd" => Ok(Self::Systemd),
            other => Err(format!(
                "unknown cgroup style {other:?} (cgroupfs or systemd)"
            )),
        }
    }
}

impl CgroupStyle {
    /// The container's cgroup path relative to the run root.
    pub fn container_path(self, pod_uid: &str, container_id: &str) -> PathBuf {
        match self {
            Self::Cgroupfs => [
                "kubepods",
                "besteffort",
                &format!("pod{pod_uid}"),
                container_id,
            ]
            .iter()
            .collect(),
            Self::Systemd => [
                "kubepods.slice",
                "kubepods-besteffort.slice",
                &format!("kubepods-besteffort-pod{}.slice", pod_uid.replace('-', "_")),
                &format!("cri-containerd-{container_id}.scope"),
            ]
            .iter()
            .collect(),
        }
    }
}

/// A per-run cgroup subtree.
#[derive(Debug)]
pub struct CgroupRoot {
    mount: PathBuf,
    relative: PathBuf,
    owned: bool,
}

impl CgroupRoot {
    /// Creates `/<prefix>-<random>` below the cgroup v2 mount; removed (with
    /// every process in it killed) on drop.
    pub fn create_unique(prefix: &str) -> Result<Self, CgroupError> {
        let mount = cgroup2_mount()?;
        let relative = PathBuf::from(format!("/{prefix}-{:08x}", rand::random::<u32>()));
        let fs = join(&mount, &relative);
        std::fs::create_dir(&fs).map_err(io("creating", &fs))?;
        tracing::debug!(cgroup = %relative.display(), "created cgroup root");
        Ok(Self {
            mount,
            relative,
            owned: true,
        })
    }

    /// Refers to an existing root (as shown in `/proc/<pid>/cgroup`) without
    /// owning it: dropping it removes nothing.
    pub fn open(relative: &Path) -> Result<Self, CgroupError> {
        let mount = cgroup2_mount()?;
        Ok(Self {
            mount,
            relative: relative.to_path_buf(),
            owned: false,
        })
    }

    /// The root as it appears in `/proc/<pid>/cgroup` (e.g. `/sworn-test-1f2e3d4c`).
    pub fn cgroup_path(&self) -> &Path {
        &self.relative
    }

    /// The root's directory in the cgroup filesystem.
    pub fn fs_path(&self) -> PathBuf {
        join(&self.mount, &self.relative)
    }

    /// The cgroup for one container (not created).
    pub fn container(
        &self,
        style: CgroupStyle,
        pod_uid: &str,
        container_id: &str,
    ) -> ContainerCgroup {
        let cgroup_path = self
            .relative
            .join(style.container_path(pod_uid, container_id));
        ContainerCgroup {
            fs_path: join(&self.mount, &cgroup_path),
            cgroup_path,
        }
    }

    /// Kills every process in the subtree and removes all its directories,
    /// the root included.
    pub fn remove(&self) -> Result<(), CgroupError> {
        remove_tree(&self.fs_path())
    }
}

impl Drop for CgroupRoot {
    fn drop(&mut self) {
        if self.owned
            && let Err(error) = self.remove()
        {
            tracing::warn!(%error, cgroup = %self.relative.display(), "could not remove cgroup root");
        }
    }
}

/// One container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroup {
    /// As shown in `/proc/<pid>/cgroup`.
    pub cgroup_path: PathBuf,
    /// Its directory in the cgroup filesystem.
    pub fs_path: PathBuf,
}

impl ContainerCgroup {
    /// Creates the directory and its parents.
    pub fn create(&self) -> Result<(), CgroupError> {
        std::fs::create_dir_all(&self.fs_path).map_err(io("creating", &self.fs_path))
    }

    /// The `cgroup.procs` file; writing a pid there moves that process.
    pub fn procs_file(&self) -> PathBuf {
        self.fs_path.join("cgroup.procs")
    }

    /// Moves process `pid` into this cgroup.
    pub fn add_pid(&self, pid: u32) -> Result<(), CgroupError> {
        let file = self.procs_file();
        std::fs::write(&file, format!("{pid}\n")).map_err(io("writing", &file))
    }

    /// The pids currently in this cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        read_pids(&self.fs_path)
    }

    /// Kills every process in this cgroup and removes its directory (not its
    /// parents).
    pub fn remove(&self) -> Result<(), CgroupError> {
        remove_tree(&self.fs_path)
    }
}

/// The cgroup v2 mount point.
fn cgroup2_mount() -> Result<PathBuf, CgroupError> {
    let path = Path::new("/proc/self/mountinfo");
    let info = std::fs::read_to_string(path).map_err(io("reading", path))?;
    info.lines()
        .filter_map(|line| {
            // "<id> <parent> <maj:min> <root> <mountpoint> <opts> [optional...] - <fstype> ..."
            let (pre, post) = line.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            let mut fields = pre.split(' ');
            let root = fields.nth(3)?;
            let mountpoint = fields.next()?;
            (fstype == "cgroup2" && root == "/").then(|| PathBuf::from(mountpoint))
        })
        .next()
        .ok_or(CgroupError::NoCgroup2)
}

fn join(mount: &Path, relative: &Path) -> PathBuf {
    mount.join(relative.strip_prefix("/").unwrap_or(relative))
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn read_pids(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let file = dir.join("cgroup.procs");
    let text = std::fs::read_to_string(&file).map_err(io("reading", &file))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Kills everything under `dir` (`cgroup.kill`, or SIGKILL per pid on kernels
/// without it), waits until it is empty, then removes directories bottom-up.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    if !dir.exists() {
        return Ok(());
    }
    let kill_file = dir.join("cgroup.kill");
    if std::fs::write(&kill_file, "1").is_err() {
        kill_each(dir)?;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match rmdir_bottom_up(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::ResourceBusy && Instant::now() < deadline => {
                kill_each(dir)?;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e.kind() == ErrorKind::ResourceBusy => {
                return Err(CgroupError::Busy(dir.to_path_buf()));
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    what: "removing",
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

fn kill_each(dir: &Path) -> Result<(), CgroupError> {
    for pid in read_pids(dir)? {
        if let Some(pid) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    for entry in std::fs::read_dir(dir)
        .map_err(io("listing", dir))?
        .flatten()
    {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            kill_each(&entry.path())?;
        }
    }
    Ok(())
}

fn rmdir_bottom_up(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            rmdir_bottom_up(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_driver_paths() {
        let uid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let cid = "ab".repeat(32);
        assert_eq!(
            CgroupStyle::Cgroupfs.container_path(uid, &cid),
            PathBuf::from(format!("kubepods/besteffort/pod{uid}/{cid}"))
        );
        assert_eq!(
            CgroupStyle::Systemd.container_path(uid, &cid),
            PathBuf::from(format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0.slice/cri-containerd-{cid}.scope"
            ))
        );
    }
}
