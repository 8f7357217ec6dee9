//! What the report is built from: domain types the run fills in from the
//! agents' final reports and interval deltas (no proto types here).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::failures::FailureBook;
use common::ids::AgentId;
pub use common::protocol::{GeneratorStats, McpStats};
use common::region::Region;
use common::series::{SeriesKey, SeriesKind, SeriesSet, slot};
use common::{CompactHistogram, ErrorKind, LatencyHistogram};

use crate::thresholds::Threshold;

/// Everything `build_report` needs, gathered once the run is over.
#[derive(Clone, Debug, Default)]
pub struct ReportInput {
    pub run: RunInfo,
    /// Every agent's series and users, merged as they arrived: the final
    /// reports, and the interval deltas of an agent that sent none.
    pub series: SeriesSet,
    pub agents: Vec<AgentResult>,
    /// Cluster-wide interval deltas (every agent's delta for that second
    /// merged), in time order: the measurement window (no warmup), then
    /// the drain (points flagged `drain`).
    pub intervals: Vec<IntervalPoint>,
    /// Per series, executions that completed in the drain, after the
    /// window: in the totals, not in the window's throughput.
    pub drain: BTreeMap<SeriesKey, u64>,
    pub auth: AuthInput,
    /// Every user of the run, so users without operations still show (with 0).
    pub users: Vec<String>,
    /// Workflows flagged `baseline` in the scenario: their tool calls make the
    /// BASELINE section and they are left out of the workflow statistics.
    pub baseline_workflows: Vec<String>,
    /// Workflow → step names in scenario order, to list steps in that order.
    pub step_order: BTreeMap<String, Vec<String>>,
    pub thresholds: Vec<Threshold>,
    /// `--tenants`: user → tenant (empty without tenants).
    pub tenants: BTreeMap<String, String>,
    /// Why steps failed: messages per workflow, step and kind.
    pub failures: FailureBook,
    /// Each region's agents' series (`agent --region`).
    pub regions: BTreeMap<Region, RegionSeries>,
    /// Agents lost during the run and where their users went.
    pub agent_losses: Vec<AgentLoss>,
}

/// One region's agents and their series merged (no users: a count).
#[derive(Clone, Debug, Default)]
pub struct RegionSeries {
    /// The agents' names.
    pub agents: Vec<String>,
    pub n_users: usize,
    pub series: SeriesSet,
}

/// One agent lost during the run.
#[derive(Clone, Debug)]
pub struct AgentLoss {
    pub agent_id: AgentId,
    pub agent: String,
    pub lost_at: SystemTime,
    pub last_heard_at: SystemTime,
    pub reason: String,
    pub policy: String,
    pub moves: Vec<UserMove>,
}

/// Users moved from a lost agent to `to`.
#[derive(Clone, Debug)]
pub struct UserMove {
    pub to: String,
    /// Each user → operations it made on `to`.
    pub users: BTreeMap<String, u64>,
    pub sent_at: SystemTime,
    pub resumed_at: Option<SystemTime>,
    pub sessions_open: u32,
    pub sessions_failed: u32,
}

#[derive(Clone, Debug)]
pub struct RunInfo {
    /// MCP endpoint of the target.
    pub target: String,
    /// Workload or scenario name (`mixed`, `sharing`, a scenario file's name).
    pub workload: String,
    /// Human description: `closed, think time 0s` or `open, 10/s`.
    pub load_model: String,
    pub n_users: usize,
    pub n_agents: usize,
    /// When the run started (warmup included).
    pub started_at: SystemTime,
    /// When the run ended.
    pub ended_at: SystemTime,
    pub warmup: Duration,
    /// Length of the measurement window actually run (shorter than asked
    /// when interrupted); throughput is computed over it.
    pub duration: Duration,
    pub interrupted: bool,
    /// The target is the controller's embedded mock.
    pub embedded_target: bool,
    /// `browser`, `direct`, `password`, `client-credentials`, `tokens-file`.
    pub login_method: String,
}

impl Default for RunInfo {
    fn default() -> Self {
        Self {
            target: String::new(),
            workload: String::new(),
            load_model: String::new(),
            n_users: 0,
            n_agents: 0,
            started_at: SystemTime::UNIX_EPOCH,
            ended_at: SystemTime::UNIX_EPOCH,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            interrupted: false,
            embedded_target: false,
            login_method: String::new(),
        }
    }
}

/// One agent's contribution.
#[derive(Clone, Debug)]
pub struct AgentResult {
    pub id: AgentId,
    pub name: String,
    pub n_users: usize,
    /// The agent went away before the end of the run.
    pub lost: bool,
    /// Its whole `FinalReport` arrived (then `totals` are of that
    /// cumulative set; otherwise of the interval deltas received from it).
    pub final_received: bool,
    pub totals: AgentTotals,
    pub generator: GeneratorStats,
    pub mcp: McpStats,
    pub intervals_received: u64,
}

/// What one agent did, as counters: the agent's own series are folded into
/// the run's merged set as they arrive and not kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentTotals {
    pub operations: u64,
    pub failed_operations: u64,
    /// Workflow → finished executions.
    pub workflows: BTreeMap<String, u64>,
}

impl AgentTotals {
    pub fn of(series: &SeriesSet) -> AgentTotals {
        let (operations, failed_operations) = series.operation_counts();
        let mut totals = AgentTotals {
            operations,
            failed_operations,
            workflows: BTreeMap::new(),
        };
        for (key, s) in series.iter_kind(SeriesKind::Workflow) {
            *totals.workflows.entry(key.workflow.clone()).or_default() += s.total();
        }
        totals
    }
}

/// Cluster-wide figures of one interval: what the timeseries shows, kept
/// small (counts and one compact histogram per workflow), because the
/// controller holds one per second of the run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntervalPoint {
    /// End of the interval, as an offset from the start of measurement.
    pub at: Duration,
    /// How long the interval is: one second, or more for the older part of
    /// a long run (`run::timeline`). Zero is read as one second.
    pub span: Duration,
    pub operations: u64,
    pub errors: u64,
    /// Failed tool calls in the interval by kind.
    pub error_kinds: BTreeMap<ErrorKind, u64>,
    /// After the measurement window: what completed while draining.
    pub drain: bool,
    /// Open model: starts that fell due in the interval, made or dropped.
    pub offered_starts: u64,
    /// Open model: of those, starts dropped at the in-flight bound.
    pub dropped_starts: u64,
    /// Workflow → executions finished in the interval and their latencies.
    pub workflows: BTreeMap<String, IntervalWorkflow>,
    /// Active vusers at the interval's end, over agents (closed model:
    /// looping vusers; open model: workflows in flight).
    pub active_users: u64,
    /// With `--stages`: what they asked for at the interval's end (active
    /// users, or workflow starts per second).
    pub target: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct IntervalWorkflow {
    pub count: u64,
    pub latency: CompactHistogram,
}

impl IntervalPoint {
    /// The interval's length (one second unless set).
    pub fn width(&self) -> Duration {
        if self.span.is_zero() {
            Duration::from_secs(1)
        } else {
            self.span
        }
    }

    /// Where the interval begins, as an offset from the start of measurement.
    pub fn start(&self) -> Duration {
        self.at.saturating_sub(self.width())
    }

    /// Takes in the interval that follows this one (or any later one: the
    /// point then spans the gap too). Counts add up; levels (active users,
    /// the stages' target) are the later interval's, as at its end.
    pub fn absorb(&mut self, later: IntervalPoint) {
        let start = self.start().min(later.start());
        self.at = self.at.max(later.at);
        self.span = self.at - start;
        self.operations += later.operations;
        self.errors += later.errors;
        for (kind, n) in later.error_kinds {
            *self.error_kinds.entry(kind).or_default() += n;
        }
        self.offered_starts += later.offered_starts;
        self.dropped_starts += later.dropped_starts;
        for (name, w) in later.workflows {
            let into = self.workflows.entry(name).or_default();
            into.count += w.count;
            into.latency.merge(&w.latency);
        }
        self.active_users = later.active_users;
        self.target = later.target.or(self.target);
    }

    /// Adds one agent's delta.
    pub fn add(&mut self, delta: &SeriesSet) {
        let (operations, errors) = delta.operation_counts();
        self.operations += operations;
        self.errors += errors;
        for (_, s) in delta.iter_kind(SeriesKind::Operation) {
            for (kind, n) in &s.errors {
                *self.error_kinds.entry(*kind).or_default() += n;
            }
        }
        for (key, s) in delta.iter_kind(SeriesKind::Workflow) {
            if s.total() == 0 {
                continue;
            }
            let w = slot(&mut self.workflows, &key.workflow);
            w.count += s.total();
            w.latency.merge_from(&s.histogram);
        }
    }
}

/// What the controller saw of logins and token refreshes.
#[derive(Clone, Debug, Default)]
pub struct AuthInput {
    pub login_method: String,
    /// Latency of each successful login (whole OAuth flow).
    pub login_latency: LatencyHistogram,
    pub logins_ok: u64,
    pub logins_failed: u64,
    /// `--token-cache`: users whose tokens came from the cache, not a login.
    pub tokens_from_cache: u64,
    /// The scenario's `setup.provision`: users provisioned before the load
    /// (each timed), users the server already had provisioned, and why it
    /// did not run where it was declared but not needed.
    pub provisioned: u64,
    pub provisioned_already: u64,
    pub provisioning_latency: LatencyHistogram,
    pub provisioning_skipped: Option<String>,
    /// Refreshes the controller performed.
    pub refreshes: u64,
    pub refresh_failures: u64,
    /// Of `refreshes`, whole logins: tokens without a refresh token renewed
    /// by logging the user in again before expiry.
    pub relogins: u64,
    /// Auth failures the controller itself saw (rejected refresh, revoked
    /// token). The agents' 401/403 come from `AgentResult::mcp` and are
    /// added to it in the report.
    pub auth_failures: u64,
}
