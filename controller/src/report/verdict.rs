//! The report's first word: did the target keep up with the load?
//!
//! Open model: the load is offered (starts per second, whatever the target
//! does), so a target that cannot keep up shows as served < offered while
//! the work in flight grows, and at the in-flight bound as dropped starts.
//! Closed model: each user waits for the last answer, so the load bends to
//! the target and only capacity errors (timeouts, refused or reset
//! connections, 5xx) say it gave up. Late starts are the generator's
//! lateness, not the target's, and are said apart.

use std::collections::BTreeMap;

use common::ErrorKind;
use common::report::{ErrorGrowth, Verdict, round6};

use super::input::{IntervalPoint, ReportInput};

/// Served below this share of the offered calls (with the backlog growing)
/// is falling behind.
const SERVED_SHARE: f64 = 0.9;
/// Capacity errors at or above this share of calls (and at least
/// `GROWTH_MIN` of them) are falling behind: a few timeouts in a long run
/// are a finding in the errors table, not a verdict.
const CAPACITY_ERROR_SHARE: f64 = 0.05;
/// An error kind grew when its second half has at least this many and more
/// than twice its first half.
const GROWTH_MIN: u64 = 10;

/// The kinds a target that cannot take more load answers with.
const CAPACITY_KINDS: [ErrorKind; 3] =
    [ErrorKind::Timeout, ErrorKind::Transport, ErrorKind::Http5xx];

/// What the verdict is read from, besides the input.
pub struct Figures {
    /// Measured seconds.
    pub duration: f64,
    /// Tool calls completed in the window and in all (with the drain).
    pub window_operations: u64,
    pub total_operations: u64,
    /// Every workflow execution finished (baseline ones too).
    pub workflows_finished: u64,
    /// Calls completed after the window, and over how long.
    pub drain_operations: u64,
    pub drain_duration: f64,
    /// Failed calls by kind, over the run.
    pub errors: BTreeMap<ErrorKind, u64>,
}

pub fn verdict(input: &ReportInput, f: &Figures) -> Verdict {
    let window: Vec<&IntervalPoint> = input.intervals.iter().filter(|p| !p.drain).collect();
    let per_sec = |n: f64| {
        if f.duration > 0.0 {
            n / f.duration
        } else {
            0.0
        }
    };
    let served = per_sec(f.window_operations as f64);
    let offered_starts: u64 = input
        .agents
        .iter()
        .map(|a| a.generator.offered_starts)
        .sum();
    let dropped: u64 = input
        .agents
        .iter()
        .map(|a| a.generator.dropped_starts)
        .sum();
    let late: u64 = input.agents.iter().map(|a| a.generator.late_starts).sum();
    let open = input.run.load_model.starts_with("open") || offered_starts > 0;
    let backlog = window.last().map_or(0, |p| p.active_users);
    let growing = growing_errors(&window);

    let capacity_errors: u64 = CAPACITY_KINDS
        .iter()
        .map(|k| f.errors.get(k).copied().unwrap_or(0))
        .sum();
    let capacity_failing = capacity_errors >= GROWTH_MIN
        && capacity_errors as f64 >= CAPACITY_ERROR_SHARE * f.total_operations as f64;
    let first_capacity_error = window
        .iter()
        .find(|p| {
            CAPACITY_KINDS
                .iter()
                .any(|k| p.error_kinds.get(k).is_some_and(|n| *n > 0))
        })
        .map(|p| start_of(p));

    let (offered_starts_per_sec, offered_ops) = if open && offered_starts > 0 {
        let starts = per_sec(offered_starts as f64);
        let calls_per_workflow = if f.workflows_finished > 0 {
            f.total_operations as f64 / f.workflows_finished as f64
        } else {
            0.0
        };
        (Some(starts), Some(starts * calls_per_workflow))
    } else {
        (None, None)
    };
    let short = offered_ops.is_some_and(|o| o > 0.0 && served < SERVED_SHARE * o);
    let grew_from = backlog_grew_from(&window);
    let first_drop = window
        .iter()
        .find(|p| p.dropped_starts > 0)
        .map(|p| start_of(p));

    let fell_behind = (open && (dropped > 0 || (short && grew_from.is_some()))) || capacity_failing;
    let since = if fell_behind {
        [
            first_drop,
            grew_from.filter(|_| short),
            first_capacity_error,
        ]
        .into_iter()
        .flatten()
        .reduce(f64::min)
    } else {
        None
    };

    let mut text = String::new();
    let offered_text = match (offered_starts_per_sec, offered_ops) {
        (Some(s), Some(o)) => format!("offered {s:.1} workflow starts/s (≈{o:.0} calls/s), "),
        _ => String::new(),
    };
    let share = offered_ops
        .filter(|o| *o > 0.0)
        .map(|o| format!(" ({:.0}% of offered)", served * 100.0 / o))
        .unwrap_or_default();
    if fell_behind {
        text.push_str("The target fell behind");
        if let Some(s) = since {
            text.push_str(&format!(" from {s:.0} s into the window"));
        }
        text.push_str(&format!(
            ": {offered_text}served {served:.1} calls/s{share}."
        ));
        if open {
            text.push_str(&format!(
                " {backlog} workflows were in flight at the window's end"
            ));
        } else {
            text.push_str(&format!(" {backlog} users were active at the window's end"));
        }
        if f.drain_operations > 0 {
            text.push_str(&format!(
                "; {} calls completed in {:.0} s of drain after it",
                f.drain_operations, f.drain_duration
            ));
        }
        text.push('.');
        if dropped > 0 {
            text.push_str(&format!(
                " {dropped} starts were dropped at the in-flight bound (--max-in-flight)."
            ));
        }
        if capacity_failing {
            let timeouts = f.errors.get(&ErrorKind::Timeout).copied().unwrap_or(0);
            let transport = f.errors.get(&ErrorKind::Transport).copied().unwrap_or(0);
            let five = f.errors.get(&ErrorKind::Http5xx).copied().unwrap_or(0);
            if timeouts + transport >= five {
                text.push_str(&format!(
                    " The target stopped accepting connections or answering: {timeouts} timeouts, {transport} refused or reset connections."
                ));
            } else {
                text.push_str(&format!(" The target answered {five} calls with HTTP 5xx."));
            }
        }
    } else if open {
        text.push_str(&format!(
            "The target kept up: {offered_text}served {served:.1} calls/s{share}; the work in flight stayed level."
        ));
    } else {
        text.push_str(&format!(
            "The target kept up: served {served:.1} calls/s with no sign of overload."
        ));
    }
    if !growing.is_empty() {
        let kinds: Vec<String> = growing
            .iter()
            .map(|g| format!("{} {} → {}", g.kind, g.first_half, g.second_half))
            .collect();
        text.push_str(&format!(
            " Errors that grew (first half → second half of the window): {}.",
            kinds.join(", ")
        ));
    }
    if late > 0 && offered_starts > 0 && late * 100 >= offered_starts {
        text.push_str(&format!(
            " {late} starts were late: the load generator fell behind its schedule (give the agents more CPU or add agents), not the target."
        ));
    }

    Verdict {
        fell_behind,
        text,
        since: since.map(round6),
        offered_starts_per_sec: offered_starts_per_sec.map(round6),
        offered_operations_per_sec: offered_ops.map(round6),
        served_operations_per_sec: round6(served),
        dropped_starts: dropped,
        late_starts: late,
        backlog,
        growing_errors: growing,
    }
}

/// Seconds into the window at which `p` began.
fn start_of(p: &IntervalPoint) -> f64 {
    p.start().as_secs_f64()
}

/// Open model: the second from which the work in flight stayed above twice
/// its early level (plus a margin for small numbers), when it did so to the
/// window's end and grew in its second half; `None` when it stayed level.
fn backlog_grew_from(window: &[&IntervalPoint]) -> Option<f64> {
    let n = window.len();
    if n < 4 {
        return None;
    }
    let mean = |ps: &[&IntervalPoint]| {
        ps.iter().map(|p| p.active_users as f64).sum::<f64>() / ps.len().max(1) as f64
    };
    let (q2, q4) = (mean(&window[n / 4..n / 2]), mean(&window[3 * n / 4..]));
    if q4 < 1.5 * q2 + 5.0 {
        return None;
    }
    let early = window[..n.div_ceil(10)]
        .iter()
        .map(|p| p.active_users)
        .min()
        .unwrap_or(0);
    let threshold = 2 * early + 5;
    let last_level = window.iter().rposition(|p| p.active_users <= threshold);
    match last_level {
        Some(i) if i + 1 < n => Some(start_of(window[i + 1])),
        Some(_) => None,
        None => Some(start_of(window[0])),
    }
}

/// Error kinds whose count in the window's second half is at least
/// `GROWTH_MIN` and more than twice the first half's.
fn growing_errors(window: &[&IntervalPoint]) -> Vec<ErrorGrowth> {
    let half = window.len() / 2;
    let sum = |ps: &[&IntervalPoint]| {
        let mut by: BTreeMap<ErrorKind, u64> = BTreeMap::new();
        for p in ps {
            for (k, n) in &p.error_kinds {
                *by.entry(*k).or_default() += n;
            }
        }
        by
    };
    let (first, second) = (sum(&window[..half]), sum(&window[half..]));
    second
        .into_iter()
        .filter_map(|(kind, late)| {
            let early = first.get(&kind).copied().unwrap_or(0);
            (late >= GROWTH_MIN && late > 2 * early).then(|| ErrorGrowth {
                kind: kind.as_str().to_owned(),
                first_half: early,
                second_half: late,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::input::AgentResult;

    fn point(second: u64, ops: u64, in_flight: u64, drain: bool) -> IntervalPoint {
        IntervalPoint {
            at: Duration::from_secs(second + 1),
            operations: ops,
            active_users: in_flight,
            drain,
            ..Default::default()
        }
    }

    fn open_input(points: Vec<IntervalPoint>, offered: u64, dropped: u64) -> ReportInput {
        let mut input = ReportInput::default();
        input.run.load_model = "open, 30/s".to_owned();
        input.intervals = points;
        input.agents = vec![AgentResult {
            id: common::ids::AgentId::new("a".to_owned()),
            name: "a".to_owned(),
            n_users: 10,
            lost: false,
            final_received: true,
            totals: Default::default(),
            generator: common::protocol::GeneratorStats {
                offered_starts: offered,
                dropped_starts: dropped,
                ..Default::default()
            },
            mcp: Default::default(),
            intervals_received: 0,
        }];
        input
    }

    fn figures(window_ops: u64, total: u64, workflows: u64) -> Figures {
        Figures {
            duration: 15.0,
            window_operations: window_ops,
            total_operations: total,
            workflows_finished: workflows,
            drain_operations: total - window_ops,
            drain_duration: 16.0,
            errors: BTreeMap::new(),
        }
    }

    #[test]
    fn an_overloaded_open_run_fell_behind_from_its_first_seconds() {
        // 30 starts/s of 6 calls offered, 100 calls/s served: in flight grows.
        let points = (0..15)
            .map(|s| point(s, 100, 14 * (s + 1), false))
            .collect();
        let input = open_input(points, 450, 0);
        let v = verdict(&input, &figures(1500, 2700, 450));
        assert!(v.fell_behind, "{}", v.text);
        assert_eq!(v.offered_operations_per_sec, Some(180.0));
        assert_eq!(v.served_operations_per_sec, 100.0);
        assert_eq!(v.since, Some(2.0), "{}", v.text);
        assert!(v.text.contains("fell behind from 2 s"), "{}", v.text);
        assert!(v.text.contains("(56% of offered)"), "{}", v.text);
    }

    #[test]
    fn a_level_open_run_kept_up_even_with_a_tail_in_drain() {
        let points = (0..15).map(|s| point(s, 170, 20 + s % 3, false)).collect();
        let input = open_input(points, 450, 0);
        let v = verdict(&input, &figures(2550, 2700, 450));
        assert!(!v.fell_behind, "{}", v.text);
        assert!(v.text.starts_with("The target kept up"), "{}", v.text);
    }

    #[test]
    fn dropped_starts_are_falling_behind_from_the_first_drop() {
        let mut points: Vec<IntervalPoint> = (0..10).map(|s| point(s, 100, 50, false)).collect();
        points[6].dropped_starts = 3;
        let input = open_input(points, 300, 3);
        let v = verdict(&input, &figures(1000, 1000, 300));
        assert!(v.fell_behind);
        assert_eq!(v.since, Some(6.0));
        assert!(v.text.contains("3 starts were dropped"), "{}", v.text);
    }

    #[test]
    fn closed_runs_fall_behind_on_capacity_errors_and_say_which_grew() {
        let mut input = ReportInput::default();
        input.run.load_model = "closed, think time 60s".to_owned();
        input.intervals = (0..10)
            .map(|s| {
                let mut p = point(s, 1000, 100_000, false);
                if s >= 5 {
                    p.error_kinds.insert(ErrorKind::Timeout, 300);
                }
                p
            })
            .collect();
        let mut f = figures(10_000, 10_000, 2_000);
        f.errors.insert(ErrorKind::Timeout, 1500);
        let v = verdict(&input, &f);
        assert!(v.fell_behind);
        assert_eq!(v.since, Some(5.0));
        assert!(
            v.text.contains("stopped accepting connections"),
            "{}",
            v.text
        );
        assert_eq!(v.growing_errors.len(), 1);
        assert_eq!(v.growing_errors[0].kind, "timeout");
        assert_eq!(
            (
                v.growing_errors[0].first_half,
                v.growing_errors[0].second_half
            ),
            (0, 1500)
        );
    }

    #[test]
    fn drain_points_are_not_the_window() {
        let mut points: Vec<IntervalPoint> = (0..8).map(|s| point(s, 100, 10, false)).collect();
        points.extend((8..12).map(|s| point(s, 50, 40 - s, true)));
        let input = open_input(points, 160, 0);
        let v = verdict(&input, &figures(800, 1000, 160));
        assert_eq!(v.backlog, 10);
        assert!(!v.fell_behind, "{}", v.text);
    }
}
