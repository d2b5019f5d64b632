//! Coalesced, pipelined mints (docs/architecture.md, "The agent's SVID cache"): first mints
//! that arrive while the agent's requests are in flight share the next `MintX509SVIDs`
//! request instead of sending one each.
//!
//! Real parts: the server in-process (SQLite, its CA), a join-token agent, its unix socket,
//! and 64 callers, each the `sworn-agent fetch` binary run as a process under its own uid
//! with an entry of its own. The server's test hook (`Shared::mint_stalls.hold_calls`,
//! reachable from no configuration) holds the calls naming the first four callers' entries,
//! so the agent's request slots are all taken while the other 60 callers arrive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::{
    Env, copy_agent_binary, fetch_command, metric, output_text, require_root, uid_selector,
};

const CALLERS: u32 = 64;
/// The callers' uids: `BASE_UID..BASE_UID + CALLERS`.
const BASE_UID: u32 = 30_000;
/// Callers whose calls the server holds: one per request slot of the agent.
const HELD: u32 = 4;

fn spiffe_id(i: u32) -> String {
    format!("spiffe://example.org/batch/{i}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_first_mints_at_once_share_a_handful_of_requests() {
    require_root();
    let env = Env::start().await;
    env.open_to_other_uids();
    let agent = env.agent("a").await;
    let node = agent.agent_id().unwrap().to_string();
    let exe = copy_agent_binary(&env.dir.path().join("bin"), "fetch");
    let socket = agent.socket_path().as_path().to_owned();
    let mut ids = Vec::new();
    for i in 0..CALLERS {
        let selectors = uid_selector(BASE_UID + i);
        ids.push(env.entry(&spiffe_id(i), &selectors, &node, 600).await);
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    support::synced(&agent, &refs).await;
    let stalls = &env.server.shared.mint_stalls;
    for id in &ids[..HELD as usize] {
        stalls.hold_calls(id);
    }

    // The first four callers, one at a time: each call is held on the server.
    let mut callers = Vec::new();
    for i in 0..HELD {
        callers.push(
            fetch_command(&exe, &socket, Some(BASE_UID + i))
                .spawn()
                .unwrap(),
        );
        tokio::time::timeout(Duration::from_secs(30), stalls.held(&ids[i as usize]))
            .await
            .expect("the caller's mint call reaches the server");
    }
    // The other sixty arrive at once, while those calls are held.
    for i in HELD..CALLERS {
        callers.push(
            fetch_command(&exe, &socket, Some(BASE_UID + i))
                .spawn()
                .unwrap(),
        );
    }
    let others = u64::from(CALLERS - HELD);
    let took = sworn_harness::wait_until_async(
        "every other caller's mint is queued at the agent or answered",
        Duration::from_secs(60),
        async || {
            let queued = metric(&agent, "sworn_agent_mint_items_queued")
                .await
                .unwrap_or(0.0);
            let answered = callers[HELD as usize..]
                .iter_mut()
                .filter_map(|c| c.try_wait().unwrap())
                .count();
            queued as u64 + answered as u64 >= others
        },
    )
    .await;
    println!("the other callers were queued after {took:?}");
    for id in &ids[..HELD as usize] {
        stalls.release_calls(id);
    }

    for (i, caller) in (0..CALLERS).zip(callers) {
        let out = tokio::time::timeout(Duration::from_secs(60), caller.wait_with_output())
            .await
            .expect("every caller is answered in time")
            .unwrap();
        assert!(out.status.success(), "caller {i}: {}", output_text(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&spiffe_id(i)),
            "caller {i}: {}",
            output_text(&out)
        );
    }
    let requests = metric(&agent, "sworn_agent_mint_requests_total")
        .await
        .expect("the agent counts its mint requests");
    println!("{CALLERS} first mints took {requests} MintX509SVIDs requests");
    assert!(
        requests <= 8.0,
        "{CALLERS} concurrent first mints took {requests} requests"
    );
    agent.shutdown().await.unwrap();
}
