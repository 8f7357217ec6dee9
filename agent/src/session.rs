//! One MCP session per user: a thin Streamable HTTP client (no task, no
//! GET stream, one pooled `client::HttpClient` for the agent) whose bearer
//! token can change during the run (`TokenUpdate`), which asks the
//! controller for a fresh token and retries once on HTTP 401, re-initializes
//! once when the server forgets the session, and classifies failures into
//! `ErrorKind`s. Up to 2025-11-25 a session is `initialize` and an
//! `Mcp-Session-Id`; on 2026-07-28 it is only the user's token: opening is a
//! `server/discover`, and every request carries the version and client info
//! in `_meta` and `Mcp-Method`/`Mcp-Name` headers. `--mcp-version auto`
//! discovers first and falls back to `initialize` when the server does not
//! speak 2026-07-28.

mod client;
mod exchange;
mod sse;
mod wire;

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::ErrorKind;
use common::Secret;
use common::ids::UserName;
use common::protocol::{ElicitationAnswer, McpVersion, McpVersionChoice, ServerRequest};
use common::scenario::ToolOutput;
use http::{HeaderName, HeaderValue};
use serde::de::IgnoredAny;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

use client::Endpoint;
pub use client::{BuildError, HttpClient};
use exchange::{Failure, Target};
use wire::{CallResult, DiscoverResult, InitializeResult, Reply};

/// How long a call that got a 401 waits for the controller's new token.
pub const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// How long closing one session may take at the end of a run.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest JSON-RPC error message quoted in a `CallError`.
const RPC_MESSAGE_CHARS: usize = 300;

/// Counters of the MCP side reported in `FinalReport.mcp`.
#[derive(Debug, Default)]
pub struct McpCounters {
    pub session_reinitializations: AtomicU64,
    /// HTTP 401/403 answers from the target (including ones a refresh fixed).
    pub auth_failures: AtomicU64,
    pub refresh_requests: AtomicU64,
    /// Sessions opened, by the version they settled on (`McpVersion` order).
    sessions_by_version: [AtomicU64; McpVersion::ALL.len()],
    /// Requests the server sent mid-call (`ServerRequest` order).
    server_requests: [AtomicU64; ServerRequest::ALL.len()],
}

pub use common::protocol::McpStats;

impl McpCounters {
    pub fn snapshot(&self) -> McpStats {
        let mut stats = McpStats {
            session_reinitializations: self.session_reinitializations.load(Ordering::Relaxed),
            auth_failures: self.auth_failures.load(Ordering::Relaxed),
            refresh_requests: self.refresh_requests.load(Ordering::Relaxed),
            ..McpStats::default()
        };
        for (v, n) in McpVersion::ALL.iter().zip(&self.sessions_by_version) {
            stats.sessions_by_version[*v as usize] = n.load(Ordering::Relaxed);
        }
        for (r, n) in ServerRequest::ALL.iter().zip(&self.server_requests) {
            stats.server_requests[r.index()] = n.load(Ordering::Relaxed);
        }
        stats
    }

    pub fn count_server_request(&self, kind: ServerRequest) {
        self.server_requests[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn count_session(&self, version: McpVersion) {
        self.sessions_by_version[version as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// The current access token of one user. `TokenUpdate` replaces it; calls
/// read it per request, so the MCP session survives token changes.
pub struct UserToken {
    user: UserName,
    /// `Bearer <token>`, built once per token and marked sensitive; `None`
    /// when the token cannot be a header value.
    bearer: RwLock<Option<HeaderValue>>,
    /// Counts token changes, so a request knows whether one arrived while it was out.
    generation: AtomicU64,
    changed: Notify,
    refresh_pending: AtomicBool,
}

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserToken")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

fn bearer_header(token: &Secret) -> Option<HeaderValue> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

impl UserToken {
    pub fn new(user: UserName, token: Secret) -> Arc<Self> {
        Arc::new(Self {
            user,
            bearer: RwLock::new(bearer_header(&token)),
            generation: AtomicU64::new(0),
            changed: Notify::new(),
            refresh_pending: AtomicBool::new(false),
        })
    }

    pub fn user(&self) -> &UserName {
        &self.user
    }

    pub fn set(&self, token: Secret) {
        let bearer = bearer_header(&token);
        // A poisoned lock only means a panic elsewhere; the value is replaced whole.
        *self.bearer.write().unwrap_or_else(PoisonError::into_inner) = bearer;
        self.generation.fetch_add(1, Ordering::Release);
        self.refresh_pending.store(false, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    fn bearer(&self) -> Option<HeaderValue> {
        self.bearer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Taken before a request, so a token that arrives while it is out counts as new.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Asks for a fresh token unless a request is already out, and waits
    /// for it. `seen` is the generation the failed request was sent with,
    /// so a token that arrived meanwhile counts.
    async fn refreshed(&self, ctx: &SessionContext, seen: u64) -> bool {
        let changed = self.changed.notified();
        tokio::pin!(changed);
        // Registered before the check, so a `set` right after it still wakes us.
        changed.as_mut().enable();
        if self.generation() != seen {
            return true;
        }
        if !self.refresh_pending.swap(true, Ordering::Relaxed) {
            ctx.counters
                .refresh_requests
                .fetch_add(1, Ordering::Relaxed);
            if ctx.refresh.try_send(self.user.clone()).is_err() {
                tracing::warn!(user = %self.user, "refresh request queue full or closed");
            }
        }
        let got = tokio::time::timeout(REFRESH_WAIT, changed).await.is_ok();
        if !got {
            // Allow a new request next time rather than waiting forever on a lost one.
            self.refresh_pending.store(false, Ordering::Relaxed);
        }
        got
    }

    /// `text` with the current token, should a server have echoed it, masked.
    fn redact(&self, text: String) -> String {
        let bearer = self.bearer();
        match bearer
            .as_ref()
            .and_then(|b| b.as_bytes().get("Bearer ".len()..))
        {
            Some(token) if !token.is_empty() => match std::str::from_utf8(token) {
                Ok(token) if text.contains(token) => text.replace(token, "***"),
                _ => text,
            },
            _ => text,
        }
    }
}

/// What every session of an agent shares.
#[derive(Clone, Debug)]
pub struct SessionContext {
    /// One pooled client for the whole agent: every session's requests go
    /// over its keep-alive connections.
    pub http: HttpClient,
    pub mcp_url: String,
    pub headers: HashMap<HeaderName, HeaderValue>,
    pub counters: Arc<McpCounters>,
    /// Users for whom the controller should send a fresh token.
    pub refresh: mpsc::Sender<UserName>,
    /// `--mcp-version`.
    pub version: McpVersionChoice,
    /// `--elicitation`: the answer to a server's `elicitation/create`.
    pub elicitation: ElicitationAnswer,
}

/// Builds the agent's one HTTP client.
pub fn http_client() -> Result<HttpClient, BuildError> {
    HttpClient::new()
}

/// A call or session open that did not produce a tool result.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct CallError {
    pub kind: ErrorKind,
    pub message: String,
}

/// What opening settled: the protocol version and, where it has sessions,
/// the server's session id.
#[derive(Clone, Debug, PartialEq)]
struct Negotiated {
    session_id: Option<HeaderValue>,
    version: McpVersion,
}

/// One user's initialized MCP session, kept for the whole run. It owns no
/// task and no connection: each call is one POST on the shared client.
pub struct McpSession {
    token: Arc<UserToken>,
    ctx: Arc<SessionContext>,
    endpoint: Endpoint,
    next_id: AtomicU64,
    negotiated: Mutex<Negotiated>,
    /// Held while re-initializing, so concurrent calls that all met the
    /// forgotten session start one new session, not one each.
    reinit: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for McpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSession")
            .field("user", self.user())
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
        let endpoint = ctx.http.endpoint(&ctx.mcp_url).map_err(|e| CallError {
            kind: ErrorKind::Transport,
            message: format!("invalid MCP URL {:?}: {e}", ctx.mcp_url),
        })?;
        let session = McpSession {
            token,
            ctx: ctx.clone(),
            endpoint,
            next_id: AtomicU64::new(0),
            negotiated: Mutex::new(Negotiated {
                session_id: None,
                version: McpVersion::NEWEST_WITH_INITIALIZE,
            }),
            reinit: tokio::sync::Mutex::new(()),
        };
        let started = Instant::now();
        let negotiated = match tokio::time::timeout(timeout, session.negotiate()).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(CallError {
                    kind: ErrorKind::Timeout,
                    message: format!("initialize did not finish within {timeout:?}"),
                });
            }
        };
        let elapsed = started.elapsed();
        ctx.counters.count_session(negotiated.version);
        *session.lock() = negotiated;
        Ok((session, elapsed))
    }

    pub fn user(&self) -> &UserName {
        self.token.user()
    }

    /// The protocol version this session speaks.
    pub fn protocol_version(&self) -> McpVersion {
        self.lock().version
    }

    /// Calls a tool. A result with `isError` is `Ok` (the step decides);
    /// `Err` is everything that produced no result.
    pub async fn call(
        &self,
        tool: &str,
        args: Value,
        timeout: Duration,
    ) -> Result<ToolOutput, CallError> {
        if !matches!(args, Value::Object(_) | Value::Null) {
            return Err(CallError {
                kind: ErrorKind::Skipped,
                message: format!("arguments must be an object, got {args}"),
            });
        }
        match tokio::time::timeout(timeout, self.call_tool(tool, &args)).await {
            Ok(result) => result,
            Err(_) => Err(CallError {
                kind: ErrorKind::Timeout,
                message: format!("no answer within {timeout:?}"),
            }),
        }
    }

    /// Ends the session (DELETE of the session where the server has one).
    pub async fn close(self) {
        let negotiated = self.lock().clone();
        if negotiated.session_id.is_none() {
            return;
        }
        let target = self.target(&negotiated);
        match tokio::time::timeout(CLOSE_TIMEOUT, exchange::delete(&target)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(user = %self.user(), error = %e, "closing MCP session failed")
            }
            Err(_) => tracing::debug!(user = %self.user(), "closing MCP session timed out"),
        }
    }

    async fn call_tool(&self, tool: &str, args: &Value) -> Result<ToolOutput, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let negotiated = self.lock().clone();
        let stateless = !negotiated.version.has_initialize();
        let body = || wire::tool_call(id, tool, args, stateless);
        let posted = match exchange::post::<CallResult>(
            &self.call_target(&negotiated, tool),
            &body,
            Some(id),
        )
        .await
        {
            Err(Failure::SessionGone) => {
                self.reinitialize(&negotiated).await?;
                let negotiated = self.lock().clone();
                exchange::post::<CallResult>(&self.call_target(&negotiated, tool), &body, Some(id))
                    .await?
            }
            other => other?,
        };
        match posted.reply {
            Some(Reply::Result(mut result)) => {
                let text = result.text();
                Ok(ToolOutput::new(
                    result.is_error.unwrap_or(false),
                    text,
                    result.structured,
                ))
            }
            Some(Reply::Error(e)) => Err(rpc_error(&e, &self.token)),
            None => Err(no_response(id)),
        }
    }

    /// Settles the protocol version as `--mcp-version` asks: 2026-07-28 by
    /// `server/discover`, older ones by `initialize`; `auto` discovers and
    /// falls back to `initialize` when the server does not offer 2026-07-28.
    async fn negotiate(&self) -> Result<Negotiated, CallError> {
        match self.ctx.version {
            McpVersionChoice::Fixed(v) if v.has_initialize() => self.handshake(Some(v)).await,
            McpVersionChoice::Fixed(_) => match self.discover().await {
                Ok(true) => Ok(Negotiated {
                    session_id: None,
                    version: McpVersion::V2026_07_28,
                }),
                Ok(false) => Err(CallError {
                    kind: ErrorKind::Transport,
                    message: "--mcp-version 2026-07-28: the server's server/discover does not list 2026-07-28 among its supportedVersions".into(),
                }),
                Err(e) => Err(e.into_error()),
            },
            McpVersionChoice::Auto => match self.discover().await {
                Ok(true) => Ok(Negotiated {
                    session_id: None,
                    version: McpVersion::V2026_07_28,
                }),
                Ok(false) | Err(Discovery::NotSpoken(_)) => self.handshake(None).await,
                Err(e) => Err(e.into_error()),
            },
        }
    }

    /// `server/discover`: whether the server speaks 2026-07-28. A server
    /// that refuses the request (HTTP 4xx other than auth, or a JSON-RPC
    /// error) does not speak it.
    async fn discover(&self) -> Result<bool, Discovery> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let probe = Negotiated {
            session_id: None,
            version: McpVersion::V2026_07_28,
        };
        let mut target = self.target(&probe);
        target.rpc = Some(("server/discover", None));
        let posted =
            match exchange::post::<DiscoverResult>(&target, &|| wire::discover(id), Some(id)).await
            {
                Ok(posted) => posted,
                Err(Failure::Call(e)) if e.kind == ErrorKind::Http4xx => {
                    return Err(Discovery::NotSpoken(e));
                }
                Err(e) => return Err(Discovery::Failed(e.into())),
            };
        match posted.reply {
            Some(Reply::Result(r)) => Ok(r
                .supported_versions
                .iter()
                .any(|v| v == McpVersion::V2026_07_28.as_str())),
            Some(Reply::Error(e)) => Err(Discovery::NotSpoken(rpc_error(&e, &self.token))),
            None => Err(Discovery::Failed(no_response(id))),
        }
    }

    /// `initialize` (offering `pinned`, else our newest) then
    /// `notifications/initialized`. A pinned version must be the one the
    /// server answers with.
    async fn handshake(&self, pinned: Option<McpVersion>) -> Result<Negotiated, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let offered = pinned.unwrap_or(McpVersion::NEWEST_WITH_INITIALIZE);
        let unset = Negotiated {
            session_id: None,
            version: offered,
        };
        let mut target = self.target(&unset);
        target.version = None;
        let posted = exchange::post::<InitializeResult>(
            &target,
            &|| wire::initialize(id, offered.as_str()),
            Some(id),
        )
        .await?;
        let result = match posted.reply {
            Some(Reply::Result(result)) => result,
            Some(Reply::Error(e)) => return Err(rpc_error(&e, &self.token)),
            None => return Err(no_response(id)),
        };
        let answered: String = result.protocol_version.chars().take(40).collect();
        let version = match (McpVersion::parse(&result.protocol_version), pinned) {
            (Some(v), None) if v.has_initialize() => v,
            (Some(v), Some(p)) if v == p => v,
            (_, Some(p)) => {
                return Err(CallError {
                    kind: ErrorKind::Transport,
                    message: format!(
                        "--mcp-version {p}: the server answered initialize with protocol version {answered:?}"
                    ),
                });
            }
            (_, None) => {
                return Err(CallError {
                    kind: ErrorKind::Transport,
                    message: format!(
                        "the server chose MCP protocol version {answered:?}; this client speaks 2025-03-26, 2025-06-18 and 2025-11-25 with initialize"
                    ),
                });
            }
        };
        let negotiated = Negotiated {
            session_id: posted.session_id,
            version,
        };
        exchange::post::<IgnoredAny>(
            &self.target(&negotiated),
            &|| Bytes::from_static(wire::INITIALIZED),
            None,
        )
        .await?;
        Ok(negotiated)
    }

    /// Starts a new session after the server forgot `failed`, unless a
    /// concurrent call already did.
    async fn reinitialize(&self, failed: &Negotiated) -> Result<(), CallError> {
        let _one_at_a_time = self.reinit.lock().await;
        if *self.lock() != *failed {
            return Ok(());
        }
        self.ctx
            .counters
            .session_reinitializations
            .fetch_add(1, Ordering::Relaxed);
        let pinned = match self.ctx.version {
            McpVersionChoice::Fixed(v) => Some(v),
            McpVersionChoice::Auto => Some(failed.version),
        };
        let fresh = self.handshake(pinned).await?;
        *self.lock() = fresh;
        Ok(())
    }

    /// The target of a `tools/call`: on 2026-07-28 with `Mcp-Method` and `Mcp-Name`.
    fn call_target<'a>(&'a self, negotiated: &'a Negotiated, tool: &'a str) -> Target<'a> {
        let mut target = self.target(negotiated);
        if !negotiated.version.has_initialize() {
            target.rpc = Some(("tools/call", Some(tool)));
        }
        target
    }

    fn target<'a>(&'a self, negotiated: &'a Negotiated) -> Target<'a> {
        Target {
            ctx: &self.ctx,
            endpoint: &self.endpoint,
            token: &self.token,
            session_id: negotiated.session_id.as_ref(),
            version: Some(negotiated.version.as_str()),
            rpc: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Negotiated> {
        // The guarded value is replaced whole, so a poisoned lock still holds a consistent one.
        self.negotiated
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why `server/discover` told us nothing.
enum Discovery {
    /// The server refused the request: it does not speak 2026-07-28.
    NotSpoken(CallError),
    /// It could not be asked (timeout, 5xx, transport, auth).
    Failed(CallError),
}

impl Discovery {
    fn into_error(self) -> CallError {
        match self {
            Discovery::NotSpoken(e) => CallError {
                kind: e.kind,
                message: format!("server/discover (2026-07-28) refused: {}", e.message),
            },
            Discovery::Failed(e) => e,
        }
    }
}

/// A JSON-RPC error object as a `CallError`, its message cut short and
/// never showing the token.
fn rpc_error(e: &wire::RpcError, token: &UserToken) -> CallError {
    let message: String = e.message.chars().take(RPC_MESSAGE_CHARS).collect();
    CallError {
        kind: ErrorKind::JsonRpc,
        message: token.redact(format!("JSON-RPC error {}: {message}", e.code)),
    }
}

fn no_response(id: u64) -> CallError {
    CallError {
        kind: ErrorKind::Transport,
        message: format!("HTTP 202 Accepted instead of the response to request {id}"),
    }
}

/// The error and its causes on one line (our errors never carry the token;
/// the HTTP client's name the URL, which carries none either).
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

    fn context() -> (SessionContext, mpsc::Receiver<UserName>) {
        let (refresh, rx) = mpsc::channel(4);
        let ctx = SessionContext {
            http: http_client().unwrap(),
            mcp_url: "http://127.0.0.1:1/mcp".into(),
            headers: HashMap::new(),
            counters: Arc::default(),
            refresh,
            version: McpVersionChoice::Auto,
            elicitation: ElicitationAnswer::Decline,
        };
        (ctx, rx)
    }

    #[tokio::test]
    async fn refresh_counts_a_token_that_came_meanwhile_and_awaits_the_answer() {
        let (ctx, mut rx) = context();
        let token = UserToken::new("u".into(), Secret::new("old"));

        // A token that came while the request was out counts, without asking.
        let seen = token.generation();
        token.set(Secret::new("newer"));
        assert!(token.refreshed(&ctx, seen).await);
        assert_eq!(ctx.counters.snapshot().refresh_requests, 0);

        // Otherwise one request goes out and the answer is awaited.
        let seen = token.generation();
        let answering = token.clone();
        let controller = tokio::spawn(async move {
            let user = rx.recv().await.unwrap();
            answering.set(Secret::new("fresh"));
            (user, rx)
        });
        assert!(token.refreshed(&ctx, seen).await);
        let (user, _rx) = controller.await.unwrap();
        assert_eq!(user.as_str(), "u");
        assert_eq!(ctx.counters.snapshot().refresh_requests, 1);
        // (Giving up after REFRESH_WAIT is covered by tests/session.rs.)
    }

    #[test]
    fn bearer_is_sensitive_and_redacted() {
        let token = UserToken::new("u".into(), Secret::new("s3cret-value"));
        let bearer = token.bearer().unwrap();
        assert!(bearer.is_sensitive());
        assert_eq!(bearer.as_bytes(), b"Bearer s3cret-value");
        assert_eq!(
            format!("{token:?}"),
            r#"UserToken { user: UserName("u"), .. }"#
        );
        assert_eq!(
            token.redact("echo: s3cret-value!".into()),
            "echo: ***!".to_owned()
        );
        // A token that cannot be a header value fails the call, not the agent.
        token.set(Secret::new("bad\nvalue"));
        assert!(token.bearer().is_none());
    }
}
