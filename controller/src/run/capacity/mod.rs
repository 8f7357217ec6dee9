//! `controller capacity`: one run (one setup of users, tokens and agents) in
//! the open model whose rate the `Driver` changes step by step through load
//! updates, as the pure `search` says; each step is measured after its
//! settle time from the interval deltas (the run's `Probe`), judged against
//! the thresholds by building a report of it, and kept with its figures.

pub mod search;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use common::ids::AgentId;
use common::load::Stage;
use common::protocol::{LoadModel, LoadUpdate};
use common::report::{CapacityReport, CapacityStep, Report, round6};
use common::series::{SeriesKind, SeriesSet};

use super::aggregate::Window;
use super::steer::{Probe, Steer};
use crate::cli::CapacityArgs;
use crate::convert::unix_ms;
use crate::settings::RunConfig;
use search::Search;

pub const DEFAULT_START_RATE: f64 = 5.0;
pub const DEFAULT_MAX_RATE: f64 = 1000.0;
pub const DEFAULT_STEP: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_STEPS: u32 = 12;
/// A step's load begins this long after it is decided, on every agent at once.
const LEAD: Duration = Duration::from_millis(500);
/// How long after a step's end its last intervals may still come in.
const REPORT_GRACE: Duration = Duration::from_secs(3);
/// Agents' intervals are whole seconds from the start of measurement.
const GRID: Duration = Duration::from_secs(1);

/// The search as the flags set it.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityConfig {
    pub start_rate: f64,
    pub max_rate: f64,
    pub step: Duration,
    pub settle: Duration,
    pub max_steps: u32,
    pub thresholds: Vec<String>,
}

/// Checks the capacity flags and turns the run into the search's: open
/// model from the start rate, no warmup unless asked, and long enough for
/// every step (the search ends it earlier).
pub fn configure(config: &mut RunConfig, args: &CapacityArgs) -> anyhow::Result<CapacityConfig> {
    let start = &args.start;
    if start.duration.is_some() {
        bail!(
            "controller capacity sets its own length (--step-duration per step); drop --duration"
        );
    }
    if start.rate.is_some() || start.stages.is_some() {
        bail!(
            "controller capacity chooses the rates itself: drop --rate/--stages and give --start-rate and --max-rate"
        );
    }
    if config.thresholds.is_empty() {
        bail!(
            "controller capacity needs at least one --threshold to search against, e.g. --threshold 'p95<500ms' --threshold 'error_rate<1%'"
        );
    }
    let start_rate = args.start_rate.unwrap_or(DEFAULT_START_RATE);
    let max_rate = args.max_rate.unwrap_or(DEFAULT_MAX_RATE.max(start_rate));
    if !(start_rate.is_finite() && start_rate > 0.0) {
        bail!("--start-rate {start_rate}: must be a positive number of workflow starts per second");
    }
    if !(max_rate.is_finite() && max_rate >= start_rate) {
        bail!("--max-rate {max_rate}: must be at least --start-rate {start_rate}");
    }
    let step = args.step_duration.unwrap_or(DEFAULT_STEP);
    let whole = |d: Duration| d.subsec_nanos() == 0;
    if step < Duration::from_secs(2) || !whole(step) {
        bail!(
            "--step-duration {}: use whole seconds, at least 2s (steps are measured in 1 s intervals)",
            common::duration::format_duration(step)
        );
    }
    let settle = args
        .settle
        .unwrap_or_else(|| Duration::from_secs((step.as_secs() / 5).max(1)));
    if settle >= step || !whole(settle) {
        bail!(
            "--settle {}: use whole seconds, shorter than --step-duration {}",
            common::duration::format_duration(settle),
            common::duration::format_duration(step)
        );
    }
    let max_steps = args.max_steps.unwrap_or(DEFAULT_MAX_STEPS).max(1);
    config.load = LoadModel::Open {
        rate_per_sec: start_rate,
    };
    config.stages.clear();
    config.warmup = start.warmup.unwrap_or(Duration::ZERO);
    // Each step also waits for its last intervals and starts on the grid.
    config.duration = (step + REPORT_GRACE + LEAD + GRID) * max_steps;
    Ok(CapacityConfig {
        start_rate,
        max_rate,
        step,
        settle,
        max_steps,
        thresholds: config.thresholds.clone(),
    })
}

/// Judges a step: the report of its series over its measured time.
pub type Judge = Box<dyn Fn(SeriesSet, Duration) -> Report + Send>;

#[derive(Debug, Clone, Copy)]
struct Step {
    rate: f64,
    start: SystemTime,
}

/// The `Steer` of a capacity run.
pub struct Driver {
    config: CapacityConfig,
    search: Search,
    judge: Judge,
    measure_from: SystemTime,
    /// The step running, `None` once the search is over.
    current: Option<Step>,
    /// Whether the probe measures the current step yet.
    armed: bool,
    steps: Vec<CapacityStep>,
}

impl Driver {
    /// The first step runs at the start rate from the start of measurement.
    pub fn new(config: CapacityConfig, judge: Judge, measure_from: SystemTime) -> Driver {
        let search = Search::new(
            config.start_rate,
            config.max_rate,
            config.max_steps as usize,
        );
        Driver {
            current: Some(Step {
                rate: search.first(),
                start: measure_from,
            }),
            search,
            judge,
            measure_from,
            armed: false,
            steps: Vec::new(),
            config,
        }
    }

    fn window(&self, step: Step) -> Window {
        Window {
            from: step.start + self.config.settle,
            until: step.start + self.config.step,
        }
    }

    /// The next step's start: on the interval grid, after `LEAD`.
    fn next_start(&self, now: SystemTime) -> SystemTime {
        let since = (now + LEAD)
            .duration_since(self.measure_from)
            .unwrap_or_default();
        let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
        self.measure_from + Duration::from_secs(secs)
    }

    fn figures(&self, step: Step, executions: u64, report: &Report) -> CapacityStep {
        let measured = self.config.step - self.config.settle;
        let per_second = |n: u64| round6(n as f64 / measured.as_secs_f64());
        let workflows: BTreeMap<_, _> = report
            .workflows
            .iter()
            .map(|(name, w)| (name.clone(), w.corrected_latency.unwrap_or(w.latency)))
            .collect();
        let s = &report.summary;
        CapacityStep {
            rate: round6(step.rate),
            started: round6(
                step.start
                    .duration_since(self.measure_from)
                    .unwrap_or_default()
                    .as_secs_f64(),
            ),
            measured: measured.as_secs_f64(),
            workflow_rate: per_second(executions),
            throughput: s.throughput_per_sec,
            error_rate: if s.total_operations == 0 {
                0.0
            } else {
                round6(100.0 * s.failed_operations as f64 / s.total_operations as f64)
            },
            latency: s.latency,
            workflows,
            passed: report.thresholds_passed(),
            thresholds: report.thresholds.clone(),
        }
    }

    /// The search's outcome, for the report.
    pub fn finish(self) -> CapacityReport {
        CapacityReport {
            thresholds: self.config.thresholds.clone(),
            start_rate: self.config.start_rate,
            max_rate: self.config.max_rate,
            step_duration: self.config.step.as_secs_f64(),
            settle: self.config.settle.as_secs_f64(),
            max_passing_rate: self.search.passed().map(round6),
            lowest_failing_rate: self.search.broke().map(round6),
            steps: self.steps,
        }
    }
}

impl Steer for Driver {
    fn tick(
        &mut self,
        now: SystemTime,
        probe: &mut Probe,
        running: &[AgentId],
    ) -> Option<LoadUpdate> {
        let step = self.current?;
        if !self.armed {
            probe.measure(self.window(step));
            self.armed = true;
        }
        let end = step.start + self.config.step;
        if now < end || (!probe.reported(running, end) && now < end + REPORT_GRACE) {
            return None;
        }
        let series = probe.take();
        // Every workflow, baseline ones included (the report lists those apart).
        let executions = series
            .iter_kind(SeriesKind::Workflow)
            .map(|(_, s)| s.total())
            .sum();
        let report = (self.judge)(series, self.config.step - self.config.settle);
        let figures = self.figures(step, executions, &report);
        let broken: Vec<String> = figures
            .thresholds
            .iter()
            .filter(|t| !t.passed)
            .map(|t| match t.observed {
                Some(v) => format!("{} (got {v}{})", t.expression, t.unit),
                None => format!(
                    "{} ({})",
                    t.expression,
                    t.note.as_deref().unwrap_or("not measured")
                ),
            })
            .collect();
        tracing::info!(
            "capacity step {}: {}/s offered, {:.1} workflows/s, {:.2}% errors: {}",
            self.steps.len() + 1,
            figures.rate,
            figures.workflow_rate,
            figures.error_rate,
            if figures.passed {
                "every threshold met".to_owned()
            } else {
                format!("broke {}", broken.join(", "))
            }
        );
        let passed = figures.passed;
        self.steps.push(figures);
        self.armed = false;
        match self.search.next(step.rate, passed) {
            Some(rate) => {
                let next = Step {
                    rate,
                    start: self.next_start(now),
                };
                self.current = Some(next);
                Some(LoadUpdate {
                    at_ms: unix_ms(next.start),
                    stages: vec![Stage {
                        duration: Duration::ZERO,
                        target: rate,
                    }],
                    end_at_ms: None,
                })
            }
            None => {
                self.current = None;
                let end = unix_ms(now + LEAD);
                Some(LoadUpdate {
                    at_ms: end,
                    stages: Vec::new(),
                    end_at_ms: Some(end),
                })
            }
        }
    }
}
