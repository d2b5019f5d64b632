//! Files mode (the spiffe-helper use case): keep `svid.pem`, `svid.key` and
//! `bundle.pem` current in a directory and notify the consumer on every change.
//!
//! The first material is written at once; then every Workload API update that changes the
//! SVID or the bundle is written (see [`write`] for the atomicity guarantee) and followed by
//! the notification. A failed write is retried on the next update and logged as an error
//! (an operator must act: the files are going stale); a failed notification is logged and
//! does not stop the loop.

pub mod notify;
pub mod write;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use notify::{Notify, NotifyError, PidTarget, SignalName};
pub use write::{BUNDLE_FILE, CURRENT_LINK, KEY_FILE, SVID_FILE, WriteError, publish};

use crate::metrics::Metrics;
use crate::tls::MaterialWatch;

/// Files mode settings.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// The output directory (created 0755 if missing).
    pub dir: PathBuf,
    /// What to do after each write.
    pub notify: Notify,
}

/// Writes the current material once and notifies; for `--once` (init containers).
pub async fn write_once(
    watch: &MaterialWatch,
    config: &FilesConfig,
) -> Result<PathBuf, WriteError> {
    let material = watch.current();
    let version = publish(&config.dir, &material)?;
    info!(spiffe_id = %material.spiffe_id(), dir = %config.dir.display(), "svid files written");
    notify(&config.notify, &config.dir).await;
    Ok(version)
}

/// Writes now and after every change until `shutdown`. Fails only if the first write fails.
pub async fn run(
    watch: MaterialWatch,
    config: FilesConfig,
    metrics: std::sync::Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), WriteError> {
    let mut rx = watch.subscribe();
    rx.mark_unchanged();
    write_once(&watch, &config).await?;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            changed = rx.changed() => if changed.is_err() {
                warn!("the svid source stopped; files stay as last written");
                shutdown.cancelled().await;
                return Ok(());
            },
        }
        let material = rx.borrow_and_update().clone();
        match publish(&config.dir, &material) {
            Ok(_) => {
                metrics.rotations.inc();
                info!(spiffe_id = %material.spiffe_id(), dir = %config.dir.display(), "svid files rotated");
                notify(&config.notify, &config.dir).await;
            }
            Err(e) => {
                error!(error = %e, "cannot write the rotated svid files; will retry on the next update")
            }
        }
    }
}

async fn notify(how: &Notify, dir: &Path) {
    if let Err(error) = how.run(dir).await {
        warn!(%error, "notification failed");
    }
}
