//! Builds the report from the run's merged series (every agent's set merged
//! as it arrived): counts and percentiles come from the merged HdrHistograms,
//! never from an average of per-agent percentiles. Per-user figures come from
//! each user's compact histogram.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use common::ErrorKind;
use common::LatencyHistogram;
use common::failures::{FailureBook, FailureKey};
use common::report::{
    AgentLossReport, AgentReport, AuthReport, BaselineReport, ErrorReport, GeneratorReport,
    Histograms, LatencyStats, McpErrors, McpReport, OperationReport, OrderedMap, Report, RunReport,
    SCHEMA_VERSION, StepReport, Summary, TimeseriesPoint, TimeseriesWorkflow, UserMoveReport,
    UserReport, WorkflowReport, round6, success_rate,
};
use common::series::{SeriesKey, SeriesKind, SeriesSet, SeriesStats, UserStats};

use super::input::{AgentLoss, AgentResult, IntervalPoint, ReportInput};
use crate::thresholds;

pub fn build_report(input: &ReportInput) -> Report {
    let merged = &input.series;
    let baseline: BTreeSet<&str> = input
        .baseline_workflows
        .iter()
        .map(String::as_str)
        .collect();
    let is_baseline = |workflow: &str| baseline.contains(workflow);

    let workflows = workflow_reports(merged, input, &is_baseline);
    let users = user_reports(merged, &input.users);
    let baseline_report = baseline_report(merged, &is_baseline);

    let mut all_ops = SeriesStats::default();
    let mut drain_operations = 0;
    for (key, stats) in merged.iter_kind(SeriesKind::Operation) {
        all_ops.merge(stats);
        drain_operations += input.drain.get(key).copied().unwrap_or(0);
    }
    // Never more than was counted (a delta repeated by a misbehaving agent).
    let drain_operations = drain_operations.min(all_ops.total());
    let window_operations = all_ops.total() - drain_operations;
    let duration_secs = input.run.duration.as_secs_f64();
    let drain_duration = input
        .intervals
        .iter()
        .filter(|p| p.drain && p.operations > 0)
        .map(|p| p.at.as_secs_f64() - duration_secs)
        .fold(0.0, f64::max);
    let summary = Summary {
        duration: round6(duration_secs),
        total_workflows: workflows.values().map(|w| w.total_executions).sum(),
        total_baseline_ops: baseline_report.total_operations,
        total_users: users.len() as u64,
        total_operations: all_ops.total(),
        failed_operations: all_ops.failed,
        conflicted_operations: all_ops.conflicts,
        throughput_per_sec: per_second(window_operations, input.run.duration),
        drain_operations,
        drain_duration: round6(drain_duration),
        latency: LatencyStats::from_histogram(&all_ops.histogram),
    };
    let verdict = super::verdict::verdict(
        input,
        &super::verdict::Figures {
            duration: duration_secs,
            window_operations,
            total_operations: all_ops.total(),
            workflows_finished: merged
                .iter_kind(SeriesKind::Workflow)
                .map(|(_, s)| s.total())
                .sum(),
            drain_operations,
            drain_duration,
            errors: all_ops.errors.clone(),
        },
    );

    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        verdict,
        summary,
        workflows,
        users,
        users_detail: None,
        baseline: baseline_report,
        run: run_report(input),
        agents: input
            .agents
            .iter()
            .map(|a| agent_report(a, &is_baseline))
            .collect(),
        auth: auth_report(input),
        mcp: mcp_report(merged, input),
        generator: input.agents.iter().map(generator_report).collect(),
        timeseries: timeseries(&input.intervals, &is_baseline),
        thresholds: Vec::new(),
        histograms: histograms(merged),
        capacity: None,
        tenants: super::tenants::tenants_report(merged, &input.tenants, input.run.duration),
        regions: super::regions::regions_report(&input.regions, input.run.duration),
        errors: error_reports(merged, &input.failures),
        error_samples_refused: input.failures.refused,
        agent_losses: input
            .agent_losses
            .iter()
            .map(|l| loss_report(l, input.run.started_at))
            .collect(),
    };
    report.thresholds = thresholds::evaluate(&input.thresholds, &report);
    report
}

/// Every step's failures by kind, with the messages agents sent for them,
/// most frequent first.
fn error_reports(merged: &SeriesSet, failures: &FailureBook) -> Vec<ErrorReport> {
    let mut errors: Vec<ErrorReport> = merged
        .iter_kind(SeriesKind::Step)
        .flat_map(|(key, stats)| {
            stats.errors.iter().map(|(kind, count)| ErrorReport {
                workflow: key.workflow.clone(),
                step: key.step.clone(),
                kind: kind.as_str().to_owned(),
                count: *count,
                messages: failures
                    .messages(&FailureKey::new(&key.workflow, &key.step, *kind))
                    .to_vec(),
            })
        })
        .filter(|e| e.count > 0)
        .collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.count));
    errors
}

fn per_second(n: u64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 {
        round6(n as f64 / secs)
    } else {
        0.0
    }
}

fn corrected(stats: &SeriesStats) -> Option<LatencyStats> {
    (!stats.corrected.is_empty()).then(|| LatencyStats::from_histogram(&stats.corrected))
}

fn errors_breakdown(errors: &BTreeMap<ErrorKind, u64>) -> BTreeMap<String, u64> {
    errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| (kind.as_str().to_owned(), *n))
        .collect()
}

/// Executions completed per second of the window: those of the drain left out.
fn window_rate(stats: &SeriesStats, drained: u64, duration: Duration) -> f64 {
    per_second(stats.total().saturating_sub(drained), duration)
}

fn step_report(stats: &SeriesStats, drained: u64, duration: Duration) -> StepReport {
    StepReport {
        throughput_per_sec: window_rate(stats, drained, duration),
        total_executions: stats.total(),
        interrupted_executions: stats.interrupted,
        successful_executions: stats.ok,
        failed_executions: stats.failed,
        conflicted_executions: stats.conflicts,
        success_rate: success_rate(stats.ok, stats.ok + stats.failed),
        latency: LatencyStats::from_histogram(&stats.histogram),
        corrected_latency: corrected(stats),
        errors_breakdown: errors_breakdown(&stats.errors),
    }
}

fn operation_report(stats: &SeriesStats) -> OperationReport {
    OperationReport {
        total_operations: stats.total(),
        successful_operations: stats.ok,
        failed_operations: stats.failed,
        conflicted_operations: stats.conflicts,
        success_rate: success_rate(stats.ok, stats.ok + stats.failed),
        latency: LatencyStats::from_histogram(&stats.histogram),
    }
}

/// Non-baseline workflows: those that ran, and those the scenario lists
/// (with zeros), each with its steps in scenario order.
fn workflow_reports(
    merged: &SeriesSet,
    input: &ReportInput,
    is_baseline: &dyn Fn(&str) -> bool,
) -> BTreeMap<String, WorkflowReport> {
    let mut totals: BTreeMap<&str, SeriesStats> = BTreeMap::new();
    for name in input.step_order.keys() {
        totals.entry(name.as_str()).or_default();
    }
    for (key, stats) in merged.iter_kind(SeriesKind::Workflow) {
        totals
            .entry(key.workflow.as_str())
            .or_default()
            .merge(stats);
    }
    let mut steps: BTreeMap<(&str, &str), SeriesStats> = BTreeMap::new();
    for (workflow, names) in &input.step_order {
        for step in names {
            steps.entry((workflow.as_str(), step.as_str())).or_default();
        }
    }
    for (key, stats) in merged.iter_kind(SeriesKind::Step) {
        steps
            .entry((key.workflow.as_str(), key.step.as_str()))
            .or_default()
            .merge(stats);
    }
    let duration = input.run.duration;
    let drained = |workflow: &str, step: &str| {
        input
            .drain
            .get(&SeriesKey::step(workflow, step))
            .copied()
            .unwrap_or(0)
    };
    totals
        .into_iter()
        .filter(|(name, _)| !is_baseline(name))
        .map(|(name, stats)| {
            let drain_executions = input
                .drain
                .get(&SeriesKey::workflow(name))
                .copied()
                .unwrap_or(0)
                .min(stats.total());
            let order = input.step_order.get(name).map(Vec::as_slice).unwrap_or(&[]);
            // Scenario order first, then steps the scenario did not list.
            let mut ordered: Vec<(String, StepReport)> = Vec::new();
            for step in order {
                if let Some(s) = steps.get(&(name, step.as_str()))
                    && !ordered.iter().any(|(n, _)| n == step)
                {
                    ordered.push((step.clone(), step_report(s, drained(name, step), duration)));
                }
            }
            for ((_, step), s) in steps
                .range((name, "")..)
                .take_while(|((w, _), _)| *w == name)
            {
                if !order.iter().any(|o| o == step) {
                    ordered.push((
                        (*step).to_owned(),
                        step_report(s, drained(name, step), duration),
                    ));
                }
            }
            let report = WorkflowReport {
                total_executions: stats.total(),
                interrupted_executions: stats.interrupted,
                successful_executions: stats.ok,
                failed_executions: stats.failed,
                conflicted_operations: merged
                    .iter_kind(SeriesKind::Operation)
                    .filter(|(k, _)| k.workflow == name)
                    .map(|(_, s)| s.conflicts)
                    .sum(),
                success_rate: success_rate(stats.ok, stats.ok + stats.failed),
                throughput_per_sec: window_rate(&stats, drain_executions, duration),
                drain_executions,
                latency: LatencyStats::from_histogram(&stats.histogram),
                corrected_latency: corrected(&stats),
                step_latencies: OrderedMap(ordered),
                errors_breakdown: errors_breakdown(&stats.errors),
            };
            (name.to_owned(), report)
        })
        .collect()
}

/// Every user of the run (with zeros if idle) plus any user seen in a
/// series, from each user's counters and compact histogram.
fn user_reports(merged: &SeriesSet, users: &[String]) -> BTreeMap<String, UserReport> {
    let idle = UserStats::default();
    let mut out: BTreeMap<String, UserReport> = BTreeMap::new();
    for (user, stats) in &merged.users {
        out.insert(user.as_str().to_owned(), user_report(stats));
    }
    for user in users {
        if !out.contains_key(user) {
            out.insert(user.clone(), user_report(&idle));
        }
    }
    out
}

fn user_report(stats: &UserStats) -> UserReport {
    UserReport {
        total_operations: stats.total(),
        successful_operations: stats.ok,
        failed_operations: stats.failed,
        conflicted_operations: stats.conflicts,
        success_rate: success_rate(stats.ok, stats.ok + stats.failed),
        latency: LatencyStats::from_histogram(&stats.latency),
        operations_breakdown: stats.tools.clone(),
        errors_breakdown: errors_breakdown(&stats.errors),
    }
}

fn baseline_report(merged: &SeriesSet, is_baseline: &dyn Fn(&str) -> bool) -> BaselineReport {
    let mut total = SeriesStats::default();
    let mut tools: BTreeMap<&str, SeriesStats> = BTreeMap::new();
    for (key, stats) in merged.iter_kind(SeriesKind::Operation) {
        if is_baseline(&key.workflow) {
            total.merge(stats);
            tools
                .entry(key.operation.as_str())
                .or_default()
                .merge(stats);
        }
    }
    BaselineReport {
        total_operations: total.total(),
        successful_operations: total.ok,
        failed_operations: total.failed,
        conflicted_operations: total.conflicts,
        success_rate: success_rate(total.ok, total.ok + total.failed),
        latency: LatencyStats::from_histogram(&total.histogram),
        operations: tools
            .into_iter()
            .map(|(tool, s)| (tool.to_owned(), operation_report(&s)))
            .collect(),
    }
}

fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => round6(d.as_secs_f64()),
        Err(e) => -round6(e.duration().as_secs_f64()),
    }
}

fn loss_report(l: &AgentLoss, run_start: SystemTime) -> AgentLossReport {
    AgentLossReport {
        agent: l.agent.clone(),
        agent_id: l.agent_id.to_string(),
        reason: l.reason.clone(),
        policy: l.policy.clone(),
        lost_at: rfc3339(l.lost_at),
        lost_at_seconds: seconds_between(run_start, l.lost_at),
        last_heard_at: rfc3339(l.last_heard_at),
        moves: l
            .moves
            .iter()
            .map(|m| UserMoveReport {
                to: m.to.clone(),
                n_users: m.users.len() as u64,
                users: m.users.clone(),
                resumed_at: m.resumed_at.map(rfc3339),
                resumed_after_seconds: m.resumed_at.map(|r| seconds_between(l.lost_at, r)),
                idle_seconds: m.resumed_at.map(|r| seconds_between(l.last_heard_at, r)),
                sessions_open: u64::from(m.sessions_open),
                sessions_failed: u64::from(m.sessions_failed),
            })
            .collect(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn run_report(input: &ReportInput) -> RunReport {
    let run = &input.run;
    RunReport {
        target: run.target.clone(),
        workload: run.workload.clone(),
        load_model: run.load_model.clone(),
        n_agents: run.n_agents as u64,
        n_users: run.n_users as u64,
        started_at: rfc3339(run.started_at),
        ended_at: rfc3339(run.ended_at),
        warmup_seconds: round6(run.warmup.as_secs_f64()),
        duration_seconds: round6(run.duration.as_secs_f64()),
        interrupted: run.interrupted,
        embedded_target: run.embedded_target,
    }
}

fn agent_report(agent: &AgentResult, is_baseline: &dyn Fn(&str) -> bool) -> AgentReport {
    let totals = &agent.totals;
    let workflows = totals
        .workflows
        .iter()
        .filter(|(name, _)| !is_baseline(name))
        .map(|(_, n)| n)
        .sum();
    AgentReport {
        id: agent.id.to_string(),
        name: agent.name.clone(),
        n_users: agent.n_users as u64,
        operations: totals.operations,
        failed_operations: totals.failed_operations,
        workflows,
        lost: agent.lost,
        final_received: agent.final_received,
        intervals_received: agent.intervals_received,
    }
}

fn generator_report(agent: &AgentResult) -> GeneratorReport {
    let g = &agent.generator;
    GeneratorReport {
        agent: agent.name.clone(),
        cpu_seconds: round6(g.cpu_seconds),
        late_starts: g.late_starts,
        max_lateness_ms: round6(g.max_lateness_us as f64 / 1e3),
        active_vusers: g.active_vusers,
        dropped_starts: g.dropped_starts,
        offered_starts: g.offered_starts,
    }
}

fn auth_report(input: &ReportInput) -> AuthReport {
    let auth = &input.auth;
    let agents_auth_failures: u64 = input.agents.iter().map(|a| a.mcp.auth_failures).sum();
    AuthReport {
        login_method: auth.login_method.clone(),
        logins: auth.logins_ok,
        login_failures: auth.logins_failed,
        login_latency: LatencyStats::from_histogram(&auth.login_latency),
        refreshes: auth.refreshes,
        refresh_failures: auth.refresh_failures,
        relogins: auth.relogins,
        refresh_requests: input.agents.iter().map(|a| a.mcp.refresh_requests).sum(),
        auth_failures: auth.auth_failures + agents_auth_failures,
        tokens_from_cache: auth.tokens_from_cache,
        provisioning: (auth.provisioned + auth.provisioned_already > 0
            || auth.provisioning_skipped.is_some())
        .then(|| common::report::ProvisioningReport {
            provisioned: auth.provisioned,
            already: auth.provisioned_already,
            latency: LatencyStats::from_histogram(&auth.provisioning_latency),
            skipped: auth.provisioning_skipped.clone(),
            left_behind: (auth.provisioned + auth.provisioned_already > 0).then(|| {
                "each provisioned user's app password stays on Nextcloud (and in the MCP server's token store) \
                 until the user is deleted: users this run deletes take theirs with them; for kept users \
                 (--no-cleanup, a users file) revoke them in Nextcloud's Settings → Security, or delete the users"
                    .to_owned()
            }),
        }),
    }
}

fn mcp_report(merged: &SeriesSet, input: &ReportInput) -> McpReport {
    let mut init = SeriesStats::default();
    for (_, s) in merged.iter_kind(SeriesKind::McpInitialize) {
        init.merge(s);
    }
    let mut errors = McpErrors::default();
    for (_, s) in merged.iter_kind(SeriesKind::Operation) {
        for (kind, n) in &s.errors {
            let class = match kind {
                ErrorKind::Http4xx | ErrorKind::Http5xx | ErrorKind::Auth => {
                    &mut errors.http_status
                }
                ErrorKind::JsonRpc => &mut errors.jsonrpc,
                ErrorKind::Tool => &mut errors.tool_is_error,
                ErrorKind::Timeout => &mut errors.timeout,
                ErrorKind::Transport => &mut errors.transport,
                ErrorKind::Expectation => &mut errors.expectation,
                ErrorKind::Skipped => &mut errors.skipped,
            };
            *class += n;
        }
    }
    let mut by_version = std::collections::BTreeMap::new();
    for v in common::protocol::McpVersion::ALL {
        let n: u64 = input.agents.iter().map(|a| a.mcp.sessions(v)).sum();
        if n > 0 {
            by_version.insert(v.as_str().to_owned(), n);
        }
    }
    // The most sessions win; on a tie, the newer version.
    let protocol_version = by_version
        .iter()
        .max_by_key(|(v, n)| (**n, (*v).clone()))
        .map(|(v, _)| v.clone());
    McpReport {
        protocol_version,
        sessions_by_protocol_version: by_version,
        initializations: init.total(),
        initialize_failures: init.failed,
        initialize_latency: LatencyStats::from_histogram(&init.histogram),
        session_reinitializations: input
            .agents
            .iter()
            .map(|a| a.mcp.session_reinitializations)
            .sum(),
        server_requests: common::protocol::ServerRequest::ALL
            .into_iter()
            .map(|r| {
                let n: u64 = input
                    .agents
                    .iter()
                    .map(|a| a.mcp.server_requests[r.index()])
                    .sum();
                (r.as_str().to_owned(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect(),
        errors,
    }
}

fn timeseries(
    intervals: &[IntervalPoint],
    is_baseline: &dyn Fn(&str) -> bool,
) -> Vec<TimeseriesPoint> {
    intervals
        .iter()
        .map(|point| {
            let width = point.width();
            TimeseriesPoint {
                t: round6(point.at.as_secs_f64()),
                span: (width != Duration::from_secs(1)).then(|| round6(width.as_secs_f64())),
                throughput: per_second(point.operations, width),
                operations: point.operations,
                errors: point.errors,
                drain: point.drain,
                offered_starts: point.offered_starts,
                dropped_starts: point.dropped_starts,
                active_users: point.active_users,
                target: point.target.map(round6),
                workflows: point
                    .workflows
                    .iter()
                    .filter(|(name, w)| !is_baseline(name) && w.count > 0)
                    .map(|(name, w)| {
                        let h = &w.latency;
                        let stats = TimeseriesWorkflow {
                            count: w.count,
                            p50: common::report::us_to_secs(h.quantile_us(0.5)),
                            p95: common::report::us_to_secs(h.quantile_us(0.95)),
                            p99: common::report::us_to_secs(h.quantile_us(0.99)),
                        };
                        (name.clone(), stats)
                    })
                    .collect(),
            }
        })
        .collect()
}

fn histograms(merged: &SeriesSet) -> Histograms {
    let mut workflows: BTreeMap<String, LatencyHistogram> = BTreeMap::new();
    let mut steps: BTreeMap<String, LatencyHistogram> = BTreeMap::new();
    let mut operations: BTreeMap<String, LatencyHistogram> = BTreeMap::new();
    for (key, stats) in &merged.series {
        let (map, name) = match key.kind {
            SeriesKind::Workflow => (&mut workflows, key.workflow.clone()),
            SeriesKind::Step => (&mut steps, format!("{}/{}", key.workflow, key.step)),
            SeriesKind::Operation => (&mut operations, key.operation.clone()),
            SeriesKind::McpInitialize => continue,
        };
        if !stats.histogram.is_empty() {
            map.entry(name).or_default().merge(&stats.histogram);
        }
    }
    let encode = |map: BTreeMap<String, LatencyHistogram>| -> BTreeMap<String, String> {
        map.into_iter()
            .filter_map(|(name, h)| match h.to_base64() {
                Ok(text) => Some((name, text)),
                Err(e) => {
                    // Losing one exact histogram must not lose the report.
                    tracing::warn!(series = %name, error = %e, "histogram left out of the report");
                    None
                }
            })
            .collect()
    };
    Histograms {
        workflows: encode(workflows),
        steps: encode(steps),
        operations: encode(operations),
    }
}
