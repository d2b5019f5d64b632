//! Whether callers are captured with `SO_PEERPIDFD`, decided once at startup
//! (docs/architecture.md, "Workload attestation": PID reuse without `SO_PEERPIDFD`).
//!
//! Without it (Linux before 6.5), the caller is held by the pid `SO_PEERCRED` recorded at
//! `connect`, opened at `accept`: a pid reused in between by a process that started before
//! the accept is not caught. The agent says so once, at `warn`.

use sworn_caller::PeerPidfd;
use tracing::warn;

/// What the kernel offers (`supported`) and whether the embedder asked to go without
/// (`ignore`, the `danger_ignore_peer_pidfd` test hook) give the capture mode and, when
/// callers are held without a peer pidfd, the warning to log.
fn choose(ignore: bool, supported: bool) -> (PeerPidfd, Option<&'static str>) {
    const WARNING: &str = "SO_PEERPIDFD is unavailable: a Workload API caller's pid reused \
        between connect and accept is not caught (Linux 6.5+ closes this window)";
    match (ignore, supported) {
        (true, _) => (PeerPidfd::Ignore, Some(WARNING)),
        // `Use` still works: capture falls back when the kernel refuses the option.
        (false, false) => (PeerPidfd::Use, Some(WARNING)),
        (false, true) => (PeerPidfd::Use, None),
    }
}

/// Probes the kernel and logs the warning if there is one. Call once, at startup.
pub(crate) fn decide(ignore: bool) -> PeerPidfd {
    let (mode, warning) = choose(ignore, sworn_caller::peer_pidfd_supported());
    if let Some(warning) = warning {
        warn!(forced = ignore, "{warning}");
    }
    mode
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_kernel_with_so_peerpidfd_and_no_hook_goes_without_the_warning() {
        assert_eq!(choose(false, true), (PeerPidfd::Use, None));
        let (mode, warning) = choose(false, false);
        assert_eq!(mode, PeerPidfd::Use);
        assert!(warning.is_some_and(|w| w.contains("between connect and accept")));
        let (mode, warning) = choose(true, true);
        assert_eq!(mode, PeerPidfd::Ignore);
        assert!(warning.is_some());
    }
}
