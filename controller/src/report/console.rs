//! The console report: the framework's layout (banner, summary, WORKFLOW
//! STATISTICS, PER-USER STATISTICS, BASELINE OPERATIONS, same column widths
//! and `0.2341s` latencies) followed by our sections (AGENTS, AUTH, MCP,
//! TENANTS with `--tenants`, THRESHOLDS, and CAPACITY for `controller capacity`).

use std::cmp::Ordering;
use std::fmt::Write as _;

use common::report::{CapacityReport, LatencyStats, Report, TenantsReport, ThresholdResult};

const WIDTH: usize = 80;
/// Most users the PER-USER table lists; the JSON report has them all.
const CONSOLE_USERS: usize = 50;
const TITLE: &str = "MCP-SWARM LOAD TEST RESULTS";

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
    writeln!(
        out,
        "Total Operations: {} ({} failed, {:.1} ops/s)",
        r.summary.total_operations, r.summary.failed_operations, r.summary.throughput_per_sec
    )?;
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

    if !r.users.is_empty() {
        section(out, "PER-USER STATISTICS")?;
        writeln!(
            out,
            "{:<20}{:>11}{:>11}{:>9}{:>9}{:>11}",
            "User", "Total Ops", "Success", "Errors", "Rate", "P50"
        )?;
        rule(out)?;
        let mut users: Vec<_> = r.users.iter().collect();
        let hidden = users.len().saturating_sub(CONSOLE_USERS);
        if hidden > 0 {
            // The users worth a look: most errors first, then the slowest.
            users.sort_by(|a, b| {
                (b.1.failed_operations, b.1.latency.median)
                    .partial_cmp(&(a.1.failed_operations, a.1.latency.median))
                    .unwrap_or(Ordering::Equal)
            });
            users.truncate(CONSOLE_USERS);
        }
        users.sort_by(|a, b| natural_cmp(a.0, b.0));
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
        if hidden > 0 {
            writeln!(
                out,
                "… and {hidden} more users in the JSON report (shown: the {CONSOLE_USERS} with the most errors, then the slowest p50)"
            )?;
        }
    }

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

    write_agents(out, r)?;
    write_auth(out, r)?;
    write_mcp(out, r)?;
    if let Some(t) = &r.tenants {
        write_tenants(out, t)?;
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
    writeln!(
        out,
        "Token Refreshes: {} ({} failed, {} requested by agents)",
        a.refreshes, a.refresh_failures, a.refresh_requests
    )?;
    writeln!(out, "Auth Failures: {}", a.auth_failures)
}

fn write_mcp(out: &mut String, r: &Report) -> std::fmt::Result {
    let m = &r.mcp;
    section(out, "MCP")?;
    if let Some(v) = &m.protocol_version {
        writeln!(out, "Protocol Version: {v}")?;
    }
    writeln!(
        out,
        "Sessions Initialized: {} ({} failed), {}",
        m.initializations,
        m.initialize_failures,
        p50_p95(&m.initialize_latency)
    )?;
    writeln!(
        out,
        "Session Re-initializations: {}",
        m.session_reinitializations
    )?;
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

/// Orders `user_2` before `user_10`: runs of digits compare as numbers.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let end_a = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                let end_b = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
                let (na, nb) = (
                    a[..end_a].trim_start_matches('0'),
                    b[..end_b].trim_start_matches('0'),
                );
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[end_a..];
                b = &b[end_b..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                a = &a[x.len_utf8()..];
                b = &b[y.len_utf8()..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_of_user_names() {
        let mut names = vec!["u_10", "u_2", "u_1", "a", "u_02x", "u_2a"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, vec!["a", "u_1", "u_2", "u_2a", "u_02x", "u_10"]);
    }

    #[test]
    fn many_users_show_the_ones_with_errors() {
        let mut report = crate::report::build_report(&Default::default());
        let template = common::report::UserReport {
            total_operations: 100,
            successful_operations: 100,
            failed_operations: 0,
            success_rate: 100.0,
            latency: LatencyStats::default(),
            operations_breakdown: Default::default(),
            errors_breakdown: Default::default(),
        };
        for i in 0..(CONSOLE_USERS as u64 + 10) {
            let mut u = template.clone();
            u.failed_operations = i;
            report.users.insert(format!("user_{i}"), u);
        }
        let text = render_console(&report);
        assert!(
            text.contains("… and 10 more users in the JSON report"),
            "{text}"
        );
        assert!(text.contains("user_59 "), "most errors shown");
        assert!(!text.contains("user_9 "), "fewest errors left out");
    }
}
