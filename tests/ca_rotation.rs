//! CA rotation with a fake clock (docs/architecture.md, "The CA"): prepare at 1/2, publish at
//! once, activate at 1/6, keep old roots while anything they signed can be valid; the one
//! rotation loop (`CertificateAuthority::run_rotation`) wakes when the clock reaches a step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ca_support;

use std::sync::Arc;
use std::time::Duration;

use ca_support::*;
use sworn_identity::{Expected, ProfileError, check_x509_svid};
use sworn_server::ca::{MintError, RotationObserver, RotationReport};
use sworn_server::clock::{Clock, FakeClock};
use tokio_util::sync::CancellationToken;

const WEB: &str = "spiffe://example.org/ns/default/sa/web";
const MINUTE: Duration = Duration::from_secs(60);

fn verifies(leaf: &[u8], roots: &[Vec<u8>], clock: &FakeClock) -> Result<(), ProfileError> {
    check_x509_svid(
        leaf,
        &[] as &[Vec<u8>],
        Expected::Id(&id(WEB)),
        roots,
        clock.now(),
    )
    .map(|_| ())
}

#[test]
fn next_root_is_published_before_it_signs_and_old_root_stays_while_needed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let t0 = clock.now();
    let ca = open(dir.path(), &clock);
    let mut rx = ca.subscribe();
    let root1 = ca.bundle().roots_der.clone();
    assert_eq!(root1.len(), 1);
    let ca1_not_after = ca.status().unwrap().active_not_after;
    assert_eq!(ca1_not_after, t0 + 24 * HOUR, "default ca ttl is 24 h");

    // Before half-life: nothing happens.
    clock.set(t0 + 12 * HOUR - MINUTE);
    assert_eq!(ca.rotate_if_due().unwrap(), RotationReport::default());
    assert!(!rx.has_changed().unwrap());

    // At half-life: generation 2 is prepared and published, generation 1 still signs.
    clock.set(t0 + 12 * HOUR);
    let report = ca.rotate_if_due().unwrap();
    assert_eq!(report.prepared, Some(2));
    assert_eq!(report.activated, None);
    assert!(report.bundle_changed);
    assert!(rx.has_changed().unwrap());
    let published = rx.borrow_and_update().clone();
    assert_eq!(published.roots_der.len(), 2);
    assert_eq!(published.roots_der[0], root1[0]);
    assert!(published.sequence > 1);
    assert!(dir.path().join("ca/ca-2.key").exists());
    let before_switch = mint(&ca, WEB, HOUR);
    verifies(before_switch.leaf_der(), &root1, &clock).expect("still signed by generation 1");

    // Just before 1/6 of the life remains: still generation 1; the TTL cap follows it.
    clock.set(t0 + 20 * HOUR - MINUTE);
    assert_eq!(ca.rotate_if_due().unwrap(), RotationReport::default());
    let capped = mint(&ca, WEB, 10 * HOUR);
    assert_eq!(
        capped.not_after, ca1_not_after,
        "ttl capped by the active ca"
    );
    verifies(capped.leaf_der(), &root1, &clock).unwrap();

    // At 1/6: generation 2 signs. Everything it signs verifies against the bundle that was
    // published 8 hours earlier, so agents already trust it.
    clock.set(t0 + 20 * HOUR);
    let report = ca.rotate_if_due().unwrap();
    assert_eq!(report.activated, Some(2));
    assert!(!report.bundle_changed, "activation publishes nothing new");
    assert!(!rx.has_changed().unwrap());
    assert!(
        !dir.path().join("ca/ca-1.key").exists(),
        "retired key deleted"
    );
    let after_switch = mint(&ca, WEB, 10 * HOUR);
    verifies(after_switch.leaf_der(), &published.roots_der, &clock).unwrap();
    assert_eq!(
        verifies(after_switch.leaf_der(), &root1, &clock),
        Err(ProfileError::NoTrustedRoot),
        "signed by the new key, not the old one"
    );
    assert_eq!(
        after_switch.not_after,
        clock.now() + 10 * HOUR,
        "cap follows the new ca"
    );

    // Old root stays while SVIDs it signed are valid: `capped` lives until t0 + 24 h.
    clock.set(t0 + 24 * HOUR - MINUTE);
    ca.rotate_if_due().unwrap();
    let bundle = ca.bundle();
    assert!(
        bundle.roots_der.contains(&root1[0]),
        "old root dropped too early"
    );
    verifies(capped.leaf_der(), &bundle.roots_der, &clock).unwrap();

    // Once nothing it signed can be valid, the old root is dropped.
    clock.set(t0 + 24 * HOUR + Duration::from_secs(1));
    let report = ca.rotate_if_due().unwrap();
    assert_eq!(report.dropped_roots, 1);
    assert!(report.bundle_changed);
    let bundle = rx.borrow_and_update().clone();
    assert!(!bundle.roots_der.contains(&root1[0]));
    assert!(
        !dir.path().join("ca/ca-1.crt").exists(),
        "dropped root's file removed"
    );
    verifies(after_switch.leaf_der(), &bundle.roots_der, &clock).unwrap();

    // A restart reads back exactly this state.
    let reopened = open(dir.path(), &clock);
    assert_eq!(reopened.bundle(), ca.bundle());
    assert_eq!(reopened.status().unwrap(), ca.status().unwrap());
}

#[test]
fn activation_never_happens_in_the_tick_that_prepares() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let t0 = clock.now();
    let ca = open(dir.path(), &clock);
    // The server was not ticking between 0 and 21 h: both steps are due at once.
    clock.set(t0 + 21 * HOUR);
    let report = ca.rotate_if_due().unwrap();
    assert_eq!((report.prepared, report.activated), (Some(2), None));
    let report = ca.rotate_if_due().unwrap();
    assert_eq!((report.prepared, report.activated), (None, Some(2)));
}

#[test]
fn an_expired_ca_is_replaced_at_the_first_tick() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let t0 = clock.now();
    drop(open(dir.path(), &clock));
    // Down for 30 hours: the CA expired. Loading still works (the store is intact) ...
    clock.set(t0 + 30 * HOUR);
    let ca = open(dir.path(), &clock);
    // ... but nothing is minted until rotation replaced it.
    assert!(matches!(
        ca.mint_x509_svid(request(WEB, HOUR)),
        Err(MintError::CaExpired)
    ));
    let report = ca.rotate_if_due().unwrap();
    assert_eq!(
        (report.prepared, report.activated, report.dropped_roots),
        (Some(2), Some(2), 1)
    );
    assert_eq!(ca.bundle().roots_der.len(), 1);
    let svid = mint(&ca, WEB, HOUR);
    verifies(svid.leaf_der(), &ca.bundle().roots_der, &clock).unwrap();
}

#[test]
fn next_rotation_at_tracks_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let t0 = clock.now();
    let ca = open(dir.path(), &clock);
    // The CA is backdated 10 s, so its life is 24 h + 10 s.
    let half = t0 + 12 * HOUR - Duration::from_secs(5);
    assert_eq!(ca.next_rotation_at().unwrap(), half);
    clock.set(half);
    assert_eq!(ca.rotate_if_due().unwrap().prepared, Some(2));
    let next = ca.next_rotation_at().unwrap();
    assert!(next > half && next <= t0 + 20 * HOUR, "{next:?}");
}

/// Hands each report the loop produces to the test.
struct Reports(tokio::sync::mpsc::UnboundedSender<RotationReport>);

#[async_trait::async_trait]
impl RotationObserver for Reports {
    async fn rotated(&self, report: RotationReport) {
        let _ = self.0.send(report);
    }
}

async fn next_report(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<RotationReport>,
) -> RotationReport {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a rotation report in time")
        .expect("the loop is running")
}

#[tokio::test]
async fn run_rotation_wakes_when_the_clock_reaches_each_step_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let ca = Arc::new(open(dir.path(), &clock));
    let mut bundles = ca.subscribe();
    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    // A period far longer than the test: only the clock reaching a step can wake the loop.
    let task = tokio::spawn(ca.clone().run_rotation(HOUR, shutdown.clone(), Reports(tx)));

    clock.set(ca.next_rotation_at().unwrap());
    let prepared = next_report(&mut reports).await;
    assert_eq!(
        prepared,
        RotationReport {
            prepared: Some(2),
            bundle_changed: true,
            ..RotationReport::default()
        }
    );
    assert!(
        bundles.has_changed().unwrap(),
        "the new root is on the watch channel"
    );
    assert_eq!(bundles.borrow_and_update().roots_der.len(), 2);

    clock.set(ca.next_rotation_at().unwrap());
    let activated = next_report(&mut reports).await;
    assert_eq!(
        activated,
        RotationReport {
            activated: Some(2),
            ..RotationReport::default()
        }
    );
    assert_eq!(ca.status().unwrap().active_generation, 2);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn run_rotation_activates_a_root_prepared_late_only_a_period_after_publishing_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at_wall_time();
    let t0 = clock.now();
    let ca = Arc::new(open(dir.path(), &clock));
    let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let period = Duration::from_millis(300);
    let task = tokio::spawn(
        ca.clone()
            .run_rotation(period, shutdown.clone(), Reports(tx)),
    );

    // The server was not running between 1/2 and 1/6: both steps are due at once.
    clock.set(t0 + 21 * HOUR);
    assert_eq!(next_report(&mut reports).await.prepared, Some(2));
    let published = std::time::Instant::now();
    assert_eq!(next_report(&mut reports).await.activated, Some(2));
    assert!(
        published.elapsed() >= period,
        "activated {:?} after publishing the root, before one period",
        published.elapsed()
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}
