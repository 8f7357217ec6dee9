//! WebDAV under `/remote.php/dav/` as Nextcloud (Sabre) serves it to its clients: the DAV
//! root's `current-user-principal`, and the caller's files at `files/<user>/…` — PROPFIND
//! (Depth 0/1), GET/HEAD, conditional PUT, DELETE, MKCOL, MOVE, COPY, REPORT (by tags), and SEARCH
//! at the root; system tags under `systemtags*` (in `tags`), comments under `comments` — with received shares mounted
//! at their targets. Another user's `files/<u>/` is an empty collection, as in Nextcloud's
//! `RootCollection`: nothing below it is found and nothing can be made in it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::auth::{CHALLENGE, Caller, Unauthenticated};
use super::multistatus::{Multistatus, decode_path, encode_path, error_body, http_date, long_id};
use crate::App;
use crate::state::{FileInfo, NcError, Precondition, norm, parent};

const DAV_ROOT: &str = "/remote.php/dav";
const XML: &str = "application/xml; charset=utf-8";

/// One WebDAV answer: a status, Sabre's XML error or a body, and headers.
pub(super) fn dav_error(status: StatusCode, exception: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, XML)],
        error_body(exception, message),
    )
        .into_response()
}

pub(super) fn from_state(e: &NcError) -> Response {
    match e {
        NcError::BadRequest(m) => dav_error(StatusCode::BAD_REQUEST, "BadRequest", m),
        NcError::Forbidden(m) => dav_error(StatusCode::FORBIDDEN, "Forbidden", m),
        NcError::NotFound(m) => dav_error(StatusCode::NOT_FOUND, "NotFound", m),
        NcError::NotAllowed(m) => dav_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", m),
        NcError::Conflict(m) => dav_error(StatusCode::CONFLICT, "Conflict", m),
        NcError::PreconditionFailed(m) => {
            dav_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed", m)
        }
    }
}

fn not_found(path: &str) -> Response {
    dav_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!(
            "File with name {} could not be located",
            path.trim_start_matches('/')
        ),
    )
}

fn unauthenticated() -> Response {
    let mut response = dav_error(
        StatusCode::UNAUTHORIZED,
        "NotAuthenticated",
        "No public access to this resource., Username or password was incorrect, No 'Authorization: Bearer' header found. Either the client didn't send one, or the server is mis-configured, Username or password was incorrect",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    response
}

pub(super) fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn quoted(etag: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{etag}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// What a request under `/remote.php/dav` addresses.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// `/remote.php/dav/`.
    Root,
    /// `files/<owner>/<path>`: `path` decoded, `/`-rooted, normalized.
    Files {
        owner: String,
        path: String,
    },
    /// `systemtags…`: the path after `/remote.php/dav`.
    Tags(String),
    /// `comments…`: the path after `/remote.php/dav`.
    Comments(String),
    Other,
}

pub(super) fn target(uri_path: &str) -> Option<Target> {
    let rest = uri_path.strip_prefix(DAV_ROOT)?;
    if rest.is_empty() || rest == "/" {
        return Some(Target::Root);
    }
    if rest.starts_with("/systemtags") {
        return Some(Target::Tags(rest.to_owned()));
    }
    if rest.starts_with("/comments/") {
        return Some(Target::Comments(rest.to_owned()));
    }
    let Some(files) = rest.strip_prefix("/files/") else {
        return Some(Target::Other);
    };
    let (owner, path) = files.split_once('/').unwrap_or((files, ""));
    let owner = decode_path(owner)?;
    let path = norm(&decode_path(path)?).ok()?;
    Some(Target::Files { owner, path })
}

/// Every method under `/remote.php/dav`.
pub async fn dav(
    State(app): State<Arc<App>>,
    caller: Result<Caller, Unauthenticated>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Caller { user }) = caller else {
        return unauthenticated();
    };
    let Some(target) = target(uri.path()) else {
        return dav_error(StatusCode::BAD_REQUEST, "BadRequest", "invalid path");
    };
    let (owner, path) = match target {
        Target::Root if method.as_str() == "PROPFIND" => {
            let mut ms = Multistatus::new();
            let principal = format!("{DAV_ROOT}/principals/users/{}/", encode_path(&user));
            ms.principal_root(&format!("{DAV_ROOT}/"), &principal);
            return multistatus(ms);
        }
        Target::Root if method.as_str() == "SEARCH" => {
            return match axum::body::to_bytes(body, super::search::MAX_QUERY_BYTES).await {
                Ok(query) => search(&app, &user, &query),
                Err(_) => dav_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "BadRequest",
                    "search query too large",
                ),
            };
        }
        Target::Root => {
            return dav_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "This method is not allowed on the DAV root",
            );
        }
        Target::Tags(rest) => return super::tags::handle(&app, &user, &method, &rest, body).await,
        Target::Comments(rest) => {
            return super::comments::handle(&app, &user, &method, &rest, body).await;
        }
        Target::Other => return not_found(uri.path()),
        Target::Files { owner, path } => (owner, path),
    };
    if owner != user {
        return others_files(&method, &owner, &path);
    }
    match method.as_str() {
        "PROPFIND" => propfind(&app, &user, &path, &headers),
        "GET" | "HEAD" => get(&app, &user, &path, method == Method::HEAD),
        "PUT" => match axum::body::to_bytes(body, super::MAX_BODY_BYTES).await {
            Ok(body) => put(&app, &user, &path, &headers, &body),
            Err(_) => dav_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequest",
                &format!(
                    "the mock takes uploads up to {} bytes",
                    super::MAX_BODY_BYTES
                ),
            ),
        },
        "DELETE" => delete(&app, &user, &path, &headers),
        "MKCOL" => mkcol(&app, &user, &path),
        "MOVE" => super::transfer::transfer(&app, &user, &path, &headers, false),
        "COPY" => super::transfer::transfer(&app, &user, &path, &headers, true),
        "REPORT" => match axum::body::to_bytes(body, super::tags::MAX_TAG_BODY_BYTES).await {
            Ok(query) => super::tags::report(&app, &user, &path, &query),
            Err(_) => dav_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequest",
                "report too large",
            ),
        },
        "OPTIONS" => (
            StatusCode::OK,
            [
                ("DAV", "1, 3, extended-mkcol"),
                (
                    "Allow",
                    "OPTIONS, GET, HEAD, DELETE, PROPFIND, PUT, MKCOL, MOVE, COPY, REPORT",
                ),
            ],
        )
            .into_response(),
        _ => dav_error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            &format!(
                "There was no plugin in the system that was willing to handle this {method} method."
            ),
        ),
    }
}

/// Another user's `files/<owner>/`: an empty collection in Nextcloud; nothing below exists,
/// and creating directly in it is forbidden.
fn others_files(method: &Method, owner: &str, path: &str) -> Response {
    let top_level = path != "/" && parent(path) == "/";
    match (method.as_str(), path) {
        ("PROPFIND", "/") => {
            let mut ms = Multistatus::new();
            ms.collection(&format!("{DAV_ROOT}/files/{}/", encode_path(owner)));
            multistatus(ms)
        }
        ("PUT" | "MKCOL", _) if top_level => dav_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "Permission denied to create file (filename {})",
                path.trim_start_matches('/')
            ),
        ),
        _ => not_found(path),
    }
}

/// `SEARCH /remote.php/dav/`: a `basicsearch` over the caller's own files.
fn search(app: &App, user: &str, body: &[u8]) -> Response {
    let query = match super::search::Query::parse(body) {
        Ok(query) => query,
        Err(e) => return dav_error(StatusCode::BAD_REQUEST, "BadRequest", &e.0),
    };
    if query.owner != user {
        return dav_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid search scope: not the current user's files",
        );
    }
    let data = app.data();
    let hits = match query.run(&data, user) {
        Ok(hits) => hits,
        Err(e) => return from_state(&e),
    };
    let mut ms = Multistatus::new();
    for hit in &hits {
        let mounted = data.locate(user, &hit.path).via_share.is_some();
        ms.file(&href(user, hit), hit, mounted);
    }
    drop(data);
    multistatus(ms)
}

pub(super) fn multistatus(ms: Multistatus) -> Response {
    (
        StatusCode::MULTI_STATUS,
        [(header::CONTENT_TYPE, XML)],
        ms.finish(),
    )
        .into_response()
}

pub(super) fn href(user: &str, info: &FileInfo) -> String {
    let slash = if info.is_dir && info.path != "/" {
        "/"
    } else {
        ""
    };
    format!(
        "{DAV_ROOT}/files/{}{}{slash}",
        encode_path(user),
        encode_path(&info.path)
    )
}

/// Depth 0 or 1 (`infinity`, disabled on Nextcloud, is taken as 1); the requested property
/// list is not read: every response carries the common properties.
fn propfind(app: &App, user: &str, path: &str, headers: &HeaderMap) -> Response {
    let depth0 = header_str(headers, "depth").is_some_and(|d| d.trim() == "0");
    let data = app.data();
    let info = match data.stat(user, path) {
        Ok(info) => info,
        Err(e) => return from_state(&e),
    };
    let mut entries = Vec::new();
    if info.is_dir && !depth0 {
        match data.list_directory(user, path) {
            Ok(children) => entries = children,
            Err(e) => return from_state(&e),
        }
    }
    entries.insert(0, info);
    let mut ms = Multistatus::new();
    for entry in &entries {
        let mounted = entry.path != "/" && data.locate(user, &entry.path).via_share.is_some();
        ms.file(&href(user, entry), entry, mounted);
    }
    drop(data);
    multistatus(ms)
}

fn get(app: &App, user: &str, path: &str, head: bool) -> Response {
    let read = {
        let data = app.data();
        match data.stat(user, path) {
            Ok(info) if info.is_dir => None,
            Ok(_) => Some(data.read_file(user, path)),
            Err(e) => Some(Err(e)),
        }
    };
    let (info, content) = match read {
        None => {
            return dav_error(
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
                "GET is only implemented on File objects",
            );
        }
        Some(Err(e)) => return from_state(&e),
        Some(Ok(read)) => read,
    };
    let content_type = HeaderValue::from_str(&info.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = if head {
        let mut r = StatusCode::OK.into_response();
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
        r
    } else {
        (StatusCode::OK, content).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::ETAG, quoted(&info.etag));
    h.insert("OC-ETag", quoted(&info.etag));
    if let Ok(date) = HeaderValue::from_str(&http_date(info.modified)) {
        h.insert(header::LAST_MODIFIED, date);
    }
    response
}

/// What Nextcloud's mimetype detector would say for the name: it goes by the extension, not by
/// the client's `Content-Type`.
fn mimetype(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/x-yaml",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        _ => "application/octet-stream",
    }
}

fn precondition(headers: &HeaderMap) -> Precondition {
    if let Some(v) = header_str(headers, header::IF_MATCH) {
        Precondition::IfMatch(v.trim().to_owned())
    } else if header_str(headers, header::IF_NONE_MATCH).is_some_and(|v| v.trim() == "*") {
        Precondition::IfNoneMatchAny
    } else {
        Precondition::None
    }
}

/// `PUT`: 201 new, 204 replaced, 412 when `If-Match`/`If-None-Match: *` fail, 409 without the
/// parent folder (unless `X-NC-WebDAV-AutoMkcol: 1`). The mock keeps text: a body that is not
/// UTF-8 is refused (415) rather than stored altered.
fn put(app: &App, user: &str, path: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let Ok(content) = std::str::from_utf8(body) else {
        return dav_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the mock stores text files only (the body is not UTF-8)",
        );
    };
    let mut data = app.data();
    if header_str(headers, "x-nc-webdav-automkcol") == Some("1") {
        let mut dir = String::new();
        let parent_dir = parent(path);
        for part in parent_dir.split('/').filter(|p| !p.is_empty()) {
            dir.push('/');
            dir.push_str(part);
            match data.create_directory(user, &dir) {
                Ok(_) | Err(NcError::NotAllowed(_)) => {}
                Err(e) => return from_state(&e),
            }
        }
    }
    let written = data.write_file(
        user,
        path,
        content,
        Some(mimetype(path)),
        precondition(headers),
    );
    drop(data);
    match written {
        Ok(w) => {
            let status = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::NO_CONTENT
            };
            let mut response = status.into_response();
            let h = response.headers_mut();
            h.insert(header::ETAG, quoted(&w.etag));
            h.insert("OC-ETag", quoted(&w.etag));
            if let Ok(id) = HeaderValue::from_str(&long_id(w.file_id)) {
                h.insert("OC-FileId", id);
            }
            response
        }
        Err(e) => from_state(&e),
    }
}

fn delete(app: &App, user: &str, path: &str, headers: &HeaderMap) -> Response {
    let mut data = app.data();
    if let Some(given) = header_str(headers, header::IF_MATCH) {
        let current = match data.stat(user, path) {
            Ok(info) => info.etag,
            Err(e) => return from_state(&e),
        };
        if given.trim() != "*" && !crate::state::etag_matches(&current, given) {
            return dav_error(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "An If-Match header was specified, but none of the specified ETags matched.",
            );
        }
    }
    match data.delete_resource(user, path) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => from_state(&e),
    }
}

fn mkcol(app: &App, user: &str, path: &str) -> Response {
    let made = app.data().create_directory(user, path);
    match made {
        Ok(info) => {
            let mut response = StatusCode::CREATED.into_response();
            if let Ok(id) = HeaderValue::from_str(&long_id(info.file_id)) {
                response.headers_mut().insert("OC-FileId", id);
            }
            response
        }
        Err(e) => from_state(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_table() {
        let check =
            |path: &str, expected: Option<Target>| assert_eq!(target(path), expected, "{path}");
        let files = |o: &str, p: &str| {
            Some(Target::Files {
                owner: o.into(),
                path: p.into(),
            })
        };
        check("/remote.php/dav", Some(Target::Root));
        check("/remote.php/dav/", Some(Target::Root));
        check("/remote.php/dav/files/alice", files("alice", "/"));
        check("/remote.php/dav/files/alice/", files("alice", "/"));
        check(
            "/remote.php/dav/files/alice/a%20b/c.md/",
            files("alice", "/a b/c.md"),
        );
        check("/remote.php/dav/files/al%40ice/x", files("al@ice", "/x"));
        check("/remote.php/dav/files/alice/../bob", None);
        check("/remote.php/dav/files/alice/%zz", None);
        check(
            "/remote.php/dav/principals/users/alice/",
            Some(Target::Other),
        );
        check("/elsewhere", None);
    }

    #[test]
    fn mimetype_by_extension() {
        assert_eq!(mimetype("/a/b.MD"), "text/markdown");
        assert_eq!(mimetype("/a/b.txt"), "text/plain");
        assert_eq!(mimetype("/noext"), "application/octet-stream");
    }
}
