//! Rotation as a `watch` channel of [`Material`]: the follower of the Workload API (or a test,
//! or an embedding program) publishes; resolvers and verifiers read the latest value at each
//! handshake.

use std::sync::Arc;

use spiffe::X509Source;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::material::{Material, MaterialError};

/// Read side: the current material and its changes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MaterialWatch {
    rx: watch::Receiver<Arc<Material>>,
}

/// Write side: publishes new material to every [`MaterialWatch`] made from it.
#[derive(Debug)]
pub struct MaterialUpdater {
    tx: watch::Sender<Arc<Material>>,
}

impl MaterialWatch {
    /// A watch starting at `initial`, with the updater that rotates it. This is how a program
    /// (or a test) that obtains SVIDs some other way feeds the TLS layer.
    pub fn new(initial: Material) -> (MaterialWatch, MaterialUpdater) {
        let (tx, rx) = watch::channel(Arc::new(initial));
        (MaterialWatch { rx }, MaterialUpdater { tx })
    }

    /// Follows an `X509Source` until it closes or `shutdown` is cancelled: every update that
    /// converts is published; one that does not is logged and the last good material kept.
    /// Fails if the source's current material is unusable.
    pub fn follow(
        source: X509Source,
        shutdown: CancellationToken,
    ) -> Result<(MaterialWatch, tokio::task::JoinHandle<()>), MaterialError> {
        let initial = convert(&source)?;
        info!(spiffe_id = %initial.spiffe_id(), "svid received");
        let (watch, updater) = MaterialWatch::new(initial);
        let task = tokio::spawn(
            async move {
                let mut updates = source.updated();
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        changed = updates.changed() => {
                            if let Err(error) = changed {
                                warn!(%error, "the workload api source closed; keeping the last svid");
                                break;
                            }
                        }
                    }
                    match convert(&source) {
                        Ok(material) => {
                            if updater.publish(material) {
                                info!(spiffe_id = %updater.current().spiffe_id(), "svid rotated");
                            }
                        }
                        Err(error) => warn!(%error, "ignoring an unusable workload api update"),
                    }
                }
                source.shutdown().await;
            }
            .instrument(info_span!("workload_api_follower")),
        );
        Ok((watch, task))
    }

    /// The current material.
    pub fn current(&self) -> Arc<Material> {
        self.rx.borrow().clone()
    }

    /// A receiver that wakes on every publication.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Material>> {
        self.rx.clone()
    }
}

impl MaterialUpdater {
    /// Publishes `material` unless it equals the current one; returns whether it did.
    pub fn publish(&self, material: Material) -> bool {
        self.tx.send_if_modified(|cur| {
            if cur.same_as(&material) {
                false
            } else {
                *cur = Arc::new(material);
                true
            }
        })
    }

    /// The last published material.
    pub fn current(&self) -> Arc<Material> {
        self.tx.borrow().clone()
    }

    /// A new reader.
    pub fn watch(&self) -> MaterialWatch {
        MaterialWatch {
            rx: self.tx.subscribe(),
        }
    }
}

fn convert(source: &X509Source) -> Result<Material, MaterialError> {
    let svid = source.svid()?;
    let bundles = source.bundle_set()?;
    Material::from_x509(&svid, &bundles)
}
