//! The agent's domain view of the protocol: what the controller tells it and
//! what it reports. `convert` maps these to and from the generated types.

use std::time::Duration;

use common::Secret;
use common::failures::FailureSample;
use common::ids::UserName;
use common::scenario::MixEntry;
use common::series::SeriesSet;

pub use common::load::Stage;
pub use common::protocol::{GeneratorStats, LoadModel, LoadUpdate, McpStats, McpVersionChoice};

/// One chunk of an `Assignment`, as received.
/// Open model: most workflows in flight at once on one agent unless the run
/// says otherwise (`--max-in-flight`); a start beyond it is dropped and
/// counted, never queued without limit.
pub const MAX_IN_FLIGHT: usize = 4096;

#[derive(Debug)]
pub struct AssignmentChunk {
    pub id: String,
    pub index: u32,
    pub count: u32,
    /// Only in chunk 0.
    pub settings: Option<RunSettings>,
    /// (group index, users) pairs; a group may continue in a later chunk.
    pub groups: Vec<(u32, Vec<VuserSpec>)>,
}

/// How to run, from chunk 0. The scenario is still source text here.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub mcp_url: String,
    pub scenario_source: String,
    pub scenario_digest: String,
    pub mix: Vec<MixEntry>,
    pub load: LoadModel,
    pub request_timeout: Duration,
    /// Extra non-secret HTTP headers for MCP requests.
    pub headers: Vec<(String, String)>,
    /// `--stages`, cluster-wide (empty: a constant load).
    pub stages: Vec<Stage>,
    /// Open model: this agent's fraction of the cluster's rate.
    pub rate_share: f64,
    /// `--mcp-version`.
    pub mcp_version: McpVersionChoice,
    /// `--elicitation`.
    pub elicitation: common::protocol::ElicitationAnswer,
    /// Open model: workflows in flight at most on this agent.
    pub max_in_flight: usize,
}

#[derive(Clone, Debug)]
pub struct VuserSpec {
    pub name: UserName,
    pub token: Secret,
    /// Closed model: the cluster-wide order in which stages start vusers.
    pub rank: u32,
}

/// When the load starts (unix ms, wall clock) and how long each phase lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartPlan {
    pub start_at_ms: i64,
    pub warmup: Duration,
    pub duration: Duration,
}

#[derive(Debug)]
pub enum ControllerEvent {
    Assignment(AssignmentChunk),
    /// Groups moved from a lost agent, to run from now on (chunked like an
    /// assignment; the settings' `rate_share` is the part of the open-model
    /// rate that moves with them).
    AddGroups(AssignmentChunk),
    Start(StartPlan),
    TokenUpdate {
        user: UserName,
        token: Secret,
    },
    Stop {
        reason: String,
    },
    LoadUpdate(LoadUpdate),
}

#[derive(Debug)]
pub enum AgentEvent {
    Ready {
        assignment_id: String,
        sessions_open: u32,
        sessions_failed: u32,
        failure_samples: Vec<String>,
    },
    /// Moved groups have their sessions open and run since `started_at_ms`.
    GroupsAdded {
        assignment_id: String,
        sessions_open: u32,
        sessions_failed: u32,
        failure_samples: Vec<String>,
        started_at_ms: i64,
    },
    Heartbeat {
        sent_at_ms: i64,
        active_vusers: u32,
    },
    Interval {
        seq: u64,
        interval_start_ms: i64,
        interval: Duration,
        series: SeriesSet,
        generator: GeneratorStats,
        /// Failure messages new since the previous interval.
        failures: Vec<FailureSample>,
    },
    Final {
        series: SeriesSet,
        generator: GeneratorStats,
        mcp: McpStats,
        interrupted: bool,
        /// Failure messages no interval carried yet.
        failures: Vec<FailureSample>,
    },
    RefreshRequest {
        user: UserName,
    },
    Failure {
        message: String,
    },
}

/// Unix time in ms.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
