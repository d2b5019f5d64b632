//! Resident memory and CPU time of a process, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
//!
//! CPU times in `stat` are in clock ticks of `USER_HZ`, which Linux fixes at 100 for the
//! `/proc` interface regardless of the kernel's HZ.

use anyhow::{Context, Result, anyhow};

const USER_HZ: f64 = 100.0;

/// Resident set size (`VmRSS`) in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow!("no VmRSS for pid {pid}"))?;
    let kib: u64 = line
        .split_ascii_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow!("malformed VmRSS line"))?
        .parse()?;
    Ok(kib * 1024)
}

/// User + system CPU seconds the process has used (its own threads, not children).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let close = stat
        .rfind(')')
        .ok_or_else(|| anyhow!("malformed stat for pid {pid}"))?;
    // After "pid (comm)" the fields start at 3 (state); utime is 14, stime is 15.
    let fields: Vec<&str> = stat[close + 1..].split_ascii_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i - 3)
            .ok_or_else(|| anyhow!("short stat for pid {pid}"))?
            .parse::<f64>()?)
    };
    Ok((ticks(14)? + ticks(15)?) / USER_HZ)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 1024 * 1024);
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(pid).unwrap() > 0.0);
    }
}
