//! One HTTP exchange of a session over the shared client: the request
//! (bearer, session id, protocol version, 2026-07-28's `Mcp-Method` and
//! `Mcp-Name`, custom headers), one refresh and
//! retry on a 401, and the answer (JSON or SSE) read within a size bound.

use bytes::Bytes;
use futures::FutureExt as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::client::{Endpoint, HttpError, Response};
use super::sse::SseReader;
use super::wire::{self, Reply};
use super::{CallError, SessionContext, UserToken, error_chain};
use common::ErrorKind;

/// The largest answer read; a larger one is a Transport error, never an allocation.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// How long the rest of an event stream may take after our response.
const END_GRACE: Duration = Duration::from_millis(20);
/// How much of an error answer's body goes into the error message.
const ERROR_EXCERPT_BYTES: usize = 300;

pub const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
pub const MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub const MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("application/json, text/event-stream");
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Where and as whom a request goes.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub ctx: &'a SessionContext,
    pub endpoint: &'a Endpoint,
    pub token: &'a UserToken,
    /// Absent before initialize, and for servers without sessions.
    pub session_id: Option<&'a HeaderValue>,
    /// Absent on initialize itself.
    pub version: Option<&'static str>,
    /// The JSON-RPC method and its name parameter, sent as `Mcp-Method` and
    /// `Mcp-Name` (SEP-2243) when set: on 2026-07-28 requests.
    pub rpc: Option<(&'static str, Option<&'a str>)>,
}

/// Why a request produced no answer.
#[derive(Debug)]
pub enum Failure {
    /// HTTP 404 to a request that carried a session id: the server forgot the session.
    SessionGone,
    Call(CallError),
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        Failure::Call(e)
    }
}

impl From<Failure> for CallError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::SessionGone => CallError {
                kind: ErrorKind::Http4xx,
                message: "HTTP 404 Not Found: the server no longer knows the MCP session".into(),
            },
            Failure::Call(e) => e,
        }
    }
}

/// A successful POST: the reply (None for a notification) and, from an
/// initialize, the session id the server assigned.
pub struct Posted<R> {
    pub reply: Option<Reply<R>>,
    pub session_id: Option<HeaderValue>,
}

/// POSTs the body `body()` makes (called again for a retry). With `id`,
/// waits for the response to that request; without, expects 202.
pub async fn post<R: DeserializeOwned>(
    t: &Target<'_>,
    body: &impl Fn() -> Bytes,
    id: Option<u64>,
) -> Result<Posted<R>, Failure> {
    let response = send(t, Method::POST, Some(body)).await?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(t, response).await);
    }
    // Copied: the header's bytes share hyper's whole read buffer, which a
    // session held for the run must not pin.
    let session_id = match response.headers().get(SESSION_ID) {
        Some(v) if t.session_id.is_none() => HeaderValue::from_bytes(v.as_bytes()).ok(),
        _ => None,
    };
    let Some(id) = id else {
        // A notification: 202 Accepted, nothing to read.
        return Ok(Posted {
            reply: None,
            session_id,
        });
    };
    let reply = read_reply(response, id, t).await?;
    Ok(Posted {
        reply: Some(reply),
        session_id,
    })
}

/// DELETEs the session; a 404 (already gone) or 405 (not allowed) is fine.
pub async fn delete(t: &Target<'_>) -> Result<(), CallError> {
    let response = send(t, Method::DELETE, None::<&fn() -> Bytes>).await?;
    match response.status() {
        s if s.is_success() => Ok(()),
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Ok(()),
        _ => Err(failed(t, response).await.into()),
    }
}

/// Sends with the current token; on a 401 asks for a fresh one and retries once.
async fn send(
    t: &Target<'_>,
    method: Method,
    body: Option<&impl Fn() -> Bytes>,
) -> Result<Response, Failure> {
    let seen = t.token.generation();
    let first = execute(t, method.clone(), body).await?;
    match first.status() {
        StatusCode::UNAUTHORIZED => {
            count_auth_failure(t);
            if !t.token.refreshed(t.ctx, seen).await {
                return Err(failed(t, first).await);
            }
            drop(first);
            let retry = execute(t, method, body).await?;
            if matches!(
                retry.status(),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ) {
                count_auth_failure(t);
            }
            Ok(retry)
        }
        StatusCode::FORBIDDEN => {
            count_auth_failure(t);
            Ok(first)
        }
        _ => Ok(first),
    }
}

fn count_auth_failure(t: &Target<'_>) {
    t.ctx.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
}

async fn execute(
    t: &Target<'_>,
    method: Method,
    body: Option<&impl Fn() -> Bytes>,
) -> Result<Response, CallError> {
    let http = &t.ctx.http;
    let response = http
        .send(
            t.endpoint,
            method.clone(),
            headers(t, body.is_some())?,
            body.map(|b| b()),
        )
        .await
        .map_err(|e| http_error(&e))?;
    if !response.is_redirect() {
        return Ok(response);
    }
    // The same request again through the client that follows redirects.
    drop(response);
    http.send_following(
        t.endpoint,
        method,
        headers(t, body.is_some())?,
        body.map(|b| b()),
    )
    .await
    .map_err(|e| http_error(&e))
}

/// A request's headers: the custom ones, then ours (bearer, session id,
/// protocol version, `Mcp-Method`/`Mcp-Name`, content type with a body).
fn headers(t: &Target<'_>, with_body: bool) -> Result<HeaderMap, CallError> {
    let Some(bearer) = t.token.bearer() else {
        return Err(CallError {
            kind: ErrorKind::Auth,
            message: "the access token cannot be sent as an HTTP header".into(),
        });
    };
    // Sized once for ours and the custom ones, so inserting never regrows it.
    let mut headers = HeaderMap::with_capacity(6 + t.ctx.headers.len());
    for (name, value) in &t.ctx.headers {
        headers.insert(name.clone(), value.clone());
    }
    headers.insert(ACCEPT, ACCEPT_BOTH);
    headers.insert(AUTHORIZATION, bearer);
    if let Some(sid) = t.session_id {
        headers.insert(SESSION_ID, sid.clone());
    }
    if let Some(version) = t.version {
        headers.insert(PROTOCOL_VERSION, HeaderValue::from_static(version));
    }
    if let Some((method, name)) = t.rpc {
        headers.insert(MCP_METHOD, HeaderValue::from_static(method));
        if let Some(name) = name {
            headers.insert(MCP_NAME, name_header(name)?);
        }
    }
    if with_body {
        headers.insert(CONTENT_TYPE, JSON);
    }
    Ok(headers)
}

/// An `Mcp-Name` value: the name itself when it is plain visible ASCII
/// without edge spaces, else `=?base64?…?=` (SEP-2243).
fn name_header(name: &str) -> Result<HeaderValue, CallError> {
    use base64::Engine;
    let printable = name.bytes().all(|b| (0x20..=0x7e).contains(&b));
    let padded = name.starts_with([' ', '\t']) || name.ends_with([' ', '\t']);
    let looks_encoded = name.starts_with("=?base64?") && name.ends_with("?=");
    let plain = printable && !padded && !looks_encoded;
    let value = if plain {
        HeaderValue::from_str(name).ok()
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(name);
        HeaderValue::try_from(format!("=?base64?{encoded}?=")).ok()
    };
    value.ok_or_else(|| CallError {
        kind: ErrorKind::Skipped,
        message: format!("the name {name:?} cannot be sent as an Mcp-Name header"),
    })
}

/// The error for a non-success answer, with a short excerpt of its body.
async fn failed(t: &Target<'_>, mut response: Response) -> Failure {
    let status = response.status();
    if status == StatusCode::NOT_FOUND && t.session_id.is_some() {
        return Failure::SessionGone;
    }
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Read to the end (within the bound) so the connection stays usable;
    // keep the start for the message.
    let mut excerpt = Vec::new();
    let mut total = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        total += chunk.len();
        if excerpt.len() < ERROR_EXCERPT_BYTES {
            excerpt.extend_from_slice(&chunk);
        }
        if total > MAX_RESPONSE_BYTES {
            break;
        }
    }
    excerpt.truncate(ERROR_EXCERPT_BYTES);
    let mut message = format!("HTTP {status}");
    let text = String::from_utf8_lossy(&excerpt);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !text.is_empty() {
        message.push_str(": ");
        message.push_str(&text);
    }
    if let Some(challenge) = challenge {
        message.push_str(" (WWW-Authenticate: ");
        message.push_str(&challenge);
        message.push(')');
    }
    Failure::Call(CallError {
        kind: status_kind(status.as_u16()),
        message: t.token.redact(message),
    })
}

/// Reads the response to request `id` from a JSON or SSE body.
async fn read_reply<R: DeserializeOwned>(
    mut response: Response,
    id: u64,
    t: &Target<'_>,
) -> Result<Reply<R>, CallError> {
    if let Some(len) = response.content_length()
        && len > MAX_RESPONSE_BYTES as u64
    {
        return Err(too_large());
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let is = |mime: &[u8]| {
        content_type.len() >= mime.len() && content_type[..mime.len()].eq_ignore_ascii_case(mime)
    };
    if is(b"text/event-stream") {
        read_sse(response, id, t).await
    } else if is(b"application/json") {
        let mut body = Body::default();
        while let Some(chunk) = next_chunk(&mut response).await? {
            body.push(chunk)?;
        }
        match wire::parse_reply::<R>(body.as_slice(), id) {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(transport(format!(
                "the JSON answer is not the response to request {id}"
            ))),
            Err(e) => Err(transport(t.token.redact(e.to_string()))),
        }
    } else {
        let shown = String::from_utf8_lossy(content_type);
        Err(transport(format!(
            "HTTP {} with content type {shown:?} instead of a response to request {id}",
            response.status()
        )))
    }
}

/// Reads events until the one that answers `id`; notifications in between
/// are skipped, and requests from the server (`ping`, `elicitation/create`,
/// …) answered at once, since the server may hold our call until they are.
async fn read_sse<R: DeserializeOwned>(
    mut response: Response,
    id: u64,
    t: &Target<'_>,
) -> Result<Reply<R>, CallError> {
    let mut body = Body::default();
    let mut reader = SseReader::default();
    let mut last_error = None;
    loop {
        let chunk = next_chunk(&mut response).await?;
        let eof = chunk.is_none();
        if let Some(chunk) = chunk {
            // Between events nothing read so far is needed again: start the
            // buffer over, so a chunk holding whole events is never copied.
            if reader.at_boundary(body.as_slice().len()) {
                body.clear();
                reader = SseReader::default();
            }
            body.push(chunk)?;
        }
        while let Some(data) = reader.next_event(body.as_slice(), eof) {
            let bytes = data.bytes(body.as_slice());
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue; // a priming event
            }
            match wire::parse_reply::<R>(bytes, id) {
                Ok(Some(reply)) => {
                    finish(response, body.total).await;
                    return Ok(reply);
                }
                Ok(None) => {
                    if let Some((request_id, method)) = wire::server_request(bytes) {
                        answer_server(t, &request_id, &method).await;
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        if eof {
            return Err(transport(match last_error {
                Some(e) => e.to_string(),
                None => format!("the event stream ended before the response to request {id}"),
            }));
        }
    }
}

/// Answers one request the server sent mid-call, counted by kind. A
/// failure to deliver the answer is logged, not the call's failure: the
/// call's own answer (or its timeout) says what became of it.
async fn answer_server(t: &Target<'_>, id: &serde_json::Value, method: &str) {
    let kind = common::protocol::ServerRequest::of(method);
    t.ctx.counters.count_server_request(kind);
    let answer = wire::server_answer(id, method, t.ctx.elicitation);
    // A response, not a request: no `Mcp-Method`/`Mcp-Name`.
    let plain = Target { rpc: None, ..*t };
    match execute(&plain, Method::POST, Some(&|| answer.clone())).await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => {
            tracing::debug!(method = kind.as_str(), status = %r.status(), "the server refused our answer to its request")
        }
        Err(e) => {
            tracing::debug!(method = kind.as_str(), error = %e.message, "could not answer the server's request")
        }
    }
}

/// Reads what follows our response. Servers end the stream right after it
/// (the spec says they should), and only a body read to its end hands the
/// connection back to the pool before the next call wants one. The end is
/// usually in hyper's buffer already, waiting for its connection task to
/// pass it on, so that task gets a turn before a timer is armed; a stream
/// kept open past `END_GRACE` is dropped, and its connection with it.
async fn finish(mut response: Response, mut total: usize) {
    for _ in 0..3 {
        match response.chunk().now_or_never() {
            Some(Ok(None) | Err(_)) => return,
            Some(Ok(Some(chunk))) => total += chunk.len(),
            None => tokio::task::yield_now().await,
        }
    }
    let drain = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            total += chunk.len();
            if total > MAX_RESPONSE_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(END_GRACE, drain).await;
}

async fn next_chunk(response: &mut Response) -> Result<Option<Bytes>, CallError> {
    response.chunk().await.map_err(|e| http_error(&e))
}

/// A body read chunk by chunk: the first chunk is kept as it came, later
/// ones are appended to a copy, and the total is bounded.
#[derive(Default)]
struct Body {
    one: Bytes,
    many: Vec<u8>,
    total: usize,
}

impl Body {
    fn push(&mut self, chunk: Bytes) -> Result<(), CallError> {
        self.total += chunk.len();
        if self.total > MAX_RESPONSE_BYTES {
            return Err(too_large());
        }
        if self.many.is_empty() && self.one.is_empty() {
            self.one = chunk;
        } else {
            if self.many.is_empty() {
                self.many.reserve(self.one.len() + chunk.len() * 2);
                self.many.extend_from_slice(&self.one);
                self.one = Bytes::new();
            }
            self.many.extend_from_slice(&chunk);
        }
        Ok(())
    }

    fn as_slice(&self) -> &[u8] {
        if self.many.is_empty() {
            &self.one
        } else {
            &self.many
        }
    }

    /// Forgets the bytes (not the total, which bounds the whole answer).
    fn clear(&mut self) {
        self.one = Bytes::new();
        self.many.clear();
    }
}

fn too_large() -> CallError {
    transport(format!(
        "the answer is larger than {} MiB",
        MAX_RESPONSE_BYTES >> 20
    ))
}

fn transport(message: String) -> CallError {
    CallError {
        kind: ErrorKind::Transport,
        message,
    }
}

fn http_error(e: &HttpError) -> CallError {
    CallError {
        kind: if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Transport
        },
        message: error_chain(e),
    }
}

/// The error kind of an HTTP status that is not a success.
pub fn status_kind(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::Auth,
        400..=499 => ErrorKind::Http4xx,
        500..=599 => ErrorKind::Http5xx,
        _ => ErrorKind::Transport,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        let check = |status: u16, expected: ErrorKind| {
            assert_eq!(status_kind(status), expected, "{status}");
        };
        check(401, ErrorKind::Auth);
        check(403, ErrorKind::Auth);
        check(400, ErrorKind::Http4xx);
        check(404, ErrorKind::Http4xx);
        check(429, ErrorKind::Http4xx);
        check(500, ErrorKind::Http5xx);
        check(503, ErrorKind::Http5xx);
        check(302, ErrorKind::Transport);
    }

    #[test]
    fn body_keeps_one_chunk_and_bounds_the_total() {
        let mut body = Body::default();
        body.push(Bytes::from_static(b"ab")).unwrap();
        assert_eq!(body.as_slice(), b"ab");
        assert!(body.many.is_empty(), "one chunk is not copied");
        body.push(Bytes::from_static(b"cd")).unwrap();
        assert_eq!(body.as_slice(), b"abcd");
        body.clear();
        assert_eq!(body.as_slice(), b"");
        let big = Bytes::from(vec![0u8; MAX_RESPONSE_BYTES]);
        let err = body.push(big).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transport);
        assert!(
            err.message.contains("larger than 16 MiB"),
            "{}",
            err.message
        );
    }
}
