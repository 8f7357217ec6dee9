//! System tags over WebDAV, as Nextcloud's `systemtags` DAV collections serve them: the tags
//! (`/remote.php/dav/systemtags/`: PROPFIND, POST to create), a file's tags
//! (`/remote.php/dav/systemtags-relations/files/<file id>[/<tag id>]`: PROPFIND, PUT, DELETE),
//! and the files carrying tags (`REPORT` with `oc:filter-files` on the caller's files).

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roxmltree::{Document, ParsingOptions};
use serde_json::Value;

use super::multistatus::Multistatus;
use super::webdav::{dav_error, from_state, href, multistatus};
use crate::App;
use crate::state::strip_dir;

const TAGS: &str = "/remote.php/dav/systemtags";
const RELATIONS: &str = "/remote.php/dav/systemtags-relations/files";
/// Tag requests are small; bodies past this are refused.
pub const MAX_TAG_BODY_BYTES: usize = 64 * 1024;

fn not_found() -> Response {
    dav_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "Requested resource was not found",
    )
}

fn id(s: &str) -> Option<u64> {
    s.parse().ok()
}

/// Every method under `/remote.php/dav/systemtags*`; `rest` is the path after
/// `/remote.php/dav`.
pub async fn handle(app: &App, user: &str, method: &Method, rest: &str, body: Body) -> Response {
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method.as_str(), parts.as_slice()) {
        ("PROPFIND", ["systemtags"]) => {
            let mut ms = Multistatus::new();
            ms.collection(&format!("{TAGS}/"));
            for tag in app.data().tags() {
                ms.tag(&format!("{TAGS}/{}", tag.id), &tag);
            }
            multistatus(ms)
        }
        ("PROPFIND", ["systemtags", tag]) => {
            let tags = app.data().tags();
            match tags.iter().find(|t| Some(t.id) == id(tag)) {
                Some(t) => {
                    let mut ms = Multistatus::new();
                    ms.tag(&format!("{TAGS}/{}", t.id), t);
                    multistatus(ms)
                }
                None => not_found(),
            }
        }
        ("POST", ["systemtags"]) => create(app, body).await,
        ("PROPFIND", ["systemtags-relations", "files", file]) => {
            let Some(file) = id(file) else {
                return not_found();
            };
            let tags = app.data().file_tags(user, file);
            match tags {
                Ok(tags) => {
                    let mut ms = Multistatus::new();
                    ms.collection(&format!("{RELATIONS}/{file}"));
                    for tag in &tags {
                        ms.tag(&format!("{RELATIONS}/{file}/{}", tag.id), tag);
                    }
                    multistatus(ms)
                }
                Err(e) => from_state(&e),
            }
        }
        (m @ ("PUT" | "DELETE"), ["systemtags-relations", "files", file, tag]) => {
            let (Some(file), Some(tag)) = (id(file), id(tag)) else {
                return not_found();
            };
            let mut data = app.data();
            let done = if m == "PUT" {
                data.tag_file(user, file, tag).map(|()| StatusCode::CREATED)
            } else {
                data.untag_file(user, file, tag)
                    .map(|()| StatusCode::NO_CONTENT)
            };
            drop(data);
            match done {
                Ok(status) => status.into_response(),
                Err(e) => from_state(&e),
            }
        }
        (_, ["systemtags" | "systemtags-relations", ..]) => dav_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} is not allowed here"),
        ),
        _ => not_found(),
    }
}

/// `POST /remote.php/dav/systemtags/` with JSON `{name, userVisible, userAssignable}`: 201 and
/// the new tag's URL in `Content-Location`; 409 for a taken name.
async fn create(app: &App, body: Body) -> Response {
    let Ok(body) = axum::body::to_bytes(body, MAX_TAG_BODY_BYTES).await else {
        return dav_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BadRequest",
            "request too large",
        );
    };
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(&body) else {
        return dav_error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid JSON body");
    };
    let Some(name) = fields.get("name").and_then(Value::as_str) else {
        return dav_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Missing \"name\" attribute",
        );
    };
    let flag = |k: &str| fields.get(k).and_then(Value::as_bool).unwrap_or(true);
    let created = app
        .data()
        .create_tag(name, flag("userVisible"), flag("userAssignable"));
    match created {
        Ok(tag) => {
            let mut response = StatusCode::CREATED.into_response();
            if let Ok(location) = HeaderValue::from_str(&format!("{TAGS}/{}", tag.id)) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LOCATION, location);
            }
            response
        }
        Err(e) => from_state(&e),
    }
}

/// `REPORT` with `oc:filter-files` on the caller's folder `path`: the files below it that
/// carry every tag the rules name (none for a favorites rule: the mock keeps no favorites).
pub fn report(app: &App, user: &str, path: &str, body: &[u8]) -> Response {
    let Some(tag_ids) = filter_tag_ids(body) else {
        return dav_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "ReportNotSupported",
            "The report is not supported here",
        );
    };
    let data = app.data();
    let mut ms = Multistatus::new();
    for found in data.paths_with_tags(user, &tag_ids) {
        if strip_dir(&found, path).is_none() {
            continue;
        }
        if let Ok(info) = data.stat(user, &found) {
            let mounted = data.locate(user, &found).via_share.is_some();
            ms.file(&href(user, &info), &info, mounted);
        }
    }
    drop(data);
    multistatus(ms)
}

/// The tag ids of an `oc:filter-files` REPORT body (`<oc:systemtag>` rules); `None` when it is
/// not such a body.
pub fn filter_tag_ids(body: &[u8]) -> Option<Vec<u64>> {
    let text = std::str::from_utf8(body).ok()?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: 2_000,
    };
    let doc = Document::parse_with_options(text, options).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "filter-files" {
        return None;
    }
    Some(
        root.descendants()
            .filter(|n| n.is_element() && n.tag_name().name() == "systemtag")
            .filter_map(|n| n.text().and_then(|t| t.trim().parse().ok()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_rules() {
        let body = br#"<?xml version="1.0"?>
<oc:filter-files xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">
  <d:prop><oc:fileid/></d:prop>
  <oc:filter-rules><oc:systemtag>3</oc:systemtag><oc:systemtag>5</oc:systemtag></oc:filter-rules>
</oc:filter-files>"#;
        assert_eq!(filter_tag_ids(body), Some(vec![3, 5]));
        assert_eq!(filter_tag_ids(b"<d:propfind xmlns:d=\"DAV:\"/>"), None);
        assert_eq!(filter_tag_ids(b"<oops"), None);
    }
}
