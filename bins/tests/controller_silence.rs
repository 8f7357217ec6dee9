//! A silent controller: SIGSTOPped mid-run (no TCP close), its keepalives
//! stop; a `--no-spawn` agent notices within 5 s, stops calling the target,
//! says so at warn with how long the controller has been silent, and exits
//! with an error — in warmup and while measuring.

mod support;

use std::time::{Duration, Instant};

use support::*;

const SECRET: &str = "controller-silence-test-secret";

/// MCP requests the mock has served so far.
fn mcp_requests(mock: &MockTarget) -> u64 {
    mock.admin(reqwest::Method::GET, "/mock/stats")["mcp_requests"]
        .as_u64()
        .expect("mcp_requests")
}

/// Starts a run (`phase_flags` choose where it is 3 s in), SIGSTOPs the
/// controller and checks the agent stops its load and exits in time.
fn stop_the_controller_during(phase: &str, phase_flags: &[&str]) {
    let mock = MockTarget::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut args = vec![
        "--no-spawn",
        "--agents",
        "1",
        "--users",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--think-time",
        "50ms",
        "--agent-timeout",
        "60s",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(phase_flags);
    let mut cmd = mock.controller_start(phase, &dir.path().join("state"), &args);
    cmd.env("MCP_SWARM_CLUSTER_SECRET", SECRET);
    let c = Proc::spawn("controller", cmd);
    let url = listening_url(&c);
    let mut a = Proc::spawn("agent", agent(&url, "remote", SECRET));
    c.wait_for_line("run started", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let before = mcp_requests(&mock);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        mcp_requests(&mock) > before,
        "{phase}: the agent was not loading the target before the stop"
    );

    c.signal("STOP");
    let stopped_at = Instant::now();
    // Watch the mock's count and the agent for 12 s: when did the last
    // request come, when did the agent exit.
    let mut count = mcp_requests(&mock);
    let mut last_request = Duration::ZERO;
    let mut exited = None;
    while stopped_at.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(250));
        let n = mcp_requests(&mock);
        if n != count {
            count = n;
            last_request = stopped_at.elapsed();
        }
        if exited.is_none() {
            exited = a.try_wait().map(|status| (status, stopped_at.elapsed()));
        }
    }
    c.signal("CONT");
    drop(c);

    let stderr = a.stderr();
    let (status, exited_after) =
        exited.unwrap_or_else(|| panic!("{phase}: the agent did not exit\n{stderr}"));
    assert_eq!(status.code(), Some(1), "{phase}: agent exit\n{stderr}");
    // Its last keepalive came ≤ 1 s before the stop; silent 4 s, the load
    // stops at once, then its sessions are closed (the last requests).
    assert!(
        last_request <= Duration::from_millis(6500),
        "{phase}: the target was called {last_request:?} after the controller stopped\n{stderr}"
    );
    assert!(
        exited_after <= Duration::from_secs(9),
        "{phase}: the agent exited {exited_after:?} after the controller stopped\n{stderr}"
    );
    let warn = stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("the controller has been silent for"))
        .unwrap_or_else(|| panic!("{phase}: no warning naming the silence\n{stderr}"));
    let secs: f64 = warn
        .split("silent for ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{phase}: no duration in {warn:?}"));
    assert!((4.0..5.0).contains(&secs), "{phase}: {warn}");
    assert!(
        stderr.contains("the controller went silent"),
        "{phase}: the agent's error does not say why\n{stderr}"
    );
}

#[test]
fn an_agent_stops_its_load_when_the_controller_goes_silent_while_measuring() {
    stop_the_controller_during("measuring", &["--warmup", "0s", "--duration", "60s"]);
}

#[test]
fn an_agent_stops_its_load_when_the_controller_goes_silent_in_warmup() {
    stop_the_controller_during("warmup", &["--warmup", "60s", "--duration", "5s"]);
}
