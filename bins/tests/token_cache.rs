//! `--token-cache` end to end: a second run of the same users against the
//! same target logs nobody in (tokens reused, or refreshed when close to
//! expiry), the cache holds no secret in clear, and a cache sealed under
//! another key is ignored with a note.

mod support;

use std::path::Path;

use serde_json::Value;
use support::*;

const USERS: [(&str, &str); 3] = [
    ("cache_a", "pw-cache-a-1"),
    ("cache_b", "pw-cache-b-2"),
    ("cache_c", "pw-cache-c-3"),
];
const KEY: &str = "c2l4dGVlbiBieXRlcyBvZiBrZXkgYW5kIHNpeHRlZW4="; // 32 bytes
const OTHER_KEY: &str = "b3RoZXIgdGhpcnR5LXR3byBieXRlcyBvZiBrZXkhISE="; // 32 bytes

fn mock(extra: &[&str]) -> MockTarget {
    let mut args: Vec<String> = vec!["--record-secrets".into()];
    for (u, p) in USERS {
        args.push("--user".into());
        args.push(format!("{u}:{p}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    MockTarget::start_with(&args)
}

/// One short run of the three static users with `--token-cache`; the
/// report, and stderr.
fn run(mock: &MockTarget, dir: &Path, key: &str, name: &str) -> (Value, String) {
    let users_file = dir.join("users.csv");
    let csv: String = USERS.iter().map(|(u, p)| format!("{u},{p}\n")).collect();
    std::fs::write(&users_file, csv).unwrap();
    let out = dir.join(format!("{name}.json"));
    let mut cmd = controller(&[
        "start",
        "--url",
        &mock.mcp_url,
        "--provider",
        "static",
        "--users-file",
        users_file.to_str().unwrap(),
        "--users",
        "3",
        "--login",
        "direct",
        "--token-cache",
        "--state-dir",
        dir.join("state").to_str().unwrap(),
        "--agents",
        "1",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "-o",
        out.to_str().unwrap(),
    ]);
    cmd.env("MCP_SWARM_TOKEN_CACHE_KEY", key);
    let mut c = Proc::spawn(name, cmd);
    let status = c.wait(RUN_TIMEOUT);
    let stderr = c.stderr();
    assert!(status.success(), "{name}: exit {status}\n{stderr}");
    (read_report(&out), stderr)
}

/// What the mock issued so far (`--record-secrets`).
fn issued(mock: &MockTarget) -> Value {
    mock.admin(reqwest::Method::GET, "/mock/issued-secrets")
}

fn count(v: &Value, kind: &str) -> usize {
    v[kind].as_array().map_or(0, Vec::len)
}

#[test]
fn a_second_run_logs_nobody_in_and_another_key_is_ignored() {
    let mock = mock(&[]);
    let dir = tempfile::tempdir().unwrap();

    let (first, _) = run(&mock, dir.path(), KEY, "first");
    assert_eq!(first["auth"]["logins"], 3, "{}", first["auth"]);
    assert_eq!(first["auth"]["tokens_from_cache"], 0);
    let after_first = issued(&mock);
    let cache = std::fs::read_to_string(dir.path().join("state/token-cache.json")).unwrap();
    let secrets: Vec<String> = [
        "access_tokens",
        "refresh_tokens",
        "client_secrets",
        "passwords",
    ]
    .iter()
    .flat_map(|k| after_first[k].as_array().cloned().unwrap_or_default())
    .filter_map(|s| s.as_str().map(str::to_owned))
    .collect();
    assert!(secrets.len() >= 6, "{after_first}");
    for s in &secrets {
        assert!(
            !cache.contains(s.as_str()),
            "a secret in the cache file in clear"
        );
    }

    let (second, stderr) = run(&mock, dir.path(), KEY, "second");
    assert_eq!(second["auth"]["logins"], 0, "{}\n{stderr}", second["auth"]);
    assert_eq!(second["auth"]["tokens_from_cache"], 3);
    assert_eq!(second["summary"]["failed_operations"], 0);
    assert!(second["summary"]["total_operations"].as_u64().unwrap() > 0);
    let after_second = issued(&mock);
    for kind in ["access_tokens", "client_secrets"] {
        assert_eq!(
            count(&after_second, kind),
            count(&after_first, kind),
            "{kind}: the second run was issued new ones"
        );
    }

    let (third, stderr) = run(&mock, dir.path(), OTHER_KEY, "third");
    assert_eq!(third["auth"]["logins"], 3, "{}", third["auth"]);
    assert_eq!(third["auth"]["tokens_from_cache"], 0);
    assert!(
        stderr.contains("token cache ignored") && stderr.contains("does not open"),
        "no note about the key:\n{stderr}"
    );
}

/// Tokens with less left than the refresh margin are refreshed, not reused
/// and not replaced by a login.
#[test]
fn cached_tokens_close_to_expiry_are_refreshed() {
    let mock = mock(&["--token-ttl", "30s"]);
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = run(&mock, dir.path(), KEY, "first");
    assert_eq!(first["auth"]["logins"], 3);
    let before = count(&issued(&mock), "access_tokens");
    let (second, stderr) = run(&mock, dir.path(), KEY, "second");
    assert_eq!(second["auth"]["logins"], 0, "{}\n{stderr}", second["auth"]);
    assert_eq!(second["auth"]["tokens_from_cache"], 3);
    assert_eq!(second["summary"]["failed_operations"], 0);
    assert!(
        count(&issued(&mock), "access_tokens") >= before + 3,
        "no refreshed tokens issued"
    );
}
