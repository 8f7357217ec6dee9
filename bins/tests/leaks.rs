//! No secret leaks: a `-v --log-format json` run against a standalone mock
//! that records every secret it hands out (`--record-secrets`), with tokens
//! short-lived enough to be refreshed during the run. Every password, client
//! secret, access token and refresh token the mock issued, the admin
//! password and the cluster secret (read from a spawned agent's environment)
//! are searched for in stdout, stderr (the agents' too), the JSON report,
//! every file in the state directory and the argv of every spawned agent:
//! zero hits.

mod support;

use std::time::{Duration, Instant};

use support::{MockTarget, Proc, RUN_TIMEOUT, read_report};

/// `/proc/<pid>/<file>` of every process whose argv mentions `needle`.
fn procs_with_arg(needle: &str, file: &str) -> Vec<(u32, Vec<u8>)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(needle) {
            continue;
        }
        if let Ok(bytes) = std::fs::read(entry.path().join(file)) {
            found.push((pid, bytes));
        }
    }
    found
}

fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn no_secret_appears_in_any_output_file_or_argv() {
    let n_users = 4;
    let mock = MockTarget::start_with(&["--record-secrets", "--token-ttl", "4s"]);
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("run.json"), dir.path().join("state"));
    let mut cmd = mock.controller_start(
        "leaktest",
        &state,
        &[
            "--agents",
            "2",
            "--users",
            &n_users.to_string(),
            "--duration",
            "4s",
            "--warmup",
            "500ms",
            "-v",
            "--log-format",
            "json",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    cmd.env("RUST_LOG", "debug");
    let mut c = Proc::spawn("controller", cmd);
    let line = c.wait_for_line("listening for agents on", Duration::from_secs(30));
    let start = line.find("http").expect("URL in the listening line");
    let url: String = line[start..]
        .chars()
        .take_while(|ch| !ch.is_whitespace() && *ch != '"' && *ch != '\\')
        .collect();

    // The spawned agents' argv and environment, read while they run.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (argvs, environs) = loop {
        let argvs = procs_with_arg(&url, "cmdline");
        if argvs.len() >= 2 {
            break (argvs, procs_with_arg(&url, "environ"));
        }
        assert!(Instant::now() < deadline, "agents dialing {url} not found");
        std::thread::sleep(Duration::from_millis(50));
    };
    let environ = String::from_utf8_lossy(&environs[0].1).into_owned();
    let cluster_secret = environ
        .split('\0')
        .find_map(|kv| kv.strip_prefix("MCP_SWARM_CLUSTER_SECRET="))
        .expect("a spawned agent has the cluster secret in its environment")
        .to_owned();

    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    assert!(
        report["auth"]["refreshes"].as_u64().unwrap() > 0,
        "no refresh in {}",
        report["auth"]
    );

    let issued = mock.admin(reqwest::Method::GET, "/mock/issued-secrets");
    let mut secrets: Vec<(&str, String)> = Vec::new();
    for kind in [
        "passwords",
        "client_secrets",
        "access_tokens",
        "refresh_tokens",
    ] {
        let found = strings(&issued, kind);
        let least = if kind == "client_secrets" { 0 } else { n_users };
        assert!(
            found.len() >= least,
            "{kind}: only {} recorded",
            found.len()
        );
        secrets.extend(found.into_iter().map(|s| (kind, s)));
    }
    secrets.push(("cluster secret", cluster_secret));
    secrets.push(("admin password", mock.admin_password.clone()));

    let mut haystacks: Vec<(String, String)> = vec![
        ("stdout".into(), c.stdout()),
        ("stderr".into(), c.stderr()),
        ("report".into(), std::fs::read_to_string(&out).unwrap()),
    ];
    let mut files = vec![state.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            haystacks.push((path.display().to_string(), text));
        }
    }
    for (pid, argv) in &argvs {
        haystacks.push((
            format!("argv of {pid}"),
            String::from_utf8_lossy(argv).replace('\0', " "),
        ));
    }
    assert!(
        c.stderr().contains("\"level\":\"DEBUG\""),
        "the run did not log at debug level"
    );

    let mut hits = Vec::new();
    for (kind, secret) in &secrets {
        assert!(
            secret.len() >= 8,
            "{kind} too short to search for: {secret:?}"
        );
        for (name, text) in &haystacks {
            if text.contains(secret.as_str()) {
                hits.push(format!("a {kind} in {name}"));
            }
        }
    }
    assert!(hits.is_empty(), "secrets leaked: {hits:?}");
}
