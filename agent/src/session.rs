//! One MCP session per user: an rmcp client over Streamable HTTP whose
//! bearer token can change during the run (`TokenUpdate`), which asks the
//! controller for a fresh token and retries once on HTTP 401, and whose
//! failures are classified into `ErrorKind`s.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::ErrorKind;
use common::Secret;
use common::ids::UserName;
use common::scenario::ToolOutput;
use http::{HeaderName, HeaderValue};
use rmcp::model::{CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::BoxedSseResponse;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpClient,
    StreamableHttpClientTransportConfig, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use rmcp::{ErrorData, ServiceExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

/// How long a call that got a 401 waits for the controller's new token.
pub const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// How long closing one session may take at the end of a run.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

type HttpError = StreamableHttpError<reqwest::Error>;

/// Counters of the MCP side reported in `FinalReport.mcp`.
#[derive(Debug, Default)]
pub struct McpCounters {
    pub session_reinitializations: AtomicU64,
    /// HTTP 401/403 answers from the target (including ones a refresh fixed).
    pub auth_failures: AtomicU64,
    pub refresh_requests: AtomicU64,
}

pub use common::protocol::McpStats;

impl McpCounters {
    pub fn snapshot(&self) -> McpStats {
        McpStats {
            session_reinitializations: self.session_reinitializations.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            refresh_requests: self.refresh_requests.load(Ordering::Relaxed),
        }
    }
}

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

/// What every session of an agent shares.
#[derive(Clone, Debug)]
pub struct SessionContext {
    /// One pooled client for the whole agent (rmcp's default keeps no idle
    /// connections, which would mean a TCP handshake per call).
    pub http: reqwest::Client,
    pub mcp_url: String,
    pub headers: HashMap<HeaderName, HeaderValue>,
    pub counters: Arc<McpCounters>,
    /// Users for whom the controller should send a fresh token.
    pub refresh: mpsc::Sender<UserName>,
}

/// Builds the agent's one HTTP client.
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .build()
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

/// A call or session open that did not produce a tool result.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
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
            http: ctx.http.clone(),
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

/// Maps an rmcp error (of a call or an initialize) to its error kind by
/// walking its source chain.
pub fn classify(err: &(dyn StdError + 'static)) -> ErrorKind {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(service) = e.downcast_ref::<ServiceError>() {
            match service {
                ServiceError::McpError(_) => return ErrorKind::JsonRpc,
                ServiceError::Timeout { .. } => return ErrorKind::Timeout,
                ServiceError::TransportClosed => return ErrorKind::Transport,
                _ => {}
            }
        }
        if e.downcast_ref::<ErrorData>().is_some() {
            return ErrorKind::JsonRpc;
        }
        if e.downcast_ref::<AuthRequiredError>().is_some()
            || e.downcast_ref::<InsufficientScopeError>().is_some()
        {
            return ErrorKind::Auth;
        }
        if let Some(status) = e.downcast_ref::<HttpStatusError>() {
            return status_kind(status.status);
        }
        if let Some(http) = e.downcast_ref::<HttpError>() {
            if let StreamableHttpError::ReinitializationFailed(_) = http {
                return ErrorKind::JsonRpc;
            }
            if let Some(status) = http_status(http) {
                return status_kind(status);
            }
            if matches!(
                http,
                StreamableHttpError::SessionRecoveryTimeout
                    | StreamableHttpError::ControlRequestTimeout
            ) {
                return ErrorKind::Timeout;
            }
        }
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return ErrorKind::Timeout;
            }
            if let Some(status) = r.status() {
                return status_kind(status.as_u16());
            }
            return ErrorKind::Transport;
        }
        current = e.source();
    }
    // rmcp reports some answers only as text (`ClientInitializeError::JsonRpcError`).
    if err.to_string().contains("JSON-RPC error") {
        return ErrorKind::JsonRpc;
    }
    ErrorKind::Transport
}

fn status_kind(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Auth,
        400..=499 => ErrorKind::Http4xx,
        500..=599 => ErrorKind::Http5xx,
        _ => ErrorKind::Transport,
    }
}

/// The error and its causes on one line (rmcp errors never carry the token).
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        current = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn check(err: HttpError, expected: ErrorKind) {
        assert_eq!(classify(&err), expected, "{err}");
    }

    #[test]
    fn classifies_transport_errors() {
        check(
            StreamableHttpError::HttpStatus(HttpStatusError::new(503, None)),
            ErrorKind::Http5xx,
        );
        check(
            StreamableHttpError::HttpStatus(HttpStatusError::new(429, None)),
            ErrorKind::Http4xx,
        );
        check(
            StreamableHttpError::UnexpectedServerResponse(Cow::from("HTTP 401 Unauthorized: no")),
            ErrorKind::Auth,
        );
        check(
            StreamableHttpError::UnexpectedServerResponse(Cow::from("HTTP 422 Unprocessable: x")),
            ErrorKind::Http4xx,
        );
        check(
            StreamableHttpError::UnexpectedEndOfStream,
            ErrorKind::Transport,
        );
        check(
            StreamableHttpError::SessionRecoveryTimeout,
            ErrorKind::Timeout,
        );
        check(
            StreamableHttpError::AuthRequired(AuthRequiredError::new("Bearer".into())),
            ErrorKind::Auth,
        );
        assert_eq!(
            classify(&ServiceError::McpError(ErrorData::internal_error(
                "x", None
            ))),
            ErrorKind::JsonRpc
        );
        assert_eq!(
            classify(&ServiceError::TransportClosed),
            ErrorKind::Transport
        );
    }
}
