//! The thin MCP client against a scripted HTTP/1.1 server on loopback, for
//! the answers the mock never gives: JSON bodies, messages interleaved
//! before the response, oversized bodies, 202 instead of a response, an
//! unknown protocol version.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agent::session::{CallError, McpCounters, McpSession, SessionContext, UserToken};
use common::ErrorKind;
use common::Secret;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What the script answers to a `tools/call`, with its request id.
type Script = fn(u64) -> String;

fn response(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out
}

fn json_ok(body: &Value) -> String {
    response(
        "200 OK",
        &[("content-type", "application/json")],
        &body.to_string(),
    )
}

fn sse_ok(events: &str) -> String {
    response("200 OK", &[("content-type", "text/event-stream")], events)
}

fn tool_result(id: u64, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}]}})
}

/// Serves initialize (JSON, session `s-1`, version `version`), the
/// initialized notification (202), DELETE (204) and `tools/call` by `script`.
async fn serve(version: &'static str, script: Script) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < end + 4 + len {
                        let mut chunk = [0u8; 4096];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body: Value =
                        serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap_or(Value::Null);
                    buf.drain(..end + 4 + len);
                    let id = body["id"].as_u64().unwrap_or(0);
                    let answer = if head.starts_with("delete") {
                        response("204 No Content", &[], "")
                    } else {
                        match body["method"].as_str() {
                            Some("initialize") => response(
                                "200 OK",
                                &[
                                    ("content-type", "application/json"),
                                    ("mcp-session-id", "s-1"),
                                ],
                                &json!({"jsonrpc": "2.0", "id": id, "result": {
                                    "protocolVersion": version, "capabilities": {},
                                    "serverInfo": {"name": "fake", "version": "0"}}})
                                .to_string(),
                            ),
                            Some("notifications/initialized") => response("202 Accepted", &[], ""),
                            // A server from before 2026-07-28: `auto` falls back to initialize.
                            Some("server/discover") => json_ok(&json!({"jsonrpc": "2.0", "id": id,
                                "error": {"code": -32601, "message": "Method not found"}})),
                            _ => script(id),
                        }
                    };
                    if conn.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

async fn call(
    version: &'static str,
    script: Script,
) -> Result<common::scenario::ToolOutput, CallError> {
    let url = serve(version, script).await;
    let (refresh, _refresh_rx) = tokio::sync::mpsc::channel(4);
    let ctx = Arc::new(SessionContext {
        http: agent::session::http_client().unwrap(),
        mcp_url: url,
        headers: HashMap::new(),
        counters: Arc::new(McpCounters::default()),
        refresh,
        version: Default::default(),
        elicitation: Default::default(),
    });
    let token = UserToken::new("u".into(), Secret::new("tok"));
    let (session, _) = McpSession::open(&ctx, token, TIMEOUT).await?;
    let out = session.call("t", json!({"x": 1}), TIMEOUT).await;
    session.close().await;
    out
}

fn check_err(got: Result<common::scenario::ToolOutput, CallError>, kind: ErrorKind, says: &str) {
    let err = got.expect_err("an error");
    assert_eq!(err.kind, kind, "{}", err.message);
    assert!(
        err.message.contains(says),
        "{:?} lacks {says:?}",
        err.message
    );
}

#[tokio::test]
async fn a_json_answer_is_read() {
    let out = call("2025-06-18", |id| json_ok(&tool_result(id, "plain")))
        .await
        .unwrap();
    assert_eq!((out.is_error, out.text.as_str()), (false, "plain"));
    let out = call("2025-11-25", |id| {
        json_ok(&json!({"jsonrpc": "2.0", "id": id, "result": {
            "content": [{"type": "text", "text": "boom"}], "isError": true}}))
    })
    .await
    .unwrap();
    assert!(out.is_error);
}

#[tokio::test]
async fn an_event_stream_is_read_past_other_messages() {
    let out = call("2025-11-25", |id| {
        let events = [
            ": keep-alive\r\n\r\n".to_owned(),
            "id: 1\r\nretry: 100\r\ndata:\r\n\r\n".to_owned(),
            format!(
                "event: message\r\ndata: {}\r\n\r\n",
                json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})
            ),
            format!(
                "data: {}\r\n\r\n",
                json!({"jsonrpc": "2.0", "id": "srv-1", "method": "ping"})
            ),
            // Our response, split over two data lines.
            format!(
                "data: {{\"jsonrpc\":\"2.0\",\"id\":{id},\r\ndata: \"result\":{}}}\r\n\r\n",
                json!({"content": [{"type": "text", "text": "late"}]})
            ),
        ];
        sse_ok(&events.concat())
    })
    .await
    .unwrap();
    assert_eq!(out.text, "late");
}

#[tokio::test]
async fn answers_without_a_response_are_errors() {
    check_err(
        call("2025-11-25", |_| {
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 17825792\r\n\r\n"
                .to_owned()
        })
        .await,
        ErrorKind::Transport,
        "larger than 16 MiB",
    );
    check_err(
        call("2025-11-25", |_| response("202 Accepted", &[], "")).await,
        ErrorKind::Transport,
        "instead of a response",
    );
    check_err(
        call("2025-11-25", |_| sse_ok(": nothing for you\n\n")).await,
        ErrorKind::Transport,
        "ended before the response",
    );
    check_err(
        call("2025-11-25", |id| {
            json_ok(&tool_result(id + 1, "not yours"))
        })
        .await,
        ErrorKind::Transport,
        "not the response",
    );
    check_err(
        call("2025-11-25", |id| {
            response(
                "400 Bad Request",
                &[("content-type", "application/json")],
                &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32600, "message": "nope"}})
                    .to_string(),
            )
        })
        .await,
        ErrorKind::Http4xx,
        "HTTP 400 Bad Request",
    );
    check_err(
        call("2025-11-25", |id| {
            json_ok(
                &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": "busy"}}),
            )
        })
        .await,
        ErrorKind::JsonRpc,
        "JSON-RPC error -32000: busy",
    );
    check_err(
        call("1999-01-01", |id| json_ok(&tool_result(id, "x"))).await,
        ErrorKind::Transport,
        "protocol version \"1999-01-01\"",
    );
}
