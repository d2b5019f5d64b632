//! The server's own CA rotation, end to end (docs/architecture.md, "The CA"): the real
//! `server::start` on a fake clock, a real agent attested over the agent API's TLS socket, and
//! a workload on the agent's Workload API socket, which sees the bundle only through the
//! agent's Sync stream.
//!
//! With `life` the root's validity, the schedule is: at `notAfter - life/2` the next root is
//! published (bundle file, Sync, metrics) while the old key still signs; at
//! `notAfter - life/6` the next key signs and the CA-expiry metric follows it, and the bundle
//! does not change (the root went out at 1/2); the old root leaves the bundle once nothing it
//! signed can be valid. No step is driven by the test: only the clock moves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sworn_agent::{Agent, Bootstrap, JoinToken, NodeAttestation, ServerAddress, SocketPath};
use sworn_identity::{Expected, ProfileError, SpiffeIdentity, check_x509_svid};
use sworn_proto::admin::admin_api_client::AdminApiClient;
use sworn_proto::admin::{CreateEntryRequest, GenerateJoinTokenRequest, MintX509SvidRequest};
use sworn_proto::workload::{X509BundlesRequest, X509BundlesResponse};
use sworn_server::ca::SvidKeyPair;
use sworn_server::clock::{Clock, FakeClock};
use sworn_server::server::RunningServer;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

const TD: &str = "example.org";
/// Bound on each condition the test waits for; the server reacts within one rotation check.
const WAIT: Duration = Duration::from_secs(30);

/// A root of the bundle with the validity the schedule is computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Root {
    der: Vec<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Root {
    fn parse(der: &[u8]) -> Root {
        let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
        let at = |secs: i64| UNIX_EPOCH + Duration::from_secs(secs.try_into().unwrap());
        Root {
            der: der.to_vec(),
            not_before: at(c.validity().not_before.timestamp()),
            not_after: at(c.validity().not_after.timestamp()),
        }
    }

    fn life(&self) -> Duration {
        self.not_after.duration_since(self.not_before).unwrap()
    }

    /// When the next CA is prepared: 1/2 of the life remains.
    fn half(&self) -> SystemTime {
        self.not_after - self.life() / 2
    }

    /// When the next CA starts signing: 1/6 of the life remains.
    fn sixth(&self) -> SystemTime {
        self.not_after - self.life() / 6
    }
}

fn roots_of_pem(pem_text: &[u8]) -> Vec<Root> {
    pem::parse_many(pem_text)
        .unwrap()
        .iter()
        .map(|p| Root::parse(p.contents()))
        .collect()
}

fn roots_of_der(concatenated: &[u8]) -> Vec<Root> {
    sworn_agent::fetch::split_der(concatenated)
        .unwrap()
        .iter()
        .map(|d| Root::parse(d))
        .collect()
}

/// Polls `f` every 20 ms until it returns `Some`, failing with `what` after [`WAIT`].
async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let end = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The bundle file's roots once it holds exactly `n` certificates.
async fn bundle_file_with(path: &Path, n: usize) -> Vec<Root> {
    wait_for(&format!("the bundle file holds {n} roots"), async || {
        let roots = roots_of_pem(&std::fs::read(path).ok()?);
        (roots.len() == n).then_some(roots)
    })
    .await
}

/// A gauge of the server's `/metrics` page.
async fn metric(server: &RunningServer, name: &str) -> Option<i64> {
    let page = sworn_agent::probe::get(server.health_addr, "/metrics")
        .await
        .ok()?;
    let prefix = format!("{name} ");
    page.body
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

async fn metric_is(server: &RunningServer, name: &str, want: i64) {
    wait_for(&format!("{name} = {want}"), async || {
        (metric(server, name).await == Some(want)).then_some(())
    })
    .await
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// The roots of the workload's next bundle message, which the agent only sends when the
/// bundle it got from Sync changed.
async fn next_bundle(stream: &mut Streaming<X509BundlesResponse>) -> Vec<Root> {
    let msg = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a bundle message on the workload stream in time")
        .expect("the bundle stream failed")
        .expect("the bundle stream ended");
    roots_of_der(&msg.bundles[&format!("spiffe://{TD}")])
}

/// An X509-SVID minted now through the admin socket, and whether it verifies to `roots`.
async fn admin_mint_verifies(
    admin: &mut AdminApiClient<Channel>,
    clock: &FakeClock,
    roots: &[Root],
) -> Result<(), ProfileError> {
    let key = SvidKeyPair::generate().unwrap();
    let id = format!("spiffe://{TD}/rotation-probe");
    let minted = admin
        .mint_x509_svid(MintX509SvidRequest {
            spiffe_id: id.clone(),
            ttl_seconds: 60,
            csr: key.csr_der().unwrap(),
            dns_names: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let roots: Vec<&[u8]> = roots.iter().map(|r| r.der.as_slice()).collect();
    check_x509_svid(
        &minted.chain[0],
        &minted.chain[1..],
        Expected::Id(&SpiffeIdentity::parse(&id).unwrap()),
        &roots,
        clock.now(),
    )
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_server_publishes_the_next_root_at_one_half_and_signs_with_it_at_one_sixth() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_test_writer()
        .try_init();
    let dir = tempfile::Builder::new()
        .prefix("sw")
        .tempdir_in("/tmp")
        .unwrap();
    let td = sworn_identity::parse_trust_domain(TD).unwrap();
    let mut config = sworn_server::config::Config::minimal(td.clone(), dir.path().join("server"));
    config.agent_api_address = "127.0.0.1:0".parse().unwrap();
    config.health_address = "127.0.0.1:0".parse().unwrap();
    config.admin_socket = dir.path().join("admin.sock");
    // Only the server's clock moves, so the agent never renews: its SVID must outlive every
    // step the Sync stream is checked at, or the server ends the stream at its notAfter
    // (the CA caps it at the first root's notAfter).
    config.agent_svid_ttl = Duration::from_secs(24 * 3600);
    let bundle_file = config.bundle_file.clone();
    let clock = FakeClock::at_wall_time();
    let server = sworn_server::server::start(config, Arc::new(clock.clone()))
        .await
        .unwrap();
    let mut admin = sworn_server::admin::client::connect(&server.admin_socket)
        .await
        .unwrap();

    // A real agent, attested with a join token over the agent API's TLS socket.
    let token = admin
        .generate_join_token(GenerateJoinTokenRequest { ttl_seconds: 600 })
        .await
        .unwrap()
        .into_inner()
        .token;
    let address = ServerAddress {
        host: "127.0.0.1".into(),
        port: server.agent_api_addr.port(),
    };
    let mut agent_config = sworn_agent::Config::new(
        td,
        dir.path().join("agent"),
        address,
        Bootstrap::BundleFile(bundle_file.clone()),
    )
    .unwrap();
    agent_config.socket_path = SocketPath::new(dir.path().join("agent.sock")).unwrap();
    agent_config.health_address = "127.0.0.1:0".parse().unwrap();
    agent_config.attestation = NodeAttestation::JoinToken(Some(JoinToken::new(&token)));
    let agent = Agent::start(agent_config, CancellationToken::new())
        .await
        .unwrap();
    let agent_id = tokio::time::timeout(WAIT, agent.ready())
        .await
        .expect("agent ready in time")
        .unwrap();
    // This test process is the workload: an entry for its uid, scoped to the agent.
    admin
        .create_entry(CreateEntryRequest {
            spiffe_id: format!("spiffe://{TD}/workload"),
            selectors: vec![format!("unix:uid:{}", rustix::process::geteuid().as_raw())],
            node: agent_id.to_string(),
            ttl_seconds: 3600,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut workload = sworn_agent::fetch::connect(agent.socket_path().as_path())
        .await
        .unwrap();
    // The entry reaches the agent over Sync; until then the caller has no identity.
    let mut bundles = wait_for("the agent serves the workload its bundle", async || {
        let mut request = tonic::Request::new(X509BundlesRequest {});
        request
            .metadata_mut()
            .insert("workload.spiffe.io", "true".parse().unwrap());
        match workload.fetch_x509_bundles(request).await {
            Ok(stream) => Some(stream.into_inner()),
            Err(status) if status.code() == Code::PermissionDenied => None,
            Err(status) => panic!("fetch_x509_bundles: {status:?}"),
        }
    })
    .await;

    let first = bundle_file_with(&bundle_file, 1).await;
    let root1 = first[0].clone();
    assert_eq!(next_bundle(&mut bundles).await, first);
    metric_is(&server, "sworn_server_bundle_roots", 1).await;
    metric_is(
        &server,
        "sworn_server_ca_expiry_seconds",
        unix(root1.not_after),
    )
    .await;

    // 1/2 of the life remains: the next root is published everywhere, the old key still signs.
    clock.set(root1.half());
    let two = bundle_file_with(&bundle_file, 2).await;
    assert_eq!(two[0], root1, "the old root stays, first");
    let root2 = two[1].clone();
    assert_eq!(
        root2.not_before,
        root1.half() - Duration::from_secs(10),
        "the next CA was made when 1/2 of the life remained (and is backdated 10 s)"
    );
    assert_eq!(
        next_bundle(&mut bundles).await,
        two,
        "the agent's Sync stream carried the new root to the workload"
    );
    metric_is(&server, "sworn_server_bundle_roots", 2).await;
    assert_eq!(
        metric(&server, "sworn_server_ca_expiry_seconds").await,
        Some(unix(root1.not_after)),
        "the old CA still signs"
    );
    admin_mint_verifies(&mut admin, &clock, std::slice::from_ref(&root1))
        .await
        .expect("signed by the old key until 1/6 remains");

    // 1/6 remains: the next key signs. The bundle already holds its root and does not change.
    clock.set(root1.sixth());
    metric_is(
        &server,
        "sworn_server_ca_expiry_seconds",
        unix(root2.not_after),
    )
    .await;
    assert_eq!(
        admin_mint_verifies(&mut admin, &clock, std::slice::from_ref(&root1)).await,
        Err(ProfileError::NoTrustedRoot),
        "no longer signed by the old key"
    );
    admin_mint_verifies(&mut admin, &clock, std::slice::from_ref(&root2))
        .await
        .expect("signed by the new key");
    assert_eq!(roots_of_pem(&std::fs::read(&bundle_file).unwrap()), two);

    // The new CA's own 1/2: the third root is published. It is the workload's next bundle
    // message, so the workload saw no bundle change at 1/6.
    clock.set(root2.half());
    let three = bundle_file_with(&bundle_file, 3).await;
    assert_eq!(three[..2], two[..]);
    assert_eq!(next_bundle(&mut bundles).await, three);
    metric_is(&server, "sworn_server_bundle_roots", 3).await;

    // Once nothing the first root signed can be valid, it leaves the bundle. The agent's own
    // SVID is one of those: only the server's clock moved, so the agent never renewed, and
    // the server ends its Sync stream at that SVID's notAfter (docs/architecture.md, "Agent
    // API limits"); the pruned bundle is seen in the file and the metrics.
    clock.set(root1.not_after + Duration::from_secs(1));
    let pruned = bundle_file_with(&bundle_file, 2).await;
    assert_eq!(pruned[..], three[1..]);
    metric_is(&server, "sworn_server_bundle_roots", 2).await;

    agent.shutdown().await.unwrap();
    server.shutdown(Duration::from_secs(5)).await;
}
