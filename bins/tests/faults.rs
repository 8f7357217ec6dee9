//! The fault matrix: runs against a standalone mock with each fault on —
//! latency, HTTP 503s, connections reset mid-answer, requests stalled past
//! the request timeout, and every access token revoked at once (a 401 storm)
//! — each completes (exit 0 with a report), counts every failure under its
//! kind, and panics nowhere; the 401 storm is recovered by refreshing.

mod support;

use std::time::Duration;

use support::{MockTarget, Proc, RUN_TIMEOUT, read_report};

/// Error kind → count over every user of the report.
fn errors_by_kind(report: &serde_json::Value) -> std::collections::BTreeMap<String, u64> {
    let mut kinds = std::collections::BTreeMap::new();
    for user in report["users"].as_object().expect("users").values() {
        for (kind, n) in user["errors_breakdown"].as_object().unwrap() {
            *kinds.entry(kind.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    kinds
}

/// Runs `controller start` against `mock` (2 agents, 4 users, closed model)
/// with `extra` flags; `during` runs once the measured phase has begun.
/// Returns the report after checking the run completed without a panic.
fn run(mock: &MockTarget, name: &str, extra: &[&str], during: impl FnOnce()) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut args = vec!["--agents", "2", "--users", "4", "--warmup", "0s", "-o"];
    let out_arg = out.to_str().unwrap().to_owned();
    args.push(&out_arg);
    args.extend_from_slice(extra);
    if !extra.contains(&"--duration") {
        args.extend_from_slice(&["--duration", "3s"]);
    }
    let cmd = mock.controller_start(name, &dir.path().join("state"), &args);
    let mut c = Proc::spawn("controller", cmd);
    c.wait_for_line("run started", Duration::from_secs(60));
    during();
    let status = c.wait(RUN_TIMEOUT);
    let stderr = c.stderr();
    assert!(!stderr.contains("panicked"), "{name}: a panic\n{stderr}");
    assert!(status.success(), "{name}: exit {status}\nstderr:\n{stderr}");
    read_report(&out)
}

fn injected(mock: &MockTarget) -> serde_json::Value {
    mock.admin(reqwest::Method::GET, "/mock/injected-faults")
}

/// (name, mock flags, controller flags, error kind the fault must show as,
/// mock counter)
type FaultCase<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, &'a str);

#[test]
fn every_fault_is_counted_under_its_kind_and_no_run_breaks() {
    let cases: [FaultCase; 3] = [
        (
            "errors",
            &["--error-rate", "0.3"],
            &[],
            "http_5xx",
            "errors",
        ),
        (
            "resets",
            &["--reset-rate", "0.3"],
            &[],
            "transport",
            "resets",
        ),
        (
            "stalls",
            &["--stall-rate", "0.2"],
            &["--request-timeout", "500ms"],
            "timeout",
            "stalls",
        ),
    ];
    for (name, mock_flags, flags, kind, counter) in cases {
        let mock = MockTarget::start_with(mock_flags);
        let report = run(&mock, name, flags, || {});
        let kinds = errors_by_kind(&report);
        let seen = kinds.get(kind).copied().unwrap_or(0);
        let made = injected(&mock)[counter].as_u64().unwrap();
        assert!(seen > 0, "{name}: no {kind} counted: {kinds:?}");
        // Warmup-free, so every fault the agents saw was injected; calls cut
        // off by the run's end may be injected and never counted.
        assert!(
            seen <= made,
            "{name}: {seen} {kind} counted, {made} injected"
        );
        // What follows from a fault (a later step skipped, say) may show
        // under other kinds, but the fault's own kind leads.
        assert!(
            kinds.values().all(|&n| n <= seen),
            "{name}: {kind} is not the leading kind: {kinds:?}"
        );
        let summary = &report["summary"];
        assert!(
            summary["total_operations"].as_u64().unwrap()
                > summary["failed_operations"].as_u64().unwrap(),
            "{name}: nothing succeeded"
        );
    }
}

#[test]
fn latency_slows_calls_without_failing_them() {
    let mock = MockTarget::start_with(&["--latency", "50ms"]);
    let report = run(&mock, "latency", &[], || {});
    assert!(errors_by_kind(&report).is_empty(), "{}", report["users"]);
    for (tool, op) in report["baseline"].as_object().into_iter().flatten() {
        if let Some(min) = op["latency"]["min"].as_f64() {
            assert!(
                min >= 0.05,
                "{tool}: min latency {min}s under the mock's 50 ms"
            );
        }
    }
}

#[test]
fn a_401_storm_is_recovered_by_refreshing() {
    let mock = MockTarget::start();
    let report = run(&mock, "storm", &["--duration", "4s"], || {
        std::thread::sleep(Duration::from_millis(1500));
        let revoked = mock.admin(reqwest::Method::POST, "/mock/revoke-access-tokens");
        assert!(revoked["revoked"].as_u64().unwrap() >= 4, "{revoked}");
    });
    let auth = &report["auth"];
    assert!(
        auth["refreshes"].as_u64().unwrap() >= 4,
        "every user's token refreshed: {auth}"
    );
    assert!(auth["refresh_requests"].as_u64().unwrap() >= 4, "{auth}");
    // Work went on after the storm: a second well after it ran calls, none failed.
    let series = report["timeseries"].as_array().expect("timeseries");
    assert!(
        series.iter().any(|p| p["t"].as_f64().unwrap() >= 3.0
            && p["operations"].as_u64().unwrap() > 0
            && p["errors"].as_u64().unwrap() == 0),
        "no clean second after the storm: {series:?}"
    );
}
