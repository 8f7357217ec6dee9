//! The settings a run is made of, as plain data (no I/O): `cli` parses flags
//! into these types, `config` merges flags, the `--config` file and env into a
//! `RunConfig`, and every room reads them without knowing where they came
//! from. Nothing here imports another module of the controller.

pub mod agents;
pub mod log;
pub mod login;
pub mod mcp;
pub mod provider;
pub mod selector;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::protocol::{ElicitationAnswer, LoadModel, McpVersionChoice};

use agents::{AgentsMode, OnAgentLoss, ServerTlsFiles};
use login::LoginConfig;
use provider::{ProviderConfig, TargetConfig};

/// One run, every setting resolved.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub n_users: u32,
    pub n_agents: u32,
    pub duration: Duration,
    pub warmup: Duration,
    pub target: TargetConfig,
    pub output: Option<PathBuf>,
    pub html: Option<PathBuf>,
    /// Most users the JSON report lists; past it they go to a CSV file.
    pub report_users_inline: usize,
    pub junit: Option<PathBuf>,
    pub workload: Option<String>,
    pub user_prefix: String,
    pub cleanup: bool,
    pub agents: AgentsMode,
    pub listen: SocketAddr,
    /// Where `/health`, `/metrics` and `/api/v1/status` are served.
    pub http: Option<SocketAddr>,
    /// How long `http` keeps serving after the run.
    pub http_linger: Duration,
    /// `--http-control`: the bearer secret control requests must carry.
    pub http_control: Option<common::secret::Secret>,
    pub agent_timeout: Duration,
    pub scenario_file: Option<PathBuf>,
    pub load: LoadModel,
    /// `--stages` (empty: a constant load), timed from the start.
    pub stages: Vec<common::load::Stage>,
    /// `--tenants`: users spread over this many tenants (0: none).
    pub tenants: u32,
    pub thresholds: Vec<String>,
    pub login: LoginConfig,
    pub provider: ProviderConfig,
    pub state_dir: PathBuf,
    /// The run history the finished run is recorded in (`None`: `--no-history`).
    pub history: Option<PathBuf>,
    pub request_timeout: Duration,
    /// `--mcp-version`: what the agents speak.
    pub mcp_version: McpVersionChoice,
    /// `--elicitation`: how agents answer `elicitation/create`.
    pub elicitation: ElicitationAnswer,
    /// `--max-in-flight`: open model, workflows in flight across the
    /// cluster (`None`: each agent's default).
    pub max_in_flight: Option<u64>,
    pub on_agent_loss: OnAgentLoss,
    /// TLS (and mTLS) of the gRPC listener.
    pub tls: Option<ServerTlsFiles>,
}
