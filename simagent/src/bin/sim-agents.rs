//! `sim-agents`: N simulated agents against one controller, for benches.
//! Exit 0 when every agent sent its final report, 1 otherwise, 2 on usage.

use std::process::ExitCode;

use clap::Parser as _;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = simagent::Cli::parse();
    agent::init_tracing(agent::LogFormat::Text);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let secret = match agent::secret_from_env() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
        };
        let shutdown = CancellationToken::new();
        let on_signal = shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        match simagent::run(&cli, secret, shutdown).await {
            Ok(summary) => {
                println!("{}", summary.to_json());
                if summary.failed_agents == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}
