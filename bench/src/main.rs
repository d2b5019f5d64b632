//! `sworn-bench`: runs the side-by-side benchmark (see `bench/run`, which builds everything
//! first and is the usual entry point).

use std::path::PathBuf;

use clap::Parser;
use sworn_bench::peer::Binaries;
use sworn_bench::runner::{self, Options};

/// Side-by-side benchmarks of sworn and SPIRE.
#[derive(Debug, Parser)]
#[command(name = "sworn-bench")]
struct Cli {
    /// Run only these scenarios (comma-separated: fetch, issuance, storm, memory, coldstart,
    /// attest, idle, agents, restart, k8s); all when omitted.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Measure only these systems (comma-separated: sworn, spire); default both.
    #[arg(long, value_delimiter = ',')]
    system: Vec<String>,
    /// Seed of the pair order and the bootstrap intervals (default: from the clock; the
    /// seed used is recorded either way).
    #[arg(long)]
    seed: Option<u64>,
    /// Smaller sizes, for a short run.
    #[arg(long)]
    quick: bool,
    /// CI smoke test: sworn only, every scenario, tiny; results go to $TMPDIR.
    #[arg(long)]
    smoke: bool,
    /// Where results.json, RESULTS.md (and causes.json) live.
    #[arg(long, default_value = "bench")]
    out_dir: PathBuf,
    /// Directory holding sworn-server, sworn-agent, sworn-dev and sworn-bench-worker.
    #[arg(long, default_value = "target/release")]
    target_dir: PathBuf,
    /// Directory holding spire-server and spire-agent (bench/spire/build.sh prints it).
    #[arg(long)]
    spire_bin: Option<PathBuf>,
    /// Keep the run directory (logs, datastores).
    #[arg(long)]
    keep: bool,
    /// Print the plan (estimated time per scenario) and exit without measuring.
    #[arg(long)]
    plan: bool,
    /// Re-render RESULTS.md (in --out-dir) from this results.json without measuring.
    #[arg(long)]
    render: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(json) = &cli.render {
        return runner::render(json, &cli.out_dir.join("RESULTS.md"));
    }
    let spire = |name: &str| {
        cli.spire_bin
            .as_ref()
            .map(|d| d.join(name))
            .filter(|p| p.exists())
    };
    let bins = Binaries {
        sworn_server: cli.target_dir.join("sworn-server"),
        sworn_agent: cli.target_dir.join("sworn-agent"),
        sworn_dev: cli.target_dir.join("sworn-dev"),
        spire_server: spire("spire-server"),
        spire_agent: spire("spire-agent"),
    };
    runner::run(Options {
        scenarios: cli.only,
        quick: cli.quick,
        smoke: cli.smoke,
        out_dir: cli.out_dir,
        worker_bin: cli.target_dir.join("sworn-bench-worker"),
        bins,
        keep: cli.keep,
        systems: cli.system,
        seed: cli.seed,
        plan_only: cli.plan,
    })
    .await
}
