//! Bad input is refused before anything starts, naming the flag and the fix.

mod support;

use std::time::Duration;

use support::*;

fn check(args: &[&str], code: i32, expected: &[&str]) {
    let mut c = Proc::spawn("controller", controller(args));
    let status = c.wait(Duration::from_secs(20));
    let stderr = c.stderr();
    assert_eq!(status.code(), Some(code), "{args:?}\nstderr:\n{stderr}");
    for e in expected {
        assert!(stderr.contains(e), "{args:?}: expected {e:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("listening for agents"),
        "{args:?} started something:\n{stderr}"
    );
}

#[test]
fn bad_input_fails_early() {
    check(&["start", "-d", "3x"], 2, &["--duration", "500ms"]);
    check(
        &["start", "--workload", "nope"],
        1,
        &["--workload nope", "mixed"],
    );
    check(
        &["start", "--agents", "3", "--users", "2"],
        1,
        &["--users 2 too small", "per agent"],
    );
    check(
        &["start", "--scenario", "/nonexistent/s.yaml"],
        1,
        &["cannot read --scenario /nonexistent/s.yaml"],
    );
    check(
        &["start", "--threshold", "p95<<1"],
        1,
        &["--threshold", "invalid threshold"],
    );
    check(&["start", "--no-spawn"], 1, &["MCP_SWARM_CLUSTER_SECRET"]);
    check(
        &[
            "start",
            "--login",
            "browser",
            "--browser",
            "/nonexistent/chromium",
        ],
        1,
        &[
            "/nonexistent/chromium",
            "--browser",
            "apt-get install chromium",
        ],
    );
    check(
        &["start", "--login", "tokens-file"],
        1,
        &["--login tokens-file needs --tokens-file"],
    );
    check(
        &["start", "--agent-bin", "/nonexistent/agent"],
        1,
        &["agent executable not found", "--agent-bin"],
    );
    check(
        &["report", "/nonexistent/run.json"],
        1,
        &["/nonexistent/run.json"],
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "version: 1\nworkflows:\n  w:\n    roles: [a]\n    steps:\n      - name: s\n        as: nobody\n        tool: t\n").unwrap();
    let path = bad.display().to_string();
    check(&["start", "--scenario", &path], 1, &[&path]);
}

#[test]
fn help_lists_the_framework_flags() {
    let mut c = Proc::spawn("controller", controller(&["start", "--help"]));
    assert!(c.wait(Duration::from_secs(10)).success());
    let help = c.stdout();
    for flag in [
        "--users",
        "--duration",
        "--warmup",
        "--url",
        "--output",
        "--workload",
        "--user-prefix",
        "--no-cleanup",
        "--agents",
        "--no-spawn",
        "--listen",
        "--scenario",
        "--rate",
        "--threshold",
        "--login",
        "--provider",
        "--state-dir",
        "--browser",
        "--headed",
        "--login-concurrency",
        "--tokens-file",
        "--callback-listen",
        "MCP_SWARM_USERS",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

/// `controller agent` is the agent (how local agents are spawned), with the
/// agent's own flags, and `controller --help` says so.
#[test]
fn the_controller_runs_as_an_agent() {
    let mut c = Proc::spawn("controller", controller(&["--help"]));
    assert!(c.wait(Duration::from_secs(10)).success());
    assert!(c.stdout().contains("agent"), "{}", c.stdout());

    let mut a = Proc::spawn("controller agent", controller(&["agent", "--help"]));
    assert!(a.wait(Duration::from_secs(10)).success());
    for flag in ["--controller", "--capacity", "MCP_SWARM_CLUSTER_SECRET"] {
        assert!(a.stdout().contains(flag), "lacks {flag}:\n{}", a.stdout());
    }

    // Without the cluster secret the agent refuses to start, naming it.
    let mut a = Proc::spawn(
        "controller agent",
        controller(&["agent", "--controller", "http://127.0.0.1:9"]),
    );
    assert_eq!(a.wait(Duration::from_secs(10)).code(), Some(1));
    assert!(
        a.stderr().contains("MCP_SWARM_CLUSTER_SECRET"),
        "{}",
        a.stderr()
    );
}
