//! How big a run is: the full run (RESULTS.md, planned for at most 90 minutes), `--quick`,
//! and `--smoke` (CI: every scenario at a tiny size, sworn only).

use serde::{Deserialize, Serialize};

/// Sizes of every scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sizes {
    /// Name: smoke, quick or full.
    pub name: String,
    /// Pairs per scenario (each pair runs every measured system once, in a seeded order).
    pub pairs: usize,
    /// fetch: calls at N=1 (p50/p99).
    pub fetch_n1_calls: u32,
    /// fetch: concurrent workloads of the throughput level.
    pub fetch_n: usize,
    /// fetch: total calls at that level.
    pub fetch_n_calls: u32,
    /// Entries created together in the issuance scenario.
    pub issuance_entries: usize,
    /// SVIDs due together in the storm.
    pub storm_svids: usize,
    /// Their TTL in seconds.
    pub storm_ttl_s: u32,
    /// Server datastore size for the memory and cold-start rows.
    pub server_entries: usize,
    /// Attestation matrix: calls per cell.
    pub attest_calls: u32,
    /// Attestation matrix: size of the padded executable, bytes.
    pub attest_exe_bytes: u64,
    /// Idle CPU: one window per system per pair, seconds.
    pub idle_window_s: u64,
    /// Idle CPU: workloads holding SVIDs (no calls) during the window.
    pub idle_workloads: usize,
    /// Many agents: agents against one server.
    pub agents: usize,
    /// Many agents: workloads per agent.
    pub per_agent: usize,
    /// Agent restart: workloads to serve again.
    pub restart_workloads: usize,
    /// Kubernetes: pod counts created one every `k8s_interval_ms`.
    pub k8s_paced: Vec<usize>,
    /// Kubernetes: interval between paced pod creations, ms.
    pub k8s_interval_ms: u64,
    /// Kubernetes: pods created at once.
    pub k8s_burst: usize,
}

impl Sizes {
    /// Picks the sizes for the flags.
    pub fn new(quick: bool, smoke: bool) -> Self {
        if smoke {
            return Self {
                name: "smoke".into(),
                pairs: 1,
                fetch_n1_calls: 20,
                fetch_n: 2,
                fetch_n_calls: 20,
                issuance_entries: 2,
                storm_svids: 2,
                storm_ttl_s: 10,
                server_entries: 200,
                attest_calls: 10,
                attest_exe_bytes: 4 << 20,
                idle_window_s: 2,
                idle_workloads: 2,
                agents: 2,
                per_agent: 1,
                restart_workloads: 2,
                k8s_paced: vec![2],
                k8s_interval_ms: 100,
                k8s_burst: 2,
            };
        }
        if quick {
            return Self {
                name: "quick".into(),
                pairs: 2,
                fetch_n1_calls: 200,
                fetch_n: 20,
                fetch_n_calls: 400,
                issuance_entries: 100,
                storm_svids: 100,
                storm_ttl_s: 20,
                server_entries: 5_000,
                attest_calls: 100,
                attest_exe_bytes: 4 << 20,
                idle_window_s: 10,
                idle_workloads: 10,
                agents: 3,
                per_agent: 10,
                restart_workloads: 50,
                k8s_paced: vec![20],
                k8s_interval_ms: 100,
                k8s_burst: 20,
            };
        }
        Self {
            name: "full".into(),
            pairs: 5,
            fetch_n1_calls: 1000,
            fetch_n: 100,
            fetch_n_calls: 3000,
            issuance_entries: 1000,
            storm_svids: 1000,
            storm_ttl_s: 60,
            server_entries: 100_000,
            attest_calls: 1000,
            attest_exe_bytes: 4 << 20,
            idle_window_s: 60,
            idle_workloads: 100,
            agents: 10,
            per_agent: 100,
            restart_workloads: 500,
            k8s_paced: vec![100, 1000],
            k8s_interval_ms: 100,
            k8s_burst: 100,
        }
    }
}
