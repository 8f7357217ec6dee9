//! The console report of a fixed input, as a snapshot: the framework's
//! layout and column widths, then our sections. `UPDATE_EXPECT=1` refreshes it.

mod report_support;

use controller::report::{build_report, render_console};
use expect_test::expect_file;

#[test]
fn console_report_snapshot() {
    let report = build_report(&report_support::realistic_input());
    expect_file!["snapshots/report_console.txt"].assert_eq(&render_console(&report));
}

#[test]
fn empty_run_still_renders() {
    let report = build_report(&controller::report::ReportInput::default());
    let text = render_console(&report);
    assert!(text.starts_with(&"=".repeat(80)));
    assert!(text.contains("MCP-SWARM LOAD TEST RESULTS"));
    assert!(text.contains("Total Users: 0"));
    assert!(!text.contains("WORKFLOW STATISTICS"), "no empty table");
}

#[test]
fn framework_columns_line_up() {
    let report = build_report(&report_support::realistic_input());
    let text = render_console(&report);
    let header = text
        .lines()
        .find(|l| l.starts_with("Workflow "))
        .expect("workflow header");
    // The framework's header: "Workflow" padded to 30, then 8/9/9/11/11.
    assert_eq!(
        header,
        "Workflow                         Total  Success     Rate        P50        P95"
    );
    let row = text.lines().find(|l| l.starts_with("note_share")).unwrap();
    assert_eq!(row.len(), 76, "{row:?}");
    assert!(row.ends_with('s'));
    let user_header = text.lines().find(|l| l.starts_with("User ")).unwrap();
    assert_eq!(
        user_header,
        "User                  Total Ops    Success   Errors     Rate        P50"
    );
    // Natural order: user_2 before user_10 would hold; here 1..7 in order.
    let users: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("loadtest_user_"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(users.len(), 7);
    assert!(users.windows(2).all(|w| w[0] < w[1]));
}
