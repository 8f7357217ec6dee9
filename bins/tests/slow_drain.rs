//! The end of a run against a target that cannot keep up: agents drain
//! within their own bound, shorter than the controller's, so no `Stop` is
//! needed; and an agent slow to send its final report (as one of 100,000
//! users on a saturated host is) is waited for while it is heard from, not
//! declared lost.

mod support;

use support::*;

const SECRET: &str = "slow-drain-test-secret";

/// Every agent of `report` finished with its final report, none lost.
fn assert_no_agent_lost(report: &serde_json::Value, n_agents: usize, stderr: &str) {
    let agents = report["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), n_agents);
    for a in agents {
        assert!(!a["lost"].as_bool().unwrap(), "agent lost: {a}\n{stderr}");
        assert!(
            a["final_received"].as_bool().unwrap(),
            "no final report: {a}"
        );
    }
    assert!(
        report["agent_losses"]
            .as_array()
            .is_none_or(|l| l.is_empty()),
        "{}",
        report["agent_losses"]
    );
    assert!(!stderr.contains("agent lost"), "{stderr}");
}

/// A saturated target (each call 300 ms, four at a time, the rest queued)
/// with a 1 s request timeout: workflows are in flight at the end, and the
/// agents abandon them within their drain, before the controller's.
#[test]
fn a_saturated_target_drains_without_stop() {
    let mock = MockTarget::start_with(&["--latency", "300ms", "--max-concurrency", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let cmd = mock.controller_start(
        "saturated",
        &dir.path().join("state"),
        &[
            "--agents",
            "2",
            "--users",
            "8",
            "--warmup",
            "0s",
            "--duration",
            "3s",
            "--think-time",
            "0s",
            "--request-timeout",
            "1s",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let mut c = Proc::spawn("controller", cmd);
    let status = c.wait(RUN_TIMEOUT);
    let stderr = c.stderr();
    assert!(status.success(), "exit {status}\n{stderr}");
    assert!(
        !stderr.contains("overran the run"),
        "an agent needed Stop:\n{stderr}"
    );
    let report = read_report(&out);
    assert_no_agent_lost(&report, 2, &stderr);
    for a in report["agents"].as_array().unwrap() {
        assert!(a["operations"].as_u64().unwrap() > 0, "{a}");
    }
}

/// One agent holds its final report 25 s past its drain, heartbeating:
/// past the controller's drain (1 s request timeout + 10 s) and the 10 s it
/// used to give after `Stop`. It is waited for and its report is kept; the
/// other agent's run is untouched.
#[test]
fn an_agent_slow_to_send_its_final_report_is_waited_for() {
    let mock = MockTarget::start_with(&["--latency", "50ms"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut cmd = mock.controller_start(
        "slowfinal",
        &dir.path().join("state"),
        &[
            "--no-spawn",
            "--agents",
            "2",
            "--users",
            "4",
            "--listen",
            "127.0.0.1:0",
            "--warmup",
            "0s",
            "--duration",
            "2s",
            "--think-time",
            "100ms",
            "--request-timeout",
            "1s",
            "--agent-timeout",
            "60s",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    cmd.env("MCP_SWARM_CLUSTER_SECRET", SECRET);
    let mut c = Proc::spawn("controller", cmd);
    let url = listening_url(&c);
    let mut slow = agent(&url, "slow", SECRET);
    slow.args(["--fault-final-report-delay", "25s"]);
    let _agents = [
        Proc::spawn("agent-slow", slow),
        Proc::spawn("agent-prompt", agent(&url, "prompt", SECRET)),
    ];
    let status = c.wait(RUN_TIMEOUT);
    let stderr = c.stderr();
    assert!(status.success(), "exit {status}\n{stderr}");
    let report = read_report(&out);
    assert_no_agent_lost(&report, 2, &stderr);
    for a in report["agents"].as_array().unwrap() {
        assert!(a["operations"].as_u64().unwrap() > 0, "{a}");
    }
}
