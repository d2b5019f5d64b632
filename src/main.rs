//! `sworn-server`: parses the command line, installs logging, runs.

use clap::Parser;
use sworn_server::cli::{Cli, Command, exit_code};
use sworn_server::config::{Config, EXIT_CONFIG};

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sworn-server: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match cli.command {
        Command::Run { config } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("sworn-server: {e}");
                    std::process::exit(EXIT_CONFIG);
                }
            };
            sworn_server::telemetry::init_logging(cfg.log_format, &cfg.log_level);
            match runtime.block_on(sworn_server::server::run_until_signal(cfg)) {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "server stopped");
                    eprintln!("sworn-server: {e:#}");
                    e.exit_code()
                }
            }
        }
        cmd => match runtime.block_on(sworn_server::cli::execute(cmd)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("sworn-server: {e:#}");
                exit_code(&e)
            }
        },
    };
    std::process::exit(code);
}
