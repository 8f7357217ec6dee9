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
    run_losing_one_under(signal, policy, &["--think-time", "100ms"])
}

/// As `run_losing_one`, under the load model `load` names.
fn run_losing_one_under(signal: &str, policy: &str, load: &[&str]) -> (ExitStatus, Value, String) {
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
        "--agent-timeout",
        "60s",
        "--on-agent-loss",
        policy,
        "-o",
        out.to_str().unwrap(),
    ]);
    cmd.args(load);
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

/// Open model: the lost agent's share of the rate moves with its users, so
/// the cluster keeps starting workflows at the rate asked for.
#[test]
fn an_open_model_loss_moves_the_rate_with_the_users() {
    let (status, report, stderr) = run_losing_one_under("KILL", "reassign", &["--rate", "30"]);
    assert!(status.success(), "exit {status}\n{stderr}");
    assert_reassigned(&report, &stderr);
    // Tool calls per second (steadier than workflow ends, whose mix of
    // lengths jitters per second) before the loss (~2.7 s in) and from the
    // first whole second after the moved users ran again (within 5 s).
    let per_second = |from: f64, to: f64| {
        let points: Vec<u64> = report["timeseries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| (from..to).contains(&p["t"].as_f64().unwrap()))
            .map(|p| p["operations"].as_u64().unwrap())
            .collect();
        assert!(!points.is_empty(), "no timeseries points in {from}..{to}");
        points.iter().sum::<u64>() as f64 / points.len() as f64
    };
    let resumed = report["agent_losses"][0]["lost_at_seconds"]
        .as_f64()
        .unwrap()
        + report["agent_losses"][0]["moves"][0]["resumed_after_seconds"]
            .as_f64()
            .unwrap();
    let warmup = 1.0;
    let before = per_second(0.5, resumed - warmup - 1.0);
    let after = per_second(resumed - warmup + 1.0, 10.5);
    assert!(before > 0.0, "nothing ran before the loss");
    // Without the rate moving, two agents of three would make ~2/3 of it.
    assert!(
        after > 0.8 * before,
        "{after} calls/s after the move, {before} before: the lost share of the rate did not move\n{}",
        report["timeseries"]
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

/// A network namespace joined to the host by a veth pair: the host side is
/// `host_ip`, the namespace side `ns_ip` (a /30); deleted on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Namespace `i` of this test process (names and the 10.213.x.y/30
    /// subnets carry the pid, so parallel runs do not meet).
    fn create(i: u8) -> Result<Netns, String> {
        let tag = std::process::id() % 200;
        let name = format!("mcps-{}-{i}", std::process::id());
        let host_if = format!("mh{tag}x{i}");
        let ns_if = format!("mn{tag}x{i}");
        let base = 4 * u32::from(i);
        let host_ip = format!("10.213.{tag}.{}", base + 1);
        let ns_ip = format!("10.213.{tag}.{}", base + 2);
        ip(&["netns", "add", &name])?;
        let ns = Netns {
            name,
            host_if,
            host_ip,
        };
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ])?;
        ip(&["link", "set", &ns_if, "netns", &ns.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ])?;
        ip(&["link", "set", &ns.host_if, "up"])?;
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns.name.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        inside(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if])?;
        inside(&["link", "set", &ns_if, "up"])?;
        inside(&["link", "set", "lo", "up"])?;
        inside(&["route", "add", "default", "via", &ns.host_ip])?;
        Ok(ns)
    }

    /// Cuts the namespace off without closing anything: packets just stop.
    fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth pair too.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn an_agent_cut_off_in_its_own_network_namespace_is_lost_and_its_users_move() {
    let namespaces: Result<Vec<Netns>, String> = (0..3).map(Netns::create).collect();
    let namespaces = match namespaces {
        Ok(n) => n,
        Err(why) => {
            eprintln!("skipped: cannot create network namespaces here ({why})");
            return;
        }
    };
    // Target and controller listen on the first host-side address; every
    // namespace reaches it through its own veth.
    let host = namespaces[0].host_ip.clone();
    let mock = {
        let admin_password = admin_password();
        let mut cmd = std::process::Command::new(mock_target_bin());
        cmd.args(["--listen", &format!("{host}:0")])
            .env("MOCK_TARGET_ADMIN_PASSWORD", &admin_password);
        let proc = Proc::spawn("mock-target", cmd);
        let line = proc.wait_for_line("mcp_url", Duration::from_secs(20));
        let v: Value = serde_json::from_str(line.trim()).unwrap();
        MockTarget {
            mcp_url: v["mcp_url"].as_str().unwrap().to_owned(),
            admin_url: v["admin_url"].as_str().unwrap().to_owned(),
            proc,
            admin_password,
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let listen = format!("{host}:0");
    let mut cmd = mock.controller_start(
        "netns",
        &dir.path().join("state"),
        &[
            "--provider",
            "nextcloud",
            "--no-spawn",
            "--agents",
            "3",
            "--users",
            "6",
            "--listen",
            &listen,
            "--duration",
            "10s",
            "--warmup",
            "1s",
            "--think-time",
            "100ms",
            "--agent-timeout",
            "60s",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    cmd.env("MCP_SWARM_CLUSTER_SECRET", SECRET);
    let mut c = Proc::spawn("controller", cmd);
    let url = listening_url(&c);
    let agents: Vec<Proc> = namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let mut cmd = std::process::Command::new("ip");
            cmd.args(["netns", "exec", &ns.name])
                .arg(agent_bin())
                .args(["--controller", &url, "--name", &format!("remote-{i}")])
                .env("MCP_SWARM_CLUSTER_SECRET", SECRET);
            Proc::spawn(&format!("agent-{i}"), cmd)
        })
        .collect();
    c.wait_for_line("run started", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(4));
    namespaces[1].cut();
    let status = c.wait(RUN_TIMEOUT);
    drop(agents);
    let stderr = c.stderr();
    assert!(status.success(), "exit {status}\n{stderr}");
    let report = read_report(&out);
    assert_reassigned(&report, &stderr);
    let loss = &report["agent_losses"][0];
    let silent = time(&loss["lost_at"])
        .duration_since(time(&loss["last_heard_at"]))
        .unwrap();
    assert!(
        silent <= Duration::from_secs(5),
        "declared lost {silent:?} after its last message"
    );
}
