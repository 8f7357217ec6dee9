//! End-to-end runs of real processes: `controller start` spawning agents
//! against the embedded and a standalone mock target, and `--no-spawn` with
//! agents started by hand.

mod support;

use std::time::Duration;

use support::*;

/// The controller runs its own executable as its agents: a copy of it alone
/// in a directory, with no `agent` file beside it, still runs 3 agents.
#[test]
fn three_spawned_agents_against_the_embedded_mock() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let lone = dir.path().join("bin").join("controller");
    std::fs::create_dir(lone.parent().unwrap()).unwrap();
    std::fs::copy(controller_bin(), &lone).unwrap();
    let mut c = Proc::spawn(
        "controller",
        controller_at(
            &lone,
            &[
                "start",
                "--agents",
                "3",
                "--users",
                "6",
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
    assert!(
        c.stdout().contains("WORKFLOW STATISTICS"),
        "stdout:\n{}",
        c.stdout()
    );
    let report = read_report(&out);
    assert_healthy_report(&report, 6, 3);
    assert_eq!(report["run"]["n_agents"], 3);
    assert_eq!(report["auth"]["logins"], 6);

    // `controller report` re-renders the same console report.
    let mut r = Proc::spawn(
        "controller report",
        controller(&["report", out.to_str().unwrap()]),
    );
    assert!(r.wait(Duration::from_secs(20)).success(), "{}", r.stderr());
    assert!(r.stdout().contains("WORKFLOW STATISTICS"), "{}", r.stdout());
}

#[test]
fn standalone_mock_users_are_deleted_at_the_end() {
    let mock = MockTarget::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let state = dir.path().join("state");
    let prefix = "e2e";
    let cmd = mock.controller_start(
        prefix,
        &state,
        &[
            "--agents",
            "2",
            "--users",
            "4",
            "--duration",
            "2s",
            "--warmup",
            "500ms",
            "--provider",
            "nextcloud",
            "--workload",
            "sharing",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let mut c = Proc::spawn("controller", cmd);
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    assert_healthy_report(&report, 4, 2);
    assert!(
        report["workflows"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k == "note_share" || k == "file_share")
    );
    assert_eq!(
        mock.list_users(&format!("{prefix}_user_")),
        Vec::<String>::new(),
        "users left behind"
    );
    // The journal is empty once every user is deleted.
    let journal = std::fs::read_to_string(state.join("users.jsonl")).unwrap();
    assert_eq!(journal, "");
}

#[test]
fn no_spawn_waits_for_agents_started_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let secret = "no-spawn-test-secret";
    let mut cmd = controller(&[
        "start",
        "--no-spawn",
        "--agents",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--agent-timeout",
        "30s",
        "-o",
        out.to_str().unwrap(),
    ]);
    cmd.env("MCP_SWARM_CLUSTER_SECRET", secret);
    let mut c = Proc::spawn("controller", cmd);
    let url = listening_url(&c);
    let mut agents: Vec<Proc> = (0..2)
        .map(|i| {
            Proc::spawn(
                &format!("agent-{i}"),
                agent(&url, &format!("remote-{i}"), secret),
            )
        })
        .collect();
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    for a in &mut agents {
        let s = a.wait(Duration::from_secs(20));
        assert!(s.success(), "{} exit {s}", a.name);
    }
    assert_healthy_report(&read_report(&out), 4, 2);
}

#[test]
fn an_agent_with_the_wrong_secret_is_refused() {
    let mut cmd = controller(&[
        "start",
        "--no-spawn",
        "--agents",
        "1",
        "--listen",
        "127.0.0.1:0",
        "--duration",
        "1s",
        "--agent-timeout",
        "4s",
    ]);
    cmd.env("MCP_SWARM_CLUSTER_SECRET", "right-secret");
    let mut c = Proc::spawn("controller", cmd);
    let url = listening_url(&c);
    let mut a = Proc::spawn("agent", agent(&url, "intruder", "wrong-secret"));
    let s = a.wait(Duration::from_secs(20));
    assert!(!s.success(), "agent with a wrong secret exited 0");
    let status = c.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1));
    assert!(
        c.stderr().contains("0 of 1 agents attached"),
        "stderr:\n{}",
        c.stderr()
    );
    assert!(
        a.stderr().to_lowercase().contains("secret") || a.stderr().contains("Unauthenticated"),
        "agent stderr should say why:\n{}",
        a.stderr()
    );
}

#[test]
fn a_killed_agent_is_reported_lost_and_its_intervals_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let secret = "lost-agent-test-secret";
    let mut cmd = controller(&[
        "start",
        "--no-spawn",
        "--agents",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--duration",
        "6s",
        "--warmup",
        "500ms",
        "--agent-timeout",
        "30s",
        "-o",
        out.to_str().unwrap(),
    ]);
    cmd.env("MCP_SWARM_CLUSTER_SECRET", secret);
    let mut c = Proc::spawn("controller", cmd);
    let url = listening_url(&c);
    let mut agents: Vec<Proc> = (0..2)
        .map(|i| {
            Proc::spawn(
                &format!("agent-{i}"),
                agent(&url, &format!("remote-{i}"), secret),
            )
        })
        .collect();
    c.wait_for_line("run started", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(3000));
    agents[1].kill();
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    let agents_json = report["agents"].as_array().unwrap();
    let lost: Vec<_> = agents_json
        .iter()
        .filter(|a| a["lost"].as_bool().unwrap())
        .collect();
    assert_eq!(lost.len(), 1, "{agents_json:?}");
    assert_eq!(lost[0]["name"], "remote-1");
    assert!(!lost[0]["final_received"].as_bool().unwrap());
    assert!(
        lost[0]["intervals_received"].as_u64().unwrap() > 0,
        "{}",
        lost[0]
    );
    assert!(
        lost[0]["operations"].as_u64().unwrap() > 0,
        "what the lost agent sent is kept: {}",
        lost[0]
    );
}

#[test]
fn ctrl_c_writes_an_interrupted_report_and_deletes_users() {
    a_signal_writes_an_interrupted_report_and_deletes_users("INT", "intr");
}

/// What `docker stop` and Kubernetes send is handled exactly as Ctrl-C.
#[test]
fn sigterm_writes_an_interrupted_report_and_deletes_users() {
    a_signal_writes_an_interrupted_report_and_deletes_users("TERM", "term");
}

fn a_signal_writes_an_interrupted_report_and_deletes_users(signal: &str, prefix: &str) {
    let mock = MockTarget::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let cmd = mock.controller_start(
        prefix,
        &dir.path().join("state"),
        &[
            "--agents",
            "2",
            "--duration",
            "60s",
            "--warmup",
            "500ms",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let mut c = Proc::spawn("controller", cmd);
    c.wait_for_line("run started", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    c.signal(signal);
    let status = c.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "stderr:\n{}", c.stderr());
    assert!(c.stderr().contains("interrupted"), "{}", c.stderr());
    let report = read_report(&out);
    assert_eq!(report["run"]["interrupted"], true);
    assert!(report["run"]["duration_seconds"].as_f64().unwrap() < 10.0);
    assert!(report["summary"]["total_operations"].as_u64().unwrap() > 0);
    for a in report["agents"].as_array().unwrap() {
        assert!(
            a["final_received"].as_bool().unwrap(),
            "agents flush final reports on Stop: {a}"
        );
    }
    assert_eq!(
        mock.list_users(&format!("{prefix}_user_")),
        Vec::<String>::new(),
        "users left behind"
    );
}

#[test]
fn a_failed_threshold_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut c = Proc::spawn(
        "controller",
        controller(&[
            "start",
            "--agents",
            "1",
            "--duration",
            "1s",
            "--warmup",
            "0s",
            "--threshold",
            "error_rate<5%",
            "--threshold",
            // Far beyond one agent on loopback (a latency bound such as p50<1ms
            // no longer fails: calls take well under a millisecond).
            "throughput>10000000",
            "-o",
            out.to_str().unwrap(),
        ]),
    );
    let status = c.wait(RUN_TIMEOUT);
    assert_eq!(status.code(), Some(3), "stderr:\n{}", c.stderr());
    let report = read_report(&out);
    let results = report["thresholds"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(
        results.iter().filter(|t| t["passed"] == true).count(),
        1,
        "{results:?}"
    );
}
