//! What thresholds say of a built report: observed figures, pass or fail,
//! and why one that cannot be measured fails.

use std::time::Duration;

use common::ErrorKind;
use common::series::{SeriesKey, SeriesSet};
use controller::report::{AgentResult, AgentTotals, ReportInput, build_report};
use controller::thresholds::Threshold;

fn report(failed_note_shares: u64) -> common::report::Report {
    let mut series = SeriesSet::default();
    for i in 0..100u64 {
        let latency = Duration::from_millis(100 + i);
        let key = SeriesKey::workflow("note_share");
        if i < failed_note_shares {
            series.entry(key).record_failure(latency, ErrorKind::Tool);
        } else {
            series.entry(key).record_ok(latency);
        }
        series
            .entry(SeriesKey::operation("note_share", "nc_notes_create_note"))
            .record_ok(Duration::from_millis(10));
        series
            .user(&"u1".into())
            .record("nc_notes_create_note", Duration::from_millis(10), None);
    }
    let mut input = ReportInput::default();
    input.run.duration = Duration::from_secs(10);
    input.series = series.clone();
    input.agents.push(AgentResult {
        id: "a1".into(),
        name: "a1".to_owned(),
        n_users: 1,
        lost: false,
        final_received: true,
        totals: AgentTotals::of(&series),
        generator: Default::default(),
        mcp: Default::default(),
        intervals_received: 10,
    });
    build_report(&input)
}

#[test]
fn evaluates_against_a_report() {
    let r = report(2);
    let cases: [(&str, Option<f64>, bool); 8] = [
        ("note_share.p95<500ms", Some(0.195), true),
        ("note_share.p50>150ms", Some(0.149), false),
        ("note_share.success>97%", Some(98.0), true),
        ("note_share.success>99%", Some(98.0), false),
        ("workflow_success>=98%", Some(98.0), true),
        ("error_rate<1%", Some(0.0), true),
        ("throughput>5", Some(10.0), true),
        ("note_share.throughput>20", Some(10.0), false),
    ];
    for (expression, observed, passed) in cases {
        let result = Threshold::parse(expression).unwrap().evaluate(&r);
        match (result.observed, observed) {
            (Some(got), Some(want)) => {
                assert!(
                    (got - want).abs() < 0.001,
                    "{expression}: observed {got}, want {want}"
                )
            }
            (got, want) => assert_eq!(got, want, "{expression}"),
        }
        assert_eq!(result.passed, passed, "{expression}: {result:?}");
        assert_eq!(result.expression, expression);
    }
}

#[test]
fn unmeasurable_thresholds_fail_and_say_why() {
    let r = report(0);
    let cases = [
        (
            "unknown.p95<1s",
            "unknown workflow \"unknown\" (workflows in this report: note_share)",
        ),
        ("baseline.p95<1s", "no baseline operations"),
        ("baseline.success>1%", "no baseline operations"),
    ];
    for (expression, note) in cases {
        let result = Threshold::parse(expression).unwrap().evaluate(&r);
        assert!(!result.passed, "{expression}");
        assert_eq!(result.observed, None, "{expression}");
        let got = result.note.unwrap_or_default();
        assert!(got.contains(note), "{expression}: {got:?}");
    }
    let empty = build_report(&ReportInput::default());
    let result = Threshold::parse("error_rate<1%").unwrap().evaluate(&empty);
    assert!(!result.passed);
    assert_eq!(result.note.as_deref(), Some("no operations were measured"));
}
