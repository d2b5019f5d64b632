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
    /// One scenario (fetch, ttfs, issuance, storm, coldstart); all when omitted.
    scenario: Option<String>,
    /// Smaller sizes (about five minutes).
    #[arg(long)]
    quick: bool,
    /// CI smoke test: sworn only, one scenario, tiny; results go to the run directory.
    #[arg(long)]
    smoke: bool,
    /// Where results.json and RESULTS.md go.
    #[arg(long, default_value = "bench")]
    out_dir: PathBuf,
    /// Directory holding sworn-server, sworn-agent and sworn-bench-worker.
    #[arg(long, default_value = "target/release")]
    target_dir: PathBuf,
    /// Directory holding spire-server and spire-agent (bench/spire/build.sh prints it).
    #[arg(long)]
    spire_bin: Option<PathBuf>,
    /// Keep the run directory (logs, datastores).
    #[arg(long)]
    keep: bool,
    /// Re-render RESULTS.md (in --out-dir) from this results.json without measuring.
    #[arg(long)]
    render: Option<PathBuf>,
    /// Measure only these systems (comma-separated: sworn, spire); default both.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
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
        spire_server: spire("spire-server"),
        spire_agent: spire("spire-agent"),
    };
    runner::run(Options {
        scenario: cli.scenario,
        quick: cli.quick,
        smoke: cli.smoke,
        out_dir: cli.out_dir,
        worker_bin: cli.target_dir.join("sworn-bench-worker"),
        bins,
        keep: cli.keep,
        only: cli.only,
    })
    .await
}
