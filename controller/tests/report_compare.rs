//! `controller compare` on built reports: a run against itself passes, a
//! slower one regresses in the workflows that got slower (and only those),
//! mismatched reports are refused with the reason; both JUnit outputs parse
//! as JUnit XML with a failure per failed case.

mod report_support;

use std::time::Duration;

use common::series::{SeriesKey, SeriesSet};
use controller::report::compare::{self, CompareError, Metric};
use controller::report::{ReportInput, build_report, junit};

/// Two workflows of two steps, `slow_ms` added to every latency of `slow`.
fn input(slow_ms: u64) -> ReportInput {
    let mut series = SeriesSet::default();
    for (wf, extra) in [("slow", slow_ms), ("steady", 0)] {
        for i in 0..200u64 {
            let step_us = 500 + (i % 50) * 10 + extra * 1000 / 2;
            for step in ["one", "two"] {
                series
                    .entry(SeriesKey::step(wf, step))
                    .record_ok(Duration::from_micros(step_us));
            }
            series
                .entry(SeriesKey::workflow(wf))
                .record_ok(Duration::from_micros(2 * step_us));
        }
    }
    let mut input = ReportInput {
        series,
        ..Default::default()
    };
    input.run.workload = "mixed".into();
    input.run.duration = Duration::from_secs(10);
    for wf in ["slow", "steady"] {
        input
            .step_order
            .insert(wf.into(), vec!["one".into(), "two".into()]);
    }
    input
}

#[test]
fn a_run_compared_with_itself_does_not_regress() {
    let report = build_report(&report_support::realistic_input());
    let c = compare::compare(&report, &report, 0.1).unwrap();
    assert!(!c.regressed());
    assert!(c.rows.len() >= 5 * 3, "{}", c.rows.len());
    let text = compare::render(&c, "a.json", "a.json");
    assert!(
        text.contains("No regression past the tolerance of 10%."),
        "{text}"
    );
}

#[test]
fn a_slower_run_regresses_where_it_got_slower() {
    let base = build_report(&input(0));
    let new = build_report(&input(30));
    let c = compare::compare(&base, &new, 0.1).unwrap();
    assert!(c.regressed());
    let regressed: Vec<String> = c.regressions().into_iter().map(|(s, _)| s).collect();
    assert_eq!(regressed, ["slow", "slow/one", "slow/two"]);
    let p95 = c
        .rows
        .iter()
        .find(|r| r.series == "slow" && r.metric == Metric::P95)
        .unwrap();
    // From the exact histogram: the 190th of 200 workflows, 2 × 970 µs.
    assert_eq!(p95.base, Some(0.00194));
    assert!(p95.new.unwrap() > 0.03, "{p95:?}");
    let text = compare::render(&c, "base.json", "new.json");
    assert!(text.contains("REGRESSED: slow (p50, p95, p99)"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("slow ") && l.contains("p95"))
        .unwrap();
    assert!(row.ends_with("REGRESSED"), "{row}");
    // The other way round it is faster, not a regression.
    assert!(!compare::compare(&new, &base, 0.1).unwrap().regressed());
}

#[test]
fn mismatched_reports_are_refused() {
    let base = build_report(&input(0));
    let mut other = build_report(&input(0));
    other.run.workload = "sharing".into();
    let err = compare::compare(&base, &other, 0.1).unwrap_err();
    assert!(matches!(err, CompareError::Workload { .. }));
    assert!(err.to_string().contains("different workloads"), "{err}");

    let text = base.to_json_pretty().unwrap();
    let older = text.replacen("\"schema_version\": 2", "\"schema_version\": 1", 1);
    let err = compare::check_versions(&text, &older).unwrap_err();
    assert!(err.to_string().contains("base 2, new 1"), "{err}");
}

/// Checks the JUnit structure CI systems read: `testsuites` › `testsuite`
/// (with `tests` and `failures` that add up) › `testcase` (`name`,
/// `classname`) › optional `failure` (`message`). Returns the failures'
/// messages.
fn junit_failures(xml: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(xml).expect("JUnit is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    assert_eq!(suite.tag_name().name(), "testsuite");
    let cases: Vec<_> = suite.children().filter(|n| n.is_element()).collect();
    assert!(cases.iter().all(|c| c.tag_name().name() == "testcase"));
    assert_eq!(
        suite.attribute("tests"),
        Some(cases.len().to_string().as_str())
    );
    for attr in ["name", "timestamp", "time", "errors", "skipped"] {
        assert!(suite.attribute(attr).is_some(), "testsuite@{attr}");
    }
    let mut messages = Vec::new();
    for case in &cases {
        assert!(case.attribute("name").is_some_and(|n| !n.is_empty()));
        assert!(case.attribute("classname").is_some());
        for f in case.children().filter(|n| n.is_element()) {
            assert_eq!(f.tag_name().name(), "failure");
            messages.push(f.attribute("message").unwrap().to_owned());
        }
    }
    assert_eq!(
        suite.attribute("failures"),
        Some(messages.len().to_string().as_str())
    );
    let stamp = suite.attribute("timestamp").unwrap();
    assert!(
        stamp.is_empty() || (stamp.len() == 19 && stamp.as_bytes()[10] == b'T'),
        "{stamp}"
    );
    messages
}

#[test]
fn junit_of_thresholds_and_of_a_comparison_parses() {
    let report = build_report(&report_support::realistic_input());
    let xml = junit::render(
        "mcp-swarm thresholds",
        &junit::timestamp(&report.run.started_at),
        report.run.duration_seconds,
        &junit::threshold_cases(&report),
    );
    let failed: Vec<_> = report.thresholds.iter().filter(|t| !t.passed).collect();
    assert!(!failed.is_empty(), "the fixture has a failing threshold");
    let messages = junit_failures(&xml);
    assert_eq!(messages.len(), failed.len());
    for (m, t) in messages.iter().zip(&failed) {
        assert!(
            m.contains("measured") && m.contains(&format!("limit {}", t.expression)),
            "{m}"
        );
    }

    let c = compare::compare(&build_report(&input(0)), &build_report(&input(30)), 0.1).unwrap();
    let xml = junit::render("mcp-swarm compare", "", 0.0, &compare::junit_cases(&c));
    let messages = junit_failures(&xml);
    assert_eq!(
        messages.len(),
        c.rows.iter().filter(|r| r.regressed).count()
    );
    assert!(
        messages
            .iter()
            .all(|m| m.contains("measured") && m.contains("limit")),
        "{messages:?}"
    );
}
