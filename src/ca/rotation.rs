//! CA rotation (docs/architecture.md, "The CA"), driven by the injectable clock.
//!
//! With `life` the active CA's validity and `remaining` what is left of it at `now`:
//! - **prepare** when `remaining ≤ life/2`: create the next generation and, in self-signed
//!   mode, publish its root in the bundle at once;
//! - **activate** when `remaining ≤ life/6`, but never in the same tick that prepared it
//!   (unless the active CA has already expired), so the new root has been on the watch
//!   channel for at least one tick before anything it signs is issued;
//! - **prune** a retired root once `now` is past its NotAfter: every SVID it signed is capped
//!   by that NotAfter, so nothing it signed can still be valid.
//!
//! In upstream mode the bundle is the upstream roots, so rotation changes chains, not the
//! bundle; the retired intermediate is dropped at activation.
//!
//! [`CertificateAuthority::run_rotation`] is the one loop that applies these rules, in the
//! server and in tests alike. It wakes when the clock reaches the next step (or after
//! `period` at the latest) and tells a [`RotationObserver`] about every step that changed
//! something; the server's observer publishes the bundle file, the datastore's roots, the
//! bundle ConfigMaps and the CA metrics. Agents hear of bundle changes from the CA's watch
//! channel ([`CertificateAuthority::subscribe`]), which `rotate_if_due` updates itself.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::authorities::Authorities;
use super::authority::CertificateAuthority;
use super::error::CaError;
use super::generation::Generation;
use super::keystore::{Mode, cert_file, key_file};

/// What one [`CertificateAuthority::rotate_if_due`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Generation prepared (and, in self-signed mode, published) in this call.
    pub prepared: Option<u64>,
    /// Generation that became the signer in this call.
    pub activated: Option<u64>,
    /// Retired roots dropped from the bundle in this call.
    pub dropped_roots: usize,
    /// True when the bundle changed (and was sent to subscribers).
    pub bundle_changed: bool,
}

/// Told about each rotation step of [`CertificateAuthority::run_rotation`] that changed
/// something, after the step is durable and its bundle is on the CA's watch channel.
#[async_trait::async_trait]
pub trait RotationObserver: Send + Sync + 'static {
    /// `report` is what the step did (never [`RotationReport::default`]).
    async fn rotated(&self, report: RotationReport);
}

/// No observer: the step is only logged and sent on the watch channel.
#[async_trait::async_trait]
impl RotationObserver for () {
    async fn rotated(&self, _report: RotationReport) {}
}

impl CertificateAuthority {
    /// Prepares, activates and prunes generations as due at the clock's `now`. Call at
    /// startup and then periodically (see [`CertificateAuthority::next_rotation_at`]).
    /// Blocks on file I/O.
    pub fn rotate_if_due(&self) -> Result<RotationReport, CaError> {
        let now = self.clock.now();
        let mut guard = self.write()?;
        let a = &mut *guard;
        let mut report = RotationReport::default();

        if a.prepared.is_some() && activation_due(&a.active, now) {
            report.activated = Some(self.activate(a)?);
        }
        if a.prepared.is_none() && preparation_due(&a.active, now) && self.can_outlive(a) {
            report.prepared = Some(self.prepare(a, now)?);
            if a.active.not_after <= now {
                tracing::warn!("the active ca had expired; activating its successor at once");
                report.activated = Some(self.activate(a)?);
            }
        }
        report.dropped_roots = self.prune(a, now)?;
        report.bundle_changed = self.publish(a);
        Ok(report)
    }

    /// When the next rotation step is due (prepare, activate, or prune), so the caller can
    /// sleep until then. Already-due steps return a time `≤ now`.
    pub fn next_rotation_at(&self) -> Result<SystemTime, CaError> {
        let a = self.authorities.read().map_err(|_| CaError::Poisoned)?;
        let step = match (&a.prepared, &self.upstream) {
            (Some(_), _) => a.active.not_after - a.active.lifetime() / 6,
            // Capped by the upstream: nothing to prepare until the upstream is renewed.
            (None, Some(up)) if up.not_after <= a.active.not_after => a.active.not_after,
            (None, _) => a.active.not_after - a.active.lifetime() / 2,
        };
        let prune = a
            .retired
            .iter()
            .map(|g| g.not_after + Duration::from_secs(1));
        Ok(prune.fold(step, SystemTime::min))
    }

    /// Applies the rotation rules until `shutdown`: runs `rotate_if_due` (on the blocking
    /// pool) now, then whenever the clock reaches [`CertificateAuthority::next_rotation_at`],
    /// and at least every `period` (the wall clock can be stepped). An activation that was due
    /// in the tick that prepared its root waits for the next period, so agents have had the
    /// root for that long. Each step that changed anything is logged and handed to
    /// `observer`; errors are logged and retried after `period`.
    pub async fn run_rotation(
        self: Arc<Self>,
        period: Duration,
        shutdown: CancellationToken,
        observer: impl RotationObserver,
    ) {
        let span = tracing::info_span!("ca_rotation");
        async move {
            loop {
                let ca = self.clone();
                match tokio::task::spawn_blocking(move || ca.rotate_if_due()).await {
                    Ok(Ok(report)) if report != RotationReport::default() => {
                        tracing::info!(?report, "ca rotation step");
                        observer.rotated(report).await;
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => tracing::error!(%error, "ca rotation failed"),
                    Err(error) => tracing::error!(%error, "ca rotation task failed"),
                }
                let next_step: BoxFuture<'static, ()> = match self.next_rotation_at() {
                    Ok(at) if at > self.clock.now() => self.clock.sleep_until(at),
                    // Due but not taken: an activation waits one period after the tick that
                    // prepared it, an upstream CA that expires with the active one blocks
                    // preparing, or the step failed. The period decides.
                    Ok(_) => Box::pin(std::future::pending()),
                    Err(error) => {
                        tracing::error!(%error, "cannot schedule the next ca rotation step");
                        Box::pin(std::future::pending())
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = next_step => {}
                    () = tokio::time::sleep(period) => {}
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// In upstream mode a new intermediate is capped by the upstream NotAfter; once that cap is
    /// reached, a new generation would not outlive the active one, so rotating is pointless.
    fn can_outlive(&self, a: &Authorities) -> bool {
        match &self.upstream {
            Some(up) if up.not_after <= a.active.not_after => {
                tracing::warn!(
                    upstream_not_after = ?up.not_after,
                    "the upstream ca expires with the active ca; renew it to keep rotating"
                );
                false
            }
            _ => true,
        }
    }

    fn prepare(&self, a: &mut Authorities, now: SystemTime) -> Result<u64, CaError> {
        let number = a.state.next_generation;
        let next = Generation::create(
            number,
            &self.trust_domain,
            now,
            self.ca_ttl,
            self.upstream.as_ref(),
        )?;
        let key = next.key().ok_or_else(|| CaError::Generate {
            what: "key",
            reason: "new generation has no key".into(),
        })?;
        self.store.write_key(number, key)?;
        self.store.write_chain(number, &next.chain)?;
        let mut state = a.state.clone();
        state.next_generation = number + 1;
        state.prepared = Some(number);
        if state.mode == Mode::SelfSigned {
            state.bundle_sequence += 1;
        }
        self.store.write_state(&state)?;
        a.state = state;
        tracing::info!(generation = number, not_after = ?next.not_after, "prepared the next ca");
        a.prepared = Some(next);
        Ok(number)
    }

    fn activate(&self, a: &mut Authorities) -> Result<u64, CaError> {
        let Some(next) = a.prepared.take() else {
            return Ok(a.active.number);
        };
        let mut state = a.state.clone();
        let old = a.active.number;
        state.active = next.number;
        state.prepared = None;
        let keep_old_root = state.mode == Mode::SelfSigned;
        if keep_old_root {
            state.retired.push(old);
        }
        if let Err(e) = self.store.write_state(&state) {
            a.prepared = Some(next);
            return Err(e);
        }
        a.state = state;
        let mut retired = std::mem::replace(&mut a.active, next);
        // The old key signs nothing any more: drop it from memory (zeroized) and disk.
        retired.signer = None;
        self.store.remove(&key_file(old))?;
        if keep_old_root {
            a.retired.push(retired);
        } else {
            self.store.remove(&cert_file(old))?;
        }
        tracing::info!(
            generation = a.active.number,
            retired = old,
            "activated the next ca"
        );
        Ok(a.active.number)
    }

    fn prune(&self, a: &mut Authorities, now: SystemTime) -> Result<usize, CaError> {
        let (expired, kept): (Vec<_>, Vec<_>) =
            a.retired.drain(..).partition(|g| g.not_after < now);
        a.retired = kept;
        if expired.is_empty() {
            return Ok(0);
        }
        let mut state = a.state.clone();
        state
            .retired
            .retain(|g| !expired.iter().any(|e| e.number == *g));
        state.bundle_sequence += 1;
        if let Err(e) = self.store.write_state(&state) {
            a.retired.extend(expired);
            a.retired.sort_by_key(|g| g.number);
            return Err(e);
        }
        a.state = state;
        for g in &expired {
            self.store.remove(&cert_file(g.number))?;
            tracing::info!(
                generation = g.number,
                "dropped an expired root from the bundle"
            );
        }
        Ok(expired.len())
    }
}

fn preparation_due(active: &Generation, now: SystemTime) -> bool {
    active.remaining(now) <= active.lifetime() / 2
}

fn activation_due(active: &Generation, now: SystemTime) -> bool {
    active.remaining(now) <= active.lifetime() / 6
}
