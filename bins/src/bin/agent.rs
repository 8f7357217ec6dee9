//! `agent`: parses its flags and runs until done, Ctrl-C or SIGTERM.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    mcp_swarm::run_agent(agent::Cli::parse()).await
}
