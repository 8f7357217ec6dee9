//! Tool results shaped as nextcloud-mcp-server 0.202.1 shapes them: its pydantic response models
//! (with `BaseResponse`'s `success` and `timestamp`, and the deep links `with_links` fills in),
//! and its error texts — the tool's own messages, and `errors.friendly_tool_error` for HTTP
//! failures a tool lets through.

use std::time::{SystemTime, UNIX_EPOCH};

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use crate::state::{FileInfo, NcError, Note};

/// The HTTP status Nextcloud answers a failed state operation with.
pub fn status_of(e: &NcError) -> u16 {
    match e {
        NcError::BadRequest(_) => 400,
        NcError::Forbidden(_) => 403,
        NcError::NotFound(_) => 404,
        NcError::NotAllowed(_) => 405,
        NcError::Conflict(_) => 409,
        NcError::PreconditionFailed(_) => 412,
    }
}

/// The message Nextcloud puts in the body (OCS `meta.message`, Sabre `s:message`).
pub fn message_of(e: &NcError) -> &str {
    match e {
        NcError::BadRequest(m)
        | NcError::Forbidden(m)
        | NcError::NotFound(m)
        | NcError::NotAllowed(m)
        | NcError::Conflict(m)
        | NcError::PreconditionFailed(m) => m,
    }
}

/// A model result: `structuredContent` is the model, the one text block the same JSON, compact.
pub fn model(value: Value) -> CallToolResult {
    CallToolResult::structured(value)
}

/// A `-> str` tool's result (every `nc_share_*`): the SDK wraps the returned JSON text as
/// `{"result": "<text>"}` and sends the text itself as the content.
pub fn text_result(value: &Value) -> CallToolResult {
    let text = value.to_string();
    let mut result = CallToolResult::success(vec![ContentBlock::text(text.clone())]);
    result.structured_content = Some(json!({ "result": text }));
    result
}

/// A tool without a return annotation (`nc_webdav_delete_resource`, `…_create_directory`):
/// the dict as text only.
pub fn plain(value: &Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(value.to_string())])
}

pub fn error(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.into())])
}

/// `errors.friendly_tool_error` for an `HTTPStatusError` a tool did not catch: summary, the
/// resource (the request path without its entry point), status, hint, and what the server said.
pub fn http_failure(tool: &str, resource: &str, e: &NcError) -> String {
    let status = status_of(e);
    let (summary, hint) = match status {
        400 => (
            "Invalid request",
            "Check the argument values -- one of them was rejected as malformed.",
        ),
        403 => (
            "Permission denied",
            "The account cannot access this resource, or the required scope was not granted. \
             Do not retry without different credentials or scopes.",
        ),
        404 => (
            "Not found",
            "Check the path or id for typos and verify the resource exists; list the parent \
             first if unsure.",
        ),
        405 => (
            "Operation not allowed here",
            "The resource may already exist, or this operation is unsupported at that location.",
        ),
        409 => (
            "Conflict",
            "A parent folder may be missing, or a resource with that name already exists. \
             Create the parent or pick another name.",
        ),
        412 => (
            "Resource changed since it was read",
            "Re-read the resource to get its current etag, then retry the update with that etag.",
        ),
        _ => (
            "Request rejected",
            "The server refused the request as sent; re-check the arguments.",
        ),
    };
    let said = message_of(e)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(" Server said: {said}")
    };
    format!("{tool} failed: {summary} — \"{resource}\" (HTTP {status}). {hint}{said}")
}

/// The resource `friendly_tool_error` names for a WebDAV path: the path below the user's root.
pub fn dav_resource(path: &str) -> String {
    path.trim_start_matches('/').to_owned()
}

/// Python's `repr` of a string, as the server's f-strings (`{path!r}`) print it.
pub fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// `BaseResponse.timestamp`: now, RFC 3339 with microseconds and `Z`.
pub fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (date, time) = civil(now.as_secs());
    format!("{date}T{time}.{:06}Z", now.subsec_micros())
}

/// An HTTP date (`getlastmodified`), e.g. `Thu, 01 Jan 1970 00:00:00 GMT`.
pub fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, m, d) = ymd(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} GMT",
        DAYS[((secs / 86_400) % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn civil(secs: u64) -> (String, String) {
    let (y, m, d) = ymd(secs / 86_400);
    let rem = secs % 86_400;
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's `civil_from_days`).
fn ymd(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The Notes app link `with_links` puts into note models.
pub fn note_url(base: &str, id: u64) -> String {
    format!("{base}/index.php/apps/notes/note/{id}")
}

/// The Files link of a file id.
pub fn file_url(base: &str, file_id: u64) -> String {
    format!("{base}/index.php/f/{file_id}")
}

/// `Note` (models/notes.py), as `nc_notes_get_note` returns it.
pub fn note(base: &str, n: &Note) -> Value {
    json!({
        "id": n.id,
        "title": n.title,
        "content": n.content,
        "category": n.category,
        "modified": n.modified,
        "favorite": n.favorite,
        "etag": n.etag,
        "readonly": n.readonly,
        "url": note_url(base, n.id),
    })
}

/// `CreateNoteResponse` / `UpdateNoteResponse` / `AppendContentResponse`: the same fields.
pub fn note_changed(base: &str, n: &Note) -> Value {
    json!({
        "success": true,
        "timestamp": timestamp(),
        "id": n.id,
        "title": n.title,
        "category": n.category,
        "etag": n.etag,
        "url": note_url(base, n.id),
    })
}

/// `FileInfo` (models/webdav.py) of one directory entry; `listed` is the directory path as the
/// caller gave it (the real client joins names onto it as given).
pub fn file_info(base: &str, listed: &str, f: &FileInfo) -> Value {
    let name = f.name();
    let path = if listed.is_empty() {
        name.to_owned()
    } else {
        format!("{}/{name}", listed.trim_end_matches('/'))
    };
    json!({
        "name": name,
        "path": path,
        "is_directory": f.is_dir,
        "size": if f.is_dir { Value::Null } else { json!(f.size) },
        "content_type": if f.is_dir { Value::Null } else { json!(f.content_type) },
        "last_modified": http_date(f.modified),
        "etag": f.etag,
        "file_id": f.file_id,
        "is_favorite": null,
        "url": file_url(base, f.file_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let check = |secs: u64, expected: &str| assert_eq!(http_date(secs), expected);
        check(0, "Thu, 01 Jan 1970 00:00:00 GMT");
        check(951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT");
        check(1_700_000_000, "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(civil(1_700_000_000).0, "2023-11-14");
        assert!(timestamp().ends_with('Z'));
    }

    #[test]
    fn reprs() {
        let check = |s: &str, expected: &str| assert_eq!(py_repr(s), expected);
        check("/a.txt", "'/a.txt'");
        check("it's", "\"it's\"");
        check("a'\"b", "'a\\'\"b'");
    }
}
