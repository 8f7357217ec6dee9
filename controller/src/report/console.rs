//! The console report: the framework's layout (banner, summary, WORKFLOW
//! STATISTICS, PER-USER STATISTICS, BASELINE OPERATIONS, same column widths
//! and `0.2341s` latencies; past `CONSOLE_USERS` users, the spread of
//! per-user figures and the users worth a look) followed by our sections
//! (FAILURES, AGENTS, AUTH, MCP, TENANTS with `--tenants`, THRESHOLDS, and
//! CAPACITY for `controller capacity`).

use std::fmt::Write as _;

use super::users;
use common::report::{
    CapacityReport, LatencyStats, Report, TenantsReport, ThresholdResult, UserReport,
};

const WIDTH: usize = 80;
/// Most users the PER-USER table lists one by one; past that it shows
/// their spread and the `USERS_SHOWN` slowest and most failing. The JSON
/// report has them all.
const CONSOLE_USERS: usize = 20;
const USERS_SHOWN: usize = 10;
/// Most (workflow, step, kind) rows of the FAILURES table.
const FAILURE_ROWS: usize = 10;
const TITLE: &str = "MCP-SWARM LOAD TEST RESULTS";

/// `text` in lines of at most `width` characters, broken at spaces (a word
/// longer than a line stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Renders the report as the text printed at the end of a run.
pub fn render_console(report: &Report) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, r: &Report) -> std::fmt::Result {
    let banner = "=".repeat(WIDTH);
    writeln!(out, "{banner}")?;
    writeln!(out, "{TITLE}")?;
    writeln!(out, "{banner}")?;
    if r.run.interrupted {
        writeln!(out, "RUN INTERRUPTED: partial results")?;
    }
    // The text says it: "The target kept up: …" or "The target fell behind …".
    for line in wrap(&format!("VERDICT: {}", r.verdict.text), WIDTH) {
        writeln!(out, "{line}")?;
    }
    writeln!(out)?;
    writeln!(out, "Duration: {:.2}s", r.summary.duration)?;
    writeln!(out, "Total Users: {}", r.summary.total_users)?;
    writeln!(
        out,
        "Total Workflows Executed: {}",
        r.summary.total_workflows
    )?;
    writeln!(
        out,
        "Total Baseline Operations: {}",
        r.summary.total_baseline_ops
    )?;
    if r.summary.conflicted_operations > 0 {
        writeln!(
            out,
            "Total Operations: {} ({} failed, {} write conflicts, {:.1} ops/s)",
            r.summary.total_operations,
            r.summary.failed_operations,
            r.summary.conflicted_operations,
            r.summary.throughput_per_sec
        )?;
    } else {
        writeln!(
            out,
            "Total Operations: {} ({} failed, {:.1} ops/s)",
            r.summary.total_operations, r.summary.failed_operations, r.summary.throughput_per_sec
        )?;
    }
    if r.summary.drain_operations > 0 {
        writeln!(
            out,
            "Drain: {} more operations completed in {:.0}s after the window (not in ops/s)",
            r.summary.drain_operations, r.summary.drain_duration
        )?;
    }
    writeln!(out, "Target: {}", r.run.target)?;
    writeln!(out, "Workload: {} ({})", r.run.workload, r.run.load_model)?;

    if !r.workflows.is_empty() {
        section(out, "WORKFLOW STATISTICS")?;
        writeln!(
            out,
            "{:<30}{:>8}{:>9}{:>9}{:>11}{:>11}",
            "Workflow", "Total", "Success", "Rate", "P50", "P95"
        )?;
        rule(out)?;
        let mut corrected = false;
        for (name, w) in &r.workflows {
            corrected |= w.corrected_latency.is_some();
            let lat = w.corrected_latency.as_ref().unwrap_or(&w.latency);
            writeln!(
                out,
                "{:<30}{:>8}{:>9}{:>8.1}%{:>9.4}s{:>9.4}s",
                name,
                w.total_executions,
                w.successful_executions,
                w.success_rate,
                lat.median,
                lat.p95
            )?;
        }
        if corrected {
            writeln!(out, "(open model: latencies from the intended start)")?;
        }
    }

    write_conflicts(out, r)?;
    write_users(out, r)?;

    let b = &r.baseline;
    if b.total_operations > 0 {
        section(out, "BASELINE OPERATIONS")?;
        writeln!(out, "Total Operations: {}", b.total_operations)?;
        writeln!(out, "Success Rate: {:.1}%", b.success_rate)?;
        writeln!(
            out,
            "Latency: min={:.4}s, p50={:.4}s, p95={:.4}s, max={:.4}s",
            b.latency.min, b.latency.median, b.latency.p95, b.latency.max
        )?;
    }

    write_failures(out, r)?;
    write_agents(out, r)?;
    write_auth(out, r)?;
    write_mcp(out, r)?;
    if let Some(t) = &r.tenants {
        write_tenants(out, t)?;
    }
    if let Some(regions) = r.regions.as_ref().filter(|g| g.len() > 1) {
        section(out, "REGIONS")?;
        super::regions::write_console(out, regions)?;
    }
    if !r.thresholds.is_empty() {
        section(out, "THRESHOLDS")?;
        for t in &r.thresholds {
            writeln!(out, "{}", threshold_line(t))?;
        }
    }
    if let Some(c) = &r.capacity {
        write_capacity(out, c)?;
    }
    writeln!(out, "{banner}")
}

/// Lost write races, apart from successes and failures: per workflow the
/// calls that lost one (each retried after a re-read where the step says
/// so), and the steps whose executions still ended in one.
fn write_conflicts(out: &mut String, r: &Report) -> std::fmt::Result {
    if r.summary.conflicted_operations == 0 {
        return Ok(());
    }
    section(out, "WRITE CONFLICTS")?;
    writeln!(
        out,
        "Calls that lost a write race (stale etag, HTTP 412): neither successes nor failures"
    )?;
    writeln!(
        out,
        "{:<30}{:>18}{:>26}",
        "Workflow / step", "Conflicted calls", "Executions in conflict"
    )?;
    rule(out)?;
    let workflows = r
        .workflows
        .iter()
        .filter(|(_, w)| w.conflicted_operations > 0);
    for (name, w) in workflows {
        writeln!(out, "{:<30}{:>18}", name, w.conflicted_operations)?;
        for (step, s) in &w.step_latencies.0 {
            if s.conflicted_executions > 0 {
                writeln!(
                    out,
                    "  {:<28}{:>18}{:>26}",
                    step, "", s.conflicted_executions
                )?;
            }
        }
    }
    if r.baseline.conflicted_operations > 0 {
        writeln!(
            out,
            "{:<30}{:>18}",
            "(baseline)", r.baseline.conflicted_operations
        )?;
    }
    Ok(())
}

fn write_tenants(out: &mut String, t: &TenantsReport) -> std::fmt::Result {
    section(out, "TENANTS")?;
    writeln!(
        out,
        "{:<24} {:>6} {:>10} {:>8} {:>9} {:>11} {:>9}",
        "TENANT", "USERS", "OPS", "FAILED", "OPS/s", "OPS/s/USER", "p95"
    )?;
    for (name, s) in &t.tenants {
        writeln!(
            out,
            "{:<24} {:>6} {:>10} {:>8} {:>9.2} {:>11.3} {:>8.4}s",
            name,
            s.users,
            s.total_operations,
            s.failed_operations,
            s.throughput_per_sec,
            s.throughput_per_user,
            s.latency.p95
        )?;
    }
    let f = &t.fairness;
    writeln!(
        out,
        "Fairness (ops/s per user over tenants): min {:.3}, max {:.3}, min/max {:.3}",
        f.min_throughput_per_user, f.max_throughput_per_user, f.ratio
    )
}

/// One line per step of the search, then what it found.
fn write_capacity(out: &mut String, c: &CapacityReport) -> std::fmt::Result {
    section(out, "CAPACITY")?;
    writeln!(
        out,
        "Thresholds: {} | steps of {}s, the first {}s not measured",
        c.thresholds.join(", "),
        c.step_duration,
        c.settle
    )?;
    writeln!(
        out,
        "{:<5} {:>9} {:>12} {:>9} {:>8} {:>10}  RESULT",
        "STEP", "RATE/s", "WORKFLOWS/s", "CALLS/s", "ERRORS", "p95 CALLS"
    )?;
    for (i, step) in c.steps.iter().enumerate() {
        let result = if step.passed {
            "met".to_owned()
        } else {
            let broken: Vec<String> = step
                .thresholds
                .iter()
                .filter(|t| !t.passed)
                .map(|t| match t.observed {
                    Some(v) if t.unit == "s" => format!("{} (got {v:.4}s)", t.expression),
                    Some(v) => format!("{} (got {v:.2}{})", t.expression, t.unit),
                    None => format!("{} (not measured)", t.expression),
                })
                .collect();
            format!("BROKE {}", broken.join(", "))
        };
        writeln!(
            out,
            "{:<5} {:>9.2} {:>12.2} {:>9.1} {:>7.2}% {:>9.4}s  {result}",
            i + 1,
            step.rate,
            step.workflow_rate,
            step.throughput,
            step.error_rate,
            step.latency.p95
        )?;
    }
    match (c.max_passing_rate, c.lowest_failing_rate) {
        (Some(ok), Some(broke)) => writeln!(
            out,
            "Highest rate that met every threshold: {ok}/s (lowest that broke one: {broke}/s)"
        ),
        (Some(ok), None) => writeln!(
            out,
            "Highest rate that met every threshold: {ok}/s (no step broke one, up to --max-rate {}/s)",
            c.max_rate
        ),
        (None, _) => writeln!(
            out,
            "No step met every threshold (the lowest rate tried: {}/s)",
            c.steps.iter().map(|s| s.rate).fold(f64::INFINITY, f64::min)
        ),
    }
}

fn write_users(out: &mut String, r: &Report) -> std::fmt::Result {
    if r.users.is_empty() && r.users_detail.is_none() {
        return Ok(());
    }
    section(out, "PER-USER STATISTICS")?;
    let users: Vec<(&str, &UserReport)> = r.users.iter().map(|(n, u)| (n.as_str(), u)).collect();
    if users.len() <= CONSOLE_USERS && r.users_detail.is_none() {
        let mut users = users;
        users.sort_by(|a, b| users::natural_cmp(a.0, b.0));
        return framework_user_table(out, &users);
    }
    let (t, l) = match &r.users_detail {
        Some(d) => {
            writeln!(
                out,
                "{} users (each one is in {}; the JSON report lists {})",
                d.users,
                d.file,
                users.len()
            )?;
            (d.throughput_spread, d.p95_spread)
        }
        None => {
            writeln!(
                out,
                "{} users (each one is in the JSON report)",
                users.len()
            )?;
            (
                users::spread(users::throughputs(
                    users.iter().map(|(_, u)| *u),
                    r.summary.duration,
                )),
                users::spread(users.iter().map(|(_, u)| u.latency.p95).collect()),
            )
        }
    };
    writeln!(
        out,
        "{:<20}{:>12}{:>12}{:>12}{:>12}",
        "", "min", "p50", "p95", "max"
    )?;
    writeln!(
        out,
        "{:<20}{:>10.2}/s{:>10.2}/s{:>10.2}/s{:>10.2}/s",
        "Throughput (ops)", t[0], t[1], t[2], t[3]
    )?;
    writeln!(
        out,
        "{:<20}{:>11.4}s{:>11.4}s{:>11.4}s{:>11.4}s",
        "P95 latency", l[0], l[1], l[2], l[3]
    )?;

    writeln!(out)?;
    writeln!(out, "Slowest {USERS_SHOWN} users (by p95):")?;
    user_table(out, &users::slowest(&users, USERS_SHOWN))?;

    let failing = users::most_failing(&users, USERS_SHOWN);
    writeln!(out)?;
    if failing.is_empty() {
        return writeln!(out, "No user had a failed operation.");
    }
    writeln!(out, "Users with the most errors:")?;
    user_table(out, &failing)
}

/// The framework's per-user table (its columns and widths), for the users
/// listed one by one.
fn framework_user_table(out: &mut String, users: &[(&str, &UserReport)]) -> std::fmt::Result {
    writeln!(
        out,
        "{:<20}{:>11}{:>11}{:>9}{:>9}{:>11}",
        "User", "Total Ops", "Success", "Errors", "Rate", "P50"
    )?;
    rule(out)?;
    for (name, u) in users {
        writeln!(
            out,
            "{:<20}{:>12}{:>11}{:>9}{:>8.1}%{:>9.4}s",
            name,
            u.total_operations,
            u.successful_operations,
            u.failed_operations,
            u.success_rate,
            u.latency.median
        )?;
    }
    Ok(())
}

/// Users picked out of many: the framework's columns plus p95.
fn user_table(out: &mut String, users: &[(&str, &UserReport)]) -> std::fmt::Result {
    writeln!(
        out,
        "{:<20}{:>11}{:>11}{:>9}{:>9}{:>10}{:>10}",
        "User", "Total Ops", "Success", "Errors", "Rate", "P50", "P95"
    )?;
    rule(out)?;
    for (name, u) in users {
        writeln!(
            out,
            "{:<20}{:>11}{:>11}{:>9}{:>8.1}%{:>9.4}s{:>9.4}s",
            name,
            u.total_operations,
            u.successful_operations,
            u.failed_operations,
            u.success_rate,
            u.latency.median,
            u.latency.p95
        )?;
    }
    Ok(())
}

/// Why steps failed: the most frequent (workflow, step, kind) first, each
/// with the messages the target sent.
fn write_failures(out: &mut String, r: &Report) -> std::fmt::Result {
    if r.errors.is_empty() {
        return Ok(());
    }
    section(out, "FAILURES")?;
    writeln!(out, "{:<50}{:<20}{:>10}", "Workflow/Step", "Kind", "Count")?;
    rule(out)?;
    // A message already shown right above (a target refusing connections
    // says the same for every step) is not repeated.
    let mut shown: &[String] = &[];
    for e in r.errors.iter().take(FAILURE_ROWS) {
        let at = format!("{}/{}", e.workflow, e.step);
        writeln!(out, "{at:<50}{:<20}{:>10}", e.kind, e.count)?;
        if e.messages.as_slice() == shown && !shown.is_empty() {
            continue;
        }
        for m in &e.messages {
            writeln!(out, "    {m}")?;
        }
        shown = &e.messages;
    }
    let hidden = r.errors.len().saturating_sub(FAILURE_ROWS);
    if hidden > 0 {
        writeln!(out, "… and {hidden} more in the JSON report (`errors`)")?;
    }
    if r.error_samples_refused > 0 {
        writeln!(
            out,
            "({} failure samples from agents were past the bounds and refused)",
            r.error_samples_refused
        )?;
    }
    Ok(())
}

fn rule(out: &mut String) -> std::fmt::Result {
    writeln!(out, "{}", "-".repeat(WIDTH))
}

fn section(out: &mut String, title: &str) -> std::fmt::Result {
    writeln!(out)?;
    rule(out)?;
    writeln!(out, "{title}")?;
    rule(out)
}

fn write_agents(out: &mut String, r: &Report) -> std::fmt::Result {
    if r.agents.is_empty() {
        return Ok(());
    }
    section(out, "AGENTS")?;
    writeln!(
        out,
        "{:<20}{:>7}{:>10}{:>9}{:>11}{:>8}{:>7}  Status",
        "Agent", "Users", "Ops", "Errors", "Workflows", "CPU s", "Late"
    )?;
    rule(out)?;
    for a in &r.agents {
        let generator = r.generator.iter().find(|g| g.agent == a.name);
        let cpu = generator.map_or(0.0, |g| g.cpu_seconds);
        let late = generator.map_or(0, |g| g.late_starts);
        let status = match (a.lost, a.final_received) {
            (false, true) => "ok",
            (false, false) => "no final report",
            (true, true) => "LOST (final report received)",
            (true, false) => "LOST (intervals only)",
        };
        writeln!(
            out,
            "{:<20}{:>7}{:>10}{:>9}{:>11}{:>8.2}{:>7}  {}",
            a.name, a.n_users, a.operations, a.failed_operations, a.workflows, cpu, late, status
        )?;
    }
    let dropped: u64 = r.generator.iter().map(|g| g.dropped_starts).sum();
    if dropped > 0 {
        writeln!(
            out,
            "Dropped starts: {dropped} (open model: the agents' in-flight bound, --max-in-flight, was reached; those workflows were offered but never started)"
        )?;
    }
    for l in &r.agent_losses {
        writeln!(
            out,
            "Lost: {} at {:.1}s ({}), --on-agent-loss {}",
            l.agent, l.lost_at_seconds, l.reason, l.policy
        )?;
        for m in &l.moves {
            let resumed = match (m.resumed_after_seconds, m.idle_seconds) {
                (Some(after), Some(idle)) => {
                    format!("running again {after:.1}s after the loss, idle {idle:.1}s")
                }
                _ => "never running again".to_owned(),
            };
            writeln!(
                out,
                "  {} users moved to {}: {resumed}{}",
                m.n_users,
                m.to,
                if m.sessions_failed > 0 {
                    format!(", {} sessions failed", m.sessions_failed)
                } else {
                    String::new()
                }
            )?;
        }
    }
    Ok(())
}

fn write_auth(out: &mut String, r: &Report) -> std::fmt::Result {
    let a = &r.auth;
    section(out, "AUTH")?;
    writeln!(out, "Login Method: {}", a.login_method)?;
    writeln!(
        out,
        "Logins: {} ({} failed), p50={:.4}s, p95={:.4}s",
        a.logins, a.login_failures, a.login_latency.median, a.login_latency.p95
    )?;
    if a.tokens_from_cache > 0 {
        writeln!(
            out,
            "Tokens from the token cache: {} users (not logged in again)",
            a.tokens_from_cache
        )?;
    }
    if let Some(p) = &a.provisioning {
        match &p.skipped {
            Some(why) => writeln!(out, "Provisioning: not needed ({why})")?,
            None => writeln!(
                out,
                "Provisioning: {} users before the load ({} already provisioned), p50={:.4}s, p95={:.4}s",
                p.provisioned, p.already, p.latency.median, p.latency.p95
            )?,
        }
        if let Some(note) = &p.left_behind {
            writeln!(out, "  Left behind: {note}")?;
        }
    }
    writeln!(
        out,
        "Token Refreshes: {} ({} failed, {} requested by agents)",
        a.refreshes, a.refresh_failures, a.refresh_requests
    )?;
    if a.relogins > 0 {
        writeln!(
            out,
            "  of which re-logins (tokens without a refresh token, renewed before expiry): {}",
            a.relogins
        )?;
    }
    writeln!(out, "Auth Failures: {}", a.auth_failures)
}

fn write_mcp(out: &mut String, r: &Report) -> std::fmt::Result {
    let m = &r.mcp;
    section(out, "MCP")?;
    if let Some(v) = &m.protocol_version {
        writeln!(out, "Protocol Version: {v}")?;
    }
    // 2026-07-28 has no initialize: what is timed is the session's first exchange.
    let opened = if m.protocol_version.as_deref() == Some("2026-07-28") {
        "Sessions Opened (no initialize in 2026-07-28)"
    } else {
        "Sessions Initialized"
    };
    writeln!(
        out,
        "{opened}: {} ({} failed), {}",
        m.initializations,
        m.initialize_failures,
        p50_p95(&m.initialize_latency)
    )?;
    writeln!(
        out,
        "Session Re-initializations: {}",
        m.session_reinitializations
    )?;
    if !m.server_requests.is_empty() {
        let listed: Vec<String> = m
            .server_requests
            .iter()
            .map(|(method, n)| format!("{method}={n}"))
            .collect();
        writeln!(out, "Server Requests (answered): {}", listed.join(", "))?;
    }
    let e = &m.errors;
    let classes = [
        ("http_status", e.http_status),
        ("jsonrpc", e.jsonrpc),
        ("tool_is_error", e.tool_is_error),
        ("timeout", e.timeout),
        ("transport", e.transport),
        ("expectation", e.expectation),
        ("skipped", e.skipped),
    ];
    let listed: Vec<String> = classes
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name}={n}"))
        .collect();
    if listed.is_empty() {
        writeln!(out, "Errors: none")
    } else {
        writeln!(out, "Errors: {}", listed.join(", "))
    }
}

fn p50_p95(l: &LatencyStats) -> String {
    format!("p50={:.4}s, p95={:.4}s", l.median, l.p95)
}

fn threshold_line(t: &ThresholdResult) -> String {
    let verdict = if t.passed { "PASS" } else { "FAIL" };
    let observed = match (t.observed, t.unit.as_str()) {
        (Some(v), "s") => format!("observed {v:.4}s"),
        (Some(v), "%") => format!("observed {v:.2}%"),
        (Some(v), unit) => format!("observed {v:.2}{unit}"),
        (None, _) => format!("not measured: {}", t.note.as_deref().unwrap_or("no value")),
    };
    format!("{verdict}  {:<36}{observed}", t.expression)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_of_user_names() {
        let mut names = vec!["u_10", "u_2", "u_1", "a", "u_02x", "u_2a"];
        names.sort_by(|a, b| users::natural_cmp(a, b));
        assert_eq!(names, vec!["a", "u_1", "u_2", "u_2a", "u_02x", "u_10"]);
    }

    #[test]
    fn many_users_show_their_spread_and_the_worst() {
        let mut report = crate::report::build_report(&Default::default());
        report.summary.duration = 10.0;
        let template = common::report::UserReport {
            total_operations: 100,
            successful_operations: 100,
            failed_operations: 0,
            conflicted_operations: 0,
            success_rate: 100.0,
            latency: LatencyStats::default(),
            operations_breakdown: Default::default(),
            errors_breakdown: Default::default(),
        };
        for i in 0..100u64 {
            let mut u = template.clone();
            u.total_operations = 100 + i;
            u.failed_operations = i % 7;
            u.latency.p95 = i as f64 / 1000.0;
            report.users.insert(format!("user_{i}"), u);
        }
        let text = render_console(&report);
        assert!(
            text.contains("100 users (each one is in the JSON report)"),
            "{text}"
        );
        assert!(
            text.contains("Throughput (ops)         10.00/s     14.90/s     19.40/s     19.90/s"),
            "{text}"
        );
        assert!(text.contains("     0.0990s\n"), "max p95: {text}");
        let slowest = text.split("Slowest 10").nth(1).unwrap();
        assert!(slowest.contains("user_99 "), "{text}");
        assert!(
            !slowest
                .split("most errors")
                .next()
                .unwrap()
                .contains("user_89 ")
        );
        let failing = text.split("most errors").nth(1).unwrap();
        assert!(failing.contains("user_6 "), "{text}");
        assert!(
            !failing.contains("user_7 "),
            "no errors, not listed: {text}"
        );
        assert!(text.lines().count() < 80, "{text}");
    }
}
