//! The thin MCP client against the real mock target, seen through a
//! recording TCP proxy: open + call + close on the wire, a session the
//! server forgot, tokens that stop working, and the error kinds.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::session::{McpCounters, McpSession, SessionContext, UserToken};
use common::ErrorKind;
use common::Secret;
use common::ids::UserName;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One proxied connection's bytes: (client → server, server → client).
type ConnLog = Arc<Mutex<(Vec<u8>, Vec<u8>)>>;

/// Forwards loopback connections to the mock and keeps every byte each way.
struct Proxy {
    url: String,
    conns: Arc<Mutex<Vec<ConnLog>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let upstream_addr = upstream
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let conns: Arc<Mutex<Vec<ConnLog>>> = Arc::default();
        let all = conns.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream_addr).await else {
                    continue;
                };
                let log = Arc::new(Mutex::new((Vec::new(), Vec::new())));
                all.lock().unwrap().push(log.clone());
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, log.clone(), true));
                tokio::spawn(pump(sr, cw, log, false));
            }
        });
        Proxy { url, conns }
    }

    /// Everything sent (`to_server`) or received, connection by connection.
    fn text(&self, to_server: bool) -> Vec<String> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| {
                let c = c.lock().unwrap();
                String::from_utf8_lossy(if to_server { &c.0 } else { &c.1 }).into_owned()
            })
            .collect()
    }

    fn count_requests(&self, method: &str) -> usize {
        let line = format!("{method} /mcp HTTP/1.1\r\n");
        self.text(true)
            .iter()
            .map(|t| t.matches(&line).count())
            .sum()
    }

    /// Session ids the server handed out, in order.
    fn session_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for text in self.text(false) {
            for part in text.split("mcp-session-id: ").skip(1) {
                let id = part.split("\r\n").next().unwrap().to_owned();
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    log: ConnLog,
    to_server: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        {
            let mut log = log.lock().unwrap();
            let side = if to_server { &mut log.0 } else { &mut log.1 };
            side.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

fn context(mcp_url: &str) -> (Arc<SessionContext>, mpsc::Receiver<UserName>) {
    let (refresh, refresh_rx) = mpsc::channel(16);
    let mut headers = HashMap::new();
    headers.insert(
        http::HeaderName::from_static("x-load-test"),
        http::HeaderValue::from_static("thin-client"),
    );
    let ctx = Arc::new(SessionContext {
        http: agent::session::http_client().unwrap(),
        mcp_url: mcp_url.to_owned(),
        headers,
        counters: Arc::new(McpCounters::default()),
        refresh,
        // These tests are about sessions: initialize, Mcp-Session-Id, DELETE.
        version: common::protocol::McpVersionChoice::Fixed(
            common::protocol::McpVersion::V2025_11_25,
        ),
        elicitation: Default::default(),
    });
    (ctx, refresh_rx)
}

#[tokio::test]
async fn open_call_close_on_the_wire() {
    let target = support::start_target(&["alice"], mock::MockConfig::default()).await;
    let proxy = Proxy::start(&target.mock.mcp_url).await;
    let (ctx, _refresh) = context(&proxy.url);
    let user_token = UserToken::new("alice".into(), Secret::new(target.token("alice").await));
    let (session, latency) = McpSession::open(&ctx, user_token, TIMEOUT).await.unwrap();
    assert!(latency < TIMEOUT);
    assert_eq!(session.user().as_str(), "alice");

    let created = session
        .call(
            "nc_notes_create_note",
            json!({"title": "t1", "content": "hello", "category": "c"}),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert!(!created.is_error, "{}", created.text);
    assert_eq!(created.json["title"], "t1", "{}", created.text);
    let note_id = created.json["id"].clone();
    let read = session
        .call("nc_notes_get_note", json!({"note_id": note_id}), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(read.json["content"], "hello", "{}", read.text);
    // A failing tool is a result with isError, for the step to judge.
    let missing = session
        .call("nc_notes_get_note", json!({"note_id": 999_999}), TIMEOUT)
        .await
        .unwrap();
    assert!(missing.is_error, "{}", missing.text);
    // An unknown tool is a JSON-RPC error; non-object arguments never leave.
    let unknown = session
        .call("no_such_tool", json!({}), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::JsonRpc, "{}", unknown.message);
    let bad = session
        .call("nc_notes_get_note", json!([1]), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(bad.kind, ErrorKind::Skipped);
    session.close().await;

    let sent = proxy.text(true).concat();
    assert_eq!(proxy.count_requests("GET"), 0, "no standing GET stream");
    assert_eq!(
        proxy.count_requests("DELETE"),
        1,
        "close deletes the session"
    );
    assert_eq!(
        proxy.count_requests("POST"),
        6,
        "initialize, initialized, 4 calls"
    );
    let sids = proxy.session_ids();
    assert_eq!(sids.len(), 1, "{sids:?}");
    assert_eq!(
        sent.matches(&format!("mcp-session-id: {}", sids[0]))
            .count(),
        6
    );
    assert_eq!(sent.matches("mcp-protocol-version: 2025-").count(), 6);
    assert!(sent.contains("\"protocolVersion\":\"2025-11-25\""));
    assert!(sent.contains("\"clientInfo\":{\"name\":\"mcp-swarm\""));
    assert!(sent.contains("accept: application/json, text/event-stream"));
    assert_eq!(sent.matches("x-load-test: thin-client").count(), 7);
    // One keep-alive connection carried the whole session.
    assert_eq!(proxy.text(true).len(), 1);
    let mut expected = agent::session::McpStats::default();
    expected.count_session(common::protocol::McpVersion::V2025_11_25);
    assert_eq!(ctx.counters.snapshot(), expected);
}

/// A server that answers each POST with a JSON body (the Streamable HTTP spec's other form;
/// the mock's `--json-replies`) serves the same session.
#[tokio::test]
async fn json_answers_serve_a_session() {
    let config = mock::MockConfig {
        json_replies: true,
        ..mock::MockConfig::default()
    };
    let target = support::start_target(&["dave"], config).await;
    let proxy = Proxy::start(&target.mock.mcp_url).await;
    let (ctx, _refresh) = context(&proxy.url);
    let user_token = UserToken::new("dave".into(), Secret::new(target.token("dave").await));
    let (session, _) = McpSession::open(&ctx, user_token, TIMEOUT).await.unwrap();
    let created = session
        .call(
            "nc_notes_create_note",
            json!({"title": "j1", "content": "json", "category": "c"}),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert!(!created.is_error, "{}", created.text);
    assert_eq!(created.json["title"], "j1", "{}", created.text);
    session.close().await;
    let answers = proxy.text(false).concat();
    assert!(
        answers.contains("content-type: application/json"),
        "{answers}"
    );
    assert!(!answers.contains("text/event-stream"), "{answers}");
    assert_eq!(proxy.session_ids().len(), 1);
}

#[tokio::test]
async fn a_forgotten_session_is_initialized_again_once() {
    let target = support::start_target(&["bob"], mock::MockConfig::default()).await;
    let proxy = Proxy::start(&target.mock.mcp_url).await;
    let (ctx, _refresh) = context(&proxy.url);
    let token = target.token("bob").await;
    let (session, _) = McpSession::open(
        &ctx,
        UserToken::new("bob".into(), Secret::new(token.clone())),
        TIMEOUT,
    )
    .await
    .unwrap();
    let search = || session.call("nc_notes_search_notes", json!({"query": "x"}), TIMEOUT);
    assert!(!search().await.unwrap().is_error);

    // The server forgets the session behind the client's back.
    let sids = proxy.session_ids();
    let deleted = reqwest::Client::new()
        .delete(&target.mock.mcp_url)
        .bearer_auth(&token)
        .header("mcp-session-id", &sids[0])
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());

    let out = search().await.expect("re-initialized and retried");
    assert!(!out.is_error, "{}", out.text);
    assert_eq!(ctx.counters.snapshot().session_reinitializations, 1);
    let sids = proxy.session_ids();
    assert_eq!(sids.len(), 2, "a second session: {sids:?}");
    // Later calls use the new session without further ado.
    assert!(!search().await.unwrap().is_error);
    assert_eq!(ctx.counters.snapshot().session_reinitializations, 1);
    let sent = proxy.text(true).concat();
    assert_eq!(
        sent.matches(&format!("mcp-session-id: {}", sids[1]))
            .count(),
        3
    );
    session.close().await;
}

#[tokio::test]
async fn an_invalid_token_asks_for_a_refresh_and_retries() {
    let target = support::start_target(&["carol"], mock::MockConfig::default()).await;
    let (ctx, mut refresh_rx) = context(&target.mock.mcp_url);
    let good = target.token("carol").await;
    let token = UserToken::new("carol".into(), Secret::new(good.clone()));
    let (session, _) = McpSession::open(&ctx, token.clone(), TIMEOUT)
        .await
        .unwrap();

    // The token stops working mid-run; the controller answers the refresh request.
    token.set(Secret::new("revoked-token-value"));
    let answering = token.clone();
    let controller = tokio::spawn(async move {
        let user = refresh_rx.recv().await.expect("a refresh request");
        answering.set(Secret::new(good));
        (user, refresh_rx)
    });
    let out = session
        .call("nc_notes_search_notes", json!({"query": "x"}), TIMEOUT)
        .await
        .expect("refreshed and retried");
    assert!(!out.is_error, "{}", out.text);
    let (user, mut refresh_rx) = controller.await.unwrap();
    assert_eq!(user.as_str(), "carol");
    let stats = ctx.counters.snapshot();
    assert_eq!((stats.refresh_requests, stats.auth_failures), (1, 1));

    // No new token comes: after REFRESH_WAIT the call fails as Auth, without the token in it.
    token.set(Secret::new("another-revoked-token"));
    let err = session
        .call("nc_notes_search_notes", json!({"query": "x"}), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{}", err.message);
    assert!(err.message.contains("401"), "{}", err.message);
    assert!(
        !err.message.contains("another-revoked-token"),
        "{}",
        err.message
    );
    assert_eq!(refresh_rx.recv().await.unwrap().as_str(), "carol");
    let stats = ctx.counters.snapshot();
    assert_eq!((stats.refresh_requests, stats.auth_failures), (2, 2));
}

#[tokio::test]
async fn server_failures_have_their_kinds() {
    let target = support::start_target(
        &["dave", "erin"],
        mock::MockConfig {
            error_rate: 1.0,
            max_sessions: Some(1),
            ..mock::MockConfig::default()
        },
    )
    .await;
    let (ctx, _refresh) = context(&target.mock.mcp_url);
    let dave = UserToken::new("dave".into(), Secret::new(target.token("dave").await));
    let (session, _) = McpSession::open(&ctx, dave, TIMEOUT).await.unwrap();
    let err = session
        .call("nc_notes_search_notes", json!({"query": "x"}), TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Http5xx, "{}", err.message);
    assert!(err.message.contains("503"), "{}", err.message);

    // The session cap refuses a second initialize.
    let erin = UserToken::new("erin".into(), Secret::new(target.token("erin").await));
    let err = McpSession::open(&ctx, erin, TIMEOUT).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Http5xx, "{}", err.message);

    // Nothing listens: a transport error.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", closed.local_addr().unwrap());
    drop(closed);
    let (ctx, _refresh) = context(&url);
    let frank = UserToken::new("frank".into(), Secret::new("t"));
    let err = McpSession::open(&ctx, frank, TIMEOUT).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Transport, "{}", err.message);
    session.close().await;
}
