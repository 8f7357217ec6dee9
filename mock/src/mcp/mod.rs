//! The protected MCP endpoint: rmcp's Streamable HTTP service behind a guard that checks bearer
//! tokens, binds sessions to users and injects faults (`faults`); plus the RFC 9728 resource
//! metadata.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::oauth::token::{BearerError, bearer, verify_access};
use crate::{App, MockConfig, SCOPES, lock};

mod args;
mod catalog;
pub mod faults;
mod json_reply;
mod notes_search;
mod results;
mod scopes;
mod tools;
mod tools_files;
mod tools_notes;
mod tools_shares;
pub mod wire_stats;

use faults::Fault;

/// Largest MCP POST body the guard buffers to look at the JSON-RPC method.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
const SESSION_HEADER: &str = "mcp-session-id";
/// The session-owner map is checked against rmcp's live sessions once it has grown to twice its
/// size at the last check (and at least to this): amortized O(1) per new session, where a fixed
/// interval makes opening n sessions cost O(n²).
const PRUNE_OWNERS_MIN: usize = 256;

/// The authenticated caller of an MCP request, put into the request extensions by the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    /// The token's scopes, which decide the tools listed and callable (`scopes`).
    pub scopes: Vec<String>,
}

struct Guard {
    app: Arc<App>,
    sessions: Arc<LocalSessionManager>,
    /// session id → the user who created it.
    owners: Mutex<HashMap<String, String>>,
    /// Size of `owners` at which it is pruned next.
    prune_at: AtomicUsize,
    /// `--json-replies`: a POST's one-message SSE answer is sent as JSON (`json_reply`).
    json_replies: bool,
}

impl Guard {
    /// Records the owner of a new session, pruning the map when it is due.
    async fn own(&self, sid: &str, user: String) {
        let n_owned = {
            let mut owners = lock(&self.owners);
            owners.insert(sid.to_owned(), user);
            owners.len()
        };
        let due = self.prune_at.load(Ordering::Relaxed);
        // One task prunes; the provisional threshold stands if its request is dropped.
        if n_owned >= due
            && self
                .prune_at
                .compare_exchange(
                    due,
                    next_prune(n_owned),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            let n_live = self.prune_owners().await;
            self.prune_at.store(next_prune(n_live), Ordering::Relaxed);
        }
    }

    /// Forgets owners of sessions rmcp has dropped (idle expiry), so the map does not grow;
    /// returns how many are left.
    async fn prune_owners(&self) -> usize {
        let live = self.sessions.sessions.read().await;
        let mut owners = lock(&self.owners);
        owners.retain(|sid, _| live.contains_key(sid.as_str()));
        owners.len()
    }
}

/// The owner-map size at which to prune next, after a prune left `n_live` entries.
fn next_prune(n_live: usize) -> usize {
    n_live.saturating_mul(2).max(PRUNE_OWNERS_MIN)
}

pub fn router(app: Arc<App>, config: &MockConfig, shutdown: CancellationToken) -> Router {
    let sessions = Arc::new(LocalSessionManager::default());
    // rmcp prefers JSON itself only where it serves without sessions (2026-07-28); the guard
    // turns the answers of sessions into JSON (`json_reply`).
    let mut server_config = StreamableHttpServerConfig::default()
        .with_cancellation_token(shutdown.child_token())
        .with_json_response(config.json_replies);
    server_config = if config.allowed_hosts.is_empty() {
        server_config.disable_allowed_hosts()
    } else {
        // Our own loopback and public names stay allowed next to the configured ones.
        let mut hosts = config.allowed_hosts.clone();
        hosts.extend(["localhost", "127.0.0.1", "::1"].map(String::from));
        if let Some(host) = config.public_url.as_ref().and_then(|u| u.host_str()) {
            hosts.push(host.to_owned());
        }
        server_config.with_allowed_hosts(hosts)
    };
    let tools_app = app.clone();
    let tool_router = tools::NcServer::router();
    let service = StreamableHttpService::new(
        move || Ok(tools::NcServer::new(tools_app.clone(), tool_router.clone())),
        sessions.clone(),
        server_config,
    );
    let guard = Arc::new(Guard {
        app: app.clone(),
        sessions,
        owners: Mutex::new(HashMap::new()),
        prune_at: AtomicUsize::new(PRUNE_OWNERS_MIN),
        json_replies: config.json_replies,
    });
    let mcp = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(guard, guard_mcp));
    Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .with_state(app)
        .merge(mcp)
}

/// RFC 9728 metadata shaped as the real server's: its scopes sorted, the mock's own AS.
async fn resource_metadata(State(app): State<Arc<App>>) -> impl IntoResponse {
    let mut scopes = SCOPES;
    scopes.sort_unstable();
    axum::Json(json!({
        "resource": app.mcp_url,
        "authorization_servers": [app.issuer],
        "scopes_supported": scopes,
        "bearer_methods_supported": ["header"],
        "resource_signing_alg_values_supported": ["RS256"],
    }))
}

/// The 401 the real server's SDK (`RequireAuthMiddleware`) sends for a missing or bad token:
/// always `invalid_token` and "Authentication required"; why it failed goes to the log only.
fn unauthorized(app: &App, error: Option<BearerError>) -> Response {
    if let Some(e) = error {
        tracing::debug!(error = %e, "bearer token refused");
    }
    let challenge = format!(
        "Bearer error=\"invalid_token\", error_description=\"Authentication required\", resource_metadata=\"{}\"",
        app.resource_metadata_url()
    );
    let body = json!({ "error": "invalid_token", "error_description": "Authentication required" });
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        axum::Json(body),
    )
        .into_response()
}

fn unavailable(reason: &'static str) -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, reason).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// An answer whose body breaks after the headers, as a connection reset
/// mid-response does: the client gets a status and then a transport error.
fn reset() -> Response {
    let broken = futures::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected connection reset",
        ))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(broken),
    )
        .into_response()
}

/// The JSON-RPC method of a single-message body, if any.
fn rpc_method(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Peek {
        method: Option<String>,
    }
    serde_json::from_slice::<Peek>(body).ok()?.method
}

async fn guard_mcp(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let app = &guard.app;
    let Some(token) = bearer(req.headers()) else {
        return unauthorized(app, None);
    };
    let claims = match verify_access(app, token) {
        Ok(claims) => claims,
        Err(e) => return unauthorized(app, Some(e)),
    };
    // Any valid token gets in, as on the real server; each tool checks its own scope.
    let scopes: Vec<String> = claims.scope.split_whitespace().map(str::to_owned).collect();
    let user = claims.sub;
    app.wire_stats.count(req.headers());
    let session = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(sid) = &session
        && lock(&guard.owners)
            .get(sid)
            .is_some_and(|owner| *owner != user)
    {
        tracing::debug!(user, "refused a session owned by another user");
        return (
            StatusCode::FORBIDDEN,
            "this session belongs to another user",
        )
            .into_response();
    }
    let faults = &app.faults;
    let worker = faults.worker().await;
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    drop(worker);
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    // rmcp answers a DELETE of any session id with 202; the MCP spec wants
    // 404 for a session that is gone and clients expect 200/204 for success.
    if method == Method::DELETE
        && let Some(sid) = &session
        && !guard
            .sessions
            .sessions
            .read()
            .await
            .contains_key(sid.as_str())
    {
        lock(&guard.owners).remove(sid);
        return (StatusCode::NOT_FOUND, "session not found").into_response();
    }
    let mut tool_call = false;
    let mut req = if method == Method::POST {
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
        };
        let rpc = rpc_method(&bytes);
        tool_call = rpc.as_deref() == Some("tools/call");
        match rpc.as_deref() {
            Some("initialize") => {
                if let Some(max) = faults.max_sessions
                    && guard.sessions.sessions.read().await.len() >= max
                {
                    return unavailable("too many sessions");
                }
            }
            Some("tools/call") => match faults.pick() {
                Some(Fault::Error) => return unavailable("injected fault"),
                Some(Fault::Reset) => return reset(),
                Some(Fault::Stall) => {
                    tokio::time::sleep(faults::STALL_FOR).await;
                    return unavailable("injected stall");
                }
                None => {}
            },
            _ => {}
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };
    req.extensions_mut().insert(Principal {
        user: user.clone(),
        scopes,
    });
    let mut response = next.run(req).await;
    if guard.json_replies && method == Method::POST {
        response = json_reply::into_json(response, MAX_BODY_BYTES).await;
    }
    if tool_call {
        app.wire_stats.served();
    }
    if method == Method::DELETE && response.status().is_success() {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    match &session {
        None => {
            if let Some(sid) = response
                .headers()
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                guard.own(sid, user).await;
            }
        }
        Some(sid) => {
            let gone = response.status() == StatusCode::NOT_FOUND
                || (method == Method::DELETE && response.status().is_success());
            if gone {
                lock(&guard.owners).remove(sid);
            }
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_pruned_at_doubling_sizes() {
        let check = |n_live: usize, expected: usize| assert_eq!(next_prune(n_live), expected);
        check(0, PRUNE_OWNERS_MIN);
        check(100, PRUNE_OWNERS_MIN);
        check(PRUNE_OWNERS_MIN, 2 * PRUNE_OWNERS_MIN);
        check(10_000, 20_000);
        check(usize::MAX, usize::MAX);
        // Opening 100,000 sessions that all stay live prunes only ~log2(100,000 / 256) times.
        let (mut at, mut prunes) = (PRUNE_OWNERS_MIN, 0);
        for n in 1..=100_000 {
            if n >= at {
                at = next_prune(n);
                prunes += 1;
            }
        }
        assert_eq!(prunes, 9);
    }
}
