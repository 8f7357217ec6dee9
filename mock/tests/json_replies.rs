//! `--json-replies`: each MCP POST is answered with one JSON body (the Streamable HTTP spec's
//! other form), sessions kept, as clients that read only JSON bodies need; without it rmcp's
//! SSE answers stay.

mod common;

use common::*;
use mock::MockConfig;
use serde_json::{Value, json};

/// POSTs `body` to the MCP endpoint; returns status, content type, session id and body.
async fn post(
    h: &Harness,
    token: &str,
    session: Option<&str>,
    body: Value,
) -> (u16, String, Option<String>, String) {
    let mut request = h
        .http
        .post(&h.target.mcp_url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(sid) = session {
        request = request.header("mcp-session-id", sid);
    }
    let response = within(request.send()).await.expect("MCP POST");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, content_type, sid) = (
        response.status().as_u16(),
        header("content-type").unwrap_or_default(),
        header("mcp-session-id"),
    );
    let text = within(response.text()).await.expect("body");
    (status, content_type, sid, text)
}

async fn token(h: &Harness) -> String {
    let client_id = h.register_public(&["password"]).await;
    let token = h.password_token(&client_id, "alice", "alice-pw").await;
    token["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

fn initialize() -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})
}

#[tokio::test]
async fn a_session_answered_in_json_bodies() {
    let h = start(MockConfig {
        users: users(),
        json_replies: true,
        ..MockConfig::default()
    })
    .await;
    let token = token(&h).await;
    let (status, content_type, sid, body) = post(&h, &token, None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let sid = sid.expect("a session id with a JSON answer");
    let answer: Value = serde_json::from_str(&body).expect("one JSON object");
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["protocolVersion"], "2025-06-18");

    let initialized = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let (status, ..) = post(&h, &token, Some(&sid), initialized).await;
    assert_eq!(status, 202);

    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{
        "name":"nc_notes_search_notes","arguments":{"query":"x"}}});
    let (status, content_type, _, body) = post(&h, &token, Some(&sid), call).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let answer: Value = serde_json::from_str(&body).expect("one JSON object");
    assert_eq!(answer["id"], 2);
    assert!(answer["result"].is_object(), "{body}");
    assert_ne!(answer["result"]["isError"], true, "{body}");
}

#[tokio::test]
async fn without_the_flag_answers_stay_sse() {
    let h = start(MockConfig {
        users: users(),
        ..MockConfig::default()
    })
    .await;
    let token = token(&h).await;
    let (status, content_type, sid, body) = post(&h, &token, None, initialize()).await;
    assert_eq!(status, 200, "{body}");
    assert!(sid.is_some());
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    assert!(body.contains("data:"), "{body}");
}
