//! The baseline for the measurements: the agent's rmcp-based session as it
//! was before the thin client (commit 573f800), trimmed of its tests and
//! error classification; `SessionContext` and `McpCounters` are the agent's.
#![allow(dead_code)]

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agent::session::{CallError, SessionContext};
use common::ErrorKind;
use common::Secret;
use common::ids::UserName;
use common::scenario::ToolOutput;
use http::{HeaderName, HeaderValue};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use serde_json::Value;
use tokio::sync::watch;

/// How long a call that got a 401 waits for the controller's new token.
const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// How long closing one session may take at the end of a run.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

type HttpError = StreamableHttpError<reqwest::Error>;

/// The current access token of one user. `TokenUpdate` replaces it; calls
/// read it per request, so the MCP session survives token changes.
#[derive(Debug)]
pub struct UserToken {
    user: UserName,
    token: watch::Sender<Secret>,
    refresh_pending: AtomicBool,
}

impl UserToken {
    pub fn new(user: UserName, token: Secret) -> Arc<Self> {
        Arc::new(Self {
            user,
            token: watch::Sender::new(token),
            refresh_pending: AtomicBool::new(false),
        })
    }

    pub fn user(&self) -> &UserName {
        &self.user
    }

    pub fn set(&self, token: Secret) {
        self.token.send_replace(token);
        self.refresh_pending.store(false, Ordering::Relaxed);
    }

    fn current(&self) -> String {
        self.token.borrow().expose().to_owned()
    }
}

/// rmcp's HTTP client for one user: the shared reqwest client, with the
/// user's current token on every request and one refresh-and-retry on 401.
#[derive(Clone)]
struct TokenClient {
    http: reqwest::Client,
    token: Arc<UserToken>,
    ctx: Arc<SessionContext>,
    /// Set after the first `initialize`; later ones are re-initializations.
    initialized: Arc<AtomicBool>,
}

impl TokenClient {
    /// Asks for a fresh token unless a request is already out, and waits
    /// for it. `seen` was subscribed before the failed request, so a token
    /// that arrived meanwhile counts.
    async fn refreshed(&self, mut seen: watch::Receiver<Secret>) -> bool {
        if seen.has_changed().unwrap_or(false) {
            return true;
        }
        if !self.token.refresh_pending.swap(true, Ordering::Relaxed) {
            self.ctx
                .counters
                .refresh_requests
                .fetch_add(1, Ordering::Relaxed);
            if self.ctx.refresh.try_send(self.token.user.clone()).is_err() {
                tracing::warn!(user = %self.token.user, "refresh request queue full or closed");
            }
        }
        let got = matches!(
            tokio::time::timeout(REFRESH_WAIT, seen.changed()).await,
            Ok(Ok(()))
        );
        if !got {
            // Allow a new request next time rather than waiting forever on a lost one.
            self.token.refresh_pending.store(false, Ordering::Relaxed);
        }
        got
    }

    fn note_initialize(&self, message: &ClientJsonRpcMessage) {
        if let JsonRpcMessage::Request(request) = message
            && matches!(request.request, ClientRequest::InitializeRequest(_))
            && self.initialized.swap(true, Ordering::Relaxed)
        {
            self.ctx
                .counters
                .session_reinitializations
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn is_auth_error(err: &HttpError) -> bool {
    matches!(err, StreamableHttpError::AuthRequired(_)) || http_status(err) == Some(401)
}

fn is_forbidden(err: &HttpError) -> bool {
    matches!(err, StreamableHttpError::InsufficientScope(_)) || http_status(err) == Some(403)
}

/// The HTTP status behind a transport error, when there is one.
fn http_status(err: &HttpError) -> Option<u16> {
    match err {
        StreamableHttpError::HttpStatus(e) => Some(e.status),
        StreamableHttpError::AuthRequired(_) => Some(401),
        StreamableHttpError::InsufficientScope(_) => Some(403),
        StreamableHttpError::SessionExpired => Some(404),
        StreamableHttpError::Client(e) => e.status().map(|s| s.as_u16()),
        // The reqwest client reports other non-success answers as "HTTP 418 I'm a teapot: body".
        StreamableHttpError::UnexpectedServerResponse(text) => text
            .strip_prefix("HTTP ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok()),
        _ => None,
    }
}

impl StreamableHttpClient for TokenClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            None,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.note_initialize(&message);
        let seen = self.token.token.subscribe();
        let first = self
            .http
            .post_message_with_response_limits(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                Some(self.token.current()),
                custom_headers.clone(),
                limits,
            )
            .await;
        match first {
            Err(e) if is_auth_error(&e) => {
                self.ctx
                    .counters
                    .auth_failures
                    .fetch_add(1, Ordering::Relaxed);
                if !self.refreshed(seen).await {
                    return Err(e);
                }
                let retry = self
                    .http
                    .post_message_with_response_limits(
                        uri,
                        message,
                        session_id,
                        Some(self.token.current()),
                        custom_headers,
                        limits,
                    )
                    .await;
                if let Err(e) = &retry
                    && (is_auth_error(e) || is_forbidden(e))
                {
                    self.ctx
                        .counters
                        .auth_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
                retry
            }
            Err(e) if is_forbidden(&e) => {
                self.ctx
                    .counters
                    .auth_failures
                    .fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
            other => other,
        }
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), HttpError> {
        self.http
            .delete_session(uri, session_id, Some(self.token.current()), custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxedSseResponse, HttpError> {
        self.http
            .get_stream(
                uri,
                session_id,
                last_event_id,
                Some(self.token.current()),
                custom_headers,
            )
            .await
    }
}

/// One user's initialized MCP client, kept for the whole run.
pub struct McpSession {
    user: UserName,
    service: RunningService<RoleClient, ()>,
}

impl std::fmt::Debug for McpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl McpSession {
    /// Connects and initializes; returns the session and how long that took.
    pub async fn open(
        ctx: &Arc<SessionContext>,
        token: Arc<UserToken>,
        timeout: Duration,
    ) -> Result<(McpSession, Duration), CallError> {
        let user = token.user.clone();
        let client = TokenClient {
            http: ctx.http.reqwest().clone(),
            token,
            ctx: ctx.clone(),
            initialized: Arc::new(AtomicBool::new(false)),
        };
        let config = StreamableHttpClientTransportConfig::with_uri(ctx.mcp_url.as_str())
            .custom_headers(ctx.headers.clone())
            .reinit_on_expired_session(true)
            .max_concurrent_requests(64);
        let transport = StreamableHttpClientTransport::with_client(client, config);
        let started = Instant::now();
        let service = match tokio::time::timeout(timeout, ().serve(transport)).await {
            Ok(Ok(service)) => service,
            Ok(Err(e)) => {
                return Err(CallError {
                    kind: classify(&e),
                    message: error_chain(&e),
                });
            }
            Err(_) => {
                return Err(CallError {
                    kind: ErrorKind::Timeout,
                    message: format!("initialize did not finish within {timeout:?}"),
                });
            }
        };
        Ok((McpSession { user, service }, started.elapsed()))
    }

    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// Calls a tool. A result with `isError` is `Ok` (the step decides);
    /// `Err` is everything that produced no result.
    pub async fn call(
        &self,
        tool: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<ToolOutput, CallError> {
        let arguments = match args {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                return Err(CallError {
                    kind: ErrorKind::Skipped,
                    message: format!("arguments must be an object, got {other}"),
                });
            }
        };
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        match tokio::time::timeout(timeout, self.service.call_tool(params)).await {
            Ok(Ok(result)) => {
                let text = result
                    .content
                    .iter()
                    .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
                    .collect::<Vec<_>>()
                    .join("\n");
                Ok(ToolOutput::new(
                    result.is_error.unwrap_or(false),
                    text,
                    result.structured_content,
                ))
            }
            Ok(Err(e)) => Err(CallError {
                kind: classify(&e),
                message: error_chain(&e),
            }),
            Err(_) => Err(CallError {
                kind: ErrorKind::Timeout,
                message: format!("no answer within {timeout:?}"),
            }),
        }
    }

    /// Ends the session (DELETE of the session where the server has one).
    pub async fn close(self) {
        let user = self.user;
        match tokio::time::timeout(CLOSE_TIMEOUT, self.service.cancel()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(%user, error = %e, "closing MCP session failed"),
            Err(_) => tracing::debug!(%user, "closing MCP session timed out"),
        }
    }
}

/// The baseline needs no fine classification: every failure is Transport.
fn classify(_err: &(dyn StdError + 'static)) -> ErrorKind {
    ErrorKind::Transport
}

fn error_chain(err: &(dyn StdError + 'static)) -> String {
    err.to_string()
}
