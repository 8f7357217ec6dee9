//! WebDAV MOVE and COPY: the `Destination` header (absolute URL or path, in the caller's own
//! files), `Overwrite`, and the RFC 4918 tagged `If:` list that conditions the destination.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::webdav::{Target, dav_error, from_state, header_str, target};
use crate::App;

/// The destination of a MOVE, in the caller's files: the `Destination` header is an absolute
/// URL or an absolute path.
fn destination(user: &str, headers: &HeaderMap) -> Result<String, Box<Response>> {
    let bad = |m: &str| {
        Err(Box::new(dav_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            m,
        )))
    };
    let Some(raw) = header_str(headers, "destination") else {
        return bad("The destination header was not supplied");
    };
    let path = match raw.find("://") {
        Some(i) => raw[i + 3..].find('/').map_or("/", |j| &raw[i + 3 + j..]),
        None => raw,
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    match target(path) {
        Some(Target::Files { owner, path }) if owner == user => Ok(path),
        Some(Target::Files { .. }) => Err(Box::new(dav_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Permission denied to create file in another user's files",
        ))),
        _ => Err(Box::new(dav_error(
            StatusCode::BAD_GATEWAY,
            "BadGateway",
            "The destination node is not on the same server",
        ))),
    }
}

/// The etag of an RFC 4918 tagged `If:` list naming `dest`: `If: <uri> (["etag"])`.
fn destination_etag(headers: &HeaderMap, user: &str, dest: &str) -> Option<String> {
    let value = header_str(headers, "if")?;
    let uri = value.trim().strip_prefix('<')?;
    let (uri, rest) = uri.split_once('>')?;
    let uri_path = match uri.find("://") {
        Some(i) => uri[i + 3..].find('/').map_or("/", |j| &uri[i + 3 + j..]),
        None => uri,
    };
    match target(uri_path) {
        Some(Target::Files { owner, path }) if owner == user && path == dest => {}
        _ => return None,
    }
    let etag = rest.split_once('[')?.1.split_once(']')?.0;
    Some(etag.to_owned())
}

/// `MOVE` or `COPY` with `Destination` and `Overwrite` (default T): 201 new, 204 replaced, 412
/// onto an existing destination with `Overwrite: F` or a stale tagged `If:` etag, 409 without
/// the destination's parent.
pub(super) fn transfer(
    app: &App,
    user: &str,
    path: &str,
    headers: &HeaderMap,
    copy: bool,
) -> Response {
    let dest = match destination(user, headers) {
        Ok(dest) => dest,
        Err(response) => return *response,
    };
    let overwrite =
        !header_str(headers, "overwrite").is_some_and(|v| v.trim().eq_ignore_ascii_case("f"));
    let if_dest = destination_etag(headers, user, &dest);
    let mut data = app.data();
    let done = if copy {
        data.copy_resource(user, path, &dest, overwrite, if_dest.as_deref())
    } else {
        data.move_resource(user, path, &dest, overwrite, if_dest.as_deref())
    };
    drop(data);
    match done {
        Ok(true) => StatusCode::CREATED.into_response(),
        Ok(false) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => from_state(&e),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn destination_and_if_headers() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(
                    *k,
                    HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
                );
            }
            h
        };
        let h = headers(&[(
            "destination",
            "http://host:8080/remote.php/dav/files/alice/new%20name.txt",
        )]);
        assert_eq!(
            destination("alice", &h).ok().as_deref(),
            Some("/new name.txt")
        );
        let h = headers(&[("destination", "/remote.php/dav/files/alice/d/")]);
        assert_eq!(destination("alice", &h).ok().as_deref(), Some("/d"));
        let h = headers(&[("destination", "/remote.php/dav/files/bob/x")]);
        assert_eq!(
            destination("alice", &h).map_err(|r| r.status()).err(),
            Some(StatusCode::FORBIDDEN)
        );
        let h = headers(&[("if", "</remote.php/dav/files/alice/x.txt> ([\"abc\"])")]);
        assert_eq!(
            destination_etag(&h, "alice", "/x.txt").as_deref(),
            Some("\"abc\"")
        );
        assert_eq!(destination_etag(&h, "alice", "/y.txt"), None);
        let h = headers(&[("if", "([\"abc\"])")]);
        assert_eq!(destination_etag(&h, "alice", "/x.txt"), None);
    }
}
