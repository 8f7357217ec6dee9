//! The mock's MCP server against nextcloud-mcp-server 0.202.1's contract, through an rmcp
//! client: tools/list equal to the committed real list and filtered by the token's scopes, the
//! share tools' `{"result": "<json>"}` shape, and appends that race as the real ones do.

mod common;

use std::collections::BTreeSet;

use common::*;
use mock::MockConfig;
use serde_json::{Value, json};

fn config() -> MockConfig {
    MockConfig {
        users: users(),
        ..MockConfig::default()
    }
}

/// A token for `user` with exactly `scope`.
async fn token(h: &Harness, client_id: &str, user: &str, scope: &str) -> String {
    let (status, body) = h
        .token_request(&[
            ("grant_type", "password"),
            ("client_id", client_id),
            ("username", user),
            ("password", &format!("{user}-pw")),
            ("scope", scope),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

fn names_and_required(tools: &[Value]) -> BTreeSet<(String, Vec<String>, Vec<String>)> {
    tools
        .iter()
        .map(|t| {
            let schema = &t["inputSchema"];
            let mut props: Vec<String> = schema["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            props.sort();
            let mut required: Vec<String> = schema["required"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            required.sort();
            (
                t["name"].as_str().unwrap_or_default().to_owned(),
                props,
                required,
            )
        })
        .collect()
}

#[tokio::test]
async fn tools_list_is_the_real_one_filtered_by_scope() {
    let h = start(config()).await;
    let client_id = h.register_public(&["password"]).await;
    let all = token(
        &h,
        &client_id,
        "alice",
        "openid notes.read notes.write files.read files.write sharing.write",
    )
    .await;
    let alice = h.mcp(&all).await;
    let listed = within(alice.list_all_tools()).await.expect("tools");
    let listed: Vec<Value> = listed
        .iter()
        .map(|t| serde_json::to_value(t).expect("tool json"))
        .collect();
    let real: Vec<Value> =
        serde_json::from_str(include_str!("data/nextcloud-mcp-server-0.202.1-tools.json"))
            .expect("committed tools/list");
    assert_eq!(names_and_required(&listed), names_and_required(&real));
    let output_schemas = |tools: &[Value]| -> BTreeSet<(String, String)> {
        tools
            .iter()
            .map(|t| (t["name"].to_string(), t["outputSchema"].to_string()))
            .collect()
    };
    assert_eq!(output_schemas(&listed), output_schemas(&real));
    let _ = within(alice.cancel()).await;

    // A notes.read token sees the two reading notes tools and is refused the rest.
    let reader = h
        .mcp(&token(&h, &client_id, "alice", "openid notes.read").await)
        .await;
    let names: BTreeSet<String> = within(reader.list_all_tools())
        .await
        .expect("tools")
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["nc_notes_get_note".into(), "nc_notes_search_notes".into()])
    );
    let refused = fails(
        &reader,
        "nc_notes_create_note",
        json!({"title": "t", "content": "c", "category": ""}),
    )
    .await;
    assert!(
        refused.starts_with(
            "nc_notes_create_note failed: Access denied to nc_notes_create_note: Missing required \
             scopes: notes.write. Token has scopes: notes.read, openid."
        ),
        "{refused}"
    );
    ok(&reader, "nc_notes_search_notes", json!({"query": "x"})).await;
    let _ = within(reader.cancel()).await;
}

#[tokio::test]
async fn share_tools_return_ocs_json_text() {
    let h = start(config()).await;
    let client_id = h.register_public(&["password"]).await;
    let alice = h
        .mcp(&token(&h, &client_id, "alice", "notes.write sharing.write").await)
        .await;
    let bob = h
        .mcp(&token(&h, &client_id, "bob", "sharing.write files.read").await)
        .await;
    let note = ok(
        &alice,
        "nc_notes_create_note",
        json!({"title": "Shared", "content": "hello", "category": "loadtest"}),
    )
    .await;
    let share = ok_text(
        &alice,
        "nc_share_create",
        json!({"path": "/Notes/loadtest/Shared.md", "share_with": "bob", "share_type": 0, "permissions": 3}),
    )
    .await;
    assert!(share["id"].is_string(), "OCS ids are strings: {share}");
    assert_eq!(share["item_source"], note["id"]);
    assert_eq!(share["path"], "/Notes/loadtest/Shared.md");
    assert_eq!(share["file_target"], "/Shared.md");
    assert_eq!(share["permissions"], 3);
    let id = share["id"].as_str().unwrap_or_default().to_owned();
    let got = ok_text(&bob, "nc_share_get", json!({"share_id": id})).await;
    assert_eq!(got["path"], "/Shared.md", "the recipient's view");
    let read = ok(
        &bob,
        "nc_webdav_read_file",
        json!({"path": got["file_target"]}),
    )
    .await;
    assert_eq!(read["content"], "hello");
    let deleted = ok_text(&alice, "nc_share_delete", json!({"share_id": id})).await;
    assert_eq!(
        deleted,
        json!({"success": true, "message": format!("Share {id} deleted")})
    );
    let gone = fails(&alice, "nc_share_get", json!({"share_id": id})).await;
    assert!(gone.contains("(HTTP 404)"), "{gone}");
    let _ = within(alice.cancel()).await;
    let _ = within(bob.cancel()).await;
}

/// As on the real server, an append reads the note and writes it back with `If-Match`: of two
/// appends at once one may lose with the real 412 text, and every other append succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_can_conflict() {
    let h = start(config()).await;
    let client_id = h.register_public(&["password"]).await;
    let scope = "notes.read notes.write";
    let one = h.mcp(&token(&h, &client_id, "alice", scope).await).await;
    let two = h.mcp(&token(&h, &client_id, "alice", scope).await).await;
    let note = ok(
        &one,
        "nc_notes_create_note",
        json!({"title": "Race", "content": "start", "category": ""}),
    )
    .await;
    let id = note["id"].as_u64().expect("id");
    let conflict = format!("Failed to append content to note {id}: server error (412)");
    let (mut n_conflicts, mut n_ok) = (0, 0);
    for i in 0..20 {
        let args = |who: &str| json!({"note_id": id, "content": format!("{who} {i}")});
        let (a, b) = tokio::join!(
            call(&one, "nc_notes_append_content", args("one")),
            call(&two, "nc_notes_append_content", args("two")),
        );
        for result in [a, b] {
            if result.is_error == Some(true) {
                assert_eq!(text_of(&result), conflict);
                n_conflicts += 1;
            } else {
                n_ok += 1;
            }
        }
    }
    assert!(n_conflicts >= 1, "no append lost a race in 20 pairs");
    let content = ok(&one, "nc_notes_get_note", json!({"note_id": id})).await["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content.matches("\n---\n").count(), n_ok, "{content}");
    let _ = within(one.cancel()).await;
    let _ = within(two.cancel()).await;
}
