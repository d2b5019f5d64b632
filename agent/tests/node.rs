//! Node attestation and the agent API link, against the real in-process server: server
//! identity pinning, insecure bootstrap, agent SVID renewal, the server going away and back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{Env, client, my_uid, uid_selector};
use sworn_agent::{Agent, Bootstrap, JoinToken, NodeAttestation};
use sworn_identity::{AgentId, Serial};
use sworn_proto::workload::X509svidRequest;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_outside_the_bootstrap_bundle_or_with_another_id_is_never_trusted() {
    let env = Env::start().await;
    let other = Env::start().await;
    let token = env.join_token().await;

    // Bootstrap bundle of another server: TLS fails, the token is never sent.
    let mut config = env.agent_config("unknown-ca");
    config.bootstrap = Bootstrap::BundleFile(other.server_bundle_file());
    config.attestation = NodeAttestation::JoinToken(Some(JoinToken::new(&token)));
    let agent = Agent::start(config, CancellationToken::new())
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(3), agent.ready()).await;
    assert!(waited.is_err(), "an agent must not attest to an unknown CA");
    assert!(!agent.readiness().attested);
    agent.shutdown().await.unwrap();

    // The right roots but a different trust domain: the pinned server ID does not match.
    let mut config = env.agent_config("wrong-id");
    config.trust_domain = sworn_identity::parse_trust_domain("other.org").unwrap();
    config.attestation = NodeAttestation::JoinToken(Some(JoinToken::new(&token)));
    let agent = Agent::start(config, CancellationToken::new())
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(3), agent.ready()).await;
    assert!(
        waited.is_err(),
        "an agent must pin spiffe://<td>/sworn/server"
    );
    agent.shutdown().await.unwrap();

    // The token was never presented, so the right agent can still use it.
    let mut config = env.agent_config("right");
    config.attestation = NodeAttestation::JoinToken(Some(JoinToken::new(&token)));
    let agent = Agent::start(config, CancellationToken::new())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), agent.ready())
        .await
        .unwrap()
        .unwrap();
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_bootstrap_attests_once_then_trusts_the_returned_bundle() {
    let env = Env::start().await;
    let mut config = env.agent_config("a");
    config.bootstrap = Bootstrap::DangerInsecure;
    config.attestation = NodeAttestation::JoinToken(Some(JoinToken::new(&env.join_token().await)));
    let agent = Agent::start(config, CancellationToken::new())
        .await
        .unwrap();
    let id = tokio::time::timeout(Duration::from_secs(20), agent.ready())
        .await
        .unwrap()
        .unwrap();
    agent.shutdown().await.unwrap();
    // The bundle from Attest was persisted and is what the agent trusts from now on.
    let saved = std::fs::read(env.dir.path().join("a").join("bundle.pem")).unwrap();
    let server = std::fs::read(env.server_bundle_file()).unwrap();
    let der = |b: &[u8]| -> Vec<Vec<u8>> {
        pem::parse_many(b)
            .unwrap()
            .into_iter()
            .map(|p| p.into_contents())
            .collect()
    };
    assert_eq!(der(&saved), der(&server));
    // A restart (no token) verifies the server with the persisted bundle.
    let mut config = env.agent_config("a");
    config.bootstrap = Bootstrap::DangerInsecure;
    let agent = Agent::start(config, CancellationToken::new())
        .await
        .unwrap();
    let again = tokio::time::timeout(Duration::from_secs(20), agent.ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, id);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_svid_is_renewed_and_sync_keeps_flowing() {
    let env = Env::start_with(|c| c.agent_svid_ttl = Duration::from_secs(8)).await;
    let agent = env.agent("a").await;
    let id = agent.agent_id().unwrap();
    let store = env.server.shared.store.clone();
    let record = || async { store.get_agent(&id).await.unwrap().unwrap() };
    let first_serial = record().await.serial;
    let svid_file = env.dir.path().join("a").join("agent_svid.pem");
    let first = std::fs::read(&svid_file).unwrap();
    let renewed = support::eventually(Duration::from_secs(20), || {
        std::fs::read(&svid_file).unwrap() != first
    })
    .await;
    assert!(renewed, "the agent svid was not renewed");
    assert_eq!(agent.agent_id().unwrap(), id, "renewal keeps the agent id");
    // The renewed certificate supersedes the old one on the server once the agent uses it
    // (the previous serial is forgotten); then the agent still hears about entries and can
    // mint over the new channel.
    superseded(&env, &id, &first_serial).await;
    let entry = env
        .entry(
            "spiffe://example.org/after-renewal",
            &uid_selector(my_uid()),
            id.as_str(),
            600,
        )
        .await;
    synced(&agent, &[&entry]).await;
    let svids = sworn_agent::fetch::fetch_x509(agent.socket_path().as_path())
        .await
        .unwrap();
    assert_eq!(svids[0].spiffe_id, "spiffe://example.org/after-renewal");
    assert!(agent.readiness().is_ready());
    agent.shutdown().await.unwrap();
}

/// Waits (bounded) until the server has a renewed certificate for `id` and has forgotten
/// `first` (the agent used the new one, so the old one is superseded).
async fn superseded(env: &Env, id: &AgentId, first: &Serial) {
    let store = env.server.shared.store.clone();
    sworn_harness::wait_until_async(
        "the renewed agent certificate to supersede the first",
        Duration::from_secs(20),
        async || {
            let now = store.get_agent(id).await.unwrap().unwrap();
            now.serial != *first && now.prev_serial.is_none()
        },
    )
    .await;
}

/// A mint call made with the agent's old certificate can reach the server after the agent
/// renewed it and the server superseded the old one. That refusal is about a certificate the
/// agent no longer uses, not about the agent: the caller still gets its SVID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mint_sent_with_the_superseded_agent_certificate_is_retried_with_the_new_one() {
    let env = Env::start_with(|c| c.agent_svid_ttl = Duration::from_secs(8)).await;
    let agent = env.agent("a").await;
    let id = agent.agent_id().unwrap();
    let first_serial = env
        .server
        .shared
        .store
        .get_agent(&id)
        .await
        .unwrap()
        .unwrap()
        .serial;
    let entry = env
        .entry(
            "spiffe://example.org/in-flight",
            &uid_selector(my_uid()),
            id.as_str(),
            600,
        )
        .await;
    synced(&agent, &[&entry]).await;
    // The caller's first mint is held at the server's door, before the agent's certificate
    // is looked at, while the agent renews its SVID (half of 8 s) and uses the new one.
    let stalls = &env.server.shared.mint_stalls;
    stalls.hold_calls(&entry);
    let socket = agent.socket_path().as_path().to_owned();
    let fetch = tokio::spawn(async move { sworn_agent::fetch::fetch_x509(&socket).await });
    tokio::time::timeout(Duration::from_secs(10), stalls.held(&entry))
        .await
        .expect("the caller's mint reaches the server");
    superseded(&env, &id, &first_serial).await;
    assert!(
        stalls.holding(&entry),
        "the old certificate's call is still waiting"
    );
    stalls.release_calls(&entry);
    let svids = tokio::time::timeout(Duration::from_secs(30), fetch)
        .await
        .expect("the fetch ends")
        .unwrap()
        .expect("the caller gets its SVID, not Unavailable");
    assert_eq!(svids[0].spiffe_id, "spiffe://example.org/in-flight");
    agent.shutdown().await.unwrap();
}

/// Waits (bounded) until the agent's synced state holds `entries`.
async fn synced(agent: &sworn_agent::RunningAgent, entries: &[&str]) {
    tokio::time::timeout(Duration::from_secs(10), agent.entries_synced(entries))
        .await
        .expect("the entries reach the agent in time")
        .unwrap();
}

fn path_selector(path: &std::path::Path) -> String {
    format!(
        "unix:path:{}",
        std::fs::canonicalize(path).unwrap().display()
    )
}

async fn fetch_in_child(socket: &std::path::Path) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_sworn-agent"))
        .args(["fetch", "x509", "--socket"])
        .arg(socket)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_keeps_cached_svids_and_back_up_serves_new_callers() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let me = vec![
        format!("unix:uid:{}", my_uid()),
        path_selector(&std::env::current_exe().unwrap()),
    ];
    let cli = vec![
        format!("unix:uid:{}", my_uid()),
        path_selector(std::path::Path::new(env!("CARGO_BIN_EXE_sworn-agent"))),
    ];
    let cached = env
        .entry("spiffe://example.org/cached", &me, &node, 600)
        .await;
    let cli = env
        .entry("spiffe://example.org/cli", &cli, &node, 600)
        .await;
    synced(&agent, &[&cached, &cli]).await;
    let socket = agent.socket_path().as_path().to_owned();
    let mut stream = client(&socket)
        .await
        .fetch_x509svid(sworn_agent::fetch::request(X509svidRequest {}))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.svids[0].spiffe_id, "spiffe://example.org/cached");

    let (dir, config) = env.stop_server().await;
    // Cached: this process is still served.
    let svids = sworn_agent::fetch::fetch_x509(&socket).await.unwrap();
    assert_eq!(svids[0].spiffe_id, "spiffe://example.org/cached");
    // A new caller (another executable) needs a mint: Unavailable, not PermissionDenied.
    let out = fetch_in_child(&socket).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Unavailable"), "{stderr}");

    let env = Env::restart_server(dir, config).await;
    let mut served = false;
    for _ in 0..20 {
        let out = fetch_in_child(&socket).await;
        if out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("spiffe://example.org/cli"), "{stdout}");
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        served,
        "the agent did not recover after the server came back"
    );
    // The stream opened before the outage survived it: no error, no end, no empty message.
    // (Whether it sees entries created on the restarted server depends on the in-process
    // server ending its old Sync streams on shutdown; see the report.)
    let quiet = tokio::time::timeout(Duration::from_secs(1), stream.message()).await;
    assert!(
        quiet.is_err(),
        "the pre-outage stream ended or changed: {quiet:?}"
    );
    let _ = &env;
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_join_token_agent_is_not_ready_but_keeps_serving_cached_svids() {
    let env = Env::start_with(|c| c.agent_svid_ttl = Duration::from_secs(10)).await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let kept = env
        .entry(
            "spiffe://example.org/kept",
            &uid_selector(my_uid()),
            &node,
            600,
        )
        .await;
    synced(&agent, &[&kept]).await;
    let socket = agent.socket_path().as_path().to_owned();
    sworn_agent::fetch::fetch_x509(&socket).await.unwrap();

    env.admin
        .clone()
        .ban_agent(sworn_proto::admin::AgentId { id: node.clone() })
        .await
        .unwrap();
    // Refused at the latest at the next renewal (half of 10 s).
    let mut readyz = None;
    for _ in 0..40 {
        let answer = sworn_agent::probe::readyz(agent.health_address())
            .await
            .unwrap();
        if answer.body == "rejected" {
            readyz = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let readyz = readyz.expect("the agent reports it was rejected");
    assert_eq!(readyz.status, 503);
    // The cached SVID is still served.
    let svids = sworn_agent::fetch::fetch_x509(&socket).await.unwrap();
    assert_eq!(svids[0].spiffe_id, "spiffe://example.org/kept");
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_exits_during_attestation_gets_nothing_minted() {
    let env = Env::start().await;
    // The padded binary below must be hashed, not refused by the size or time caps.
    let agent = env
        .agent_with("a", |c| {
            c.max_exe_hash_bytes = 4 << 30;
            c.exe_hash_timeout = Duration::from_secs(120);
        })
        .await;
    let node = agent.agent_id().unwrap().to_string();
    // The agent hashes the caller's executable before it asks for anything.
    // A copy of the agent binary with 2 GiB of (sparse) padding makes that
    // take seconds, so the caller is reliably killed while it runs.
    let pad_dir = tempfile::tempdir().unwrap();
    let big = pad_dir.path().join("sworn-agent-padded");
    std::fs::copy(env!("CARGO_BIN_EXE_sworn-agent"), &big).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&big).unwrap();
    f.set_len(f.metadata().unwrap().len() + (2 << 30)).unwrap();
    drop(f);
    let binary = big.as_path();
    let exits = env
        .entry(
            "spiffe://example.org/exits",
            &[format!("unix:uid:{}", my_uid()), path_selector(binary)],
            &node,
            600,
        )
        .await;
    // The agent hashes callers only while some entry needs the digest: this one does (and
    // matches no executable here).
    let digest = env
        .entry(
            "spiffe://example.org/needs-a-digest",
            &[format!("unix:sha256:{}", "0".repeat(64))],
            &node,
            600,
        )
        .await;
    synced(&agent, &[&exits, &digest]).await;
    // The agent runs in this process: while it hashes the caller's executable, one of this
    // process's descriptors is that file.
    let hashing = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .any(|target| target == binary)
    };
    // Kill the caller while the agent hashes its executable.
    let mut child = tokio::process::Command::new(binary)
        .args(["fetch", "x509", "--socket"])
        .arg(agent.socket_path().as_path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        support::eventually(Duration::from_secs(30), hashing).await,
        "the agent never inspected the caller"
    );
    child.kill().await.unwrap();
    // Once the inspection is over, anything it (wrongly) minted is in the audit log.
    assert!(
        support::eventually(Duration::from_secs(60), || !hashing()).await,
        "the inspection never finished"
    );
    let minted_for_exits = || async {
        let mut events = env
            .admin
            .clone()
            .list_audit(sworn_proto::admin::ListAuditRequest {
                follow: false,
                after_id: 0,
                limit: 10_000,
            })
            .await
            .unwrap()
            .into_inner();
        let mut minted = Vec::new();
        while let Some(event) = events.message().await.unwrap() {
            if event.kind == "mint" && event.detail.contains("spiffe://example.org/exits") {
                minted.push(event.detail);
            }
        }
        minted
    };
    let minted = minted_for_exits().await;
    assert!(
        minted.is_empty(),
        "minted for a caller that had exited: {minted:?}"
    );
    // The agent carries on serving.
    let err = client(agent.socket_path().as_path())
        .await
        .fetch_x509svid(tonic::Request::new(X509svidRequest {}))
        .await
        .expect_err("no header");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // And nothing was minted by the time the agent has stopped.
    agent.shutdown().await.unwrap();
    let minted = minted_for_exits().await;
    assert!(
        minted.is_empty(),
        "minted for a caller that had exited: {minted:?}"
    );
}
