//! A passing Kubernetes API outage costs a workload nothing. The server cannot
//! re-verify a pod while kube-apiserver is down, so it answers `unavailable`, a
//! fault and not a decision (proto/proto/agent.proto, `MintResult`): the agent
//! keeps the SVID it holds until its notAfter, retries with backoff, and renews
//! once the API is back. The workload never notices.
//!
//! Real parts throughout: kube-apiserver and etcd, the server, a real agent
//! attested through the real flow, a real process in the pod's cgroup, and
//! go-spiffe (unmodified, `tests/interop/go-fetch -updates`) holding one open
//! FetchX509SVID stream. The default identity's TTL is 40 s
//! (`default_svid_ttl`), so its renewal falls due while the API server is
//! down: kube-apiserver is SIGKILLed as soon as the workload holds its first
//! SVID and started again 30 s later with the same command line (etcd keeps
//! running).
//!
//! The workload must see: its stream never end or fail; no SVID that has
//! already expired when it arrives; nothing newly issued while the API server
//! is down (every mint re-reads the pod); a renewed SVID (new serial, later
//! notAfter) within 10 s of the API server's `/readyz`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;
use sworn_dev::k8s::{CgroupStyle, ContainerProcess, PodParams};
use sworn_e2e::k8s_env::{Env, setup_with};
use sworn_e2e::{audit_after, audit_checkpoint};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// Short enough that renewal (at about half-life) falls inside the outage.
const SVID_TTL: &str = "40s";
/// How long kube-apiserver stays down; the SVID outlives it by a few seconds.
const OUTAGE: Duration = Duration::from_secs(30);
/// The agent retries with backoff capped at 4 s, so 10 s is generous.
const RENEWAL_AFTER_READY: Duration = Duration::from_secs(10);
/// Bound on the restarted API server's startup (two busy cores can be slow).
const RESTART_TIMEOUT: Duration = Duration::from_secs(120);
const WORKLOAD_ID: &str = "spiffe://example.org/ns/default/sa/web";

/// What the workload saw on its stream: one probe line.
#[derive(Debug, Clone)]
enum Seen {
    /// An X.509 context: the default SVID's ID, serial (hex) and notAfter.
    Svid {
        spiffe_id: String,
        serial: String,
        not_after: SystemTime,
    },
    /// go-spiffe reported an error on the stream (it then reconnects).
    WatchError(String),
    /// A line that is neither.
    Unparsable(String),
    /// The probe's stdout closed: the watch ended.
    End,
}

#[derive(Debug, Clone)]
struct Event {
    at: Instant,
    wall: SystemTime,
    seen: Seen,
}

fn parse_line(line: &str) -> Seen {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Seen::Unparsable(line.to_owned());
    };
    if let Some(e) = v["watch_error"].as_str() {
        return Seen::WatchError(e.to_owned());
    }
    let not_after = v["not_after"]
        .as_str()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .and_then(|t| u64::try_from(t.as_second()).ok())
        .map(|s| UNIX_EPOCH + Duration::from_secs(s));
    match (v["spiffe_id"].as_str(), v["serial"].as_str(), not_after) {
        (Some(id), Some(serial), Some(not_after)) => Seen::Svid {
            spiffe_id: id.to_owned(),
            serial: serial.to_owned(),
            not_after,
        },
        _ => Seen::Unparsable(line.to_owned()),
    }
}

/// Timestamps each line the probe prints as it arrives. The task ends when the
/// probe's stdout closes (the probe exits or is killed).
fn read_lines(p: &mut ContainerProcess) -> mpsc::UnboundedReceiver<Event> {
    let stdout = p.child_mut().unwrap().stdout.take().unwrap();
    let stdout = tokio::process::ChildStdout::from_std(stdout).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines.next_line().await;
            let (at, wall) = (Instant::now(), SystemTime::now());
            let seen = match line {
                Ok(Some(l)) => parse_line(&l),
                Ok(None) | Err(_) => Seen::End,
            };
            let end = matches!(seen, Seen::End);
            if tx.send(Event { at, wall, seen }).is_err() || end {
                break;
            }
        }
    });
    rx
}

/// Receives events into `events` until `deadline`, or until `done` holds for
/// one of them, or the stream ends.
async fn collect_until(
    rx: &mut mpsc::UnboundedReceiver<Event>,
    events: &mut Vec<Event>,
    deadline: Instant,
    done: impl Fn(&Event) -> bool,
) {
    let deadline = tokio::time::Instant::from_std(deadline);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let stop = done(&ev) || matches!(ev.seen, Seen::End);
        events.push(ev);
        if stop {
            return;
        }
    }
}

fn is_renewal(ev: &Event, first_serial: &str, first_not_after: SystemTime) -> bool {
    matches!(&ev.seen, Seen::Svid { serial, not_after, .. }
        if serial != first_serial && *not_after > first_not_after)
}

/// Seconds of `t` relative to `zero`, signed, for the timeline.
fn rel(t: Instant, zero: Instant) -> String {
    match t.checked_duration_since(zero) {
        Some(d) => format!("+{:.3}s", d.as_secs_f64()),
        None => format!("-{:.3}s", (zero - t).as_secs_f64()),
    }
}

fn describe(ev: &Event) -> String {
    match &ev.seen {
        Seen::Svid {
            spiffe_id,
            serial,
            not_after,
        } => {
            let life = match not_after.duration_since(ev.wall) {
                Ok(d) => format!("valid for {:.1}s more", d.as_secs_f64()),
                Err(e) => format!("EXPIRED {:.1}s ago", e.duration().as_secs_f64()),
            };
            let secs = not_after.duration_since(UNIX_EPOCH).unwrap().as_secs();
            format!("svid {spiffe_id} serial={serial} notAfter={secs} ({life})")
        }
        Seen::WatchError(e) => format!("WATCH ERROR: {e}"),
        Seen::Unparsable(l) => format!("unparsable line: {l}"),
        Seen::End => "STREAM ENDED (probe stdout closed)".to_owned(),
    }
}

/// Everything that helps explain a failure: the timeline, what the server
/// decided, the agent's metrics, the API server's log.
async fn context(env: &Env, timeline: &str, audit_from: i64) -> String {
    let mut out = format!("timeline (relative to the kill):\n{timeline}\n");
    out.push_str("server audit since the probe started:\n");
    for e in audit_after(&env.server, audit_from).await {
        let _ = writeln!(out, "  #{} {} {} {}", e.id, e.kind, e.decision, e.detail);
    }
    let agent = &env.agents[0].1;
    let _ = writeln!(out, "agent readiness: {:?}", agent.readiness());
    match sworn_agent::probe::get(agent.health_address(), "/metrics").await {
        Ok(m) => {
            let _ = writeln!(out, "agent /metrics:\n{}", m.body);
        }
        Err(e) => {
            let _ = writeln!(out, "agent /metrics unavailable: {e}");
        }
    }
    if let Some(cp) = &env.cp {
        let log = std::fs::read(cp.dir().join("kube-apiserver.log")).unwrap_or_default();
        let tail = &log[log.len().saturating_sub(3000)..];
        let _ = writeln!(
            out,
            "kube-apiserver log tail:\n{}",
            String::from_utf8_lossy(tail)
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_keeps_its_stream_and_svid_across_an_api_server_outage_and_is_renewed_after_it()
{
    let mut env = setup_with(&format!("default_svid_ttl = \"{SVID_TTL}\"")).await;
    let pod = env
        .kubelet
        .create_pod(&PodParams::new("default", "web", "web", "node-a"))
        .await
        .unwrap();
    let audit_from = audit_checkpoint(&env.server).await;

    // One open FetchX509SVID stream for the whole test.
    let mut watch = Command::new(&env.go);
    watch.args([
        "-addr",
        &env.socket("node-a"),
        "-updates",
        "1000",
        "-timeout",
        "600s",
    ]);
    let mut probe = env
        .kubelet
        .start_container_process(&pod, "app", &watch, CgroupStyle::Cgroupfs)
        .unwrap();
    let mut rx = read_lines(&mut probe);

    let first = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("no first X.509 context within 60 s")
        .expect("the probe's reader stopped");
    let Seen::Svid {
        spiffe_id,
        serial: first_serial,
        not_after: first_not_after,
    } = first.seen.clone()
    else {
        panic!(
            "the workload did not get its first SVID: {}",
            describe(&first)
        );
    };
    assert_eq!(spiffe_id, WORKLOAD_ID);

    // Kill at once: renewal falls due at about half-life of a 40 s SVID.
    let killed_at = env.cp.as_mut().unwrap().kill_apiserver();
    let mut events = vec![first.clone()];
    collect_until(&mut rx, &mut events, killed_at + OUTAGE, |_| false).await;

    let restart_at = Instant::now();
    let restarted = env
        .cp
        .as_mut()
        .unwrap()
        .restart_apiserver(RESTART_TIMEOUT)
        .await;
    let ready_at = match restarted {
        Ok(t) => t,
        Err(e) => panic!("kube-apiserver did not come back: {e}"),
    };
    let renewal_seen = |evs: &[Event]| {
        evs.iter()
            .any(|e| is_renewal(e, &first_serial, first_not_after))
    };
    if !renewal_seen(&events) {
        collect_until(&mut rx, &mut events, ready_at + RENEWAL_AFTER_READY, |e| {
            is_renewal(e, &first_serial, first_not_after)
        })
        .await;
    }
    // Whatever was queued by the deadline also counts (the reader stamps each
    // line when it arrives, so nothing late is mistaken for on time).
    while let Ok(ev) = rx.try_recv() {
        events.push(ev);
    }
    drop(probe);

    // Judge.
    let mut timeline = String::new();
    let mut marks = vec![
        (killed_at, "kube-apiserver SIGKILLed".to_owned()),
        (
            restart_at,
            "kube-apiserver started again (same command line)".to_owned(),
        ),
        (
            ready_at,
            format!(
                "kube-apiserver /readyz ok ({:.1}s after the restart)",
                (ready_at - restart_at).as_secs_f64()
            ),
        ),
    ];
    marks.extend(events.iter().map(|e| (e.at, describe(e))));
    marks.sort_by_key(|(t, _)| *t);
    for (t, what) in &marks {
        let _ = writeln!(timeline, "  {:>9}  {what}", rel(*t, killed_at));
    }

    let mut failures = Vec::new();
    for ev in &events {
        let at = rel(ev.at, killed_at);
        match &ev.seen {
            Seen::WatchError(e) => failures.push(format!("{at}: the stream failed: {e}")),
            Seen::End => failures.push(format!("{at}: the stream ended")),
            Seen::Unparsable(l) => failures.push(format!("{at}: unexpected line {l:?}")),
            Seen::Svid {
                spiffe_id,
                serial,
                not_after,
            } => {
                if *not_after < ev.wall {
                    failures.push(format!(
                        "{at}: delivered an already expired SVID ({serial})"
                    ));
                }
                if spiffe_id != WORKLOAD_ID {
                    failures.push(format!("{at}: SVID for {spiffe_id}"));
                }
                if *serial != first_serial && ev.at < restart_at {
                    failures.push(format!(
                        "{at}: a new SVID ({serial}) was issued while kube-apiserver was down"
                    ));
                }
            }
        }
    }
    match events
        .iter()
        .find(|e| is_renewal(e, &first_serial, first_not_after))
    {
        Some(r) if r.at <= ready_at + RENEWAL_AFTER_READY => {}
        Some(r) => failures.push(format!(
            "the renewed SVID arrived {:.1}s after /readyz (limit {RENEWAL_AFTER_READY:?})",
            (r.at - ready_at).as_secs_f64()
        )),
        None => failures.push(format!(
            "no renewed SVID (new serial, later notAfter) within {RENEWAL_AFTER_READY:?} of /readyz"
        )),
    }
    if !failures.is_empty() {
        panic!(
            "the workload noticed a {OUTAGE:?} API outage:\n  {}\n\n{}",
            failures.join("\n  "),
            context(&env, &timeline, audit_from).await
        );
    }
    println!("{timeline}");
}
