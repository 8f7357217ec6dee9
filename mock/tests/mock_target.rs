//! Integration tests of the mock target over real HTTP: discovery and login as a third-party
//! client, tools as two users, WebDAV files, scope and session checks, faults, the admin API.

mod common;

use common::*;
use mock::MockConfig;
use serde_json::{Value, json};

fn config() -> MockConfig {
    MockConfig {
        users: users(),
        consent: true,
        ..MockConfig::default()
    }
}

fn resource_metadata_url(challenge: &str) -> String {
    let start = challenge
        .find("resource_metadata=\"")
        .expect("resource_metadata")
        + 19;
    challenge[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn discovery_login_and_shared_notes_between_two_users() {
    let h = start(config()).await;

    // Discovery, as a third-party client does it.
    let (status, challenge) = h.raw_initialize(None).await;
    assert_eq!(status, 401);
    let prm_url = resource_metadata_url(&challenge.expect("WWW-Authenticate"));
    let prm: Value = within(h.http.get(&prm_url).send())
        .await
        .expect("prm")
        .json()
        .await
        .expect("json");
    assert_eq!(prm["resource"], h.target.mcp_url.as_str());
    let as_url = prm["authorization_servers"][0]
        .as_str()
        .expect("AS")
        .to_owned();
    let meta: Value = within(
        h.http
            .get(format!("{as_url}/.well-known/oauth-authorization-server"))
            .send(),
    )
    .await
    .expect("meta")
    .json()
    .await
    .expect("json");
    assert_eq!(meta["issuer"], h.target.issuer.as_str());
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        meta["authorization_response_iss_parameter_supported"],
        json!(true)
    );
    assert_eq!(meta["registration_endpoint"], h.url("/register").as_str());
    let client_id = h
        .register_public(&["authorization_code", "refresh_token"])
        .await;

    // A wrong password re-renders the form with an error.
    let p = pkce();
    let (_, _, html) = h
        .authorize(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", &p.challenge),
            ("code_challenge_method", "S256"),
        ])
        .await;
    let (status, _, html) = h
        .submit(&html, &[("user", "alice"), ("password", "nope")])
        .await;
    assert_eq!(status, 401);
    assert!(html.contains("Wrong login or password") && html.contains("name=\"csrf_token\""));

    let mut tokens = Vec::new();
    for (user, password) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        let p = pkce();
        let code = h.login_code(&client_id, user, password, &p).await;
        let (status, body) = h.exchange(&client_id, &code, &p.verifier).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert!(body["refresh_token"].is_string());
        tokens.push(body["access_token"].as_str().expect("token").to_owned());
    }
    let alice = h.mcp(&tokens[0]).await;
    let bob = h.mcp(&tokens[1]).await;
    let tools = within(alice.list_all_tools()).await.expect("tools");
    assert_eq!(tools.len(), 17);
    assert!(tools.iter().any(|t| t.name == "nc_notes_append_content"));

    let note = ok(
        &alice,
        "nc_notes_create_note",
        json!({"title": "Plan", "content": "v1", "category": "Work"}),
    )
    .await;
    let id = note["id"].as_u64().expect("id");
    assert_eq!(note["category"], "Work");
    let hidden = fails(&bob, "nc_notes_get_note", json!({"note_id": id})).await;
    assert!(hidden.starts_with("404 Not Found"), "{hidden}");
    let share = ok(
        &alice,
        "nc_share_create",
        json!({"path": "/Notes/Work/Plan.txt", "share_with": "bob", "permissions": 1}),
    )
    .await;
    assert_eq!(share["file_target"], "/Plan.txt");
    assert_eq!(share["item_type"], "file");
    let share_id = share["id"].as_u64().expect("share id");

    let seen = ok(
        &bob,
        "nc_notes_get_note",
        json!({"note_id": id.to_string()}),
    )
    .await;
    assert_eq!(seen["content"], "v1");
    let refused = fails(
        &bob,
        "nc_notes_update_note",
        json!({"note_id": id, "etag": seen["etag"], "content": "x"}),
    )
    .await;
    assert!(refused.starts_with("403 Forbidden"), "{refused}");
    let via_dav = ok(&bob, "nc_webdav_read_file", json!({"path": "/Plan.txt"})).await;
    assert_eq!(via_dav["content"], "v1");
    let with_me = ok(&bob, "nc_share_list", json!({"shared_with_me": true})).await;
    assert_eq!(with_me["shares"].as_array().map(Vec::len), Some(1));

    ok(
        &alice,
        "nc_share_update",
        json!({"share_id": share_id, "permissions": 3}),
    )
    .await;
    let appended = ok(
        &bob,
        "nc_notes_append_content",
        json!({"note_id": id, "content": "from bob"}),
    )
    .await;
    assert_eq!(appended["content"], "v1\nfrom bob");
    assert_ne!(appended["etag"], note["etag"]);
    let stale = fails(
        &alice,
        "nc_notes_update_note",
        json!({"note_id": id, "etag": note["etag"], "content": "v2"}),
    )
    .await;
    assert!(stale.starts_with("412 Precondition Failed"), "{stale}");
    let updated = ok(
        &alice,
        "nc_notes_update_note",
        json!({"note_id": id, "etag": appended["etag"], "content": "v2"}),
    )
    .await;
    assert_eq!(updated["content"], "v2");
    let found = ok(&alice, "nc_notes_search_notes", json!({"query": "plan"})).await;
    assert_eq!(found["results"][0]["id"], id);
    let missing = fails(
        &alice,
        "nc_share_create",
        json!({"path": "/Notes/Work/Plan.txt", "share_with": "carol"}),
    )
    .await;
    assert!(missing.starts_with("404"), "{missing}");
    let not_mine = fails(
        &bob,
        "nc_share_create",
        json!({"path": "/nothing.txt", "share_with": "alice"}),
    )
    .await;
    assert!(not_mine.starts_with("404"), "{not_mine}");

    // Malformed arguments: rmcp 3.11 reports them as tool errors (SEP-1303), with no status prefix.
    let malformed = fails(&alice, "nc_notes_get_note", json!({"note_id": "abc"})).await;
    assert!(
        malformed.starts_with("failed to deserialize parameters"),
        "{malformed}"
    );

    let _ = within(alice.cancel()).await;
    let _ = within(bob.cancel()).await;
}

#[tokio::test]
async fn files_tools_behave_like_webdav() {
    let h = start(config()).await;
    let client_id = h.register_public(&["password"]).await;
    let token = h.password_token(&client_id, "alice", "alice-pw").await;
    let alice = h
        .mcp(token["access_token"].as_str().unwrap_or_default())
        .await;

    ok(
        &alice,
        "nc_webdav_create_directory",
        json!({"path": "/Docs"}),
    )
    .await;
    let dup = fails(
        &alice,
        "nc_webdav_create_directory",
        json!({"path": "/Docs"}),
    )
    .await;
    assert!(dup.starts_with("405"), "{dup}");
    let w = ok(
        &alice,
        "nc_webdav_write_file",
        json!({"path": "/Docs/a.txt", "content": "hello"}),
    )
    .await;
    assert_eq!(w["status_code"], 201);
    let w2 = ok(
        &alice,
        "nc_webdav_write_file",
        json!({"path": "/Docs/a.txt", "content": "hi", "if_match": w["etag"]}),
    )
    .await;
    assert_eq!(w2["status_code"], 204);
    let stale = fails(
        &alice,
        "nc_webdav_write_file",
        json!({"path": "/Docs/a.txt", "content": "x", "if_match": w["etag"]}),
    )
    .await;
    assert!(stale.starts_with("412"), "{stale}");
    let read = ok(&alice, "nc_webdav_read_file", json!({"path": "Docs/a.txt"})).await;
    assert_eq!(
        (read["content"].as_str(), read["size"].as_u64()),
        (Some("hi"), Some(2))
    );
    let list = ok(&alice, "nc_webdav_list_directory", json!({})).await;
    assert_eq!(list["files"][0]["name"], "Docs");
    assert_eq!(list["files"][0]["is_directory"], true);
    ok(
        &alice,
        "nc_webdav_move_resource",
        json!({"source_path": "/Docs", "destination_path": "/Archive"}),
    )
    .await;
    let moved = ok(
        &alice,
        "nc_webdav_list_directory",
        json!({"path": "/Archive"}),
    )
    .await;
    assert_eq!(moved["files"][0]["path"], "/Archive/a.txt");
    ok(
        &alice,
        "nc_webdav_delete_resource",
        json!({"path": "/Archive"}),
    )
    .await;
    let gone = fails(
        &alice,
        "nc_webdav_read_file",
        json!({"path": "/Archive/a.txt"}),
    )
    .await;
    assert!(gone.starts_with("404"), "{gone}");
    let _ = within(alice.cancel()).await;
}

#[tokio::test]
async fn scope_sessions_and_faults() {
    let h = start(MockConfig {
        max_sessions: Some(2),
        error_rate: 1.0,
        ..config()
    })
    .await;
    let client_id = h.register_public(&["password"]).await;
    // Without mcp:tools → 403 insufficient_scope.
    let (_, narrow) = h
        .token_request(&[
            ("grant_type", "password"),
            ("client_id", &client_id),
            ("username", "alice"),
            ("password", "alice-pw"),
            ("scope", "openid"),
        ])
        .await;
    let (status, challenge) = h.raw_initialize(narrow["access_token"].as_str()).await;
    assert_eq!(status, 403);
    assert!(challenge.unwrap_or_default().contains("insufficient_scope"));

    let alice_token = h.password_token(&client_id, "alice", "alice-pw").await;
    let bob_token = h.password_token(&client_id, "bob", "bob-pw").await;
    let alice_token = alice_token["access_token"].as_str().unwrap_or_default();
    let alice = h.mcp(alice_token).await;
    // Every tools/call fails with 503 at error_rate 1.
    let args = json!({"query": ""})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let failed = within(alice.call_tool(
        rmcp::model::CallToolRequestParams::new("nc_notes_search_notes").with_arguments(args),
    ))
    .await;
    assert!(failed.is_err());
    assert!(h.target.injected_errors() >= 1);

    // Bob cannot use Alice's session.
    let session = {
        let response = within(
            h.http
                .post(&h.target.mcp_url)
                .bearer_auth(alice_token)
                .header("accept", "application/json, text/event-stream")
                .json(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                    "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
                .send(),
        )
        .await
        .expect("init");
        response
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("session")
            .to_owned()
    };
    let hijack = within(
        h.http
            .post(&h.target.mcp_url)
            .bearer_auth(bob_token["access_token"].as_str().unwrap_or_default())
            .header("mcp-session-id", &session)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}))
            .send(),
    )
    .await
    .expect("hijack");
    assert_eq!(hijack.status(), 403);

    // Two live sessions (the client's and the raw one): a third initialize gets 503.
    assert_eq!(h.raw_initialize(Some(alice_token)).await.0, 503);
    let _ = within(alice.cancel()).await;
}

#[tokio::test]
async fn admin_api_creates_lists_and_deletes_users() {
    let h = start(MockConfig {
        admin_password: "s3cret".into(),
        ..config()
    })
    .await;
    let users_url = h.url("/ocs/v2.php/cloud/users");
    let admin = |req: reqwest::RequestBuilder| {
        req.basic_auth("admin", Some("s3cret"))
            .header("OCS-APIRequest", "true")
            .header("accept", "application/json")
    };
    let create = |id: &'static str| {
        admin(h.http.post(&users_url)).form(&[
            ("userid", id),
            ("password", "pw-123456"),
            ("displayName", "Load Test User 1"),
            ("email", "x@benchmark.local"),
            ("groups[]", "tenant1"),
        ])
    };
    // Users join existing groups only, as on Nextcloud.
    let refused = within(create("loadtest_user_1").send())
        .await
        .expect("create");
    assert_eq!(
        refused.status(),
        400,
        "a user added to a group that does not exist"
    );
    let group = within(
        admin(h.http.post(h.url("/ocs/v2.php/cloud/groups")))
            .form(&[("groupid", "tenant1")])
            .send(),
    )
    .await
    .expect("create group");
    assert_eq!(group.status(), 200);
    let response = within(create("loadtest_user_1").send())
        .await
        .expect("create");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["ocs"]["data"]["id"], "loadtest_user_1");
    assert_eq!(body["ocs"]["meta"]["status"], "ok");
    let dup: Value = {
        let response = within(create("loadtest_user_1").send()).await.expect("dup");
        assert_eq!(response.status(), 400);
        response.json().await.expect("json")
    };
    assert_eq!(dup["ocs"]["meta"]["statuscode"], 102);
    within(create("loadtest_user_2").send())
        .await
        .expect("create 2");

    let list: Value = within(
        admin(h.http.get(&users_url))
            .query(&[("search", "loadtest")])
            .send(),
    )
    .await
    .expect("list")
    .json()
    .await
    .expect("json");
    assert_eq!(
        list["ocs"]["data"]["users"],
        json!(["loadtest_user_1", "loadtest_user_2"])
    );

    // The new user can log in; deleting them revokes their tokens.
    let client_id = h.register_public(&["password"]).await;
    let token = h
        .password_token(&client_id, "loadtest_user_1", "pw-123456")
        .await;
    let access = token["access_token"].as_str().unwrap_or_default();
    assert_eq!(h.raw_initialize(Some(access)).await.0, 200);
    let deleted = within(admin(h.http.delete(format!("{users_url}/loadtest_user_1"))).send())
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 200);
    assert_eq!(h.raw_initialize(Some(access)).await.0, 401);
    let again = within(admin(h.http.delete(format!("{users_url}/loadtest_user_1"))).send())
        .await
        .expect("delete");
    assert_eq!(again.status(), 404);
    let body: Value = again.json().await.expect("json");
    assert_eq!(body["ocs"]["meta"]["statuscode"], 998);

    let wrong = within(
        h.http
            .get(&users_url)
            .basic_auth("admin", Some("wrong"))
            .send(),
    )
    .await
    .expect("wrong");
    assert_eq!(wrong.status(), 401);
    let none = within(h.http.get(&users_url).send()).await.expect("none");
    assert_eq!(none.status(), 401);
}

#[test]
fn config_debug_hides_passwords() {
    let shown = format!(
        "{:?}",
        MockConfig {
            admin_password: "topsecret".into(),
            ..config()
        }
    );
    assert!(
        !shown.contains("topsecret") && !shown.contains("alice-pw"),
        "{shown}"
    );
    assert!(shown.contains("alice"));
}

/// Session termination as the MCP spec and the official SDKs expect it: a
/// DELETE of a live session answers 204, of a gone or unknown one 404.
#[tokio::test]
async fn deleting_a_session_answers_204_then_404() {
    let h = start(config()).await;
    let client_id = h.register_public(&["password"]).await;
    let token = h.password_token(&client_id, "alice", "alice-pw").await;
    let token = token["access_token"].as_str().expect("access token");
    let initialize = within(
        h.http
            .post(&h.target.mcp_url)
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}))
            .send(),
    )
    .await
    .expect("initialize");
    assert_eq!(initialize.status(), 200);
    let sid = initialize
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let delete = |sid: String| {
        let request = h
            .http
            .delete(&h.target.mcp_url)
            .bearer_auth(token)
            .header("mcp-session-id", sid)
            .send();
        async move { within(request).await.expect("delete").status().as_u16() }
    };
    assert_eq!(delete(sid.clone()).await, 204);
    assert_eq!(delete(sid).await, 404);
    assert_eq!(delete("no-such-session".into()).await, 404);
    // The 401 names the scope to ask for.
    let (status, challenge) = h.raw_initialize(None).await;
    assert_eq!(status, 401);
    assert!(
        challenge
            .unwrap_or_default()
            .contains("scope=\"mcp:tools\"")
    );
}
