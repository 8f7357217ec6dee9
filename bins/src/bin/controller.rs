//! `controller`: parses the command line and hands over to `controller::run`,
//! or, as `controller agent …`, to the agent (how local agents are spawned).

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use controller::settings::agents::AGENT_SUBCOMMAND;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let command = controller::cli::Cli::command().subcommand(
        agent::Cli::command()
            .name(AGENT_SUBCOMMAND)
            .about("Run as an agent dialing a controller (what `controller start` spawns)"),
    );
    let matches = command.get_matches();
    if let Some((AGENT_SUBCOMMAND, agent_matches)) = matches.subcommand() {
        return match agent::Cli::from_arg_matches(agent_matches) {
            Ok(cli) => mcp_swarm::run_agent(cli).await,
            Err(e) => e.exit(),
        };
    }
    let cli = match controller::cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let shutdown = CancellationToken::new();
    mcp_swarm::signals::cancel_on_signal(
        shutdown.clone(),
        "interrupted: stopping the run (Ctrl-C again to quit at once)",
    );
    match controller::run(cli, shutdown).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
