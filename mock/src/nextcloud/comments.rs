//! Comments on files over WebDAV, as Nextcloud's `comments` DAV collection serves them:
//! `REPORT /remote.php/dav/comments/files/<file id>` with `oc:filter-comments` (newest first,
//! `limit`/`offset`), `PROPFIND` of the same (every comment), and `POST` of a JSON comment
//! (201, the new comment's URL in `Content-Location`).

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roxmltree::{Document, ParsingOptions};
use serde_json::Value;

use super::multistatus::Multistatus;
use super::webdav::{dav_error, from_state, multistatus};
use crate::App;

const COMMENTS: &str = "/remote.php/dav/comments/files";
/// Comment requests are small; bodies past this are refused.
const MAX_COMMENT_BODY_BYTES: usize = 64 * 1024;
/// Nextcloud's default page of a `filter-comments` report without a limit.
const DEFAULT_LIMIT: usize = 20;

/// Every method under `/remote.php/dav/comments`; `rest` is the path after `/remote.php/dav`.
pub async fn handle(app: &App, user: &str, method: &Method, rest: &str, body: Body) -> Response {
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let ["comments", "files", file, ..] = parts.as_slice() else {
        return dav_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "Requested resource was not found",
        );
    };
    let Ok(file_id) = file.parse::<u64>() else {
        return dav_error(StatusCode::NOT_FOUND, "NotFound", "File not found");
    };
    if parts.len() != 3 {
        return dav_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "single comments are not served by the mock",
        );
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_COMMENT_BODY_BYTES).await else {
        return dav_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BadRequest",
            "request too large",
        );
    };
    match method.as_str() {
        "REPORT" => {
            let Some((limit, offset)) = filter(&body) else {
                return dav_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "ReportNotSupported",
                    "The report is not supported here",
                );
            };
            list(app, user, file_id, offset, limit)
        }
        "PROPFIND" => list(app, user, file_id, 0, usize::MAX),
        "POST" => create(app, user, file_id, &body),
        _ => dav_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} is not allowed here"),
        ),
    }
}

fn list(app: &App, user: &str, file_id: u64, offset: usize, limit: usize) -> Response {
    let comments = app.data().file_comments(user, file_id, offset, limit);
    match comments {
        Ok(comments) => {
            let mut ms = Multistatus::new();
            for c in &comments {
                ms.comment(&format!("{COMMENTS}/{file_id}/{}", c.id), c);
            }
            multistatus(ms)
        }
        Err(e) => from_state(&e),
    }
}

/// `POST` with `{"actorType": "users", "verb": "comment", "message": …}`.
fn create(app: &App, user: &str, file_id: u64, body: &[u8]) -> Response {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return dav_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Invalid JSON body",
        );
    };
    let text = |k: &str| fields.get(k).and_then(Value::as_str);
    if text("actorType") != Some("users") || text("verb") != Some("comment") {
        return dav_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid actor type or verb",
        );
    }
    let Some(message) = text("message") else {
        return dav_error(StatusCode::BAD_REQUEST, "BadRequest", "Missing message");
    };
    let added = app.data().add_comment(user, file_id, message);
    match added {
        Ok(c) => {
            let mut response = StatusCode::CREATED.into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("{COMMENTS}/{file_id}/{}", c.id)) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LOCATION, location);
            }
            response
        }
        Err(e) => from_state(&e),
    }
}

/// `(limit, offset)` of an `oc:filter-comments` body; `None` when it is not one.
fn filter(body: &[u8]) -> Option<(usize, usize)> {
    let text = std::str::from_utf8(body).ok()?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: 100,
    };
    let doc = Document::parse_with_options(text, options).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "filter-comments" {
        return None;
    }
    let number = |local: &str| {
        root.children()
            .find(|n| n.is_element() && n.tag_name().name() == local)
            .and_then(|n| n.text())
            .and_then(|t| t.trim().parse::<usize>().ok())
    };
    Some((
        number("limit").unwrap_or(DEFAULT_LIMIT),
        number("offset").unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_table() {
        let check = |body: &str, expected: Option<(usize, usize)>| {
            assert_eq!(filter(body.as_bytes()), expected, "{body}");
        };
        check(
            r#"<oc:filter-comments xmlns:oc="http://owncloud.org/ns"><oc:limit>5</oc:limit><oc:offset>2</oc:offset></oc:filter-comments>"#,
            Some((5, 2)),
        );
        check(
            r#"<oc:filter-comments xmlns:oc="http://owncloud.org/ns"/>"#,
            Some((20, 0)),
        );
        check(r#"<d:propfind xmlns:d="DAV:"/>"#, None);
        check("<", None);
    }
}
