//! Whole runs against a standalone mock target acting as identity providers
//! we did not write (only `client_secret_post`, a single "Continue" consent
//! button) with every login method that needs a client secret or a consent
//! form, and one mixed-workload run per MCP protocol version (2026-07-28
//! without any `Mcp-Session-Id` on the wire).

mod support;

use support::*;

/// The mock's HTML forms (not Nextcloud's pages, its default) with one "Continue" button.
const POST_ONLY_CONTINUE: [&str; 6] = [
    "--login-pages",
    "forms",
    "--token-auth-methods",
    "client_secret_post",
    "--consent-label",
    "Continue",
];

/// A short `controller start` against `mock`; its report.
fn run(mock: &MockTarget, prefix: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut all = vec![
        "--agents",
        "1",
        "--users",
        "2",
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "-o",
    ];
    all.push(out.to_str().unwrap());
    all.extend_from_slice(args);
    let mut cmd = mock.controller_start(prefix, &dir.path().join("state"), &all);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut c = Proc::spawn("controller", cmd);
    let status = c.wait(RUN_TIMEOUT);
    assert!(
        status.success(),
        "{args:?}: exit {status}\nstderr:\n{}",
        c.stderr()
    );
    for (_, v) in env {
        assert!(!c.stderr().contains(v), "a secret reached the log");
    }
    read_report(&out)
}

fn assert_no_auth_failures(report: &serde_json::Value, what: &str) {
    let auth = &report["auth"];
    assert_eq!(auth["login_failures"], 0, "{what}: {auth}");
    assert_eq!(auth["auth_failures"], 0, "{what}: {auth}");
    assert_eq!(auth["logins"], 2, "{what}: {auth}");
}

#[test]
fn every_secret_login_against_a_post_only_as_with_a_continue_button() {
    let mock = MockTarget::start_with(&POST_ONLY_CONTINUE);

    let report = run(&mock, "direct", &["--login", "direct"], &[]);
    assert_no_auth_failures(&report, "direct");
    assert_healthy_report(&report, 2, 1);

    let report = run(
        &mock,
        "cc",
        &["--login", "client-credentials", "--workload", "baseline"],
        &[],
    );
    assert_no_auth_failures(&report, "client-credentials");

    // A client registered in advance, as an administrator would: its id on
    // the command line, its secret in the environment.
    let issuer = mock.mcp_url.trim_end_matches("/mcp").to_owned();
    let registered: serde_json::Value = block_on(async {
        reqwest::Client::new()
            .post(format!("{issuer}/register"))
            .json(&serde_json::json!({
                "redirect_uris": ["http://127.0.0.1:53682/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "client_secret_post",
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let id = registered["client_id"].as_str().unwrap();
    let secret = registered["client_secret"].as_str().unwrap();
    let report = run(
        &mock,
        "given",
        &["--login", "direct", "--client-id", id],
        &[("MCP_SWARM_CLIENT_SECRET", secret)],
    );
    assert_no_auth_failures(&report, "--client-id");
    assert_healthy_report(&report, 2, 1);
}

/// GET /mock/stats of a standalone mock.
fn wire_stats(mock: &MockTarget) -> serde_json::Value {
    mock.admin(reqwest::Method::GET, "/mock/stats")
}

#[test]
fn a_mixed_run_in_every_mcp_version() {
    for (flag, expected) in [
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2026-07-28", "2026-07-28"),
        ("auto", "2026-07-28"),
    ] {
        let mock = MockTarget::start();
        let report = run(&mock, "ver", &["--mcp-version", flag], &[]);
        assert_healthy_report(&report, 2, 1);
        assert_eq!(
            report["summary"]["failed_operations"], 0,
            "{flag}: {}",
            report["summary"]
        );
        let mcp = &report["mcp"];
        assert_eq!(mcp["protocol_version"], expected, "{flag}: {mcp}");
        assert_eq!(
            mcp["sessions_by_protocol_version"][expected], 2,
            "{flag}: {mcp}"
        );
        let wire = wire_stats(&mock);
        let calls = wire["mcp_requests_by_protocol_version"][expected]
            .as_u64()
            .unwrap_or(0);
        assert!(calls > 10, "{flag}: {wire}");
        let with_session = wire["mcp_requests_with_session_id"].as_u64().unwrap();
        if expected == "2026-07-28" {
            assert_eq!(with_session, 0, "{flag}: {wire}");
        } else {
            assert!(with_session > 10, "{flag}: {wire}");
        }
    }
}

#[test]
fn auto_falls_back_to_initialize_on_a_server_without_2026_07_28() {
    let mock = MockTarget::start_with(&["--mcp-versions", "2025-06-18,2025-11-25"]);
    let report = run(&mock, "fallback", &[], &[]);
    assert_healthy_report(&report, 2, 1);
    assert_eq!(
        report["mcp"]["protocol_version"], "2025-11-25",
        "{}",
        report["mcp"]
    );
}
