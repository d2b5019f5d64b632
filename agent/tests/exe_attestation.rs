//! What a unix caller's executable proves, attacked by real processes over the real socket of
//! an in-process agent (docs/architecture.md, "Workload attestation", `unix:path` and
//! `unix:sha256`): a path bind-mounted in a private mount namespace, and executables too big
//! or too slow to hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use support::{
    Env, copy_agent_binary, fetch_command as fetch, output_text as text, synced, uid_selector,
};
use tokio::process::Command;

/// The uid the attacking callers run as, and the other uid whose caller must not wait.
const ATTACKER_UID: u32 = 1000;
const OTHER_UID: u32 = 65534;

/// A copy of the `sworn-agent` binary extended with holes to `len` bytes: it still runs.
fn sparse_agent_binary(dir: &Path, name: &str, len: u64) -> PathBuf {
    let path = copy_agent_binary(dir, name);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len)
        .unwrap();
    path
}

/// `n` callers of [`ATTACKER_UID`] running `exe`, with their pids, once every one of their
/// requests has reached the agent.
async fn attack(
    agent: &sworn_agent::RunningAgent,
    exe: &Path,
    n: u64,
) -> Vec<(tokio::process::Child, u32)> {
    let socket = agent.socket_path().as_path();
    let attackers: Vec<_> = (0..n)
        .map(|_| {
            let child = fetch(exe, socket, Some(ATTACKER_UID)).spawn().unwrap();
            let pid = child.id().unwrap();
            (child, pid)
        })
        .collect();
    sworn_harness::wait_until_async(
        "the attackers' requests arrive",
        Duration::from_secs(20),
        async || requests(agent).await >= n,
    )
    .await;
    attackers
}

/// How long the other uid's caller may take to get its SVID while the attack runs.
const SVID_WITHIN: Duration = Duration::from_secs(10);

/// Waits for an attacking caller: it failed, and whether the agent audited its refusal with
/// factor `evidence` and `reason`.
async fn refused(
    child: tokio::process::Child,
    pid: u32,
    from: sworn_harness::trace::Checkpoint,
    within: Duration,
    reason: &str,
) -> bool {
    let out = tokio::time::timeout(within, child.wait_with_output())
        .await
        .expect("the attacker is answered in time")
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    let lines = audited(from, pid);
    let found = lines
        .iter()
        .any(|l| l.contains("factor=evidence") && l.contains(reason));
    if !found {
        eprintln!("pid {pid}: no `{reason}` audit line in {lines:#?}");
    }
    found
}

async fn run(mut cmd: Command, within: Duration) -> Output {
    tokio::time::timeout(within, cmd.output())
        .await
        .expect("the caller finished in time")
        .unwrap()
}

/// Audit lines since `from` that mention `pid`.
fn audited(from: sworn_harness::trace::Checkpoint, pid: u32) -> Vec<String> {
    let pid = format!("pid={pid}");
    sworn_harness::trace::lines_since(from)
        .into_iter()
        .filter(|l| l.contains("sworn::audit") && l.contains(&pid))
        .collect()
}

async fn requests(agent: &sworn_agent::RunningAgent) -> u64 {
    let body = sworn_agent::probe::get(agent.health_address(), "/metrics")
        .await
        .unwrap()
        .body;
    body.lines()
        .find_map(|l| {
            l.strip_prefix("sworn_agent_workload_api_requests_total{method=\"fetch_x509_svid\"} ")
        })
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// An agent whose socket directory other uids can traverse, with an entry for [`OTHER_UID`]
/// running the `sworn-agent` binary (or a copy): `unix:uid` and `unix:sha256`, so every unix
/// caller's executable is hashed (the agent hashes only while some entry needs the digest).
async fn agent_for_other_uid(
    env: &Env,
    tune: impl FnOnce(&mut sworn_agent::Config),
) -> sworn_agent::RunningAgent {
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent = env.agent_with("a", tune).await;
    let node = agent.agent_id().unwrap().to_string();
    let binary = std::fs::read(env!("CARGO_BIN_EXE_sworn-agent")).unwrap();
    let mut selectors = uid_selector(OTHER_UID);
    selectors.push(format!(
        "unix:sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&binary))
    ));
    let entry = env
        .entry("spiffe://example.org/other", &selectors, &node, 600)
        .await;
    synced(&agent, &[&entry]).await;
    agent
}

/// `unix:path:P` matches only when P, in the agent's own mount namespace, is the caller's
/// running executable. A process in a private mount namespace that bind-mounts its own binary
/// over the trusted path is refused; the genuine binary at that path still matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_path_bind_mounted_over_in_a_private_mount_namespace_does_not_match() {
    let env = Env::start().await;
    let agent = env.agent("a").await;
    let socket = agent.socket_path().as_path().to_owned();
    let node = agent.agent_id().unwrap().to_string();
    let bin = env.dir.path().join("bin");
    let trusted = copy_agent_binary(&bin, "trusted");
    let evil = copy_agent_binary(&bin, "evil");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&evil)
        .unwrap()
        .write_all(b"not the trusted binary")
        .unwrap();
    let selector = vec![format!("unix:path:{}", trusted.display())];
    let entry = env
        .entry("spiffe://example.org/trusted", &selector, &node, 600)
        .await;
    synced(&agent, &[&entry]).await;

    let genuine = run(fetch(&trusted, &socket, None), Duration::from_secs(30)).await;
    assert!(genuine.status.success(), "{}", text(&genuine));
    assert!(
        String::from_utf8_lossy(&genuine.stdout).contains("spiffe://example.org/trusted"),
        "{}",
        text(&genuine)
    );

    // unshare execs sh, which mounts and execs the trusted path: one pid throughout.
    let mut attack = Command::new("unshare");
    attack
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$2" && exec "$2" fetch x509 --socket "$3""#)
        .arg("sh")
        .args([&evil, &trusted, &socket])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let from = sworn_harness::trace::checkpoint();
    let child = attack.spawn().unwrap();
    let pid = child.id().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !out.status.success(),
        "the impostor got an SVID: {}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no identity issued"),
        "{}",
        text(&out)
    );
    let lines = audited(from, pid);
    let withheld = format!("exe={}", trusted.display());
    assert!(
        lines.iter().any(|l| l.contains("factor=evidence")
            && l.contains("unix:path withheld")
            && l.contains(&withheld)),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("factor=policy") && l.contains("no entry matches the caller")),
        "{lines:#?}"
    );
    agent.shutdown().await.unwrap();
}

/// Eight callers of one uid run a 64 GiB sparse executable, over the default
/// `max_exe_hash_bytes`: each is refused unread (`exe too large`, factor `evidence`), and a
/// caller of another uid gets its SVID meanwhile, twice, the second time from the digest cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executable_over_max_exe_hash_bytes_is_refused_and_holds_up_no_other_uid() {
    let env = Env::start().await;
    let agent = agent_for_other_uid(&env, |_| {}).await;
    let socket = agent.socket_path().as_path().to_owned();
    let bin = env.dir.path().join("bin");
    let huge = sparse_agent_binary(&bin, "huge", 64 << 30);
    let genuine = copy_agent_binary(&bin, "genuine");

    let from = sworn_harness::trace::checkpoint();
    let attackers = attack(&agent, &huge, 8).await;
    for _ in 0..2 {
        let out = run(fetch(&genuine, &socket, Some(OTHER_UID)), SVID_WITHIN).await;
        assert!(out.status.success(), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("spiffe://example.org/other"));
    }
    for (child, pid) in attackers {
        // Refused without reading it: as fast as any refusal.
        assert!(refused(child, pid, from, Duration::from_secs(10), "exe too large").await);
    }
    let metrics = sworn_agent::probe::get(agent.health_address(), "/metrics")
        .await
        .unwrap()
        .body;
    for line in [
        "sworn_agent_exe_digests_total{outcome=\"miss\"} 1",
        "sworn_agent_exe_digests_total{outcome=\"hit\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    agent.shutdown().await.unwrap();
}

/// With the size cap raised, four callers of one uid run a 64 GiB sparse executable: hashing
/// stops at the 2 s cap (`hash timeout`, factor `evidence`), one at a time for that uid, and a
/// caller of another uid gets its SVID meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashing_past_the_time_cap_is_refused_and_holds_up_no_other_uid() {
    let env = Env::start().await;
    let agent = agent_for_other_uid(&env, |c| c.max_exe_hash_bytes = 1 << 40).await;
    let socket = agent.socket_path().as_path().to_owned();
    let bin = env.dir.path().join("bin");
    let slow = sparse_agent_binary(&bin, "slow", 64 << 30);
    let genuine = copy_agent_binary(&bin, "genuine");

    let from = sworn_harness::trace::checkpoint();
    let attackers = attack(&agent, &slow, 4).await;
    let out = run(fetch(&genuine, &socket, Some(OTHER_UID)), SVID_WITHIN).await;
    assert!(out.status.success(), "{}", text(&out));
    let mut timed_out = 0;
    for (child, pid) in attackers {
        // One at a time for the uid, each stopped at about 2 s.
        timed_out +=
            usize::from(refused(child, pid, from, Duration::from_secs(30), "hash timeout").await);
    }
    assert_eq!(
        timed_out, 4,
        "every slow caller is refused with hash timeout"
    );
    agent.shutdown().await.unwrap();
}
