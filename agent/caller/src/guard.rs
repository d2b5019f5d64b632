//! The PID-reuse guard's clock and rule (docs/architecture.md, "Workload attestation" W1, "Trust model").
//!
//! Times are clock ticks since boot (`sysconf(_SC_CLK_TCK)` per second), the unit of field 22
//! of `/proc/<pid>/stat`, which the kernel derives from CLOCK_BOOTTIME. Both sides truncate
//! to whole ticks, so a process started within the same tick as the accept cannot be told
//! apart by time alone; the held `/proc/<pid>` handle and the pidfd cover that window.

use rustix::time::{ClockId, clock_gettime};

use crate::error::CallerError;

/// Now, in clock ticks since boot (CLOCK_BOOTTIME, the clock of `stat` field 22).
pub fn boot_ticks_now() -> u64 {
    let now = clock_gettime(ClockId::Boottime);
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(hz) + nanos * hz / 1_000_000_000
}

/// The guard's rule: the process behind the pid must have started no later than the accept
/// (else the pid was reused by a newer process) and must show the same start time before
/// and after all reads (else the pid was reused while reading).
pub fn check_start_time(
    pid: u32,
    accept_ticks: u64,
    start_ticks_before: u64,
    start_ticks_after: u64,
) -> Result<(), CallerError> {
    if start_ticks_before != start_ticks_after {
        return Err(CallerError::StartTimeChanged {
            pid,
            before: start_ticks_before,
            after: start_ticks_after,
        });
    }
    if start_ticks_before > accept_ticks {
        return Err(CallerError::StartedAfterAccept {
            pid,
            start_ticks: start_ticks_before,
            accept_ticks,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_before_or_at_accept_and_unchanged_passes() {
        assert!(check_start_time(7, 1000, 999, 999).is_ok());
        assert!(check_start_time(7, 1000, 1000, 1000).is_ok());
    }

    #[test]
    fn started_after_accept_is_pid_reuse() {
        assert!(matches!(
            check_start_time(7, 1000, 1001, 1001),
            Err(CallerError::StartedAfterAccept {
                pid: 7,
                start_ticks: 1001,
                accept_ticks: 1000
            })
        ));
    }

    #[test]
    fn start_time_changing_between_reads_is_pid_reuse() {
        assert!(matches!(
            check_start_time(7, 1000, 900, 950),
            Err(CallerError::StartTimeChanged {
                pid: 7,
                before: 900,
                after: 950
            })
        ));
        // Even when the later process also started after accept, the change is what is reported.
        assert!(matches!(
            check_start_time(7, 1000, 900, 1200),
            Err(CallerError::StartTimeChanged { .. })
        ));
    }

    #[test]
    fn boot_clock_matches_our_own_start_time() {
        let stat = std::fs::read("/proc/self/stat").unwrap();
        let start = crate::procfs::parse_stat(&stat).unwrap().start_ticks;
        let now = boot_ticks_now();
        assert!(start <= now, "own start {start} after now {now}");
    }
}
