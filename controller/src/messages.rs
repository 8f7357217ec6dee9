//! Domain form of what crosses the controller–agent stream, so nothing but
//! `service` and `convert` touches the generated proto types.

use std::fmt;
use std::time::{Duration, SystemTime};

use common::Secret;
use common::failures::FailureBook;
use common::ids::{AgentId, UserName};
use common::series::SeriesSet;
use tokio::sync::mpsc;

use crate::report::{GeneratorStats, McpStats};
pub use common::load::Stage;
use common::protocol::LoadModel;
pub use common::protocol::LoadUpdate;

/// Controller → agent.
#[derive(Debug, Clone)]
pub enum ToAgent {
    Assignment(Box<Assignment>),
    /// Groups moved from a lost agent to this running one; the settings'
    /// `rate_share` is the part of the open-model rate that moves with them.
    AddGroups(Box<Assignment>),
    Start(StartCommand),
    TokenUpdate(TokenUpdate),
    Stop {
        reason: String,
    },
    /// Change the running run's load (the capacity search).
    LoadUpdate(LoadUpdate),
}

#[derive(Debug, Clone)]
pub struct Assignment {
    pub id: String,
    pub settings: RunSettings,
    pub groups: Vec<VuserGroup>,
}

#[derive(Debug, Clone)]
pub struct RunSettings {
    pub mcp_url: String,
    pub scenario_source: String,
    pub scenario_digest: String,
    /// (workflow, weight)
    pub mix: Vec<(String, u32)>,
    /// In the open model, this agent's share of the rate.
    pub load: LoadModel,
    pub request_timeout: Duration,
    /// `--mcp-version`.
    pub mcp_version: common::protocol::McpVersionChoice,
    /// `--elicitation`.
    pub elicitation: common::protocol::ElicitationAnswer,
    /// Open model: this agent's share of `--max-in-flight` (0: its default).
    pub max_in_flight: u64,
    /// `--stages`, cluster-wide (empty: a constant load).
    pub stages: Vec<Stage>,
    /// Open model: this agent's fraction of the cluster's rate.
    pub rate_share: f64,
}

#[derive(Debug, Clone)]
pub struct VuserGroup {
    pub index: u32,
    pub users: Vec<VuserSpec>,
}

#[derive(Clone)]
pub struct VuserSpec {
    pub index: u32,
    pub name: UserName,
    pub access_token: Secret,
    /// Unix ms; 0 = unknown.
    pub expires_at_ms: i64,
    /// Closed model: the cluster-wide order in which stages start vusers.
    pub rank: u32,
}

impl fmt::Debug for VuserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VuserSpec")
            .field("index", &self.index)
            .field("name", &self.name)
            .field("access_token", &self.access_token)
            .finish()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct StartCommand {
    pub start_at: SystemTime,
    pub warmup: Duration,
    pub duration: Duration,
}

#[derive(Clone)]
pub struct TokenUpdate {
    pub user: UserName,
    pub access_token: Secret,
    pub expires_at_ms: i64,
}

impl fmt::Debug for TokenUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenUpdate")
            .field("user", &self.user)
            .field("access_token", &self.access_token)
            .finish_non_exhaustive()
    }
}

/// Agent → controller.
#[derive(Debug, Clone)]
pub enum FromAgent {
    Ready(ReadyReport),
    Heartbeat {
        active_vusers: u32,
    },
    Interval(IntervalData),
    /// Boxed: the largest message by far, and the rarest.
    Final(Box<FinalData>),
    RefreshRequest {
        user: UserName,
    },
    Failure {
        message: String,
    },
    GroupsAdded(GroupsAddedReport),
}

/// An agent runs moved groups now.
#[derive(Debug, Clone)]
pub struct GroupsAddedReport {
    pub assignment_id: String,
    pub sessions_open: u32,
    pub sessions_failed: u32,
    pub failure_samples: Vec<String>,
    pub started_at: SystemTime,
}

#[derive(Debug, Clone)]
pub struct ReadyReport {
    pub assignment_id: String,
    pub sessions_open: u32,
    pub sessions_failed: u32,
    pub failure_samples: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct IntervalData {
    pub seq: u64,
    pub start: SystemTime,
    pub length: Duration,
    pub series: SeriesSet,
    pub generator: GeneratorStats,
    /// Failure messages new in this interval (bounded when decoded).
    pub failures: FailureBook,
}

/// One chunk of a final report: chunk 0 carries the series and counters,
/// every chunk may carry users.
#[derive(Debug, Clone)]
pub struct FinalData {
    pub chunk_index: u32,
    pub chunk_count: u32,
    pub series: SeriesSet,
    pub generator: GeneratorStats,
    pub mcp: McpStats,
    pub interrupted: bool,
    /// Chunk 0: failure messages no interval carried.
    pub failures: FailureBook,
}

/// What the service tells the run about an agent.
#[derive(Debug)]
pub enum AgentEvent {
    /// `Attach` opened: send to the agent through `outbound`.
    Attached {
        agent: AgentId,
        name: String,
        outbound: mpsc::Sender<ToAgent>,
    },
    Message {
        agent: AgentId,
        message: FromAgent,
    },
    /// The stream ended (cleanly or not).
    Detached {
        agent: AgentId,
        reason: Option<String>,
    },
}
