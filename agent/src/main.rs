//! `agent`: parses flags, reads the cluster secret from the environment, and
//! runs `agent::run` until done or Ctrl-C.

use std::process::ExitCode;

use clap::Parser as _;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = agent::Cli::parse();
    agent::init_tracing(cli.log_format);
    let secret = match agent::secret_from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("agent: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let config = agent::Config::from_cli(cli, secret);
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    match agent::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
