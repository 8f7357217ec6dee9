//! The agents of a run: spawned here or started elsewhere, the gRPC listener
//! they dial and its TLS, and what to do when one is lost (`--on-agent-loss`).

use std::path::PathBuf;

use common::Secret;
use common::region::Region;

/// The subcommand under which the `controller` executable runs as an agent.
pub const AGENT_SUBCOMMAND: &str = "agent";

#[derive(Debug, Clone)]
pub enum AgentsMode {
    /// Spawn local agent processes with this command.
    /// `regions`: `--agent-regions`, agent `i` in entry `i mod len` (empty:
    /// every agent in the default region).
    Spawn {
        agent: AgentCommand,
        regions: Vec<Region>,
    },
    /// Wait for agents started elsewhere; they must know this secret.
    NoSpawn { cluster_secret: Secret },
}

/// How a local agent is started: by default this very executable with the
/// `agent` subcommand (the agent code is linked into the `controller` binary),
/// or a separate agent executable given with `--agent-bin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCommand {
    pub program: PathBuf,
    /// Arguments before the agent's own flags (`["agent"]` for this executable).
    pub leading_args: Vec<String>,
}

impl AgentCommand {
    /// `program` run as `<program> agent …`: this executable.
    pub fn as_subcommand(program: PathBuf) -> AgentCommand {
        AgentCommand {
            program,
            leading_args: vec![AGENT_SUBCOMMAND.to_owned()],
        }
    }

    /// A separate agent executable, run with the agent's flags only.
    pub fn separate(program: PathBuf) -> AgentCommand {
        AgentCommand {
            program,
            leading_args: Vec::new(),
        }
    }
}

/// The TLS flags of `controller start`, as given.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTlsFiles {
    /// PEM certificate chain the controller presents.
    pub cert: PathBuf,
    /// PEM private key of `cert`.
    pub key: PathBuf,
    /// PEM CA certificate(s) agents' client certificates must chain to (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// What to do when an agent is lost while the run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnAgentLoss {
    /// Move its users to the surviving agents, which run them to the end.
    #[default]
    Reassign,
    /// Stop the run, keep the report, exit 1.
    Abort,
    /// Go on without its users.
    Continue,
}

impl OnAgentLoss {
    pub fn name(self) -> &'static str {
        match self {
            OnAgentLoss::Reassign => "reassign",
            OnAgentLoss::Abort => "abort",
            OnAgentLoss::Continue => "continue",
        }
    }
}
