//! The HTML report: one self-contained file (inline CSS and SVG, no script,
//! no font or image from anywhere) with the run's parameters, thresholds,
//! charts over time (cluster throughput and errors; per workflow p50/p95/p99
//! and executions per second), the workflow, step and agent tables and the
//! failures. Written by `start --html` and `controller report --html`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use common::report::{LatencyStats, Report};

use super::chart::{Chart, Line};

mod regions;

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; background: #fff; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ccc; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 16px 0 4px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; }
td.name, th.name { text-align: left; }
.pass { color: #11772d; font-weight: 600; }
.fail { color: #b00020; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0 0 12px; }
figcaption { font-weight: 600; margin-bottom: 2px; }
svg.chart { border: 1px solid #e5e5e5; background: #fcfcfc; }
svg .grid { stroke: #e3e3e3; }
svg .axis { stroke: #888; }
svg .tick, svg .legend { font-size: 11px; fill: #555; }
svg .title { font-size: 12px; font-weight: 600; fill: #333; }
ul.messages { margin: 0; padding-left: 18px; text-align: left; font-family: ui-monospace, monospace; font-size: 12px; }
.banner { background: #fff3cd; border: 1px solid #e0c36b; padding: 6px 10px; }
.verdict { padding: 8px 12px; font-size: 15px; }
.verdict.behind { background: #fde2e1; border: 1px solid #d9534f; }
.verdict.kept { background: #e6f4ea; border: 1px solid #6cbf84; }
"#;

/// `&`, `<`, `>`, `"` and `'` as entities.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The report as one HTML document.
pub fn render_html(report: &Report) -> String {
    render_html_with_trend(report, &[])
}

/// One earlier run of the same kind (or this one, last), for the trend.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    /// RFC 3339.
    pub started_at: String,
    /// Seconds.
    pub p95: f64,
    /// Calls per second.
    pub throughput: f64,
}

/// As `render_html`, with a Trend section over `trend` (oldest first) when
/// it holds more than this run.
pub fn render_html_with_trend(report: &Report, trend: &[TrendPoint]) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_html(&mut out, report, trend);
    out
}

fn write_trend(out: &mut String, trend: &[TrendPoint]) -> std::fmt::Result {
    if trend.len() < 2 {
        return Ok(());
    }
    writeln!(
        out,
        "<h2>Trend</h2><p>The last {} runs of this kind (same target, workload and load model) in the run history, this one last.</p>",
        trend.len()
    )?;
    let x = |i: usize| i as f64 + 1.0;
    let p95 = Chart {
        title: "p95 of every call",
        unit: "ms",
        x_unit: "",
        lines: vec![Line {
            name: "p95",
            points: trend
                .iter()
                .enumerate()
                .map(|(i, t)| (x(i), t.p95 * 1e3))
                .collect(),
        }],
    };
    let rate = Chart {
        title: "Throughput",
        unit: "calls per second",
        x_unit: "",
        lines: vec![Line {
            name: "calls/s",
            points: trend
                .iter()
                .enumerate()
                .map(|(i, t)| (x(i), t.throughput))
                .collect(),
        }],
    };
    writeln!(
        out,
        r#"<div class="charts"><figure class="trend-chart"><figcaption>p95 by run</figcaption>{}</figure><figure class="trend-chart"><figcaption>Throughput by run</figcaption>{}</figure></div>"#,
        p95.to_svg(),
        rate.to_svg()
    )?;
    writeln!(
        out,
        r#"<table><tr><th>Run</th><th class="name">Started</th><th>p95</th><th>calls/s</th></tr>"#
    )?;
    for (i, t) in trend.iter().enumerate() {
        writeln!(
            out,
            r#"<tr><td>{}</td><td class="name">{}</td><td>{:.1} ms</td><td>{:.1}</td></tr>"#,
            i + 1,
            escape(&t.started_at),
            t.p95 * 1e3,
            t.throughput
        )?;
    }
    writeln!(out, "</table>")
}

fn write_html(out: &mut String, r: &Report, trend: &[TrendPoint]) -> std::fmt::Result {
    writeln!(out, "<!DOCTYPE html>")?;
    writeln!(out, r#"<html lang="en"><head><meta charset="utf-8">"#)?;
    writeln!(
        out,
        "<title>mcp-swarm report: {} at {}</title>",
        escape(&r.run.workload),
        escape(&r.run.started_at)
    )?;
    writeln!(out, "<style>{STYLE}</style></head><body>")?;
    writeln!(out, "<h1>mcp-swarm load test report</h1>")?;
    if r.run.interrupted {
        writeln!(
            out,
            r#"<p class="banner">The run was interrupted: partial results.</p>"#
        )?;
    }
    let (class, word) = if r.verdict.fell_behind {
        ("behind", "Fell behind")
    } else {
        ("kept", "Kept up")
    };
    writeln!(
        out,
        r#"<p class="verdict {class}"><strong>{word}.</strong> {}</p>"#,
        escape(&r.verdict.text)
    )?;
    write_parameters(out, r)?;
    write_thresholds(out, r)?;
    write_charts(out, r)?;
    write_trend(out, trend)?;
    write_workflows(out, r)?;
    write_failures(out, r)?;
    write_agents(out, r)?;
    regions::write_regions(out, r.regions.as_ref())?;
    writeln!(out, "</body></html>")
}

fn write_parameters(out: &mut String, r: &Report) -> std::fmt::Result {
    let run = &r.run;
    let s = &r.summary;
    writeln!(out, "<h2>Run</h2><table>")?;
    let drain = if s.drain_operations > 0 {
        format!(
            "; {} more completed in {:.0}s of drain",
            s.drain_operations, s.drain_duration
        )
    } else {
        String::new()
    };
    let rows: [(&str, String); 12] = [
        ("Target", run.target.clone()),
        ("Workload", run.workload.clone()),
        ("Load model", run.load_model.clone()),
        ("Agents", run.n_agents.to_string()),
        ("Users", run.n_users.to_string()),
        ("Started", run.started_at.clone()),
        ("Ended", run.ended_at.clone()),
        ("Warmup", format!("{}s", run.warmup_seconds)),
        ("Measured", format!("{:.2}s", s.duration)),
        (
            "Operations",
            format!(
                "{} ({} failed, {} write conflicts), {:.1} ops/s completed in the window{drain}",
                s.total_operations,
                s.failed_operations,
                s.conflicted_operations,
                s.throughput_per_sec
            ),
        ),
        ("Operation latency", percentiles(&s.latency)),
        ("Login", r.auth.login_method.clone()),
    ];
    for (name, value) in rows {
        writeln!(
            out,
            r#"<tr><th class="name">{name}</th><td class="name">{}</td></tr>"#,
            escape(&value)
        )?;
    }
    writeln!(out, "</table>")
}

fn write_thresholds(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "<h2>Thresholds</h2>")?;
    if r.thresholds.is_empty() {
        return writeln!(out, "<p>None were set (<code>--threshold</code>).</p>");
    }
    writeln!(
        out,
        r#"<table><tr><th class="name">Threshold</th><th>Measured</th><th>Result</th></tr>"#
    )?;
    for t in &r.thresholds {
        let measured = match t.observed {
            Some(v) => format!("{v:.4}{}", t.unit),
            None => format!("not measured: {}", t.note.as_deref().unwrap_or("no value")),
        };
        let (class, verdict) = if t.passed {
            ("pass", "PASS")
        } else {
            ("fail", "FAIL")
        };
        writeln!(
            out,
            r#"<tr><td class="name">{}</td><td>{}</td><td class="{class}">{verdict}</td></tr>"#,
            escape(&t.expression),
            escape(&measured)
        )?;
    }
    writeln!(out, "</table>")
}

fn write_charts(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "<h2>Over time</h2>")?;
    if r.timeseries.is_empty() {
        return writeln!(out, "<p>No interval was measured.</p>");
    }
    // Each point covers the time since the previous one.
    let mut previous = 0.0;
    let widths: Vec<f64> = r
        .timeseries
        .iter()
        .map(|p| {
            let w = p.t - previous;
            previous = p.t;
            if w > 0.0 { w } else { 1.0 }
        })
        .collect();
    let mut lines = vec![
        Line {
            name: "throughput",
            points: r.timeseries.iter().map(|p| (p.t, p.throughput)).collect(),
        },
        Line {
            name: "errors",
            points: r
                .timeseries
                .iter()
                .zip(&widths)
                .map(|(p, w)| (p.t, p.errors as f64 / w))
                .collect(),
        },
    ];
    // Open model: the calls the starts due each second carry, beside what
    // was served.
    if let (Some(ops), Some(starts)) = (
        r.verdict.offered_operations_per_sec,
        r.verdict.offered_starts_per_sec,
    ) && starts > 0.0
    {
        let per_start = ops / starts;
        lines.push(Line {
            name: "offered",
            points: r
                .timeseries
                .iter()
                .zip(&widths)
                .filter(|(p, _)| !p.drain)
                .map(|(p, w)| (p.t, p.offered_starts as f64 * per_start / w))
                .collect(),
        });
    }
    let cluster = Chart {
        title: "All operations",
        unit: "per second",
        x_unit: "s",
        lines,
    };
    let drain = if r.timeseries.iter().any(|p| p.drain) {
        format!(
            " (after {:.0}s: the drain, workflows started in the window ending)",
            r.summary.duration
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        r#"<figure class="cluster-chart"><figcaption>Cluster, calls completed per second{}</figcaption>{}</figure>"#,
        escape(&drain),
        cluster.to_svg()
    )?;

    let names: BTreeSet<&str> = r
        .timeseries
        .iter()
        .flat_map(|p| p.workflows.keys().map(String::as_str))
        .collect();
    for name in names {
        let points = r
            .timeseries
            .iter()
            .zip(&widths)
            .filter_map(|(p, w)| p.workflows.get(name).map(|wf| (p.t, wf, w)));
        let mut p50 = Vec::new();
        let mut p95 = Vec::new();
        let mut p99 = Vec::new();
        let mut rate = Vec::new();
        for (t, wf, w) in points {
            p50.push((t, wf.p50 * 1e3));
            p95.push((t, wf.p95 * 1e3));
            p99.push((t, wf.p99 * 1e3));
            rate.push((t, wf.count as f64 / w));
        }
        let latency = Chart {
            title: "latency",
            unit: "ms",
            x_unit: "s",
            lines: vec![
                Line {
                    name: "p50",
                    points: p50,
                },
                Line {
                    name: "p95",
                    points: p95,
                },
                Line {
                    name: "p99",
                    points: p99,
                },
            ],
        };
        let executions = Chart {
            title: "executions",
            unit: "per second",
            x_unit: "s",
            lines: vec![Line {
                name: "finished",
                points: rate,
            }],
        };
        writeln!(
            out,
            r#"<figure class="workflow-chart" data-workflow="{0}"><figcaption>{0}</figcaption><div class="charts">{1}{2}</div></figure>"#,
            escape(name),
            latency.to_svg(),
            executions.to_svg()
        )?;
    }
    Ok(())
}

fn write_workflows(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "<h2>Workflows and steps</h2>")?;
    writeln!(
        out,
        r#"<table><tr><th class="name">Workflow / step</th><th>Total</th><th>Success</th><th>Conflicts</th><th>Failed</th><th>Interrupted</th><th>Rate</th><th>p50</th><th>p95</th><th>p99</th><th>max</th></tr>"#
    )?;
    for (name, w) in &r.workflows {
        let latency = w.corrected_latency.as_ref().unwrap_or(&w.latency);
        row(
            out,
            &format!("<b>{}</b>", escape(name)),
            [
                w.total_executions,
                w.successful_executions,
                w.conflicted_operations,
                w.failed_executions,
                w.interrupted_executions,
            ],
            w.success_rate,
            latency,
        )?;
        for (step, s) in w.step_latencies.iter() {
            row(
                out,
                &format!("&nbsp;&nbsp;{}", escape(step)),
                [
                    s.total_executions,
                    s.successful_executions,
                    s.conflicted_executions,
                    s.failed_executions,
                    s.interrupted_executions,
                ],
                s.success_rate,
                &s.latency,
            )?;
        }
    }
    let b = &r.baseline;
    if b.total_operations > 0 {
        for (tool, op) in &b.operations {
            row(
                out,
                &format!("baseline: {}", escape(tool)),
                [
                    op.total_operations,
                    op.successful_operations,
                    op.conflicted_operations,
                    op.failed_operations,
                    0,
                ],
                op.success_rate,
                &op.latency,
            )?;
        }
    }
    writeln!(out, "</table>")?;
    writeln!(
        out,
        "<p>Conflicts: writes that lost a race to another user (a stale etag, HTTP 412), neither successes nor failures; on a workflow's row the calls that lost one, on a step's the executions that ended in one after their retries. Rates count successes among successes and failures.</p>"
    )
}

fn row(
    out: &mut String,
    name_html: &str,
    counts: [u64; 5],
    rate: f64,
    l: &LatencyStats,
) -> std::fmt::Result {
    write!(out, r#"<tr><td class="name">{name_html}</td>"#)?;
    for c in counts {
        write!(out, "<td>{c}</td>")?;
    }
    writeln!(
        out,
        "<td>{rate:.1}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        seconds(l.median),
        seconds(l.p95),
        seconds(l.p99),
        seconds(l.max)
    )
}

fn write_failures(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "<h2>Failures</h2>")?;
    if r.errors.is_empty() {
        return writeln!(out, "<p>No step failed.</p>");
    }
    writeln!(
        out,
        r#"<table class="failures"><tr><th class="name">Workflow / step</th><th class="name">Kind</th><th>Count</th><th class="name">What the target said</th></tr>"#
    )?;
    for e in &r.errors {
        let messages: String = e
            .messages
            .iter()
            .map(|m| format!("<li>{}</li>", escape(m)))
            .collect();
        writeln!(
            out,
            r#"<tr><td class="name">{}/{}</td><td class="name">{}</td><td>{}</td><td class="name"><ul class="messages">{messages}</ul></td></tr>"#,
            escape(&e.workflow),
            escape(&e.step),
            escape(&e.kind),
            e.count
        )?;
    }
    writeln!(out, "</table>")?;
    if r.error_samples_refused > 0 {
        writeln!(
            out,
            "<p>{} failure samples from agents were past the bounds and refused.</p>",
            r.error_samples_refused
        )?;
    }
    Ok(())
}

fn write_agents(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "<h2>Agents</h2>")?;
    writeln!(
        out,
        r#"<table><tr><th class="name">Agent</th><th>Users</th><th>Operations</th><th>Failed</th><th>Workflows</th><th>CPU s</th><th>Late starts</th><th class="name">Status</th></tr>"#
    )?;
    for a in &r.agents {
        let generator = r.generator.iter().find(|g| g.agent == a.name);
        let status = match (a.lost, a.final_received) {
            (false, true) => "ok",
            (false, false) => "no final report",
            (true, true) => "lost (final report received)",
            (true, false) => "lost (intervals only)",
        };
        writeln!(
            out,
            r#"<tr><td class="name">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td class="name">{status}</td></tr>"#,
            escape(&a.name),
            a.n_users,
            a.operations,
            a.failed_operations,
            a.workflows,
            generator.map_or(0.0, |g| g.cpu_seconds),
            generator.map_or(0, |g| g.late_starts)
        )?;
    }
    writeln!(out, "</table>")
}

fn percentiles(l: &LatencyStats) -> String {
    format!(
        "p50 {}, p95 {}, p99 {}, max {}",
        seconds(l.median),
        seconds(l.p95),
        seconds(l.p99),
        seconds(l.max)
    )
}

/// Seconds as the console shows them, in ms below a second.
fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.2}ms", s * 1e3)
    } else {
        format!("{s:.3}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn an_empty_report_renders_without_charts() {
        let report = crate::report::build_report(&Default::default());
        let html = render_html(&report);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("No interval was measured."));
        for fetching in ["<script", "<link", "src=", "@import", "url("] {
            assert!(!html.contains(fetching), "{fetching}");
        }
    }
}
