//! The JSON report model: the framework's schema (`summary`, `workflows`,
//! `users`, `baseline`) plus our sections. Serialize and Deserialize, so a
//! written report can be re-rendered, compared and merged. Latencies are in
//! seconds as in the framework; rates are percentages (97.3).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::histogram::{Hdr, Precision};

/// Bumped on any incompatible change of the JSON layout.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report is not valid JSON for schema version {SCHEMA_VERSION}: {0}")]
    Json(#[from] serde_json::Error),
    #[error("report has schema_version {found}, this build reads {SCHEMA_VERSION}")]
    Version { found: u32 },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// Whether the target kept up: the report's first word.
    #[serde(default)]
    pub verdict: Verdict,
    pub summary: Summary,
    /// Non-baseline workflows by name.
    pub workflows: BTreeMap<String, WorkflowReport>,
    /// User name → statistics: every user, unless `users_detail` says the
    /// run had too many to list here and where they all are.
    pub users: BTreeMap<String, UserReport>,
    /// Runs with more users than `--report-users-inline`: every user is in
    /// a CSV file beside the report; `users` then keeps the users worth a
    /// look (the slowest and those with the most errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_detail: Option<UsersDetail>,
    pub baseline: BaselineReport,
    pub run: RunReport,
    pub agents: Vec<AgentReport>,
    pub auth: AuthReport,
    pub mcp: McpReport,
    pub generator: Vec<GeneratorReport>,
    pub timeseries: Vec<TimeseriesPoint>,
    pub thresholds: Vec<ThresholdResult>,
    pub histograms: Histograms,
    /// `controller capacity`: the search and every step's figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<CapacityReport>,
    /// `--tenants`: per-tenant statistics and how fairly they were served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<TenantsReport>,
    /// Agents' regions (`agent --region`): latency and throughput per
    /// region, when any agent named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<BTreeMap<String, RegionReport>>,
    /// Why steps failed, most frequent first.
    #[serde(default)]
    pub errors: Vec<ErrorReport>,
    /// Failure samples the controller refused (past its bounds).
    #[serde(default)]
    pub error_samples_refused: u64,
    /// Agents lost during the run and where their users went (SPEC §5).
    #[serde(default)]
    pub agent_losses: Vec<AgentLossReport>,
}

/// Where every user's figures are when the report lists only some.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsersDetail {
    /// Users of the run (rows of `file`).
    pub users: u64,
    /// The CSV file, relative to the report's directory.
    pub file: String,
    /// Its header: the user, the figures of `users` (latency in seconds),
    /// then `calls:<tool>` and `errors:<kind>` columns.
    pub columns: Vec<String>,
    /// Why these users are in `users`.
    pub listed: String,
    /// Over every user: lowest, median, 95th percentile and highest of
    /// their tool calls per second and of their p95 latency (seconds).
    pub throughput_spread: [f64; 4],
    pub p95_spread: [f64; 4],
}

/// One agent lost during the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentLossReport {
    /// Its name, as in `agents`.
    pub agent: String,
    pub agent_id: String,
    /// `left without a final report (…)`, `silent for 5.1 s`, ….
    pub reason: String,
    /// `--on-agent-loss`: `reassign`, `abort` or `continue`.
    pub policy: String,
    /// RFC 3339, UTC: when the controller declared it lost.
    pub lost_at: String,
    /// Seconds from the run's start (warmup included) to the loss.
    pub lost_at_seconds: f64,
    /// RFC 3339, UTC: its last message; its users idle from then on.
    pub last_heard_at: String,
    pub moves: Vec<UserMoveReport>,
}

/// The lost agent's users moved to one surviving agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMoveReport {
    /// The agent that took them.
    pub to: String,
    pub n_users: u64,
    /// Each moved user → operations it made on its new agent (measured phase).
    pub users: BTreeMap<String, u64>,
    /// RFC 3339, UTC: when they started working on `to`; absent if they never did.
    pub resumed_at: Option<String>,
    /// Seconds from the loss to `resumed_at`.
    pub resumed_after_seconds: Option<f64>,
    /// Seconds from the lost agent's last message to `resumed_at`.
    pub idle_seconds: Option<f64>,
    pub sessions_open: u64,
    pub sessions_failed: u64,
}

/// One region's share of the run: its agents' merged series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionReport {
    /// Names of the agents in the region.
    pub agents: Vec<String>,
    pub users: u64,
    /// Tool calls (the drain's included).
    pub total_operations: u64,
    pub failed_operations: u64,
    pub success_rate: f64,
    /// Tool calls per second of the measured window.
    pub throughput_per_sec: f64,
    /// Over every tool call.
    pub latency: LatencyStats,
    pub workflows: BTreeMap<String, RegionSeriesReport>,
    /// `workflow/step`.
    pub steps: BTreeMap<String, RegionSeriesReport>,
    /// A tool over every workflow.
    pub tools: BTreeMap<String, RegionSeriesReport>,
}

/// Counts and latency of one workflow, step or tool within a region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionSeriesReport {
    pub count: u64,
    pub success_rate: f64,
    pub latency: LatencyStats,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantsReport {
    pub tenants: BTreeMap<String, TenantReport>,
    pub fairness: Fairness,
}

/// One tenant's users' operations together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantReport {
    pub users: u64,
    pub total_operations: u64,
    pub successful_operations: u64,
    pub failed_operations: u64,
    pub success_rate: f64,
    /// Tool calls per second of the measured window.
    pub throughput_per_sec: f64,
    pub throughput_per_user: f64,
    /// From the users' compact histograms (2 significant digits).
    pub latency: LatencyStats,
}

/// Per-user throughput over tenants: lowest, highest, and lowest / highest
/// (1 = every tenant served alike).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fairness {
    pub min_throughput_per_user: f64,
    pub max_throughput_per_user: f64,
    pub ratio: f64,
}

/// What `controller capacity` found: the highest open-model rate that met
/// every threshold, and each step's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapacityReport {
    pub thresholds: Vec<String>,
    /// Workflow starts per second across the cluster.
    pub start_rate: f64,
    pub max_rate: f64,
    /// Seconds per step, and the first part of each not measured.
    pub step_duration: f64,
    pub settle: f64,
    /// The highest rate whose step met every threshold; `null` if none did.
    pub max_passing_rate: Option<f64>,
    /// The lowest rate whose step broke a threshold; `null` if none did.
    pub lowest_failing_rate: Option<f64>,
    pub steps: Vec<CapacityStep>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapacityStep {
    /// Offered workflow starts per second across the cluster.
    pub rate: f64,
    /// When the step began, seconds from the start of measurement.
    pub started: f64,
    /// Seconds measured (the step after its settle time).
    pub measured: f64,
    /// Workflow executions ended per second (every workflow).
    pub workflow_rate: f64,
    /// Tool calls per second.
    pub throughput: f64,
    /// Percent of tool calls that failed.
    pub error_rate: f64,
    /// Every tool call of the step.
    pub latency: LatencyStats,
    /// Per workflow (from the intended start), as in `workflows`.
    pub workflows: BTreeMap<String, LatencyStats>,
    pub passed: bool,
    pub thresholds: Vec<ThresholdResult>,
}

impl Report {
    /// Reads a report written by `serde_json`, refusing other schema versions.
    pub fn from_json(text: &str) -> Result<Report, ReportError> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let Version { schema_version } = serde_json::from_str(text)?;
        if schema_version != SCHEMA_VERSION {
            return Err(ReportError::Version {
                found: schema_version,
            });
        }
        Ok(serde_json::from_str(text)?)
    }

    pub fn to_json_pretty(&self) -> Result<String, ReportError> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// True when every threshold passed (and vacuously when there are none).
    pub fn thresholds_passed(&self) -> bool {
        self.thresholds.iter().all(|t| t.passed)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Measured duration in seconds (warmup excluded).
    pub duration: f64,
    /// Executions of non-baseline workflows.
    pub total_workflows: u64,
    /// Tool calls made by baseline workflows.
    pub total_baseline_ops: u64,
    pub total_users: u64,
    /// Every tool call of the run.
    pub total_operations: u64,
    pub failed_operations: u64,
    /// Tool calls that lost a write race the step allows (a stale `If-Match`
    /// etag, HTTP 412): the run's concurrent write conflicts, counted in
    /// `total_operations`, neither successes nor failures.
    #[serde(default)]
    pub conflicted_operations: u64,
    /// Achieved throughput: tool calls *completed* per second of the
    /// measured window, `(total_operations - drain_operations) / duration`.
    /// What the target served, never the rate offered to it.
    pub throughput_per_sec: f64,
    /// Of `total_operations`, calls that completed after the window ended,
    /// while workflows started in it drained: counted, with their
    /// latencies, but not in `throughput_per_sec`.
    #[serde(default)]
    pub drain_operations: u64,
    /// Seconds from the window's end to the last call completed in the drain.
    #[serde(default)]
    pub drain_duration: f64,
    /// Latency of every tool call.
    pub latency: LatencyStats,
}

/// Whether the target kept up with the load, said plainly first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub fell_behind: bool,
    /// One or two sentences: what happened, from when, offered vs served.
    pub text: String,
    /// Seconds into the measured window from which it fell behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<f64>,
    /// Open model: workflow starts per second the load asked for (made or
    /// dropped) over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_starts_per_sec: Option<f64>,
    /// Open model: tool calls per second that load carries (offered starts
    /// times the calls of an average finished workflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_operations_per_sec: Option<f64>,
    /// Tool calls completed per second of the window (the summary's
    /// `throughput_per_sec`).
    pub served_operations_per_sec: f64,
    /// Open model: starts dropped at the in-flight bound, and starts made
    /// later than intended (the generator's lateness, not the target's).
    pub dropped_starts: u64,
    pub late_starts: u64,
    /// Workflows in flight when the window ended (open model), or active
    /// users (closed model): the backlog left to drain.
    pub backlog: u64,
    /// Error kinds that grew from the first half of the window to the second.
    #[serde(default)]
    pub growing_errors: Vec<ErrorGrowth>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorGrowth {
    /// `timeout`, `transport`, `http_5xx`, ….
    pub kind: String,
    pub first_half: u64,
    pub second_half: u64,
}

/// Latency summary in seconds, read from an HdrHistogram (never averaged
/// across agents).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub median: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

impl LatencyStats {
    pub fn from_histogram<P: Precision>(h: &Hdr<P>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            min: us_to_secs(h.min_us()),
            max: us_to_secs(h.max_us()),
            // Rounded to the microsecond like every other figure, so reports
            // stay stable and readable.
            mean: h.mean_us().round() / 1e6,
            median: us_to_secs(h.quantile_us(0.5)),
            p90: us_to_secs(h.quantile_us(0.9)),
            p95: us_to_secs(h.quantile_us(0.95)),
            p99: us_to_secs(h.quantile_us(0.99)),
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Microseconds as seconds; exact for the shortest decimal representation.
pub fn us_to_secs(us: u64) -> f64 {
    us as f64 / 1e6
}

/// `ok` out of `total` as a percentage, 0 when nothing ran. Callers pass
/// successes and failures only: a write conflict is neither.
pub fn success_rate(ok: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        round6(ok as f64 * 100.0 / total as f64)
    }
}

/// Rounds a derived figure (rate, throughput) to 6 decimals: far below what
/// anyone reads, and short enough that the JSON text parses back to the very
/// same `f64` (serde_json's default float parsing is exact only for short
/// mantissas), so reports round-trip exactly.
pub fn round6(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        x
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowReport {
    /// Finished executions (successes and failures).
    pub total_executions: u64,
    /// Executions still in flight when the run ended or was interrupted:
    /// neither successes nor failures, and without a latency.
    #[serde(default)]
    pub interrupted_executions: u64,
    pub successful_executions: u64,
    pub failed_executions: u64,
    /// Tool calls of this workflow that lost a write race it allows.
    #[serde(default)]
    pub conflicted_operations: u64,
    pub success_rate: f64,
    /// Executions completed per second of the measured window (those of
    /// the drain left out, as in the summary).
    #[serde(default)]
    pub throughput_per_sec: f64,
    /// Executions completed after the window, while draining.
    #[serde(default)]
    pub drain_executions: u64,
    pub latency: LatencyStats,
    /// Open model: latency from the intended start (coordinated omission
    /// corrected); `null` in the closed model.
    pub corrected_latency: Option<LatencyStats>,
    /// Steps in scenario order.
    pub step_latencies: OrderedMap<StepReport>,
    /// Error kind (`tool_error`, `http_5xx`, …) → count.
    pub errors_breakdown: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Finished executions: successes, conflicts and failures.
    pub total_executions: u64,
    #[serde(default)]
    pub interrupted_executions: u64,
    pub successful_executions: u64,
    pub failed_executions: u64,
    /// Executions whose last call lost a write race the step allows
    /// (after its retries, if any).
    #[serde(default)]
    pub conflicted_executions: u64,
    pub success_rate: f64,
    /// Executions completed per second of the measured window.
    #[serde(default)]
    pub throughput_per_sec: f64,
    pub latency: LatencyStats,
    pub corrected_latency: Option<LatencyStats>,
    pub errors_breakdown: BTreeMap<String, u64>,
}

/// One user's operations. The latency figures come from the user's compact
/// histogram (2 significant digits: within 1%); exact percentiles are those
/// of workflows, steps and tools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserReport {
    pub total_operations: u64,
    pub successful_operations: u64,
    pub failed_operations: u64,
    #[serde(default)]
    pub conflicted_operations: u64,
    pub success_rate: f64,
    pub latency: LatencyStats,
    /// Tool → calls.
    pub operations_breakdown: BTreeMap<String, u64>,
    /// Error kind → count.
    pub errors_breakdown: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineReport {
    pub total_operations: u64,
    pub successful_operations: u64,
    pub failed_operations: u64,
    #[serde(default)]
    pub conflicted_operations: u64,
    pub success_rate: f64,
    pub latency: LatencyStats,
    /// Tool → its statistics.
    pub operations: BTreeMap<String, OperationReport>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OperationReport {
    pub total_operations: u64,
    pub successful_operations: u64,
    pub failed_operations: u64,
    #[serde(default)]
    pub conflicted_operations: u64,
    pub success_rate: f64,
    pub latency: LatencyStats,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub target: String,
    pub workload: String,
    /// `closed, think time 0s` or `open, 10/s`.
    pub load_model: String,
    pub n_agents: u64,
    pub n_users: u64,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub ended_at: String,
    pub warmup_seconds: f64,
    pub duration_seconds: f64,
    pub interrupted: bool,
    /// The target was the controller's embedded mock (its address changes
    /// with every run; the run history keys such runs by this, not by it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embedded_target: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentReport {
    pub id: String,
    pub name: String,
    pub n_users: u64,
    pub operations: u64,
    pub failed_operations: u64,
    /// Executions of non-baseline workflows.
    pub workflows: u64,
    pub lost: bool,
    pub final_received: bool,
    pub intervals_received: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuthReport {
    pub login_method: String,
    pub logins: u64,
    pub login_failures: u64,
    pub login_latency: LatencyStats,
    /// Token refreshes the controller performed.
    pub refreshes: u64,
    pub refresh_failures: u64,
    /// Of `refreshes`, whole logins before expiry, for tokens issued
    /// without a refresh token.
    #[serde(default)]
    pub relogins: u64,
    /// Refreshes agents asked for after a 401.
    pub refresh_requests: u64,
    /// 401/403 seen by agents plus auth failures seen by the controller.
    pub auth_failures: u64,
    /// `--token-cache`: users whose tokens came from the cache (reused or
    /// refreshed) instead of a login.
    #[serde(default)]
    pub tokens_from_cache: u64,
    /// The scenario's per-user setup (`setup.provision`), when declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<ProvisioningReport>,
}

/// Users provisioned before the load (e.g. the Nextcloud MCP server's Login
/// Flow v2 app passwords).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProvisioningReport {
    /// Provisioned by this run, each timed (tool, visit, poll).
    pub provisioned: u64,
    /// Already provisioned on the server (kept users, cached tokens).
    pub already: u64,
    pub latency: LatencyStats,
    /// Why it did not run, where the scenario declares it.
    #[serde(default)]
    pub skipped: Option<String>,
    /// What stays on the server for kept users, and how to remove it.
    #[serde(default)]
    pub left_behind: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct McpReport {
    /// The MCP protocol version the sessions settled on (the most common one,
    /// should agents differ); `None` when no session opened.
    #[serde(default)]
    pub protocol_version: Option<String>,
    /// Sessions opened, by protocol version.
    #[serde(default)]
    pub sessions_by_protocol_version: std::collections::BTreeMap<String, u64>,
    /// Session openings (connect + initialize, or the `server/discover` of
    /// 2026-07-28), kept apart from tool calls.
    pub initializations: u64,
    pub initialize_failures: u64,
    pub initialize_latency: LatencyStats,
    pub session_reinitializations: u64,
    /// Requests the server sent the agents mid-call, by method (`ping`,
    /// `elicitation/create`, `sampling/createMessage`, `roots/list`,
    /// `other`), each answered.
    #[serde(default)]
    pub server_requests: std::collections::BTreeMap<String, u64>,
    /// Failed tool calls by class.
    pub errors: McpErrors,
}

/// Failed tool calls split by class: HTTP status (4xx, 5xx, 401/403),
/// JSON-RPC error, tool `isError`, and the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpErrors {
    pub http_status: u64,
    pub jsonrpc: u64,
    pub tool_is_error: u64,
    pub timeout: u64,
    pub transport: u64,
    /// The call succeeded but an `expect` of the step did not hold.
    pub expectation: u64,
    /// Not attempted: an earlier step did not produce a needed value.
    pub skipped: u64,
}

impl McpErrors {
    pub fn total(&self) -> u64 {
        self.http_status
            + self.jsonrpc
            + self.tool_is_error
            + self.timeout
            + self.transport
            + self.expectation
            + self.skipped
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratorReport {
    /// Agent name.
    pub agent: String,
    pub cpu_seconds: f64,
    pub late_starts: u64,
    pub max_lateness_ms: f64,
    pub active_vusers: u64,
    /// Open model: starts dropped at the agent's in-flight bound
    /// (`--max-in-flight`) in the measured window: offered, never made.
    #[serde(default)]
    pub dropped_starts: u64,
    /// Open model: starts that fell due in the measured window, made or
    /// dropped: the load offered.
    #[serde(default)]
    pub offered_starts: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeseriesPoint {
    /// End of the interval, seconds from the start of measurement.
    pub t: f64,
    /// Seconds the interval covers, when not one: the older part of a long
    /// run is kept in coarser intervals (10 s, 1 min, 10 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<f64>,
    /// Tool calls completed per second in the interval.
    pub throughput: f64,
    /// Tool calls completed in the interval.
    pub operations: u64,
    /// Failed tool calls in the interval.
    pub errors: u64,
    /// After the measured window: calls of workflows started in it that
    /// completed while draining (not in the summary's throughput).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
    /// Open model: workflow starts that fell due in the interval, and of
    /// them those dropped at the in-flight bound.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offered_starts: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_starts: u64,
    /// Active vusers at the interval's end (closed model: looping vusers;
    /// open model: workflows in flight).
    #[serde(default)]
    pub active_users: u64,
    /// With `--stages`: what they asked for at the interval's end (active
    /// users, or workflow starts per second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    pub workflows: BTreeMap<String, TimeseriesWorkflow>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeseriesWorkflow {
    /// Executions ended in the interval.
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub expression: String,
    /// What was measured, in `unit`; `null` when it could not be (unknown
    /// workflow, nothing ran).
    pub observed: Option<f64>,
    /// `s`, `%` or `/s`.
    pub unit: String,
    pub passed: bool,
    /// Why the threshold could not be evaluated, when it could not.
    pub note: Option<String>,
}

/// Failures of one workflow step with one error kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub workflow: String,
    pub step: String,
    /// `tool_error`, `http_5xx`, … (`ErrorKind::as_str`).
    pub kind: String,
    /// From the step's series, so exact.
    pub count: u64,
    /// Up to 3 distinct messages as the target sent them (redacted, bounded).
    pub messages: Vec<String>,
}

/// Base64 HdrHistogram V2 (µs) per series, so reports can be merged or
/// compared exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// Workflow name → histogram (baseline workflows included).
    pub workflows: BTreeMap<String, String>,
    /// `workflow/step` → histogram.
    pub steps: BTreeMap<String, String>,
    /// Tool → histogram, over every workflow and user.
    pub operations: BTreeMap<String, String>,
}

/// A JSON object whose keys keep their insertion order (steps in scenario
/// order), where a `BTreeMap` would sort them.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderedMap<V>(pub Vec<(String, V)>);

impl<V> Default for OrderedMap<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<V> OrderedMap<V> {
    pub fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V: Serialize> Serialize for OrderedMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OrderedVisitor<V>(std::marker::PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for OrderedVisitor<V> {
            type Value = OrderedMap<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0));
                while let Some((k, v)) = access.next_entry::<String, V>()? {
                    entries.push((k, v));
                }
                Ok(OrderedMap(entries))
            }
        }

        deserializer.deserialize_map(OrderedVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::LatencyHistogram;

    #[test]
    fn ordered_map_keeps_order_through_json() {
        let map = OrderedMap(vec![("zeta".to_owned(), 1u64), ("alpha".to_owned(), 2)]);
        let text = serde_json::to_string(&map).unwrap();
        assert_eq!(text, r#"{"zeta":1,"alpha":2}"#);
        let back: OrderedMap<u64> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, map);
        assert_eq!(back.get("alpha"), Some(&2));
    }

    #[test]
    fn latency_stats_are_seconds_from_the_histogram() {
        let mut h = LatencyHistogram::new();
        // Below 2048 µs the histogram is exact at 3 significant digits.
        for us in [100, 200, 300, 400] {
            h.record_us(us);
        }
        let s = LatencyStats::from_histogram(&h);
        assert_eq!(s.min, 0.0001);
        assert_eq!(s.max, 0.0004);
        assert_eq!(s.median, 0.0002);
        assert_eq!(s.mean, 0.00025);
        assert_eq!(
            LatencyStats::from_histogram(&LatencyHistogram::new()),
            LatencyStats::default()
        );
    }

    #[test]
    fn success_rate_is_a_percentage() {
        assert_eq!(success_rate(0, 0), 0.0);
        assert_eq!(success_rate(1, 4), 25.0);
        assert_eq!(success_rate(4, 4), 100.0);
        assert_eq!(success_rate(2, 3), 66.666667);
    }

    #[test]
    fn other_schema_versions_are_refused() {
        let err = Report::from_json(r#"{"schema_version": 99}"#).unwrap_err();
        assert!(matches!(err, ReportError::Version { found: 99 }), "{err}");
    }
}
