//! The Notes app's API v1 (`/index.php/apps/notes/api/v1/notes`, also without `/index.php`),
//! as nextcloud/notes' `NotesApiController` and `Helper` answer it: note objects, the chunked
//! listing with `X-Notes-Chunk-Cursor`, `If-Match` on update (412 carries the current note),
//! errors as `{"errorType": …}` with 400/403/404. Ids resolve only in the caller's own `/Notes`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::Caller;
use crate::App;
use crate::state::NcError;

/// Sent on every Notes API answer, as the app does; the API versions the mock serves.
const API_VERSIONS_HEADER: &str = "X-Notes-API-Versions";
pub const API_VERSIONS: &str = "1.3";

/// Notes' `ChunkCursor`: `<listing start>-<last note's modified>-<last note's id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkCursor {
    time_start: u64,
    modified: u64,
    id: u64,
}

impl ChunkCursor {
    /// `None` for anything but three dash-separated numbers (Notes starts over then).
    fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('-').map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u64>().ok())
                .flatten()
        });
        let cursor = Self {
            time_start: parts.next()??,
            modified: parts.next()??,
            id: parts.next()??,
        };
        parts.next().is_none().then_some(cursor)
    }

    fn render(self) -> String {
        format!("{}-{}-{}", self.time_start, self.modified, self.id)
    }
}

fn with_versions(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(API_VERSIONS_HEADER, HeaderValue::from_static(API_VERSIONS));
    response
}

/// Notes' `createErrorResponse`: a status and `{"errorType": "Exception"}`.
fn error(status: StatusCode) -> Response {
    with_versions((status, axum::Json(json!({ "errorType": "Exception" }))).into_response())
}

fn from_state(e: &NcError) -> Response {
    error(match e {
        NcError::NotFound(_) => StatusCode::NOT_FOUND,
        NcError::Forbidden(_) => StatusCode::FORBIDDEN,
        NcError::BadRequest(_) | NcError::NotAllowed(_) | NcError::Conflict(_) => {
            StatusCode::BAD_REQUEST
        }
        NcError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
    })
}

fn note_response(status: StatusCode, note: &impl serde::Serialize) -> Response {
    with_versions((status, axum::Json(note)).into_response())
}

/// A note id from the URL; what PHP's int cast of garbage gives (0) finds nothing.
fn note_id(raw: &str) -> u64 {
    raw.parse().unwrap_or(0)
}

/// The request's parameters as Nextcloud's controllers get them: a JSON object body, or a
/// form body, over the query string.
fn params(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, Box<Response>> {
    let mut out = Map::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        out.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    if is_json && !body.is_empty() {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => out.extend(map),
            _ => return Err(Box::new(error(StatusCode::BAD_REQUEST))),
        }
    } else {
        for (k, v) in url::form_urlencoded::parse(body) {
            out.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    Ok(out)
}

/// A string parameter; numbers and booleans are taken as PHP would stringify them.
fn text<'a>(params: &'a Map<String, Value>, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    match params.get(key)? {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(n) => Some(n.to_string().into()),
        Value::Bool(b) => Some(if *b { "1" } else { "" }.into()),
        _ => None,
    }
}

/// `GET …/notes[?chunkSize=&chunkCursor=&category=&pruneBefore=]`.
///
/// As `Helper::getNotesAndCategories`: notes sorted by (modified, id); a cursor skips those at
/// or before it; a chunk that leaves notes pending carries the next cursor; the last chunk
/// also lists every other note as `{"id": …}` (clients use it to detect deletions).
pub async fn list(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Response {
    let q: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let number = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (chunk_size, prune_before) = (number("chunkSize"), number("pruneBefore"));
    let cursor = q.get("chunkCursor").and_then(|c| ChunkCursor::parse(c));
    let category = q.get("category");
    let mut notes = app.data().list_notes(&caller.user);
    if let Some(category) = category {
        notes.retain(|n| &n.category == category);
    }
    let time_start = cursor.map_or_else(crate::state::now_secs, |c| c.time_start);
    let mut full: Vec<_> = notes
        .iter()
        .filter(|n| prune_before == 0 || n.modified >= prune_before)
        .filter(|n| cursor.is_none_or(|c| (n.modified, n.id) > (c.modified, c.id)))
        .collect();
    full.sort_by_key(|n| (n.modified, n.id));
    let take = if chunk_size == 0 {
        full.len()
    } else {
        usize::try_from(chunk_size)
            .unwrap_or(usize::MAX)
            .min(full.len())
    };
    let pending = full.len() - take;
    let chunk = &full[..take];
    let mut body: Vec<Value> = chunk
        .iter()
        .map(|n| serde_json::to_value(n).unwrap_or(Value::Null))
        .collect();
    let next = match chunk.last() {
        Some(last) if pending > 0 => Some(ChunkCursor {
            time_start,
            modified: last.modified,
            id: last.id,
        }),
        _ => None,
    };
    if next.is_none() {
        body.extend(
            notes
                .iter()
                .filter(|n| !chunk.iter().any(|c| c.id == n.id))
                .map(|n| json!({ "id": n.id })),
        );
    }
    let mut response = with_versions(axum::Json(body).into_response());
    if let Some(next) = next
        && let (Ok(cursor), Ok(pending)) = (
            HeaderValue::from_str(&next.render()),
            HeaderValue::from_str(&pending.to_string()),
        )
    {
        response
            .headers_mut()
            .insert("X-Notes-Chunk-Cursor", cursor);
        response
            .headers_mut()
            .insert("X-Notes-Chunk-Pending", pending);
    }
    response
}

/// `GET …/notes/{id}`, with the note's etag as `ETag`.
pub async fn get(State(app): State<Arc<App>>, caller: Caller, Path(id): Path<String>) -> Response {
    let note = app.data().get_note(&caller.user, note_id(&id));
    match note {
        Ok(note) => {
            let mut response = note_response(StatusCode::OK, &note);
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", note.etag)) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            response
        }
        Err(e) => from_state(&e),
    }
}

/// `POST …/notes` with `title`, `content`, `category` (JSON or form).
pub async fn create(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    let field = |k: &str| text(&params, k).unwrap_or_default();
    let created = app.data().create_note(
        &caller.user,
        &field("title"),
        &field("content"),
        &field("category"),
    );
    match created {
        Ok(note) => note_response(StatusCode::OK, &note),
        Err(e) => from_state(&e),
    }
}

/// `PUT …/notes/{id}`: fields left out stay; `If-Match` must list the current etag quoted, or
/// 412 answers with the current note.
pub async fn update(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = note_id(&id);
    let params = match params(query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut data = app.data();
    // Notes compares each listed value with the quoted etag; an unquoted one never matches.
    let if_match = match (if_match, data.get_note(&caller.user, id)) {
        (_, Err(e)) => return from_state(&e),
        (None, Ok(_)) => None,
        (Some(given), Ok(note)) => {
            let quoted = format!("\"{}\"", note.etag);
            if !given.split(',').any(|g| g.trim() == quoted) {
                return note_response(StatusCode::PRECONDITION_FAILED, &note);
            }
            Some(quoted)
        }
    };
    let updated = data.update_note(
        &caller.user,
        id,
        if_match.as_deref(),
        text(&params, "title").as_deref(),
        text(&params, "content").as_deref(),
        text(&params, "category").as_deref(),
    );
    match updated {
        Ok(note) => note_response(StatusCode::OK, &note),
        Err(e) => from_state(&e),
    }
}

/// `DELETE …/notes/{id}`: `[]` on success.
pub async fn delete(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Response {
    match app.data().delete_note(&caller.user, note_id(&id)) {
        Ok(()) => with_versions(axum::Json(json!([])).into_response()),
        Err(e) => from_state(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_cursor_table() {
        let check = |s: &str, expected: Option<(u64, u64, u64)>| {
            assert_eq!(
                ChunkCursor::parse(s),
                expected.map(|(time_start, modified, id)| ChunkCursor {
                    time_start,
                    modified,
                    id
                }),
                "{s}"
            );
        };
        check(
            "1700000000-1699999999-42",
            Some((1_700_000_000, 1_699_999_999, 42)),
        );
        check("1-2", None);
        check("1-2-3-4", None);
        check("a-2-3", None);
        check("-1-2-3", None);
        check("", None);
        let c = ChunkCursor {
            time_start: 5,
            modified: 6,
            id: 7,
        };
        assert_eq!(ChunkCursor::parse(&c.render()), Some(c));
    }
}
