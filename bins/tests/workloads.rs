//! The built-in workloads against the embedded mock, with its Nextcloud
//! semantics (own-folder note ids, `.md` notes, conditional writes): every
//! one runs with no failed operation, and write races are reported as
//! conflicts, apart from successes and failures.

mod support;

use support::*;

/// `controller start` on the embedded mock; its JSON report.
fn run(workload: &str, users: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut c = Proc::spawn(
        "controller",
        controller(&[
            "start",
            "--agents",
            "2",
            "--users",
            users,
            "--workload",
            workload,
            "--duration",
            "3s",
            "--warmup",
            "1s",
            "-o",
            out.to_str().unwrap(),
        ]),
    );
    let status = c.wait(RUN_TIMEOUT);
    assert!(
        status.success(),
        "{workload}: exit {status}\nstderr:\n{}",
        c.stderr()
    );
    let report = read_report(&out);
    let failed = report["summary"]["failed_operations"].as_u64().unwrap();
    assert_eq!(failed, 0, "{workload}: {}", report["errors"]);
    for (name, w) in report["workflows"].as_object().unwrap() {
        assert_eq!(w["failed_executions"], 0, "{workload}/{name}: {w}");
        assert!(
            w["total_executions"].as_u64().unwrap() > 0,
            "{workload}/{name} never ran"
        );
    }
    report
}

#[test]
fn sharing_runs_with_no_failure() {
    let r = run("sharing", "8");
    let wf = r["workflows"].as_object().unwrap();
    for name in ["note_share", "file_share", "permission_escalation"] {
        assert!(wf.contains_key(name), "{name} missing: {:?}", wf.keys());
    }
}

#[test]
fn collaboration_runs_with_no_failure_and_counts_its_conflicts() {
    let r = run("collaboration", "8");
    let edit = &r["workflows"]["collaborative_edit"];
    // Owner and editor write the note back with the etag they read at the
    // same time: whoever loses re-reads and writes again.
    assert!(
        edit["conflicted_operations"].as_u64().unwrap() > 0,
        "{edit}"
    );
    assert_eq!(edit["step_latencies"]["edit_doc"]["failed_executions"], 0);
}

/// Four users edit one shared note at once: conflicts are counted per call
/// and reported apart, none is a failure, and every writer gets through
/// within its retries.
#[test]
fn four_users_editing_one_note_report_conflicts_apart_from_failures() {
    let r = run("team", "8");
    let summary = &r["summary"];
    let conflicts = summary["conflicted_operations"].as_u64().unwrap();
    assert!(conflicts > 0, "{summary}");
    let team = &r["workflows"]["team_edit"];
    let executions = team["total_executions"].as_u64().unwrap();
    assert_eq!(team["conflicted_operations"].as_u64().unwrap(), conflicts);
    // At most 3 + 2 + 1 lost races per execution of four writers.
    assert!(
        conflicts <= 6 * executions,
        "{conflicts} conflicts in {executions} executions"
    );
    let edit = &team["step_latencies"]["edit_doc"];
    assert_eq!(edit["failed_executions"], 0, "{edit}");
    assert_eq!(
        edit["conflicted_executions"], 0,
        "4 attempts are enough for 4 writers: {edit}"
    );
    assert_eq!(team["success_rate"], 100.0);
    let tool = &r["users"];
    let user_conflicts: u64 = tool
        .as_object()
        .unwrap()
        .values()
        .map(|u| u["conflicted_operations"].as_u64().unwrap())
        .sum();
    assert_eq!(user_conflicts, conflicts);
}

/// A token without `sharing.write` sees no sharing tool (the server hides
/// them, as the Nextcloud MCP server does): the run stops before any load,
/// naming the scope and the tools that need it.
#[test]
fn a_token_without_a_needed_scope_stops_the_run_before_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Proc::spawn(
        "controller",
        controller(&[
            "start",
            "--agents",
            "1",
            "--users",
            "2",
            "--workload",
            "sharing",
            "--scope",
            "openid notes.read notes.write files.read files.write",
            "--duration",
            "3s",
            "--state-dir",
            dir.path().to_str().unwrap(),
        ]),
    );
    let status = c.wait(RUN_TIMEOUT);
    assert!(!status.success());
    let err = c.stderr();
    assert!(
        err.contains("scope sharing.write is missing, which nc_share_create, nc_share_list, nc_share_update need"),
        "{err}"
    );
    assert!(err.contains("--scope"), "{err}");
    assert!(!err.contains("run started"), "{err}");
}

/// Open model against a slow target with a small in-flight bound: starts
/// beyond it are dropped and counted, never queued, and nothing fails.
#[test]
fn starts_beyond_the_in_flight_bound_are_dropped_and_counted() {
    let mock = MockTarget::start_with(&["--latency", "50ms"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut c = Proc::spawn(
        "controller",
        mock.controller_start(
            "inflight",
            dir.path(),
            &[
                "--agents",
                "2",
                "--users",
                "4",
                "--workload",
                "baseline",
                "--rate",
                "100",
                "--max-in-flight",
                "4",
                "--duration",
                "3s",
                "--warmup",
                "1s",
                "-o",
                out.to_str().unwrap(),
            ],
        ),
    );
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    assert_eq!(
        report["summary"]["failed_operations"], 0,
        "{}",
        report["errors"]
    );
    let dropped: u64 = report["generator"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["dropped_starts"].as_u64().unwrap())
        .sum();
    // 100 starts/s offered for 3 s; 4 in flight of ~300 ms each serve ~13/s.
    assert!(dropped > 100, "dropped {dropped}: {}", report["generator"]);
    let started = report["workflows"]
        .as_object()
        .unwrap()
        .values()
        .map(|w| w["total_executions"].as_u64().unwrap())
        .sum::<u64>()
        + report["baseline"]["total_operations"].as_u64().unwrap() / 6;
    assert!(started < 100, "{started} workflows started");
    assert!(c.stdout().contains("Dropped starts:"), "{}", c.stdout());
}

/// Tokens issued without a refresh token (a client registered without
/// `offline_access`, as the Nextcloud MCP server's is) are renewed by
/// logging the users in again before they expire: the run goes on with
/// no auth failure, and the re-logins are counted.
#[test]
fn tokens_without_refresh_tokens_are_renewed_by_logging_in_again() {
    let mock = MockTarget::start_with(&["--token-ttl", "4s", "--refresh-needs-offline-access"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut c = Proc::spawn(
        "controller",
        mock.controller_start(
            "relogin",
            dir.path(),
            &[
                "--agents",
                "1",
                "--users",
                "2",
                "--workload",
                "baseline",
                "--think-time",
                "200ms",
                "--duration",
                "7s",
                "--warmup",
                "1s",
                "-o",
                out.to_str().unwrap(),
            ],
        ),
    );
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    let auth = &report["auth"];
    assert!(auth["relogins"].as_u64().unwrap() >= 2, "{auth}");
    assert_eq!(auth["refresh_failures"], 0, "{auth}");
    assert_eq!(
        report["summary"]["failed_operations"], 0,
        "{}",
        report["errors"]
    );
    assert!(c.stdout().contains("of which re-logins"), "{}", c.stdout());
}

/// A target that serves ~100 calls/s (20 ms per call, 2 at once) offered
/// 30 baseline workflows/s of 6 calls (180 calls/s) in the open model: the
/// report's throughput is what the target served (within 10% of the mock's
/// own count), each second of its timeline matches what the mock served in
/// that second, the drain is reported apart, starts past the in-flight bound
/// are dropped and counted, and the report opens with the verdict.
#[test]
fn an_overloaded_target_is_reported_as_served_not_as_offered() {
    let mock = MockTarget::start_with(&["--latency", "20ms", "--max-concurrency", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut c = Proc::spawn(
        "controller",
        mock.controller_start(
            "overload",
            dir.path(),
            &[
                "--agents",
                "1",
                "--users",
                "20",
                "--workload",
                "baseline",
                "--rate",
                "30",
                "--max-in-flight",
                "60",
                "--duration",
                "8s",
                "--warmup",
                "0s",
                "-o",
                out.to_str().unwrap(),
            ],
        ),
    );
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    let stats = mock.admin(reqwest::Method::GET, "/mock/stats");
    let bucket_ms = stats["served_bucket_ms"].as_u64().unwrap() as f64;
    let buckets: Vec<(f64, f64)> = stats["tool_calls_served"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b[0].as_f64().unwrap(), b[1].as_f64().unwrap()))
        .collect();
    // Calls the mock served in [from, to) (unix ms), buckets split pro rata.
    let served = |from: f64, to: f64| -> f64 {
        buckets
            .iter()
            .map(|(start, n)| {
                let overlap = (to.min(start + bucket_ms) - from.max(*start)).max(0.0);
                n * overlap / bucket_ms
            })
            .sum()
    };
    let started: std::time::SystemTime =
        humantime::parse_rfc3339(report["run"]["started_at"].as_str().unwrap()).unwrap();
    let from = started
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64
        + report["run"]["warmup_seconds"].as_f64().unwrap() * 1e3;
    let summary = &report["summary"];
    let duration = summary["duration"].as_f64().unwrap();
    let served_rate = served(from, from + duration * 1e3) / duration;
    let achieved = summary["throughput_per_sec"].as_f64().unwrap();
    let context = format!(
        "summary {summary}\nverdict {}\ntimeseries {}\nmock buckets {buckets:?}",
        report["verdict"], report["timeseries"]
    );
    assert!(
        (70.0..=140.0).contains(&served_rate),
        "the mock served {served_rate}/s, not ~100/s: {context}"
    );
    assert!(
        (achieved - served_rate).abs() <= 0.1 * served_rate,
        "report says {achieved} calls/s, the mock served {served_rate}/s: {context}"
    );
    // Each whole second of the window, as the mock counted it.
    let points = report["timeseries"].as_array().unwrap();
    let window: Vec<&serde_json::Value> = points
        .iter()
        .filter(|p| !p["drain"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(window.len(), 8, "{context}");
    for p in &window {
        let t = p["t"].as_f64().unwrap();
        let ours = p["operations"].as_f64().unwrap();
        let theirs = served(from + (t - 1.0) * 1e3, from + t * 1e3);
        assert!(
            (ours - theirs).abs() <= 0.1 * theirs.max(10.0),
            "second ending at {t}: {ours} calls in the timeline, {theirs} served by the mock: {context}"
        );
    }
    // The drain: calls completed after the window, apart and in the timeline.
    let drain_ops = summary["drain_operations"].as_u64().unwrap();
    assert!(drain_ops > 0, "{context}");
    let in_drain: u64 = points
        .iter()
        .filter(|p| p["drain"].as_bool().unwrap_or(false))
        .map(|p| p["operations"].as_u64().unwrap())
        .sum();
    assert_eq!(in_drain, drain_ops, "{context}");
    let timeline: u64 = points
        .iter()
        .map(|p| p["operations"].as_u64().unwrap())
        .sum();
    assert_eq!(
        timeline,
        summary["total_operations"].as_u64().unwrap(),
        "{context}"
    );
    // The bound was hit, the starts past it dropped and counted.
    let verdict = &report["verdict"];
    assert!(verdict["dropped_starts"].as_u64().unwrap() > 0, "{context}");
    assert_eq!(verdict["fell_behind"], true, "{context}");
    let offered = verdict["offered_operations_per_sec"].as_f64().unwrap();
    assert!(
        (150.0..=210.0).contains(&offered),
        "offered {offered} calls/s, not ~180: {context}"
    );
    assert!(achieved < 0.75 * offered, "{context}");
    let offered_starts: u64 = report["generator"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["offered_starts"].as_u64().unwrap())
        .sum();
    assert!(
        (200..=280).contains(&offered_starts),
        "{offered_starts}: {context}"
    );
    // The console and the HTML open with it.
    let stdout = c.stdout();
    let first = stdout
        .lines()
        .find(|l| l.starts_with("VERDICT:"))
        .unwrap_or_else(|| panic!("no verdict line:\n{stdout}"));
    assert!(
        first.starts_with("VERDICT: The target fell behind from"),
        "{stdout}"
    );
    assert!(stdout.contains("Drain: "), "{stdout}");
}
