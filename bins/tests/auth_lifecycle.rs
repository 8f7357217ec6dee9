//! The token and user lifecycle end to end, with real processes: a whole
//! run logged in through Chromium, a run outliving many 5 s tokens, and a
//! controller killed with SIGKILL whose users `controller cleanup` removes.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn a_run_logged_in_through_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut c = Proc::spawn(
        "controller",
        controller(&[
            "start",
            "--agents",
            "2",
            "--users",
            "4",
            "--duration",
            "2s",
            "--warmup",
            "500ms",
            "--login",
            "browser",
            "--login-concurrency",
            "2",
            "-o",
            out.to_str().unwrap(),
        ]),
    );
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    assert_healthy_report(&report, 4, 2);
    let auth = &report["auth"];
    assert_eq!(auth["login_method"], "browser", "{auth}");
    assert_eq!(auth["logins"], 4, "{auth}");
    assert_eq!(auth["login_failures"], 0, "{auth}");
    assert!(
        auth["login_latency"]["mean"].as_f64().unwrap() > 0.0,
        "{auth}"
    );
}

#[test]
fn five_second_tokens_are_refreshed_through_a_20s_run() {
    let mock = MockTarget::start_with(&["--token-ttl", "5s"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let n_users = 4u64;
    let cmd = mock.controller_start(
        "ttl",
        &dir.path().join("state"),
        &[
            "--agents",
            "2",
            "--users",
            &n_users.to_string(),
            "--duration",
            "20s",
            "--warmup",
            "1s",
            "--think-time",
            "20ms",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let mut c = Proc::spawn("controller", cmd);
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    assert_healthy_report(&report, n_users as usize, 2);
    let auth = &report["auth"];
    assert_eq!(auth["auth_failures"], 0, "{auth}");
    assert_eq!(auth["refresh_failures"], 0, "{auth}");
    // Each token lives 5 s and is renewed 2.5 s before it expires: over
    // 21 s that is about 8 refreshes per user; ask for half.
    let refreshes = auth["refreshes"].as_u64().unwrap();
    assert!(refreshes >= 4 * n_users, "{auth}");
    assert_eq!(
        report["summary"]["failed_operations"], 0,
        "{}",
        report["summary"]
    );
}

#[test]
fn cleanup_removes_the_users_of_a_killed_controller() {
    let mock = MockTarget::start();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let state = state_dir.to_str().unwrap();
    let prefix = "crash";
    let cmd = mock.controller_start(
        prefix,
        &state_dir,
        &[
            "--agents",
            "2",
            "--users",
            "6",
            "--duration",
            "60s",
            "--warmup",
            "500ms",
        ],
    );
    let mut c = Proc::spawn("controller", cmd);
    c.wait_for_line("run started", Duration::from_secs(60));
    c.kill();
    let name_prefix = format!("{prefix}_user_");
    assert_eq!(
        mock.list_users(&name_prefix).len(),
        6,
        "a killed controller cannot delete its users"
    );

    let cleanup = |extra: &[&str]| {
        let mut args = vec!["cleanup", "--prefix", prefix, "--state-dir", state];
        args.extend_from_slice(extra);
        let mut cmd = controller(&args);
        cmd.env("NEXTCLOUD_ADMIN_PASSWORD", &mock.admin_password);
        let mut p = Proc::spawn("controller cleanup", cmd);
        let status = p.wait(Duration::from_secs(30));
        assert!(status.success(), "exit {status}\nstderr:\n{}", p.stderr());
        p.stdout()
    };
    // By prefix through the provider, and the journal: the same 6 users.
    let dry = cleanup(&["--dry-run", "--nextcloud-url", &mock.admin_url]);
    assert!(dry.contains("6 users would be deleted"), "{dry}");
    assert_eq!(mock.list_users(&name_prefix).len(), 6, "--dry-run deleted");
    // The journal alone knows where the users live.
    let done = cleanup(&[]);
    assert!(done.contains("deleted 6 users"), "{done}");
    assert_eq!(mock.list_users(&name_prefix), Vec::<String>::new());
    let journal = std::fs::read_to_string(dir.path().join("state/users.jsonl")).unwrap();
    assert_eq!(journal, "", "the journal still lists users");
    // With nothing journaled and no --nextcloud-url, the error says what to pass.
    let mut cmd = controller(&["cleanup", "--prefix", prefix, "--state-dir", state]);
    cmd.env("NEXTCLOUD_ADMIN_PASSWORD", &mock.admin_password);
    let mut p = Proc::spawn("controller cleanup", cmd);
    assert_eq!(p.wait(Duration::from_secs(30)).code(), Some(1));
    assert!(p.stderr().contains("--nextcloud-url"), "{}", p.stderr());
}

#[test]
fn static_users_log_in_and_are_left_alone() {
    let users = [
        ("alice", "pa"),
        ("bob", "pb"),
        ("carol", "pc"),
        ("dave", "pd"),
    ];
    let flags: Vec<String> = users.iter().map(|(u, p)| format!("{u}:{p}")).collect();
    let mut args = Vec::new();
    for f in &flags {
        args.extend(["--user", f.as_str()]);
    }
    let mock = MockTarget::start_with(&args);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let csv = dir.path().join("users.csv");
    let mut text = String::from("username,password\n# existing accounts\n");
    for (u, p) in users {
        text.push_str(&format!("{u},{p}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let mut c = Proc::spawn(
        "controller",
        controller(&[
            "start",
            "--url",
            &mock.mcp_url,
            "--provider",
            "static",
            "--users-file",
            csv.to_str().unwrap(),
            "--agents",
            "2",
            "--users",
            "4",
            "--duration",
            "2s",
            "--warmup",
            "500ms",
            "--login",
            "password",
            "-o",
            out.to_str().unwrap(),
        ]),
    );
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    assert_healthy_report(&report, 4, 2);
    for (u, _) in users {
        assert!(
            report["users"].get(u).is_some(),
            "{u} missing from the report"
        );
        assert_eq!(mock.list_users(u), vec![u.to_owned()], "{u} was deleted");
    }
    assert_eq!(report["auth"]["login_method"], "password");
    // No password reaches the report or the logs.
    let json = std::fs::read_to_string(&out).unwrap();
    for (_, p) in users {
        let needle = format!("\"{p}\"");
        assert!(!json.contains(&needle) && !c.stderr().contains(&needle));
    }
}
