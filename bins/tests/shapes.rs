//! End-to-end load shapes with real processes: `--stages` ramps whose
//! timeseries follows them, the refusal of `--stages` with `--duration`, and
//! a `controller capacity` search against a mock that saturates.

mod support;

use support::*;

#[test]
fn stages_ramp_active_users_up_and_down() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut c = Proc::spawn(
        "controller",
        controller(&[
            "start",
            "--agents",
            "2",
            "--stages",
            "2s:2,2s:4,2s:4,2s:0",
            "--think-time",
            "100ms",
            "-o",
            out.to_str().unwrap(),
        ]),
    );
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    assert_eq!(report["run"]["n_users"], 4, "users default to the peak");
    assert!(
        report["run"]["load_model"]
            .as_str()
            .unwrap()
            .contains("stages 2s:2,2s:4,2s:4,2s:0"),
        "{}",
        report["run"]
    );
    let points = report["timeseries"].as_array().unwrap();
    assert!(points.len() >= 7, "{points:?}");
    let active: Vec<u64> = points
        .iter()
        .map(|p| p["active_users"].as_u64().unwrap())
        .collect();
    let targets: Vec<f64> = points
        .iter()
        .map(|p| p["target"].as_f64().expect("target with --stages"))
        .collect();
    // Each second's active users are what the stages asked for at its end
    // (±1 for a user starting or stopping right at the boundary).
    for (a, t) in active.iter().zip(&targets) {
        assert!(
            (*a as f64 - t.floor()).abs() <= 1.0,
            "active {active:?} vs targets {targets:?}"
        );
    }
    assert!(active.contains(&4), "the hold reached 4 users: {active:?}");
    assert!(active[0] <= 1, "the ramp starts low: {active:?}");
    assert!(*active.last().unwrap() <= 1, "and ends low: {active:?}");
    // Every user worked at some point of the ramp.
    assert_healthy_report(&report, 4, 2);
}

#[test]
fn stages_and_duration_are_refused_together() {
    let mut c = Proc::spawn(
        "controller",
        controller(&["start", "--stages", "3s:2,3s:0", "--duration", "5s"]),
    );
    let status = c.wait(std::time::Duration::from_secs(20));
    assert!(!status.success());
    assert!(
        c.stderr()
            .contains("--stages 3s:2,3s:0 and --duration 5s cannot be used together"),
        "{}",
        c.stderr()
    );
}

#[test]
fn capacity_finds_the_rate_where_a_saturating_target_breaks() {
    // 2 requests at a time, 20 ms each: about 100 tool calls per second, 16
    // baseline workflows (6 calls each); past it, requests queue.
    let mock = MockTarget::start_with(&["--latency", "20ms", "--max-concurrency", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("capacity.json");
    let state = dir.path().join("state");
    let mut cmd = controller(&["capacity"]);
    cmd.args([
        "--url",
        &mock.mcp_url,
        "--nextcloud-url",
        &mock.admin_url,
        "--user-prefix",
        "cap",
        "--state-dir",
        state.to_str().unwrap(),
        "--workload",
        "baseline",
        "--users",
        "4",
        "--threshold",
        "p95<300ms",
        "--start-rate",
        "2",
        "--max-rate",
        "200",
        "--step-duration",
        "4s",
        "--settle",
        "1s",
        "--max-steps",
        "6",
        "-o",
        out.to_str().unwrap(),
    ])
    .env("NEXTCLOUD_ADMIN_PASSWORD", &mock.admin_password);
    let mut c = Proc::spawn("controller capacity", cmd);
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    assert!(c.stdout().contains("CAPACITY"), "{}", c.stdout());
    assert!(c.stdout().contains("BROKE p95<300ms"), "{}", c.stdout());
    let report = read_report(&out);
    let cap = &report["capacity"];
    let steps = cap["steps"].as_array().unwrap();
    assert!(steps.len() >= 2, "{cap}");
    assert_eq!(steps[0]["rate"], 2.0);
    let passing = cap["max_passing_rate"].as_f64().expect("a rate passed");
    let failing = cap["lowest_failing_rate"].as_f64().expect("a rate broke");
    assert!(passing < failing, "{cap}");
    // The broken step says what broke and by how much.
    let broken = steps
        .iter()
        .find(|s| s["rate"].as_f64() == Some(failing))
        .unwrap();
    assert_eq!(broken["passed"], false);
    let t = &broken["thresholds"][0];
    assert_eq!(t["expression"], "p95<300ms");
    assert!(t["observed"].as_f64().unwrap() >= 0.3, "{broken}");
    // Steps rise from the start until one breaks.
    let rates: Vec<f64> = steps.iter().map(|s| s["rate"].as_f64().unwrap()).collect();
    assert!(rates[1] > rates[0], "{rates:?}");
    assert!(
        steps
            .iter()
            .all(|s| s["workflow_rate"].as_f64().unwrap() > 0.0),
        "every step ran workflows: {cap}"
    );
    assert_eq!(mock.list_users("cap_user_"), Vec::<String>::new());
}

/// `GET` of an OCS admin path on the mock; `None` for a non-success status.
fn ocs_get(mock: &MockTarget, path: &str) -> Option<serde_json::Value> {
    block_on(async {
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", mock.admin_url))
            .basic_auth("admin", Some(&mock.admin_password))
            .header("OCS-APIRequest", "true")
            .header("Accept", "application/json")
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    })
}

#[test]
fn tenants_are_groups_with_their_own_figures() {
    let mock = MockTarget::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let state = dir.path().join("state");
    let cmd = mock.controller_start(
        "ten",
        &state,
        &[
            "--agents",
            "2",
            "--users",
            "6",
            "--tenants",
            "3",
            "--duration",
            "3s",
            "--warmup",
            "500ms",
            "--provider",
            "nextcloud",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let mut c = Proc::spawn("controller", cmd);
    // While the run goes, the mock holds each tenant as a group of 2 users.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let members = loop {
        let members = ocs_get(&mock, "/ocs/v2.php/cloud/groups/ten_tenant_2")
            .and_then(|v| v["ocs"]["data"]["users"].as_array().cloned())
            .unwrap_or_default();
        if members.len() == 2 || std::time::Instant::now() > deadline {
            break members;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    assert_eq!(
        members,
        vec![
            serde_json::json!("ten_user_2"),
            serde_json::json!("ten_user_5")
        ]
    );
    assert!(c.stdout().contains("TENANTS"), "{}", c.stdout());
    assert!(c.stdout().contains("Fairness"), "{}", c.stdout());
    let report = read_report(&out);
    assert_healthy_report(&report, 6, 2);
    let tenants = report["tenants"]["tenants"].as_object().unwrap();
    assert_eq!(tenants.len(), 3);
    let mut total = 0;
    for (name, t) in tenants {
        assert_eq!(t["users"], 2, "{name}: {t}");
        assert!(t["total_operations"].as_u64().unwrap() > 0, "{name}: {t}");
        total += t["total_operations"].as_u64().unwrap();
    }
    assert_eq!(
        total,
        report["summary"]["total_operations"].as_u64().unwrap()
    );
    let f = &report["tenants"]["fairness"];
    let (min, max) = (
        f["min_throughput_per_user"].as_f64().unwrap(),
        f["max_throughput_per_user"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= max, "{f}");
    assert_eq!(
        f["ratio"].as_f64().unwrap(),
        (min / max * 1e6).round() / 1e6
    );
    // The groups go with the users.
    let groups =
        ocs_get(&mock, "/ocs/v2.php/cloud/groups?search=ten_").expect("groups list")["ocs"]["data"]
            ["groups"]
            .clone();
    assert_eq!(groups, serde_json::json!([]));
    assert_eq!(mock.list_users("ten_user_"), Vec::<String>::new());
}
