//! `controller compare BASE NEW`: per workflow and step, p50/p95/p99 from
//! the reports' exact histograms (never their rounded percentiles), error
//! rate and throughput side by side, with deltas; a figure worse than the
//! tolerance is a regression (exit 3). Reports of other schema versions or
//! other workloads are refused with the reason.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use common::LatencyHistogram;
use common::report::{Report, SCHEMA_VERSION};

use super::junit::{Failure, TestCase};

/// A latency must also grow by this much to regress: loopback runs jitter
/// by fractions of a millisecond, which relative tolerance alone would flag.
pub const LATENCY_FLOOR_SECONDS: f64 = 0.001;
/// An error rate must also grow by this many percentage points to regress.
pub const ERROR_RATE_FLOOR_POINTS: f64 = 1.0;
const WIDTH: usize = 96;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(
        "the reports have different schema versions (base {base}, new {new}): compare reports written by the same version of mcp-swarm"
    )]
    SchemaVersion { base: u32, new: u32 },
    #[error(
        "the reports ran different workloads (base {base:?}, new {new:?}): compare runs of one workload"
    )]
    Workload { base: String, new: String },
    #[error("the {which} report's histogram of {series} is not valid: {source}")]
    Histogram {
        which: &'static str,
        series: String,
        source: common::histogram::HistogramError,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    P50,
    P95,
    P99,
    ErrorRate,
    Throughput,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::P50,
        Metric::P95,
        Metric::P99,
        Metric::ErrorRate,
        Metric::Throughput,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::P50 => "p50",
            Metric::P95 => "p95",
            Metric::P99 => "p99",
            Metric::ErrorRate => "error_rate",
            Metric::Throughput => "throughput",
        }
    }
}

/// One figure of one series in both runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// `workflow` or `workflow/step`.
    pub series: String,
    pub metric: Metric,
    /// Seconds, percent or per second; `None` when that run has no value.
    pub base: Option<f64>,
    pub new: Option<f64>,
    pub regressed: bool,
}

#[derive(Clone, Debug)]
pub struct Comparison {
    pub tolerance: f64,
    pub rows: Vec<Row>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.rows.iter().any(|r| r.regressed)
    }

    /// Series with a regression and their regressed metrics, in table order.
    pub fn regressions(&self) -> Vec<(String, Vec<&'static str>)> {
        let mut out: Vec<(String, Vec<&'static str>)> = Vec::new();
        for r in self.rows.iter().filter(|r| r.regressed) {
            match out.last_mut() {
                Some((series, metrics)) if *series == r.series => metrics.push(r.metric.as_str()),
                _ => out.push((r.series.clone(), vec![r.metric.as_str()])),
            }
        }
        out
    }
}

/// Refuses reports whose raw `schema_version`s differ, before either is
/// parsed as this build's model (which would name only one of them).
pub fn check_versions(base_json: &str, new_json: &str) -> Result<(), CompareError> {
    let version = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| v.get("schema_version")?.as_u64())
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(SCHEMA_VERSION)
    };
    let (base, new) = (version(base_json), version(new_json));
    if base != new {
        return Err(CompareError::SchemaVersion { base, new });
    }
    Ok(())
}

pub fn compare(base: &Report, new: &Report, tolerance: f64) -> Result<Comparison, CompareError> {
    if base.schema_version != new.schema_version {
        return Err(CompareError::SchemaVersion {
            base: base.schema_version,
            new: new.schema_version,
        });
    }
    if base.run.workload != new.run.workload {
        return Err(CompareError::Workload {
            base: base.run.workload.clone(),
            new: new.run.workload.clone(),
        });
    }
    let mut series: Vec<String> = Vec::new();
    let workflows: BTreeSet<&String> = base
        .histograms
        .workflows
        .keys()
        .chain(new.histograms.workflows.keys())
        .collect();
    let steps: BTreeSet<&String> = base
        .histograms
        .steps
        .keys()
        .chain(new.histograms.steps.keys())
        .collect();
    for wf in workflows {
        series.push(wf.clone());
        let prefix = format!("{wf}/");
        series.extend(
            steps
                .iter()
                .filter(|s| s.starts_with(&prefix))
                .map(|s| (*s).clone()),
        );
    }
    let mut rows = Vec::with_capacity(series.len() * Metric::ALL.len());
    for name in &series {
        let b = Figures::of(base, name, "base")?;
        let n = Figures::of(new, name, "new")?;
        for metric in Metric::ALL {
            let (bv, nv) = (b.get(metric), n.get(metric));
            rows.push(Row {
                series: name.clone(),
                metric,
                base: bv,
                new: nv,
                regressed: match (bv, nv) {
                    (Some(b), Some(n)) => worse(metric, b, n, tolerance),
                    _ => false,
                },
            });
        }
    }
    Ok(Comparison { tolerance, rows })
}

/// Whether `new` is worse than `base` past the tolerance (and the floors).
fn worse(metric: Metric, base: f64, new: f64, tolerance: f64) -> bool {
    match metric {
        Metric::P50 | Metric::P95 | Metric::P99 => {
            new > base * (1.0 + tolerance) && new - base >= LATENCY_FLOOR_SECONDS
        }
        Metric::ErrorRate => new - base > (base * tolerance).max(ERROR_RATE_FLOOR_POINTS),
        Metric::Throughput => new < base * (1.0 - tolerance),
    }
}

/// One series' figures in one report.
struct Figures {
    /// p50, p95, p99 in seconds, from the exact histogram.
    percentiles: Option<[f64; 3]>,
    /// Percent of finished executions that failed.
    error_rate: Option<f64>,
    /// Finished executions per second.
    throughput: Option<f64>,
}

impl Figures {
    fn of(report: &Report, series: &str, which: &'static str) -> Result<Figures, CompareError> {
        let encoded = match series.split_once('/') {
            None => report.histograms.workflows.get(series),
            Some(_) => report.histograms.steps.get(series),
        };
        let histogram = encoded
            .map(|text| LatencyHistogram::from_base64(text))
            .transpose()
            .map_err(|source| CompareError::Histogram {
                which,
                series: series.to_owned(),
                source,
            })?;
        let secs = |us: u64| us as f64 / 1e6;
        let percentiles = histogram
            .as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| [0.5, 0.95, 0.99].map(|q| secs(h.quantile_us(q))));
        let duration = report.run.duration_seconds;
        let throughput = histogram
            .as_ref()
            .filter(|_| duration > 0.0)
            .map(|h| h.len() as f64 / duration);
        let counts = match series.split_once('/') {
            None => report
                .workflows
                .get(series)
                .map(|w| (w.failed_executions, w.total_executions)),
            Some((wf, step)) => report
                .workflows
                .get(wf)
                .and_then(|w| w.step_latencies.get(step))
                .map(|s| (s.failed_executions, s.total_executions)),
        };
        let error_rate = counts
            .filter(|(_, total)| *total > 0)
            .map(|(failed, total)| failed as f64 * 100.0 / total as f64);
        Ok(Figures {
            percentiles,
            error_rate,
            throughput,
        })
    }

    fn get(&self, metric: Metric) -> Option<f64> {
        match metric {
            Metric::P50 => self.percentiles.map(|p| p[0]),
            Metric::P95 => self.percentiles.map(|p| p[1]),
            Metric::P99 => self.percentiles.map(|p| p[2]),
            Metric::ErrorRate => self.error_rate,
            Metric::Throughput => self.throughput,
        }
    }
}

/// A fraction as a percentage for people: 0.1 → `10`, 0.125 → `12.5`.
fn percent(fraction: f64) -> String {
    format!("{}", (fraction * 1e4).round() / 100.0)
}

fn value(metric: Metric, v: Option<f64>) -> String {
    match (metric, v) {
        (_, None) => "-".to_owned(),
        (Metric::P50 | Metric::P95 | Metric::P99, Some(s)) if s < 1.0 => {
            format!("{:.2}ms", s * 1e3)
        }
        (Metric::P50 | Metric::P95 | Metric::P99, Some(s)) => format!("{s:.3}s"),
        (Metric::ErrorRate, Some(p)) => format!("{p:.2}%"),
        (Metric::Throughput, Some(t)) => format!("{t:.2}/s"),
    }
}

fn delta(row: &Row) -> String {
    match (row.metric, row.base, row.new) {
        (Metric::ErrorRate, Some(b), Some(n)) => format!("{:+.2} pt", n - b),
        (_, Some(b), Some(n)) if b > 0.0 => format!("{:+.1}%", (n - b) * 100.0 / b),
        (_, Some(_), Some(_)) => "n/a".to_owned(),
        (_, Some(_), None) => "only in base".to_owned(),
        (_, None, Some(_)) => "only in new".to_owned(),
        (_, None, None) => String::new(),
    }
}

/// The side-by-side table, regressions marked, and a verdict line.
pub fn render(c: &Comparison, base_name: &str, new_name: &str) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_table(&mut out, c, base_name, new_name);
    out
}

fn write_table(
    out: &mut String,
    c: &Comparison,
    base_name: &str,
    new_name: &str,
) -> std::fmt::Result {
    let banner = "=".repeat(WIDTH);
    writeln!(out, "{banner}")?;
    writeln!(out, "MCP-SWARM COMPARE")?;
    writeln!(out, "{banner}")?;
    writeln!(out, "Base: {base_name}")?;
    writeln!(out, "New:  {new_name}")?;
    writeln!(
        out,
        "Tolerance: {}% (latencies also by ≥ {} ms, error rates by ≥ {} point)",
        percent(c.tolerance),
        LATENCY_FLOOR_SECONDS * 1e3,
        ERROR_RATE_FLOOR_POINTS
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<40}{:<12}{:>12}{:>12}{:>14}  ",
        "Workflow/Step", "Metric", "Base", "New", "Delta"
    )?;
    writeln!(out, "{}", "-".repeat(WIDTH))?;
    for r in &c.rows {
        if r.base.is_none() && r.new.is_none() {
            continue;
        }
        let mark = if r.regressed { "  REGRESSED" } else { "" };
        writeln!(
            out,
            "{:<40}{:<12}{:>12}{:>12}{:>14}{mark}",
            r.series,
            r.metric.as_str(),
            value(r.metric, r.base),
            value(r.metric, r.new),
            delta(r)
        )?;
    }
    writeln!(out, "{}", "-".repeat(WIDTH))?;
    let regressions = c.regressions();
    if regressions.is_empty() {
        writeln!(
            out,
            "No regression past the tolerance of {}%.",
            percent(c.tolerance)
        )
    } else {
        let list: Vec<String> = regressions
            .iter()
            .map(|(s, m)| format!("{s} ({})", m.join(", ")))
            .collect();
        writeln!(out, "REGRESSED: {}", list.join("; "))
    }
}

/// Every compared figure as a JUnit test case (`classname` the series).
pub fn junit_cases(c: &Comparison) -> Vec<TestCase> {
    c.rows
        .iter()
        .filter(|r| r.base.is_some() && r.new.is_some())
        .map(|r| TestCase {
            classname: format!("mcp-swarm.compare.{}", r.series),
            name: format!("{} {}", r.series, r.metric.as_str()),
            failure: r.regressed.then(|| Failure {
                message: format!(
                    "measured {} against {} ({}); limit {}",
                    value(r.metric, r.new),
                    value(r.metric, r.base),
                    delta(r),
                    limit(r.metric, c.tolerance)
                ),
                detail: format!(
                    "{} of {} regressed past the tolerance of {}%.",
                    r.metric.as_str(),
                    r.series,
                    percent(c.tolerance)
                ),
            }),
        })
        .collect()
}

fn limit(metric: Metric, tolerance: f64) -> String {
    let pct = percent(tolerance);
    match metric {
        Metric::P50 | Metric::P95 | Metric::P99 => {
            format!("+{pct}% and +{} ms", LATENCY_FLOOR_SECONDS * 1e3)
        }
        Metric::ErrorRate => {
            format!("+{pct}% of the base and +{ERROR_RATE_FLOOR_POINTS} point")
        }
        Metric::Throughput => format!("-{pct}%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_worse() {
        let check = |metric: Metric, base: f64, new: f64, expected: bool| {
            assert_eq!(
                worse(metric, base, new, 0.1),
                expected,
                "{metric:?} {base} → {new}"
            );
        };
        check(Metric::P95, 0.010, 0.0115, true);
        check(Metric::P95, 0.010, 0.0109, false);
        // Relative growth under a millisecond is jitter.
        check(Metric::P50, 0.0002, 0.0008, false);
        check(Metric::P50, 0.0002, 0.0302, true);
        check(Metric::ErrorRate, 0.0, 0.5, false);
        check(Metric::ErrorRate, 0.0, 5.0, true);
        check(Metric::ErrorRate, 20.0, 21.5, false);
        check(Metric::ErrorRate, 20.0, 22.5, true);
        check(Metric::Throughput, 100.0, 91.0, false);
        check(Metric::Throughput, 100.0, 89.0, true);
        check(Metric::Throughput, 100.0, 300.0, false);
    }
}
