//! Pass/fail thresholds (`--threshold 'note_share.p95<500ms'`): parsing and
//! evaluation against a built report. Any failure makes the exit code 3.

use std::fmt;
use std::str::FromStr;

use common::report::{LatencyStats, Report, round6};

pub use common::report::ThresholdResult;

const ACCEPTED_FORMS: &str = "[WORKFLOW.]p50|p90|p95|p99|median|mean|max <op> DURATION (500ms, 2s), \
     [WORKFLOW.]success <op> PERCENT (99%), [WORKFLOW.]error_rate <op> PERCENT, \
     workflow_success <op> PERCENT, [WORKFLOW.]throughput <op> RATE (50, per second), \
     where <op> is <, <=, > or >= and WORKFLOW may be `baseline`";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid threshold {expression:?}: {reason}; accepted forms: {ACCEPTED_FORMS}")]
pub struct ThresholdError {
    pub expression: String,
    pub reason: String,
}

/// What a threshold is about: the whole run, one workflow, or the baseline
/// operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Run,
    Workflow(String),
    /// `baseline.…`: the BASELINE section (the calls of baseline workflows).
    Baseline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantile {
    P50,
    P90,
    P95,
    P99,
    Mean,
    Max,
}

impl Quantile {
    fn of(self, stats: &LatencyStats) -> f64 {
        match self {
            Quantile::P50 => stats.median,
            Quantile::P90 => stats.p90,
            Quantile::P95 => stats.p95,
            Quantile::P99 => stats.p99,
            Quantile::Mean => stats.mean,
            Quantile::Max => stats.max,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Seconds. Run scope: every tool call; workflow scope: the workflow
    /// (from the intended start in the open model).
    Latency(Quantile),
    /// Percent succeeded. Run scope: tool calls.
    Success,
    /// Percent failed. Run scope: tool calls.
    ErrorRate,
    /// Percent of workflow executions that succeeded.
    WorkflowSuccess,
    /// Per second. Run scope: tool calls; workflow scope: executions.
    Throughput,
}

impl Metric {
    fn unit(self) -> &'static str {
        match self {
            Metric::Latency(_) => "s",
            Metric::Success | Metric::ErrorRate | Metric::WorkflowSuccess => "%",
            Metric::Throughput => "/s",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Comparison::Less => observed < limit,
            Comparison::LessOrEqual => observed <= limit,
            Comparison::Greater => observed > limit,
            Comparison::GreaterOrEqual => observed >= limit,
        }
    }
}

/// One parsed `--threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As the user typed it, reported back verbatim.
    pub expression: String,
    pub scope: Scope,
    pub metric: Metric,
    pub comparison: Comparison,
    /// In the metric's unit: seconds, percent or per second.
    pub limit: f64,
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Threshold::parse(s)
    }
}

impl Threshold {
    pub fn parse(expression: &str) -> Result<Threshold, ThresholdError> {
        let err = |reason: String| ThresholdError {
            expression: expression.to_owned(),
            reason,
        };
        let text = expression.trim();
        let Some(op_at) = text.find(['<', '>']) else {
            return Err(err("no comparison operator".to_owned()));
        };
        let (left, rest) = text.split_at(op_at);
        let (comparison, right) = match rest.as_bytes() {
            [b'<', b'=', ..] => (Comparison::LessOrEqual, &rest[2..]),
            [b'>', b'=', ..] => (Comparison::GreaterOrEqual, &rest[2..]),
            [b'<', ..] => (Comparison::Less, &rest[1..]),
            _ => (Comparison::Greater, &rest[1..]),
        };
        let (left, right) = (left.trim(), right.trim());
        let (scope_name, metric_name) = match left.rsplit_once('.') {
            Some((scope, metric)) => (Some(scope.trim()), metric.trim()),
            None => (None, left),
        };
        let metric = match metric_name {
            "p50" | "median" => Metric::Latency(Quantile::P50),
            "p90" => Metric::Latency(Quantile::P90),
            "p95" => Metric::Latency(Quantile::P95),
            "p99" => Metric::Latency(Quantile::P99),
            "mean" => Metric::Latency(Quantile::Mean),
            "max" => Metric::Latency(Quantile::Max),
            "success" => Metric::Success,
            "error_rate" => Metric::ErrorRate,
            "workflow_success" => Metric::WorkflowSuccess,
            "throughput" => Metric::Throughput,
            "" => return Err(err("no metric before the operator".to_owned())),
            other => return Err(err(format!("unknown metric {other:?}"))),
        };
        let scope = match scope_name {
            None => Scope::Run,
            Some("") => return Err(err("empty workflow name before `.`".to_owned())),
            Some("baseline") => Scope::Baseline,
            Some(name) => Scope::Workflow(name.to_owned()),
        };
        // A workflow's success is its workflow success.
        let metric = match (&scope, metric) {
            (Scope::Workflow(_), Metric::WorkflowSuccess) => Metric::Success,
            (Scope::Baseline, Metric::WorkflowSuccess) => {
                return Err(err(
                    "baseline has no workflow_success; use baseline.success".to_owned(),
                ));
            }
            (_, m) => m,
        };
        let limit = match metric {
            Metric::Latency(_) => parse_seconds(right).map_err(err)?,
            Metric::Success | Metric::ErrorRate | Metric::WorkflowSuccess => {
                parse_percent(right).map_err(err)?
            }
            Metric::Throughput => parse_rate(right).map_err(err)?,
        };
        Ok(Threshold {
            expression: expression.trim().to_owned(),
            scope,
            metric,
            comparison,
            limit,
        })
    }

    /// Checks the threshold against a built report. A threshold that cannot
    /// be measured (unknown workflow, nothing ran) fails and says why.
    pub fn evaluate(&self, report: &Report) -> ThresholdResult {
        let observed = self.observe(report);
        let (observed, note) = match observed {
            Ok(value) => (Some(value), None),
            Err(note) => (None, Some(note)),
        };
        ThresholdResult {
            expression: self.expression.clone(),
            // Compared unrounded; rounded only so the JSON round-trips.
            observed: observed.map(round6),
            unit: self.metric.unit().to_owned(),
            passed: observed.is_some_and(|v| self.comparison.holds(v, self.limit)),
            note,
        }
    }

    fn observe(&self, report: &Report) -> Result<f64, String> {
        let rate = |part: u64, total: u64, what: &str| {
            if total == 0 {
                Err(format!("no {what} were measured"))
            } else {
                Ok(part as f64 * 100.0 / total as f64)
            }
        };
        let duration = report.summary.duration;
        let per_second = |n: u64| {
            if duration > 0.0 {
                Ok(n as f64 / duration)
            } else {
                Err("the measured duration is zero".to_owned())
            }
        };
        match &self.scope {
            Scope::Run => {
                let s = &report.summary;
                let ok = s.total_operations - s.failed_operations.min(s.total_operations);
                match self.metric {
                    Metric::Latency(q) if s.total_operations > 0 => Ok(q.of(&s.latency)),
                    Metric::Latency(_) => Err("no operations were measured".to_owned()),
                    Metric::Success => rate(ok, s.total_operations, "operations"),
                    Metric::ErrorRate => {
                        rate(s.failed_operations, s.total_operations, "operations")
                    }
                    Metric::WorkflowSuccess => {
                        let (ok, total) =
                            report.workflows.values().fold((0, 0), |(ok, total), w| {
                                (ok + w.successful_executions, total + w.total_executions)
                            });
                        rate(ok, total, "workflow executions")
                    }
                    Metric::Throughput => per_second(s.total_operations),
                }
            }
            Scope::Workflow(name) => {
                let Some(w) = report.workflows.get(name) else {
                    let known: Vec<&str> = report.workflows.keys().map(String::as_str).collect();
                    return Err(format!(
                        "unknown workflow {name:?} (workflows in this report: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ));
                };
                match self.metric {
                    Metric::Latency(q) if w.total_executions > 0 => {
                        Ok(q.of(w.corrected_latency.as_ref().unwrap_or(&w.latency)))
                    }
                    Metric::Latency(_) => Err(format!("workflow {name:?} never ran")),
                    Metric::Success | Metric::WorkflowSuccess => {
                        rate(w.successful_executions, w.total_executions, "executions")
                    }
                    Metric::ErrorRate => {
                        rate(w.failed_executions, w.total_executions, "executions")
                    }
                    Metric::Throughput => per_second(w.total_executions),
                }
            }
            Scope::Baseline => {
                let b = &report.baseline;
                match self.metric {
                    Metric::Latency(q) if b.total_operations > 0 => Ok(q.of(&b.latency)),
                    Metric::Latency(_) => Err("no baseline operations were measured".to_owned()),
                    Metric::Success | Metric::WorkflowSuccess => rate(
                        b.successful_operations,
                        b.total_operations,
                        "baseline operations",
                    ),
                    Metric::ErrorRate => rate(
                        b.failed_operations,
                        b.total_operations,
                        "baseline operations",
                    ),
                    Metric::Throughput => per_second(b.total_operations),
                }
            }
        }
    }
}

/// Evaluates every threshold; all are reported, passed or not.
pub fn evaluate(thresholds: &[Threshold], report: &Report) -> Vec<ThresholdResult> {
    thresholds.iter().map(|t| t.evaluate(report)).collect()
}

fn parse_number(text: &str) -> Option<f64> {
    let value: f64 = text.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then_some(value)
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("latency limit {text:?} needs a unit (500ms, 2s)"))?;
    let (number, unit) = text.split_at(split);
    let value =
        parse_number(number).ok_or_else(|| format!("latency limit {text:?} is not a number"))?;
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        other => {
            return Err(format!(
                "unknown latency unit {other:?} (use us, ms, s or m)"
            ));
        }
    };
    Ok(value * scale)
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text
        .strip_suffix('%')
        .ok_or_else(|| format!("rate limit {text:?} must be a percentage (99%)"))?;
    parse_number(number)
        .filter(|v| *v <= 100.0)
        .ok_or_else(|| format!("rate limit {text:?} is not a percentage between 0 and 100"))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    parse_number(number)
        .ok_or_else(|| format!("throughput limit {text:?} is not a number (per second)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expression: &str, expected: Result<(Scope, Metric, Comparison, f64), &str>) {
        let got = Threshold::parse(expression).map(|t| (t.scope, t.metric, t.comparison, t.limit));
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{expression}"),
            (Err(e), Err(fragment)) => {
                let text = e.to_string();
                assert!(
                    text.contains(fragment),
                    "{expression}: {text:?} lacks {fragment:?}"
                );
                assert!(
                    text.contains(expression.trim()),
                    "{text:?} names the expression"
                );
                assert!(text.contains("accepted forms"), "{text:?} lists the forms");
            }
            (got, expected) => panic!("{expression}: got {got:?}, expected {expected:?}"),
        }
    }

    fn wf(name: &str) -> Scope {
        Scope::Workflow(name.to_owned())
    }

    #[test]
    fn parses_the_accepted_forms() {
        use Comparison::*;
        use Metric::*;
        use Quantile::*;
        check(
            "note_share.p95<500ms",
            Ok((wf("note_share"), Latency(P95), Less, 0.5)),
        );
        check("error_rate<1%", Ok((Scope::Run, ErrorRate, Less, 1.0)));
        check(
            "workflow_success>99%",
            Ok((Scope::Run, WorkflowSuccess, Greater, 99.0)),
        );
        check("p99<2s", Ok((Scope::Run, Latency(P99), Less, 2.0)));
        check(
            "note_share.success>99%",
            Ok((wf("note_share"), Success, Greater, 99.0)),
        );
        check("throughput>50", Ok((Scope::Run, Throughput, Greater, 50.0)));
        check(
            "throughput >= 12.5/s",
            Ok((Scope::Run, Throughput, GreaterOrEqual, 12.5)),
        );
        check(
            " p50 <= 250us ",
            Ok((Scope::Run, Latency(P50), LessOrEqual, 0.00025)),
        );
        check("median<1m", Ok((Scope::Run, Latency(P50), Less, 60.0)));
        check("a.b.max<1.5s", Ok((wf("a.b"), Latency(Max), Less, 1.5)));
        check(
            "baseline.mean<100ms",
            Ok((Scope::Baseline, Latency(Mean), Less, 0.1)),
        );
        check(
            "file_share.workflow_success>=95.5%",
            Ok((wf("file_share"), Success, GreaterOrEqual, 95.5)),
        );
        check(
            "note_share.error_rate<0.5%",
            Ok((wf("note_share"), ErrorRate, Less, 0.5)),
        );
    }

    #[test]
    fn rejects_with_a_clear_error() {
        check("p95=500ms", Err("no comparison operator"));
        check("p97<1s", Err("unknown metric \"p97\""));
        check("<1s", Err("no metric"));
        check(".p95<1s", Err("empty workflow name"));
        check("p95<500", Err("needs a unit"));
        check("p95<5h", Err("unknown latency unit"));
        check("p95<-1s", Err("is not a number"));
        check("error_rate<1", Err("must be a percentage"));
        check("error_rate<101%", Err("between 0 and 100"));
        check("throughput>fast", Err("not a number"));
        check("baseline.workflow_success>1%", Err("baseline.success"));
    }
}
