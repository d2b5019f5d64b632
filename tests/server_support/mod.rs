//! The `sworn-server` binary as a test runs it: a config in a temporary directory, the
//! server's stderr in `<dir>/server.log`, the admin CLI against its socket.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sworn-server");

/// An agent ID to scope unix entries to; `entry create` checks its form, not that the
/// agent has attested.
pub const NODE: &str = "spiffe://example.org/sworn/agent/join/test-node";

pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
}

impl Server {
    pub fn config(dir: &Path) -> PathBuf {
        Self::config_with(dir, "")
    }

    /// The test config, with `extra` TOML lines appended.
    pub fn config_with(dir: &Path, extra: &str) -> PathBuf {
        let cfg = dir.join("server.toml");
        std::fs::write(
            &cfg,
            format!(
                "trust_domain = \"example.org\"\ndata_dir = \"{}\"\nagent_api_address = \"127.0.0.1:0\"\nhealth_address = \"127.0.0.1:0\"\n{extra}",
                dir.join("data").display()
            ),
        )
        .unwrap();
        cfg
    }

    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, "")
    }

    /// Starts the server on [`Server::config_with`]`(dir, extra)`; its stderr goes to
    /// `<dir>/server.log`.
    pub fn start_with(dir: &Path, extra: &str) -> Server {
        let cfg = Self::config_with(dir, extra);
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("server.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let s = Server {
            child,
            dir: dir.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !s.cli(&["healthcheck"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "server did not become healthy: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("data/admin.sock")
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--admin-socket")
            .arg(self.socket())
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `entry` straight into the server's SQLite store under `dir` (the server stopped):
/// how an entry stored before a rule the admin API now enforces looks.
pub fn store_entry_directly(dir: &Path, entry: sworn_server::store::Entry) {
    use sworn_server::store::Store;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = sworn_server::store::sqlite::SqliteStore::open(&dir.join("data/sworn.db"))
            .await
            .unwrap();
        store.create_entry(&entry).await.unwrap();
        store.close().await;
    });
}
