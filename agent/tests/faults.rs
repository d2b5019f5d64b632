//! Bad input and faults on the Workload API socket: before attestation, garbage protobuf,
//! many connections, a client that never reads, bad socket paths, restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use bytes_codec::RawCodec;
use support::{Env, client, eventually, fd_count, my_uid, uid_selector};
use sworn_agent::{Agent, AgentError, Bootstrap, NodeAttestation, SocketPath, SocketPathError};
use sworn_proto::workload::{X509svidRequest, X509svidResponse};
use tokio_util::sync::CancellationToken;
use tonic::Code;

fn secured<T>(msg: T) -> tonic::Request<T> {
    sworn_agent::fetch::request(msg)
}

mod bytes_codec {
    //! A codec that sends raw bytes as the request message, to put garbage on the wire.
    use prost::bytes::{Buf, BufMut};
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    #[derive(Debug, Clone, Default)]
    pub struct RawCodec;
    #[derive(Debug, Clone, Default)]
    pub struct RawEncoder;
    #[derive(Debug, Clone, Default)]
    pub struct RawDecoder;

    impl Codec for RawCodec {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = RawEncoder;
        type Decoder = RawDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> RawDecoder {
            RawDecoder
        }
    }

    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for RawDecoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
            let mut out = vec![0; src.remaining()];
            src.copy_to_slice(&mut out);
            Ok(Some(out))
        }
    }
}

/// Waits (bounded) until the agent's synced state holds `entries`.
async fn synced(agent: &sworn_agent::RunningAgent, entries: &[&str]) {
    tokio::time::timeout(Duration::from_secs(10), agent.entries_synced(entries))
        .await
        .expect("the entries reach the agent in time")
        .unwrap();
}

async fn raw_call(socket: &std::path::Path, body: Vec<u8>) -> Result<(), tonic::Status> {
    let channel = sworn_agent::fetch::channel(socket).await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/SpiffeWorkloadAPI/FetchX509SVID");
    let mut stream = grpc
        .server_streaming(secured(body), path, RawCodec)
        .await?
        .into_inner();
    stream.message().await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_attestation_calls_are_unavailable_and_readyz_says_not_attested() {
    support::init_tracing();
    let dir = tempfile::Builder::new()
        .prefix("sw")
        .tempdir_in("/tmp")
        .unwrap();
    // A port nobody listens on: the agent can never attest.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = sworn_agent::Config::new(
        sworn_identity::parse_trust_domain(support::TD).unwrap(),
        dir.path().join("agent"),
        sworn_agent::ServerAddress {
            host: "127.0.0.1".into(),
            port,
        },
        Bootstrap::DangerInsecure,
    )
    .unwrap();
    config.attestation = NodeAttestation::JoinToken(Some(sworn_agent::JoinToken::new("t")));
    config.socket_path = SocketPath::new(dir.path().join("a.sock")).unwrap();
    config.health_address = "127.0.0.1:0".parse().unwrap();
    let agent = Agent::start(config, CancellationToken::new())
        .await
        .unwrap();
    let err = client(agent.socket_path().as_path())
        .await
        .fetch_x509svid(secured(X509svidRequest {}))
        .await
        .expect_err("unavailable");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let answer = sworn_agent::probe::readyz(agent.health_address())
        .await
        .unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (503, "not attested"));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_sworn-agent"))
        .args([
            "healthcheck",
            "--address",
            &agent.health_address().to_string(),
        ])
        .output()
        .unwrap();
    assert!(!status.status.success());
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_requests_are_refused_and_the_server_keeps_serving() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let socket = agent.socket_path().as_path().to_owned();
    // Positive control on the same raw path: a well-formed (empty) request is
    // decoded and reaches the caller check (this caller has no entry).
    let err = raw_call(&socket, Vec::new())
        .await
        .expect_err("no entry for this caller");
    assert_eq!(
        (err.code(), err.message()),
        (Code::PermissionDenied, "no identity issued"),
        "{err:?}"
    );
    // A field tag with an invalid wire type: not protobuf, refused while decoding.
    let err = raw_call(&socket, vec![0xff; 16])
        .await
        .expect_err("garbage refused");
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(err.message().contains("decod"), "{err:?}");
    // Larger than the 4 KiB inbound limit.
    let big = vec![0x0a; sworn_agent::MAX_REQUEST_BYTES + 1];
    let err = raw_call(&socket, big).await.expect_err("oversized refused");
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    // Still serving.
    let err = client(&socket)
        .await
        .fetch_x509svid(tonic::Request::new(X509svidRequest {}))
        .await
        .expect_err("no header");
    assert_eq!(err.code(), Code::InvalidArgument);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_from_one_process_are_bounded_and_leak_no_fds() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let socket = agent.socket_path().as_path().to_owned();
    // Count once the agent's own connections have settled: two samples 50 ms
    // apart agree.
    let mut last = fd_count();
    let settled = eventually(Duration::from_secs(10), move || {
        let now = fd_count();
        std::mem::replace(&mut last, now) == now
    })
    .await;
    assert!(settled, "the fd count never settled");
    let baseline = fd_count();
    let attempts = sworn_agent::MAX_CONNECTIONS_PER_TENANT + 72;
    let mut clients = Vec::new();
    let mut served = 0;
    for _ in 0..attempts {
        let Ok(mut c) = sworn_agent::fetch::connect(&socket).await else {
            continue;
        };
        // Refused at the header, before attestation: cheap, but a real round trip.
        let answer = c
            .fetch_x509svid(tonic::Request::new(X509svidRequest {}))
            .await;
        if matches!(&answer, Err(s) if s.code() == Code::InvalidArgument) {
            served += 1;
        }
        clients.push(c);
    }
    assert!(served > 0);
    assert!(
        served <= sworn_agent::MAX_CONNECTIONS_PER_TENANT,
        "{served} connections served, limit {}",
        sworn_agent::MAX_CONNECTIONS_PER_TENANT
    );
    drop(clients);
    let settled = eventually(Duration::from_secs(10), || fd_count() <= baseline + 2).await;
    assert!(settled, "fds: baseline {baseline}, now {}", fd_count());
    // And the agent serves new connections again.
    let err = client(&socket)
        .await
        .fetch_x509svid(tonic::Request::new(X509svidRequest {}))
        .await
        .expect_err("no header");
    assert_eq!(err.code(), Code::InvalidArgument);
    agent.shutdown().await.unwrap();
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_stream_does_not_grow_memory() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let steady = env
        .entry(
            "spiffe://example.org/steady",
            &uid_selector(my_uid()),
            &node,
            600,
        )
        .await;
    synced(&agent, &[&steady]).await;
    let mut c = client(agent.socket_path().as_path()).await;
    // Opened and never read until the end.
    let response = c.fetch_x509svid(secured(X509svidRequest {})).await.unwrap();
    let before = rss_kib();
    // Each change sends the stream a new complete message (one or two SVIDs).
    for i in 0..150 {
        let id = env
            .entry(
                &format!("spiffe://example.org/churn{i}"),
                &uid_selector(my_uid()),
                &node,
                600,
            )
            .await;
        synced(&agent, &[&id]).await;
        env.delete_entry(&id).await;
    }
    // The agent's state is a snapshot per revision: once it holds an entry
    // created after the last deletion, it has applied every change above.
    let sentinel = env
        .entry(
            "spiffe://example.org/sentinel",
            &uid_selector(my_uid().wrapping_add(4242)),
            &node,
            600,
        )
        .await;
    synced(&agent, &[&sentinel]).await;
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "rss grew by {grown} KiB");
    // The stream still works and ends up at the complete current state.
    let mut stream = response.into_inner();
    let mut last: Option<X509svidResponse> = None;
    while let Ok(Ok(Some(msg))) =
        tokio::time::timeout(Duration::from_millis(500), stream.message()).await
    {
        last = Some(msg);
    }
    let ids: Vec<_> = last
        .unwrap()
        .svids
        .into_iter()
        .map(|s| s.spiffe_id)
        .collect();
    assert_eq!(ids, ["spiffe://example.org/steady"]);
    agent.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_path_too_long_or_symlink_is_a_startup_error_and_stale_socket_is_replaced() {
    let env = Env::start().await;
    let long = format!("/tmp/{}.sock", "x".repeat(110));
    assert!(matches!(
        SocketPath::new(&long),
        Err(SocketPathError::TooLong { .. })
    ));

    let target = env.dir.path().join("target.sock");
    let link = env.dir.path().join("link.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut config = env.agent_config("a");
    config.socket_path = SocketPath::new(&link).unwrap();
    let err = Agent::start(config, CancellationToken::new())
        .await
        .expect_err("symlink refused");
    assert!(
        matches!(
            err,
            AgentError::Socket(SocketPathError::Place(
                sworn_identity::socket::SocketError::Symlink(_)
            ))
        ),
        "{err}"
    );
    assert!(!target.exists(), "nothing was created through the link");

    // A stale socket file from an earlier run is replaced; the socket is 0777 in a 0755 dir.
    let stale = env.dir.path().join("run").join("stale.sock");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let mut config = env.agent_config("b");
    config.socket_path = SocketPath::new(&stale).unwrap();
    config.attestation =
        NodeAttestation::JoinToken(Some(sworn_agent::JoinToken::new(&env.join_token().await)));
    let agent = Agent::start(config, CancellationToken::new())
        .await
        .unwrap();
    let mode = std::fs::metadata(&stale).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o777);
    agent.shutdown().await.unwrap();

    // The binary: a too-long socket path in the config exits 64 naming the key.
    let file = env.dir.path().join("agent.toml");
    std::fs::write(
        &file,
        format!(
            "trust_domain = \"example.org\"\ndata_dir = \"/tmp/x\"\nserver_address = \"https://127.0.0.1:1\"\n\
             danger_insecure_bootstrap = true\nsocket_path = \"{long}\"\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sworn-agent"))
        .args(["run", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("socket_path"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_token_agent_restarts_without_a_token() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let id = agent.agent_id().unwrap();
    agent.shutdown().await.unwrap();
    let key = env.dir.path().join("a").join("agent_key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let config = env.agent_config("a");
    assert_eq!(config.attestation, NodeAttestation::JoinToken(None));
    let agent = Agent::start(config, CancellationToken::new())
        .await
        .unwrap();
    let again = tokio::time::timeout(Duration::from_secs(20), agent.ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, id);
    agent.shutdown().await.unwrap();

    // A fresh data dir and no token: a clear, fatal error.
    let agent = Agent::start(env.agent_config("fresh"), CancellationToken::new())
        .await
        .unwrap();
    let err = agent.ready().await.expect_err("no identity");
    assert!(err.to_string().contains("join_token"), "{err}");
    assert!(matches!(agent.wait().await, Err(AgentError::Node(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_and_healthcheck_commands_work_as_separate_processes() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let cli = env
        .entry(
            "spiffe://example.org/cli",
            &uid_selector(my_uid()),
            &node,
            600,
        )
        .await;
    synced(&agent, &[&cli]).await;
    let out_dir = env.dir.path().join("out");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sworn-agent"))
        .args(["fetch", "x509", "--write"])
        .arg(&out_dir)
        .env("SPIFFE_ENDPOINT_SOCKET", agent.socket_path().to_uri())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("spiffe://example.org/cli expires "),
        "{stdout}"
    );
    let mode = |f: &str| {
        std::fs::metadata(out_dir.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("svid.key"), 0o600);
    for f in ["svid.pem", "bundle.pem"] {
        let text = std::fs::read_to_string(out_dir.join(f)).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{f}");
    }
    let health = tokio::process::Command::new(env!("CARGO_BIN_EXE_sworn-agent"))
        .args([
            "healthcheck",
            "--address",
            &agent.health_address().to_string(),
        ])
        .output()
        .await
        .unwrap();
    assert!(health.status.success());
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "attested");
    let metrics = sworn_agent::probe::get(agent.health_address(), "/metrics")
        .await
        .unwrap();
    assert_eq!(metrics.status, 200);
    for line in [
        "sworn_agent_workload_api_requests_total{method=\"fetch_x509_svid\"} 1",
        "sworn_agent_svid_cache_size 1",
        "sworn_agent_svid_rotations_total 0",
    ] {
        assert!(
            metrics.body.contains(line),
            "{line} not in\n{}",
            metrics.body
        );
    }
    agent.shutdown().await.unwrap();
}
