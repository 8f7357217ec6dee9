//! The thin MCP client against a scripted HTTP/1.1 server on loopback, for
//! the answers the mock never gives: JSON bodies, messages interleaved
//! before the response, oversized bodies, 202 instead of a response, an
//! unknown protocol version, a redirect; and over TLS, a certificate the
//! platform trusts and one it does not.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agent::session::{CallError, McpCounters, McpSession, SessionContext, UserToken};
use common::ErrorKind;
use common::Secret;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
/// initialized notification (202), DELETE (204) and `tools/call` by
/// `script` at `/mcp`, and answers anything sent to `/old` with a 307 to
/// `/mcp`; over TLS with `tls`.
async fn serve_with(
    version: &'static str,
    script: Script,
    tls: Option<rustls::ServerConfig>,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}/mcp", listener.local_addr().unwrap());
    let tls = tls.map(|config| tokio_rustls::TlsAcceptor::from(Arc::new(config)));
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => answer(conn, version, script).await,
                    Some(tls) => {
                        if let Ok(conn) = tls.accept(conn).await {
                            answer(conn, version, script).await;
                        }
                    }
                }
            });
        }
    });
    url
}

async fn serve(version: &'static str, script: Script) -> String {
    serve_with(version, script, None).await
}

/// Answers the requests of one connection until it closes.
async fn answer(mut conn: impl AsyncRead + AsyncWrite + Unpin, version: &str, script: Script) {
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
        let path = head.split(' ').nth(1).unwrap_or_default();
        let answer = if path == "/old" {
            response("307 Temporary Redirect", &[("location", "/mcp")], "")
        } else if head.starts_with("delete") {
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
}

async fn call(
    version: &'static str,
    script: Script,
) -> Result<common::scenario::ToolOutput, CallError> {
    call_at(serve(version, script).await).await
}

/// Opens a session at `url`, makes one call and closes it.
async fn call_at(url: String) -> Result<common::scenario::ToolOutput, CallError> {
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

#[tokio::test]
async fn a_redirect_is_followed() {
    let url = serve("2025-11-25", |id| json_ok(&tool_result(id, "moved")))
        .await
        .replace("/mcp", "/old");
    let out = call_at(url).await.unwrap();
    assert_eq!(out.text, "moved");
}

/// A CA, and a certificate for 127.0.0.1 it signed, as the TLS target shows it.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    server: rcgen::Certificate,
    server_key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &*ca)
            .unwrap();
        Pki {
            ca,
            server,
            server_key,
        }
    }

    fn server_config(&self) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![self.server.der().clone()],
                PrivateKeyDer::from_pem_slice(self.server_key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap()
    }
}

#[tokio::test]
async fn a_tls_target_the_platform_does_not_trust_is_refused() {
    let url = serve_with(
        "2025-11-25",
        |id| json_ok(&tool_result(id, "x")),
        Some(Pki::new().server_config()),
    )
    .await;
    let err = call_at(url).await.expect_err("an untrusted certificate");
    assert_eq!(err.kind, ErrorKind::Transport, "{}", err.message);
    assert!(err.message.contains("certificate"), "{}", err.message);
}

/// Where the child run of `a_tls_target_the_platform_trusts_is_called` finds
/// its certificate and key.
const TLS_CHILD_DIR: &str = "MCP_SWARM_TEST_TLS_TARGET_DIR";

/// The platform's trust comes from the environment (`SSL_CERT_FILE` names
/// our CA), which is the process's: the test runs this test binary again,
/// with it set, to run `tls_target_trusted_by_the_platform_child` there.
#[test]
fn a_tls_target_the_platform_trusts_is_called() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("ca.crt", &pki.ca.pem());
    write("server.crt", &pki.server.pem());
    write("server.key", &pki.server_key.serialize_pem());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tls_target_trusted_by_the_platform_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(TLS_CHILD_DIR, dir.path())
        .env("SSL_CERT_FILE", dir.path().join("ca.crt"))
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("TLS target called"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The half of `a_tls_target_the_platform_trusts_is_called` that runs in the
/// child; in an ordinary run (no directory given) there is nothing to do.
#[tokio::test]
async fn tls_target_trusted_by_the_platform_child() {
    let Some(dir) = std::env::var_os(TLS_CHILD_DIR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from_pem_slice(&read("server.crt")).unwrap()],
            PrivateKeyDer::from_pem_slice(&read("server.key")).unwrap(),
        )
        .unwrap();
    let url = serve_with(
        "2025-11-25",
        |id| json_ok(&tool_result(id, "over TLS")),
        Some(config),
    )
    .await;
    let out = call_at(url).await.unwrap();
    assert_eq!(out.text, "over TLS");
    println!("TLS target called");
}
