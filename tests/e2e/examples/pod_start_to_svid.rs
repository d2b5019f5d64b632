//! Measures "pod becomes Running → the workload holds its SVID" over N pods
//! (default 100) on a real control plane with a real agent: the kubelet
//! stand-in writes the pod's token, reports the pod Running, and at that
//! moment starts the pod's process, an unmodified go-spiffe client, which
//! fetches over the Workload API. The agent pre-mints from its pod watch, so
//! this is an upper bound on "SVID in the agent cache" that includes process
//! start. Not a test: a measurement, printed as p50/p99.
//!
//!     eval "$(tests/interop/setup.sh)"
//!     cargo run --release -p sworn-e2e --example pod_start_to_svid -- 100
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use sworn_dev::k8s::{CgroupStyle, PodParams};
use sworn_e2e::k8s_env::{output, setup};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let env = setup().await;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let pod = env
            .kubelet
            .create_pod_object(&PodParams::new(
                "default",
                &format!("p{i}"),
                "web",
                "node-a",
            ))
            .await
            .unwrap();
        env.kubelet.write_tokens(&pod).await.unwrap();
        let t0 = Instant::now();
        env.kubelet.set_running(&pod).await.unwrap();
        let p = env
            .kubelet
            .start_container_process(
                &pod,
                "app",
                &env.fetch_cmd("node-a", &[]),
                CgroupStyle::Cgroupfs,
            )
            .unwrap();
        let v = output(p).await;
        let dt = t0.elapsed();
        assert_eq!(
            v["spiffe_id"], "spiffe://example.org/ns/default/sa/web",
            "{v}"
        );
        samples.push(dt.as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "pod Running -> workload holds SVID over {n} pods: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.5),
        pct(0.99),
        samples[samples.len() - 1]
    );
}
