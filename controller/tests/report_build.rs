//! What `build_report` derives from the series: totals that agree with each
//! other, baseline kept apart, idle users and lost agents shown, and
//! percentiles read from the merged histograms.

mod report_support;

use common::LatencyHistogram;
use common::report::us_to_secs;
use controller::report::build_report;

#[test]
fn totals_agree_across_sections() {
    let r = build_report(&report_support::realistic_input());
    let s = &r.summary;
    let users_ops: u64 = r.users.values().map(|u| u.total_operations).sum();
    let agents_ops: u64 = r.agents.iter().map(|a| a.operations).sum();
    let agents_failed: u64 = r.agents.iter().map(|a| a.failed_operations).sum();
    let series_ops: u64 = r.timeseries.iter().map(|p| p.operations).sum();
    assert_eq!(users_ops, s.total_operations);
    assert_eq!(agents_ops, s.total_operations);
    assert_eq!(series_ops, s.total_operations, "intervals cover the run");
    assert_eq!(agents_failed, s.failed_operations);
    assert_eq!(r.mcp.errors.total(), s.failed_operations);
    let workflows: u64 = r.workflows.values().map(|w| w.total_executions).sum();
    assert_eq!(workflows, s.total_workflows);
    assert_eq!(
        r.agents.iter().map(|a| a.workflows).sum::<u64>(),
        s.total_workflows
    );
    assert_eq!(s.total_baseline_ops, r.baseline.total_operations);
    assert_eq!(s.throughput_per_sec, s.total_operations as f64 / 10.0);
    for w in r.workflows.values() {
        assert_eq!(
            w.total_executions,
            w.successful_executions + w.failed_executions
        );
        assert_eq!(
            w.errors_breakdown.values().sum::<u64>(),
            w.failed_executions
        );
    }
}

#[test]
fn baseline_idle_users_and_lost_agents() {
    let r = build_report(&report_support::realistic_input());
    assert!(!r.workflows.contains_key("baseline"));
    assert!(r.histograms.workflows.contains_key("baseline"));
    assert_eq!(
        r.baseline.operations.keys().collect::<Vec<_>>(),
        ["nc_notes_search_notes", "nc_webdav_list_directory"]
    );
    let idle = &r.users["loadtest_user_7"];
    assert_eq!(idle.total_operations, 0);
    let lost: Vec<_> = r.agents.iter().filter(|a| a.lost).collect();
    assert_eq!(lost.len(), 1);
    assert!(!lost[0].final_received);
    assert!(lost[0].operations > 0, "what the lost agent sent is kept");
    assert_eq!(r.auth.auth_failures, 1, "agents' 401s are counted");
    assert_eq!(r.mcp.session_reinitializations, 3);
    assert_eq!(r.generator[2].max_lateness_ms, 3.0);
    assert_eq!(r.run.started_at, "2025-06-15T15:06:40.000Z");
    assert!(!r.thresholds_passed());
}

#[test]
fn percentiles_come_from_the_merged_histogram() {
    let r = build_report(&report_support::realistic_input());
    let h = LatencyHistogram::from_base64(&r.histograms.workflows["note_share"]).unwrap();
    let w = &r.workflows["note_share"];
    assert_eq!(h.len(), w.total_executions);
    assert_eq!(w.latency.p95, us_to_secs(h.quantile_us(0.95)));
    assert_eq!(w.latency.median, us_to_secs(h.quantile_us(0.5)));
    // The user histograms, merged, are the summary's.
    let mut all = LatencyHistogram::new();
    for text in r.histograms.operations.values() {
        all.merge(&LatencyHistogram::from_base64(text).unwrap());
    }
    assert_eq!(r.summary.latency.p99, us_to_secs(all.quantile_us(0.99)));
}
