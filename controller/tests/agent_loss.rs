//! `--on-agent-loss` end to end: three agents against the embedded mock, one
//! of them SIGKILLed (its stream closes) or SIGSTOPped (it goes silent) a few
//! seconds into the run.

mod support;

use std::process::ExitStatus;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use support::*;

const SECRET: &str = "agent-loss-test-secret";

/// Runs 3 agents × 2 users for 1 s warmup + 10 s, does `signal` to
/// `remote-1` 4 s after the start; returns the exit status and the report.
fn run_losing_one(signal: &str, policy: &str) -> (ExitStatus, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut cmd = controller(&[
        "start",
        "--no-spawn",
        "--agents",
        "3",
        "--users",
        "6",
        "--listen",
        "127.0.0.1:0",
        "--duration",
        "10s",
        "--warmup",
        "1s",
        "--think-time",
        "100ms",
        "--agent-timeout",
        "60s",
        "--on-agent-loss",
        policy,
        "-o",
        out.to_str().unwrap(),
    ]);
    cmd.env("MCP_SWARM_CLUSTER_SECRET", SECRET);
    let mut c = Proc::spawn("controller", cmd);
    let url = listening_url(&c);
    let mut agents: Vec<Proc> = (0..3)
        .map(|i| {
            Proc::spawn(
                &format!("agent-{i}"),
                agent(&url, &format!("remote-{i}"), SECRET),
            )
        })
        .collect();
    c.wait_for_line("run started", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(4));
    match signal {
        "KILL" => agents[1].kill(),
        other => agents[1].signal(other),
    }
    let status = c.wait(RUN_TIMEOUT);
    // A stopped agent is killed on drop.
    drop(agents);
    (status, read_report(&out), c.stderr())
}

fn time(v: &Value) -> SystemTime {
    humantime::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

/// The one loss of the run, with the checks every policy shares.
fn the_loss<'r>(report: &'r Value, policy: &str) -> &'r Value {
    let losses = report["agent_losses"].as_array().expect("agent_losses");
    assert_eq!(losses.len(), 1, "{losses:?}");
    let loss = &losses[0];
    assert_eq!(loss["agent"], "remote-1");
    assert_eq!(loss["policy"], policy);
    let lost = report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "remote-1")
        .unwrap();
    assert!(lost["lost"].as_bool().unwrap(), "{lost}");
    assert!(
        lost["operations"].as_u64().unwrap() > 0,
        "what it sent is kept: {lost}"
    );
    loss
}

/// Every user of the lost agent moved once, started again within 5 s of the
/// loss and did work on its new agent.
fn assert_reassigned(report: &Value, stderr: &str) {
    let loss = the_loss(report, "reassign");
    let moves = loss["moves"].as_array().unwrap();
    let moved: usize = moves
        .iter()
        .map(|m| m["users"].as_object().unwrap().len())
        .sum();
    assert_eq!(moved, 2, "both users of remote-1 moved: {moves:?}");
    for m in moves {
        assert_ne!(m["to"], "remote-1");
        assert_eq!(m["sessions_failed"], 0, "{m}");
        let after = m["resumed_after_seconds"]
            .as_f64()
            .unwrap_or_else(|| panic!("never resumed: {m}\n{stderr}"));
        assert!(
            (0.0..=5.0).contains(&after),
            "resumed {after} s after the loss: {m}"
        );
        for (user, ops) in m["users"].as_object().unwrap() {
            assert!(
                ops.as_u64().unwrap() > 0,
                "{user} did nothing on {}: {m}",
                m["to"]
            );
        }
    }
    assert!(!report["run"]["interrupted"].as_bool().unwrap());
}

#[test]
fn a_killed_agent_s_users_move_to_the_others() {
    let (status, report, stderr) = run_losing_one("KILL", "reassign");
    assert!(status.success(), "exit {status}\n{stderr}");
    assert_reassigned(&report, &stderr);
}

#[test]
fn a_stopped_agent_is_lost_within_5s_and_its_users_move() {
    let (status, report, stderr) = run_losing_one("STOP", "reassign");
    assert!(status.success(), "exit {status}\n{stderr}");
    assert_reassigned(&report, &stderr);
    let loss = &report["agent_losses"][0];
    assert!(
        loss["reason"].as_str().unwrap().contains("silent"),
        "{loss}"
    );
    let silent = time(&loss["lost_at"])
        .duration_since(time(&loss["last_heard_at"]))
        .unwrap();
    assert!(
        silent <= Duration::from_secs(5),
        "declared lost {silent:?} after its last message"
    );
}

#[test]
fn abort_stops_the_run_keeps_the_report_and_exits_1() {
    let (status, report, stderr) = run_losing_one("KILL", "abort");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--on-agent-loss abort"), "{stderr}");
    let loss = the_loss(&report, "abort");
    assert!(loss["moves"].as_array().unwrap().is_empty());
    assert!(report["run"]["interrupted"].as_bool().unwrap());
}
