//! Integration tests of the mock target over real HTTP: discovery and login as a third-party
//! client, tools as two users, WebDAV files, scope and session checks, faults, the admin API.

mod common;

use common::*;
use mock::{LoginPages, MockConfig};
use serde_json::{Value, json};

fn config() -> MockConfig {
    MockConfig {
        users: users(),
        // The mock's HTML forms, which these tests post.
        login_pages: LoginPages::Forms,
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
    assert!(
        meta["registration_endpoint"]
            .as_str()
            .is_some_and(|u| u.ends_with("/register"))
    );
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
    assert_eq!(
        (note["category"].as_str(), note["success"].as_bool()),
        (Some("Work"), Some(true))
    );
    let hidden = fails(&bob, "nc_notes_get_note", json!({"note_id": id})).await;
    assert_eq!(hidden, format!("Note {id} not found"));
    // Notes >= 4.7 names the file <title>.md; the .txt path does not exist.
    let txt = fails(
        &alice,
        "nc_share_create",
        json!({"path": "/Notes/Work/Plan.txt", "share_with": "bob"}),
    )
    .await;
    assert!(
        txt.contains("(HTTP 404)") && txt.contains("Wrong path"),
        "{txt}"
    );
    let share = ok_text(
        &alice,
        "nc_share_create",
        json!({"path": "/Notes/Work/Plan.md", "share_with": "bob", "permissions": 1}),
    )
    .await;
    assert_eq!(share["file_target"], "/Plan.md");
    assert_eq!(share["item_type"], "file");
    let share_id: u64 = share["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("share id");

    // The recipient reads the shared note as a file; by id it is not theirs.
    let via_dav = ok(&bob, "nc_webdav_read_file", json!({"path": "/Plan.md"})).await;
    assert_eq!(via_dav["content"], "v1");
    let with_me = ok_text(&bob, "nc_share_list", json!({"shared_with_me": true})).await;
    assert_eq!(with_me.as_array().map(Vec::len), Some(1));
    assert_eq!(with_me[0]["path"], "/Plan.md");
    let updated_share = ok_text(
        &alice,
        "nc_share_update",
        json!({"share_id": share_id, "permissions": 3}),
    )
    .await;
    assert_eq!(updated_share["permissions"], 3);
    let appended = ok(
        &alice,
        "nc_notes_append_content",
        json!({"note_id": id, "content": "more"}),
    )
    .await;
    assert_ne!(appended["etag"], note["etag"]);
    let read = ok(
        &alice,
        "nc_notes_get_note",
        json!({"note_id": id.to_string()}),
    )
    .await;
    assert_eq!(read["content"], "v1\n---\nmore");
    let stale = fails(
        &alice,
        "nc_notes_update_note",
        json!({"note_id": id, "etag": note["etag"], "title": null, "content": "v2", "category": null}),
    )
    .await;
    assert_eq!(
        stale,
        format!("Note {id} has been modified by someone else. Please refresh and try again.")
    );
    let updated = ok(
        &alice,
        "nc_notes_update_note",
        json!({"note_id": id, "etag": appended["etag"], "title": null, "content": "v2", "category": null}),
    )
    .await;
    assert_eq!(updated["title"], "Plan");
    let found = ok(&alice, "nc_notes_search_notes", json!({"query": "plan"})).await;
    assert_eq!(found["results"][0]["id"], id);
    assert_eq!(found["total_found"], 1);
    let nobody = ok(
        &alice,
        "nc_notes_search_notes",
        json!({"query": "nothing-here"}),
    )
    .await;
    assert_eq!(nobody["total_found"], 0);
    let missing = fails(
        &alice,
        "nc_share_create",
        json!({"path": "/Notes/Work/Plan.md", "share_with": "carol"}),
    )
    .await;
    assert!(missing.contains("(HTTP 404)"), "{missing}");
    let no_recipient = fails(
        &alice,
        "nc_share_create",
        json!({"path": "/Notes/Work/Plan.md"}),
    )
    .await;
    assert!(
        no_recipient.contains("requires a non-empty shareWith"),
        "{no_recipient}"
    );

    // Malformed arguments: rmcp 3.11 reports them as tool errors (SEP-1303).
    let malformed = fails(&alice, "nc_notes_get_note", json!({"note_id": "abc"})).await;
    assert!(
        malformed.starts_with("failed to deserialize parameters"),
        "{malformed}"
    );
    let partial = fails(
        &alice,
        "nc_notes_update_note",
        json!({"note_id": id, "etag": "x", "content": "y"}),
    )
    .await;
    assert!(partial.contains("missing field"), "{partial}");

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

    let made = call(
        &alice,
        "nc_webdav_create_directory",
        json!({"path": "/Docs"}),
    )
    .await;
    assert_eq!(text_of(&made), r#"{"status_code":201}"#);
    let dup = call(
        &alice,
        "nc_webdav_create_directory",
        json!({"path": "/Docs"}),
    )
    .await;
    assert_eq!(
        text_of(&dup),
        r#"{"message":"Directory already exists","status_code":405}"#
    );
    let w = ok(
        &alice,
        "nc_webdav_write_file",
        json!({"path": "/Docs/a.txt", "content": "hello"}),
    )
    .await;
    assert_eq!(
        (w["status_code"].as_u64(), w["created"].as_bool()),
        (Some(201), Some(true))
    );
    // Fail-closed: without if_match an existing file is not overwritten.
    let exists = fails(
        &alice,
        "nc_webdav_write_file",
        json!({"path": "/Docs/a.txt", "content": "again"}),
    )
    .await;
    assert!(
        exists.starts_with("Error executing tool nc_webdav_write_file: File already exists"),
        "{exists}"
    );
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
    assert!(
        stale.contains("File was modified since the given etag was read"),
        "{stale}"
    );
    let orphan = fails(
        &alice,
        "nc_webdav_write_file",
        json!({"path": "/No/such/dir.txt", "content": "x"}),
    )
    .await;
    assert!(orphan.contains("(HTTP 409)"), "{orphan}");
    let read = ok(&alice, "nc_webdav_read_file", json!({"path": "Docs/a.txt"})).await;
    assert_eq!(
        (read["content"].as_str(), read["size"].as_u64()),
        (Some("hi"), Some(2))
    );
    let list = ok(&alice, "nc_webdav_list_directory", json!({})).await;
    assert_eq!(list["files"][0]["name"], "Docs");
    assert_eq!(list["files"][0]["is_directory"], true);
    let moved = ok(
        &alice,
        "nc_webdav_move_resource",
        json!({"source_path": "/Docs", "destination_path": "/Archive"}),
    )
    .await;
    assert_eq!(
        (moved["success"].as_bool(), moved["status_code"].as_u64()),
        (Some(true), Some(201))
    );
    let listed = ok(
        &alice,
        "nc_webdav_list_directory",
        json!({"path": "/Archive"}),
    )
    .await;
    assert_eq!(listed["files"][0]["path"], "/Archive/a.txt");
    let deleted = call(
        &alice,
        "nc_webdav_delete_resource",
        json!({"path": "/Archive"}),
    )
    .await;
    assert_eq!(
        (deleted.is_error, text_of(&deleted)),
        (Some(false), r#"{"status_code":204}"#.to_owned())
    );
    assert_eq!(deleted.structured_content, None);
    let again = call(
        &alice,
        "nc_webdav_delete_resource",
        json!({"path": "/Archive"}),
    )
    .await;
    assert_eq!(
        (again.is_error, text_of(&again)),
        (Some(false), r#"{"status_code":404}"#.to_owned())
    );
    let gone = fails(
        &alice,
        "nc_webdav_read_file",
        json!({"path": "/Archive/a.txt"}),
    )
    .await;
    assert!(gone.contains("(HTTP 404)"), "{gone}");
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
    // The 401 is the real server's: invalid_token, "Authentication required", the PRM URL.
    let (status, challenge) = h.raw_initialize(None).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge.unwrap_or_default(),
        format!(
            "Bearer error=\"invalid_token\", error_description=\"Authentication required\", resource_metadata=\"{}/.well-known/oauth-protected-resource\"",
            h.target.issuer
        )
    );
}
