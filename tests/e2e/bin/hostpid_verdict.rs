//! Prints the agent's host-PID-namespace verdict (`sworn_agent::hostpid::check`)
//! for the PID namespace this process runs in, and its own pid there. The child
//! that `tests/deploy_hostpid.rs` runs inside `unshare --pid`: a program of its
//! own, so no test re-runs the test binary as its helper.

fn main() {
    let verdict = match sworn_agent::hostpid::check() {
        Ok(view) => format!("ACCEPT {view:?}"),
        Err(e) => format!("REFUSE {e}"),
    };
    println!("HOSTPID-VERDICT {verdict} SELF={}", std::process::id());
}
