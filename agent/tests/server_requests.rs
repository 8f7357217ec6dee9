//! A server that sends requests of its own in the middle of a tool call —
//! `ping`, then `elicitation/create`, as the Nextcloud MCP server does for a
//! user it has not provisioned — and holds the call until both are
//! answered. The session answers each (with the configured elicitation
//! action), the call completes, and each is counted by method.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::session::{McpCounters, McpSession, SessionContext, UserToken};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::Secret;
use common::protocol::{ElicitationAnswer, McpVersion, McpVersionChoice, ServerRequest};
use serde_json::{Value, json};
use tokio::sync::Notify;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Seen {
    /// The answers the client POSTed to our requests.
    answers: Mutex<Vec<Value>>,
    both: Notify,
}

fn event(v: &Value) -> String {
    format!("event: message\ndata: {v}\n\n")
}

async fn mcp(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: String) -> Response {
    let msg: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let id = msg["id"].clone();
    match msg["method"].as_str() {
        Some("initialize") => (
            [
                ("content-type", "application/json"),
                ("mcp-session-id", "s-1"),
            ],
            json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                "serverInfo": {"name": "asks-back", "version": "0"}}})
            .to_string(),
        )
            .into_response(),
        Some("notifications/initialized") => StatusCode::ACCEPTED.into_response(),
        Some("tools/call") => {
            assert_eq!(headers["mcp-session-id"], "s-1");
            let first = event(&json!({"jsonrpc": "2.0", "id": "p-1", "method": "ping"}))
                + &event(
                    &json!({"jsonrpc": "2.0", "id": 9001, "method": "elicitation/create",
                    "params": {"message": "Open this URL to log in", "requestedSchema": {"type": "object", "properties": {}}}}),
                )
                + &event(&json!({"jsonrpc": "2.0", "id": "r-1", "method": "roots/list"}));
            let stream = futures::stream::unfold(0, move |step| {
                let seen = seen.clone();
                let first = first.clone();
                let id = id.clone();
                async move {
                    match step {
                        0 => Some((Ok::<_, std::io::Error>(first), 1)),
                        1 => {
                            // Held until the client has answered all three.
                            let _ = tokio::time::timeout(TIMEOUT, seen.both.notified()).await;
                            let answers = seen.answers.lock().unwrap().len();
                            let result = json!({"jsonrpc": "2.0", "id": id, "result": {
                                "content": [{"type": "text", "text": format!("done after {answers} answers")}]}});
                            Some((Ok(event(&result)), 2))
                        }
                        _ => None,
                    }
                }
            });
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        None if msg.get("result").is_some() || msg.get("error").is_some() => {
            let mut answers = seen.answers.lock().unwrap();
            answers.push(msg);
            if answers.len() == 3 {
                seen.both.notify_one();
            }
            StatusCode::ACCEPTED.into_response()
        }
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn serve(seen: Arc<Seen>) -> String {
    let app = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::post(mcp).delete(|| async { StatusCode::NO_CONTENT }),
        )
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn run(elicitation: ElicitationAnswer) -> (String, Vec<Value>, common::protocol::McpStats) {
    let seen = Arc::new(Seen::default());
    let url = serve(seen.clone()).await;
    let (refresh, _rx) = tokio::sync::mpsc::channel(4);
    let counters = Arc::new(McpCounters::default());
    let ctx = Arc::new(SessionContext {
        http: agent::session::http_client().unwrap(),
        mcp_url: url,
        headers: HashMap::new(),
        counters: counters.clone(),
        refresh,
        version: McpVersionChoice::Fixed(McpVersion::V2025_06_18),
        elicitation,
    });
    let token = UserToken::new("u".into(), Secret::new("tok"));
    let (session, _) = McpSession::open(&ctx, token, TIMEOUT).await.unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        session.call("nc_notes_get_note", json!({"note_id": 1}), TIMEOUT),
    )
    .await
    .expect("the call completes, not waiting for an answer we never send")
    .unwrap();
    session.close().await;
    let answers = seen.answers.lock().unwrap().clone();
    (out.text, answers, counters.snapshot())
}

#[tokio::test]
async fn ping_and_elicitation_mid_call_are_answered_and_the_call_completes() {
    let (text, answers, stats) = run(ElicitationAnswer::Decline).await;
    assert_eq!(text, "done after 3 answers");
    let by_id: HashMap<String, &Value> = answers.iter().map(|a| (a["id"].to_string(), a)).collect();
    assert_eq!(by_id["\"p-1\""]["result"], json!({}));
    assert_eq!(by_id["9001"]["result"], json!({"action": "decline"}));
    assert_eq!(by_id["\"r-1\""]["error"]["code"], -32601);
    for (kind, n) in [
        (ServerRequest::Ping, 1),
        (ServerRequest::Elicitation, 1),
        (ServerRequest::Roots, 1),
        (ServerRequest::Sampling, 0),
    ] {
        assert_eq!(stats.server_requests[kind.index()], n, "{kind:?}");
    }
    // And on the wire to the controller.
    let proto = stats.to_proto();
    assert_eq!(proto.server_requests["elicitation/create"], 1);
    assert_eq!(common::protocol::McpStats::from_proto(Some(&proto)), stats);
}

#[tokio::test]
async fn the_elicitation_answer_is_configurable() {
    let (_, answers, _) = run(ElicitationAnswer::AcceptEmpty).await;
    let e = answers.iter().find(|a| a["id"] == 9001).unwrap();
    assert_eq!(e["result"], json!({"action": "accept", "content": {}}));
    let (_, answers, _) = run(ElicitationAnswer::Cancel).await;
    let e = answers.iter().find(|a| a["id"] == 9001).unwrap();
    assert_eq!(e["result"], json!({"action": "cancel"}));
}
