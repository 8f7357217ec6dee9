//! The live figures of one process's run, shared between the run loop that
//! updates them and the readers (HTTP, progress view) that copy them out.
//! They grow with workflows × steps × error kinds, never with users.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use common::failures::FailureBook;
use common::histogram::LatencyHistogram;
use common::series::{SeriesKind, SeriesSet, slot};
use serde::Serialize;

pub use crate::counts::Counts;
use crate::region::RegionFigures;

/// Where a run is, as `/health`, `/api/v1/status` and the progress view
/// name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Starting: target, users, logins (controller) or dialing (agent).
    #[default]
    Setup,
    /// Waiting for agents to attach and open their sessions.
    Agents,
    Warmup,
    Measuring,
    /// Stopping the agents and collecting final reports.
    Draining,
    /// Reporting and cleaning up.
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Setup => "setup",
            Phase::Agents => "agents",
            Phase::Warmup => "warmup",
            Phase::Measuring => "measuring",
            Phase::Draining => "draining",
            Phase::Done => "done",
        }
    }

    /// Whether the process is doing its work (for `/health`).
    pub fn is_running(self) -> bool {
        matches!(self, Phase::Warmup | Phase::Measuring)
    }
}

/// One agent as the controller sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentView {
    pub name: String,
    /// `attached`, `ready`, `running`, `done` or `lost`.
    pub state: &'static str,
    pub n_users: u64,
    /// Closed model: looping users; open model: workflows in flight.
    pub active: u64,
    /// Open model: starts made late and starts dropped at the bound.
    pub late_starts: u64,
    pub dropped_starts: u64,
}

/// Most events `Figures::events` keeps (the oldest go first).
pub const MAX_EVENTS: usize = 200;

/// Something that happened during the run, for the charts: an agent lost,
/// users moved, the load changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Seconds since the run started.
    pub t: f64,
    pub text: String,
}

/// A workflow's executions: counts and their latency since the start, and
/// the latency of the last complete second (`recent`, rotated by
/// `Figures::rotate`) beside the one filling now.
#[derive(Debug, Clone, Default)]
pub struct WorkflowFigures {
    pub counts: Counts,
    pub latency: LatencyHistogram,
    pub recent: LatencyHistogram,
    /// What ended since the last rotation.
    pub filling: LatencyHistogram,
}

/// Everything `/metrics` and `/api/v1/status` show.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub phase: Phase,
    /// Set once the process can do its work (all agents ready, or this agent
    /// connected and assigned); `/health` answers 200 from then on.
    pub ready: bool,
    pub started_at: Option<SystemTime>,
    /// When the measurement window opens (after warmup) and its length.
    pub measure_from: Option<SystemTime>,
    pub measure_for: Option<Duration>,
    /// Per (workflow, step): step executions and their failures by kind.
    pub steps: BTreeMap<(String, String), Counts>,
    pub workflows: BTreeMap<String, WorkflowFigures>,
    /// Operations and failures over the measurement window only.
    pub measured: Counts,
    pub active_users: u64,
    pub agents: Vec<AgentView>,
    /// New access tokens pushed to agents (controller) or received (agent).
    pub token_refreshes: u64,
    /// How far behind the newest interval delta arrived (controller) or was
    /// sent (agent), after its interval ended.
    pub interval_lag: Duration,
    /// Open model, over the agents: starts due so far (made or dropped), of
    /// them starts dropped at the in-flight bound, and starts made late.
    pub starts: StartCounts,
    /// `closed` or `open`, once the run has started.
    pub load_model: Option<&'static str>,
    /// With `--stages`: what they ask for over time (active users, or
    /// starts/s), from the run's start.
    pub stages: Option<common::load::Profile>,
    /// Why steps failed: up to a few messages per workflow, step and kind,
    /// as the target sent them (bounded like the report's).
    pub failures: FailureBook,
    /// Agent losses, moved users and load changes, oldest first (at most
    /// `MAX_EVENTS`).
    pub events: VecDeque<Event>,
    /// The last runs of this run's kind from the run history, oldest
    /// first: (started at, p95 in seconds, calls per second).
    pub trend: Vec<(String, f64, f64)>,
    /// When `recent` latencies were last rotated.
    pub rotated_at: Option<SystemTime>,
    /// The same deltas by the region of the agent that sent them.
    pub regions: BTreeMap<String, RegionFigures>,
    /// On an agent: its own region (`--region`), where its deltas count.
    pub home_region: String,
}

/// The open model's generator counters (cumulative, measured window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartCounts {
    pub offered: u64,
    pub dropped: u64,
    pub late: u64,
}

impl Figures {
    /// Adds one interval delta from an agent in `region`; `measured` says
    /// whether it falls in the measurement window.
    pub fn add(&mut self, region: &str, delta: &SeriesSet, measured: bool) {
        slot(&mut self.regions, region).add(delta);
        for (key, stats) in &delta.series {
            let counts = match key.kind {
                SeriesKind::Step => self
                    .steps
                    .entry((key.workflow.clone(), key.step.clone()))
                    .or_default(),
                SeriesKind::Workflow => {
                    let wf = slot(&mut self.workflows, key.workflow.as_str());
                    wf.latency.merge(&stats.histogram);
                    wf.filling.merge(&stats.histogram);
                    &mut wf.counts
                }
                SeriesKind::Operation | SeriesKind::McpInitialize => {
                    if key.kind == SeriesKind::Operation && measured {
                        self.measured.add(stats);
                    }
                    continue;
                }
            };
            counts.add(stats);
        }
    }

    /// Operations per second over the measurement window so far.
    pub fn measured_rate(&self, now: SystemTime) -> f64 {
        let Some(from) = self.measure_from else {
            return 0.0;
        };
        let mut elapsed = now.duration_since(from).unwrap_or_default();
        // Past the window (the drain), the rate stays the window's.
        if let Some(length) = self.measure_for {
            elapsed = elapsed.min(length);
        }
        let secs = elapsed.as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            self.measured.operations as f64 / secs
        }
    }

    /// Once a second at most: what filled since the last rotation becomes
    /// each workflow's `recent` latency.
    pub fn rotate(&mut self, now: SystemTime) {
        let due = self.rotated_at.is_none_or(|at| {
            now.duration_since(at)
                .is_ok_and(|d| d >= Duration::from_secs(1))
        });
        if !due {
            return;
        }
        self.rotated_at = Some(now);
        for wf in self.workflows.values_mut() {
            std::mem::swap(&mut wf.recent, &mut wf.filling);
            wf.filling.reset();
        }
    }

    /// Adds an event at `now` (the oldest goes past `MAX_EVENTS`).
    pub fn event(&mut self, now: SystemTime, text: String) {
        let t = self
            .started_at
            .and_then(|s| now.duration_since(s).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(Event { t, text });
    }

    /// With `--stages`: what they ask for at `now`.
    pub fn target(&self, now: SystemTime) -> Option<f64> {
        let since = now.duration_since(self.started_at?).ok()?;
        Some(self.stages.as_ref()?.value_at(since))
    }

    pub fn agents_in(&self, state: &str) -> usize {
        self.agents.iter().filter(|a| a.state == state).count()
    }
}

/// The shared figures; cheap to clone (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct Live {
    inner: Arc<Mutex<Figures>>,
}

impl Live {
    pub fn new() -> Live {
        Live::default()
    }

    /// Changes the figures under the lock (keep `f` short: readers wait).
    pub fn update<R>(&self, f: impl FnOnce(&mut Figures) -> R) -> R {
        f(&mut self.lock())
    }

    /// A copy of the figures as they are now.
    pub fn snapshot(&self) -> Figures {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Figures> {
        // A panic while holding the lock leaves plain counters: still readable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::error_kind::ErrorKind;
    use common::series::SeriesKey;

    #[test]
    fn deltas_add_up_by_step_workflow_and_window() {
        let mut delta = SeriesSet::default();
        delta
            .entry(SeriesKey::step("wf", "read"))
            .record_ok(Duration::from_millis(3));
        delta
            .entry(SeriesKey::step("wf", "read"))
            .record_failure(Duration::from_millis(3), ErrorKind::Tool);
        delta
            .entry(SeriesKey::workflow("wf"))
            .record_ok(Duration::from_millis(9));
        delta
            .entry(SeriesKey::operation("wf", "get_note"))
            .record_ok(Duration::from_millis(2));
        let mut f = Figures::default();
        f.add("default", &delta, false);
        f.add("eu", &delta, true);
        let read = &f.steps[&("wf".to_owned(), "read".to_owned())];
        assert_eq!(read.operations, 4);
        assert_eq!(read.n_errors(), 2);
        assert_eq!(f.workflows["wf"].counts.operations, 2);
        assert_eq!(f.workflows["wf"].latency.len(), 2);
        assert_eq!(f.measured.operations, 1, "only the measured delta's calls");
        assert_eq!(f.regions["eu"].workflows["wf"].counts.operations, 1);
        assert_eq!(f.regions["default"].tools["get_note"].counts.operations, 1);
    }
}
