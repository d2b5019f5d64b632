//! The Workload API's HTTP/2 front under attack: a real `sworn-agent run` process, hundreds of
//! hostile connections from other users, and the agent's own peak memory as the kernel counts
//! it (docs/architecture.md, "Workload API connections").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use support::Env;
use sworn_harness::wait::wait_until_async;
use sworn_proto::admin::ListAgentsRequest;

/// Each attack's connections; every kind runs as its own uid, so each stays within the
/// per-tenant connection allowance (128) and all of them are accepted.
const PER_KIND: usize = 64;
const KINDS: [(&str, u32); 5] = [
    ("oversized", 3001),
    ("table", 3002),
    ("continuation", 3003),
    ("silent", 3004),
    ("trickle", 3005),
];
/// The legitimate workload's uid.
const WORKLOAD_UID: u32 = 3100;

/// A process's memory figure from /proc/<pid>/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The agent's `sworn_agent_workload_api_connections_closed_total{reason=…}`.
async fn closed(health: SocketAddr, reason: &str) -> u64 {
    let Ok(answer) = sworn_agent::probe::get(health, "/metrics").await else {
        return 0;
    };
    let series =
        format!("sworn_agent_workload_api_connections_closed_total{{reason=\"{reason}\"}}");
    sworn_harness::metrics::value(&answer.body, &series).unwrap_or(0.0) as u64
}

/// A child process killed when the test ends, however it ends: a failed assertion must not
/// leave an agent or an attacker running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `sworn-agent fetch x509` as the legitimate workload's uid; true when it got an SVID.
async fn workload_fetches(binary: &Path, socket: &Path) -> bool {
    let out = tokio::process::Command::new(binary)
        .args(["fetch", "x509", "--socket"])
        .arg(socket)
        .uid(WORKLOAD_UID)
        .gid(WORKLOAD_UID)
        .output()
        .await
        .unwrap();
    out.status.success()
        && String::from_utf8_lossy(&out.stdout).contains("spiffe://example.org/legit")
}

/// Starts one attacker process; returns once it reports all its connections under attack.
fn attacker(env: &Env, socket: &Path, kind: &str, uid: u32) -> Reaped {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/h2_attack.py");
    let mut child = env
        .dir
        .spawn_piped(
            &format!("attack-{kind}"),
            Command::new("python3")
                .arg(script)
                .arg(socket)
                .arg(kind)
                .arg(PER_KIND.to_string())
                .uid(uid)
                .gid(uid),
        )
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let child = Reaped(child);
    assert_eq!(line.trim(), "ready", "attacker {kind} did not start");
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http2_connections_cannot_grow_the_agent_and_a_workload_is_still_served() {
    let env = Env::start().await;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // The workload's executable, where its uid can run it.
    let binary: PathBuf = env.dir.path().join("workload");
    std::fs::copy(env!("CARGO_BIN_EXE_sworn-agent"), &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();

    // A real agent process.
    let socket = env.dir.path().join("w.sock");
    let health = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = env.dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "trust_domain = \"example.org\"\ndata_dir = \"{data}\"\n\
             server_address = \"https://127.0.0.1:{port}\"\nbundle_file = \"{bundle}\"\n\
             join_token = \"{token}\"\nsocket_path = \"{socket}\"\nhealth_address = \"{health}\"\n",
            data = env.dir.path().join("agent").display(),
            port = env.server.agent_api_addr.port(),
            bundle = env.server_bundle_file().display(),
            token = env.join_token().await,
            socket = socket.display(),
        ),
    )
    .unwrap();
    let agent = env
        .dir
        .spawn(
            "sworn-agent",
            Command::new(env!("CARGO_BIN_EXE_sworn-agent"))
                .arg("run")
                .arg("--config")
                .arg(&config),
        )
        .unwrap();
    let agent = Reaped(agent);
    let pid = agent.0.id();
    let mut admin = env.admin.clone();
    let node =
        sworn_harness::wait::wait_for("the agent attested", Duration::from_secs(30), async || {
            let agents = admin.list_agents(ListAgentsRequest::default()).await.ok()?;
            agents.into_inner().agents.into_iter().next().map(|a| a.id)
        })
        .await;
    env.entry(
        "spiffe://example.org/legit",
        &[format!("unix:uid:{WORKLOAD_UID}")],
        &node,
        600,
    )
    .await;
    wait_until_async("the workload served", Duration::from_secs(30), async || {
        workload_fetches(&binary, &socket).await
    })
    .await;

    // Idle: the agent after serving, its peak reset to now.
    let idle = status_kib(pid, "VmRSS:");
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();

    let attackers: Vec<Reaped> = KINDS
        .iter()
        .map(|(kind, uid)| attacker(&env, &socket, kind, *uid))
        .collect();
    // Every attack is under way (the oversized frames' 16 MiB payloads have been written).
    // A legitimate workload is still served, and the agent has not grown.
    assert!(
        workload_fetches(&binary, &socket).await,
        "the workload was not served during the attack"
    );
    let within_bound = |when: &str| {
        let peak = status_kib(pid, "VmHWM:");
        eprintln!("agent RSS: idle {idle} KiB, peak {when} {peak} KiB");
        assert!(
            peak <= idle + 32 * 1024,
            "agent peak RSS {peak} KiB {when}, idle {idle} KiB: more than 32 MiB above idle"
        );
    };
    within_bound("during the attack");
    // The three attacks that break a bound are refused, connection by connection.
    for reason in ["frame_too_large", "table_too_large", "continuation_flood"] {
        wait_until_async(
            &format!("{PER_KIND} connections closed for {reason}"),
            Duration::from_secs(30),
            async || closed(health, reason).await >= PER_KIND as u64,
        )
        .await;
    }
    // The slow and silent connections are closed at the 10 s request deadline.
    wait_until_async(
        "silent and trickling connections closed at the request deadline",
        Duration::from_secs(30),
        async || closed(health, "no_request_in_time").await >= 2 * PER_KIND as u64,
    )
    .await;
    within_bound("over the whole attack");
    assert!(
        workload_fetches(&binary, &socket).await,
        "the workload was not served after the attack"
    );

    drop(attackers);
    drop(agent);
}
