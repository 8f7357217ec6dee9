//! The one package of binaries over the libraries: `controller` (which also
//! runs as `controller agent …`, so it spawns its local agents from its own
//! executable), `agent` and `mock-target`. What the mains share lives here:
//! signal handling and the agent's entry point.

use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

pub mod netdelay;
pub mod signals;

/// Runs an agent from its parsed flags until done or a signal; the exit code.
pub async fn run_agent(cli: agent::Cli) -> ExitCode {
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
    signals::cancel_on_signal(shutdown.clone(), "agent: stopping (again to quit at once)");
    match agent::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
