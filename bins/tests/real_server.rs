//! The real Nextcloud MCP server (nextcloud-mcp-server, pinned, from PyPI)
//! beside our mock: the mock's MCP server offers the real tools with the
//! real schemas. Skipped, saying why, where the real server is not
//! installed (`scripts/nextcloud-mcp-server.sh install`); CI installs it and
//! sets `MCP_SWARM_REQUIRE_REAL_SERVER`, so there it always runs.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use support::real_server::{
    McpClient, RealServer, WebUser, executable, grant_login_flow, query_param,
};
use support::{MockTarget, block_on};

/// The scopes every Nextcloud tool our mock offers needs between them.
const TOOL_SCOPES: &str = "openid notes.read notes.write files.read files.write sharing.write";

/// The JSON types a property schema admits (`type`, or each `anyOf` arm's).
fn types(schema: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    match &schema["type"] {
        Value::String(t) => {
            out.insert(t.clone());
        }
        Value::Array(ts) => out.extend(ts.iter().filter_map(|t| t.as_str().map(str::to_owned))),
        _ => {}
    }
    if let Some(arms) = schema["anyOf"].as_array() {
        for arm in arms {
            out.extend(types(arm));
        }
    }
    out
}

/// What must agree between the two servers for one tool: its input
/// properties with their types, its required arguments, and the names of
/// its output schema's properties.
fn shape(tool: &Value) -> Value {
    let props: BTreeMap<String, BTreeSet<String>> = tool["inputSchema"]["properties"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), types(v))).collect())
        .unwrap_or_default();
    let mut required: Vec<String> = tool["inputSchema"]["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    required.sort();
    let output: BTreeSet<String> = tool["outputSchema"]["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    json!({ "properties": props, "required": required, "output": output })
}

/// A token from the mock for `user` with the tools' scopes, by the
/// password grant of a client registered for it.
async fn mock_token(mock: &MockTarget, user: &str, password: &str) -> String {
    let http = reqwest::Client::new();
    let reg: Value = http
        .post(format!("{}/register", mock.admin_url))
        .json(&json!({
            "client_name": "real-server-test",
            "redirect_uris": ["http://127.0.0.1/cb"],
            "grant_types": ["password"],
            "token_endpoint_auth_method": "none",
            "scope": TOOL_SCOPES,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = reg["client_id"]
        .as_str()
        .unwrap_or_else(|| panic!("DCR: {reg}"));
    let token: Value = http
        .post(format!("{}/token", mock.admin_url))
        .form(&[
            ("grant_type", "password"),
            ("client_id", client_id),
            ("username", user),
            ("password", password),
            ("scope", TOOL_SCOPES),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("token: {token}"))
        .to_owned()
}

fn create_user(mock: &MockTarget, user: &str, password: &str) {
    block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("{}/ocs/v2.php/cloud/users", mock.admin_url))
            .basic_auth("admin", Some(&mock.admin_password))
            .header("OCS-APIRequest", "true")
            .header("Accept", "application/json")
            .form(&[("userid", user), ("password", password)])
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "create {user}: {}",
            resp.status()
        );
    });
}

#[test]
fn the_mocks_tools_are_the_real_servers_tools() {
    let Some(exe) = executable() else { return };
    // BasicAuth mode lists every tool without a Nextcloud behind it.
    let real = RealServer::start_basic(&exe, "http://127.0.0.1:9", "nobody", "unused");
    let real_tools = block_on(async {
        let mut c = McpClient::connect(&real.mcp_url, None).await.unwrap();
        c.list_tools().await.unwrap()
    });
    let real_by_name: BTreeMap<&str, &Value> = real_tools
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    assert!(
        real_by_name.len() > 100,
        "the real server lists {} tools",
        real_by_name.len()
    );

    let mock = MockTarget::start();
    create_user(&mock, "toolcheck", "toolcheck-pw-1");
    let mock_tools = block_on(async {
        let token = mock_token(&mock, "toolcheck", "toolcheck-pw-1").await;
        let mut c = McpClient::connect(&mock.mcp_url, Some(&token))
            .await
            .unwrap();
        c.list_tools().await.unwrap()
    });
    assert!(
        mock_tools.len() >= 17,
        "the mock lists {} tools",
        mock_tools.len()
    );
    let mut mismatches = Vec::new();
    for tool in &mock_tools {
        let name = tool["name"].as_str().unwrap();
        let Some(real_tool) = real_by_name.get(name) else {
            mismatches.push(format!("{name}: the real server has no such tool"));
            continue;
        };
        let (want, got) = (shape(real_tool), shape(tool));
        if want != got {
            mismatches.push(format!("{name}:\n  real {want}\n  mock {got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Where our OAuth client says it listens; never contacted: the login stops
/// at the redirect to it and reads the code off the `Location`.
const REDIRECT: &str = "http://127.0.0.1:1/callback";

/// The real server's OAuth metadata and a client registered at it once.
struct RealAuth {
    authorize: String,
    token: String,
    client_id: String,
    client_secret: Option<String>,
}

/// As a third-party client discovers it: the 401's resource metadata, the
/// authorization server's metadata, then DCR at its registration endpoint.
async fn discover_and_register(real: &RealServer) -> RealAuth {
    let http = reqwest::Client::new();
    let r = http
        .post(&real.mcp_url)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let prm_url = challenge
        .split("resource_metadata=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no resource_metadata in {challenge}"))
        .to_owned();
    let prm: Value = http
        .get(&prm_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scopes: Vec<&str> = prm["scopes_supported"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for s in TOOL_SCOPES.split(' ') {
        assert!(scopes.contains(&s), "the real server offers {s}: {prm}");
    }
    let issuer = prm["authorization_servers"][0]
        .as_str()
        .unwrap()
        .trim_end_matches('/');
    let asm: Value = http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reg = http
        .post(asm["registration_endpoint"].as_str().unwrap())
        .json(&json!({
            "client_name": "mcp-swarm e2e",
            "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "scope": TOOL_SCOPES,
        }))
        .send()
        .await
        .unwrap();
    assert!(
        reg.status().is_success(),
        "DCR at the real server: {}",
        reg.status()
    );
    let reg: Value = reg.json().await.unwrap();
    RealAuth {
        authorize: asm["authorization_endpoint"].as_str().unwrap().to_owned(),
        token: asm["token_endpoint"].as_str().unwrap().to_owned(),
        client_id: reg["client_id"].as_str().unwrap().to_owned(),
        client_secret: reg["client_secret"].as_str().map(str::to_owned),
    }
}

/// Authorization code with PKCE through the real server's authorize, the
/// mock's Nextcloud login and consent pages, the real server's callback,
/// and the code exchanged at the real server's token endpoint.
async fn log_in_through_the_real_server(
    auth: &RealAuth,
    real: &RealServer,
    user: &str,
    password: &str,
) -> String {
    let (verifier, challenge) = support::real_server::pkce();
    let mut url = url::Url::parse(&auth.authorize).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &auth.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", TOOL_SCOPES)
        .append_pair("state", "s-1")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &real.mcp_url);
    let mut web = WebUser::default();
    let login = web.follow(url.as_str(), Some(REDIRECT)).await;
    assert_eq!(login.status, 200, "the Nextcloud login page: {}", login.url);
    let mut page = web.log_in(&login, user, password, Some(REDIRECT)).await;
    if page
        .location
        .as_deref()
        .is_none_or(|l| !l.starts_with(REDIRECT))
    {
        page = support::real_server::consent(&mut web, &page, REDIRECT).await;
    }
    let back = page.location.expect("a redirect to our client");
    assert_eq!(
        query_param(&back, "state").as_deref(),
        Some("s-1"),
        "{back}"
    );
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", REDIRECT.to_owned()),
        ("code_verifier", verifier),
        ("client_id", auth.client_id.clone()),
    ];
    if let Some(s) = &auth.client_secret {
        form.push(("client_secret", s.clone()));
    }
    let r = reqwest::Client::new()
        .post(&auth.token)
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "token at the real server: {status}");
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token"))
        .to_owned()
}

/// `nc_auth_provision_access`, the login URL opened, logged into and
/// granted, then `nc_auth_check_status` until provisioned.
async fn provision(c: &mut McpClient, user: &str, password: &str) {
    let r = c.call("nc_auth_provision_access", json!({})).await.unwrap();
    assert!(!r.is_error, "provision {user}: {}", r.text);
    let login_url = r.json()["login_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no login_url for {user}: {}", r.text))
        .to_owned();
    grant_login_flow(&login_url, user, password).await;
    for _ in 0..60 {
        let r = c.call("nc_auth_check_status", json!({})).await.unwrap();
        if r.json()["status"] == "provisioned" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("{user} was not provisioned within 30 s");
}

/// A note and a file shared from `owner` to `reader`, each read by the
/// reader at its share target: every step's name and result, each checked.
async fn share_round(
    owner: &mut McpClient,
    reader: &mut McpClient,
    reader_name: &str,
    tag: &str,
) -> Vec<(&'static str, Value)> {
    let mut steps = Vec::new();
    let mut call = async |c: &mut McpClient, step: &'static str, tool: &str, args: Value| {
        let r = c
            .call(tool, args)
            .await
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        assert!(!r.is_error, "{step} ({tool}): {}", r.text);
        let v = r.json();
        steps.push((step, v.clone()));
        v
    };
    let title = format!("e2e-{tag}");
    let note = call(
        owner,
        "create_note",
        "nc_notes_create_note",
        json!({"title": title, "content": format!("note {tag}"), "category": "loadtest"}),
    )
    .await;
    let note_id = note["id"].clone();
    let share = call(owner, "share_note", "nc_share_create",
        json!({"path": format!("/Notes/loadtest/{}.md", note["title"].as_str().unwrap()), "share_with": reader_name, "share_type": 0, "permissions": 1})).await;
    let target = share["file_target"].as_str().unwrap().to_owned();
    let listed = call(
        reader,
        "list_shared_with_me",
        "nc_share_list",
        json!({"shared_with_me": true}),
    )
    .await;
    assert!(listed.to_string().contains(&title), "{listed}");
    let read = call(
        reader,
        "read_shared_note",
        "nc_webdav_read_file",
        json!({"path": target}),
    )
    .await;
    assert_eq!(read["content"], format!("note {tag}"));
    let path = format!("/e2e-{tag}.txt");
    call(
        owner,
        "write_file",
        "nc_webdav_write_file",
        json!({"path": path, "content": format!("file {tag}"), "content_type": "text/plain"}),
    )
    .await;
    let share = call(
        owner,
        "share_file",
        "nc_share_create",
        json!({"path": path, "share_with": reader_name, "share_type": 0, "permissions": 1}),
    )
    .await;
    let target = share["file_target"].as_str().unwrap().to_owned();
    let read = call(
        reader,
        "read_shared_file",
        "nc_webdav_read_file",
        json!({"path": target}),
    )
    .await;
    assert_eq!(read["content"], format!("file {tag}"));
    call(
        owner,
        "get_note",
        "nc_notes_get_note",
        json!({"note_id": note_id}),
    )
    .await;
    call(
        owner,
        "delete_note",
        "nc_notes_delete_note",
        json!({"note_id": note_id}),
    )
    .await;
    steps
}

/// The top-level keys of a result, or its JSON type when it is no object.
fn keys(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => m.keys().cloned().collect(),
        Value::Array(_) => vec!["<array>".into()],
        other => vec![format!("<{other}>")],
    }
}

#[test]
fn two_users_share_through_the_real_server_in_front_of_the_mock() {
    let Some(exe) = executable() else { return };
    let mock = MockTarget::start_with(&["--login-pages", "nextcloud"]);
    let users = [("e2e_alice", "e2e-alice-pw-1"), ("e2e_bob", "e2e-bob-pw-2")];
    for (u, p) in users {
        create_user(&mock, u, p);
    }
    let real = RealServer::start_oauth(&exe, &mock.admin_url);
    let (real_steps, mock_steps) = block_on(async {
        let auth = discover_and_register(&real).await;
        let mut clients = Vec::new();
        for (u, p) in users {
            let token = log_in_through_the_real_server(&auth, &real, u, p).await;
            let mut c = McpClient::connect(&real.mcp_url, Some(&token))
                .await
                .unwrap();
            provision(&mut c, u, p).await;
            clients.push(c);
        }
        let (a, b) = clients.split_at_mut(1);
        let real_steps = share_round(&mut a[0], &mut b[0], users[1].0, "real").await;

        // The same calls against the mock's own MCP server.
        let mut mine = Vec::new();
        for (u, p) in users {
            let token = mock_token(&mock, u, p).await;
            mine.push(
                McpClient::connect(&mock.mcp_url, Some(&token))
                    .await
                    .unwrap(),
            );
        }
        let (a, b) = mine.split_at_mut(1);
        let mock_steps = share_round(&mut a[0], &mut b[0], users[1].0, "mock").await;
        (real_steps, mock_steps)
    });
    eprintln!(
        "through the real server: {}",
        serde_json::to_string(&real_steps).unwrap()
    );
    assert_eq!(real_steps.len(), mock_steps.len());
    let mut diffs = Vec::new();
    for ((step, real), (_, mock)) in real_steps.iter().zip(&mock_steps) {
        if keys(real) != keys(mock) {
            diffs.push(format!(
                "{step}:\n  real {:?}\n  mock {:?}",
                keys(real),
                keys(mock)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "results of different shapes:\n{}",
        diffs.join("\n")
    );
}

/// `controller start` against the real server in front of `mock`, as a
/// user runs it: its users created on the mock (as Nextcloud) through OCS,
/// logged in through the real server's authorization server, provisioned,
/// the load, the users deleted. The JSON report.
fn controller_against_real(
    mock: &MockTarget,
    real: &RealServer,
    prefix: &str,
    args: &[&str],
) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut cmd = support::controller(&["start"]);
    cmd.args([
        "--url",
        &real.mcp_url,
        "--provider",
        "nextcloud",
        "--nextcloud-url",
        &mock.admin_url,
        "--user-prefix",
        prefix,
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--duration",
        "4s",
        "--warmup",
        "1s",
        "-o",
        out.to_str().unwrap(),
    ])
    .args(args)
    .env("NEXTCLOUD_ADMIN_PASSWORD", &mock.admin_password);
    let mut c = support::Proc::spawn("controller", cmd);
    let status = c.wait(support::RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = support::read_report(&out);
    assert!(
        mock.list_users(prefix).is_empty(),
        "{prefix} users left behind"
    );
    report
}

fn assert_clean_run(report: &Value, workload: &str) {
    let summary = &report["summary"];
    assert_eq!(
        summary["failed_operations"], 0,
        "{workload}: {}",
        report["errors"]
    );
    assert!(
        summary["total_operations"].as_u64().unwrap() > 0,
        "{workload}: nothing ran"
    );
    assert_eq!(report["auth"]["logins"], 12);
    assert_eq!(
        report["auth"]["provisioning"]["provisioned"], 12,
        "{}",
        report["auth"]
    );
    assert_eq!(report["agents"].as_array().unwrap().len(), 3);
    for (name, w) in report["workflows"].as_object().unwrap() {
        assert_eq!(w["failed_executions"], 0, "{workload}/{name}");
    }
}

/// The job our users hire us for, in CI: 12 users over 3 agents on the
/// real server, logged in through its own authorization server (the mock's
/// Nextcloud login and consent pages behind it), each provisioned through
/// Login Flow v2, the built-in workloads with no failed operation and
/// conflicts reported apart; on the protocol `auto` picks and on
/// 2025-11-25 (sessions, where the server could ask us things mid-call).
#[test]
fn the_workloads_run_through_the_real_server() {
    let Some(exe) = executable() else { return };
    let mock = MockTarget::start_with(&["--login-pages", "nextcloud"]);
    let real = RealServer::start_oauth(&exe, &mock.admin_url);
    let mixed = controller_against_real(
        &mock,
        &real,
        "realmixed",
        &[
            "--agents",
            "3",
            "--users",
            "12",
            "--workload",
            "mixed",
            "--mcp-version",
            "auto",
        ],
    );
    assert_clean_run(&mixed, "mixed");
    assert_eq!(mixed["mcp"]["protocol_version"], "2026-07-28");
    let sharing = controller_against_real(
        &mock,
        &real,
        "realsharing",
        &[
            "--agents",
            "3",
            "--users",
            "12",
            "--workload",
            "sharing",
            "--mcp-version",
            "2025-11-25",
        ],
    );
    assert_clean_run(&sharing, "sharing");
    assert_eq!(sharing["mcp"]["protocol_version"], "2025-11-25");
}

/// Provisioning that cannot succeed (the users' passwords are wrong, their
/// tokens were got elsewhere) stops the run before any load, naming the
/// user, the step and the page.
#[test]
fn impossible_provisioning_stops_before_load_naming_user_step_and_page() {
    let Some(exe) = executable() else { return };
    let mock = MockTarget::start_with(&["--login-pages", "nextcloud"]);
    let users = [("wrongpw_1", "right-pw-111"), ("wrongpw_2", "right-pw-222")];
    for (u, p) in users {
        create_user(&mock, u, p);
    }
    let real = RealServer::start_oauth(&exe, &mock.admin_url);
    let tokens = block_on(async {
        let auth = discover_and_register(&real).await;
        let mut tokens = serde_json::Map::new();
        for (u, p) in users {
            let t = log_in_through_the_real_server(&auth, &real, u, p).await;
            tokens.insert(u.to_owned(), json!({ "access_token": t }));
        }
        Value::Object(tokens)
    });
    let dir = tempfile::tempdir().unwrap();
    let tokens_file = dir.path().join("tokens.json");
    std::fs::write(&tokens_file, tokens.to_string()).unwrap();
    let users_file = dir.path().join("users.csv");
    std::fs::write(
        &users_file,
        "wrongpw_1,not-the-password\nwrongpw_2,not-the-password\n",
    )
    .unwrap();
    let mut c = support::Proc::spawn(
        "controller",
        support::controller(&[
            "start",
            "--url",
            &real.mcp_url,
            "--provider",
            "static",
            "--users-file",
            users_file.to_str().unwrap(),
            "--users",
            "2",
            "--login",
            "tokens-file",
            "--tokens-file",
            tokens_file.to_str().unwrap(),
            "--agents",
            "1",
            "--duration",
            "3s",
            "--state-dir",
            dir.path().to_str().unwrap(),
        ]),
    );
    let status = c.wait(support::RUN_TIMEOUT);
    assert!(!status.success());
    let err = c.stderr();
    for needle in [
        "provisioning user wrongpw_",
        "step `visit` (nextcloud_login_flow)",
        "/index.php/login",
        "refused the password for user wrongpw_",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
    assert!(
        !err.contains("not-the-password"),
        "the password leaked:\n{err}"
    );
    assert!(!err.contains("run started"), "the load started:\n{err}");
}
