//! Who is calling Nextcloud's data APIs: HTTP Basic with the login password or an app password
//! (what the real nextcloud-mcp-server sends, Login Flow v2's app passwords included), or an
//! access token of ours as `Bearer` (Nextcloud with `user_oidc` accepts those too).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::App;
use crate::oauth::token::{bearer, verify_access};

/// The challenge Nextcloud sends with a 401.
pub const CHALLENGE: &str = "Basic realm=\"Nextcloud\", charset=\"UTF-8\"";

/// An authenticated caller of a Nextcloud API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
}

/// No or wrong credentials. Renders as Nextcloud's app API 401; OCS and WebDAV take
/// `Result<Caller, Unauthenticated>` and answer in their own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthenticated;

impl IntoResponse for Unauthenticated {
    fn into_response(self) -> Response {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, CHALLENGE)],
            axum::Json(serde_json::json!({ "message": "Current user is not logged in" })),
        )
            .into_response()
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = Unauthenticated;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(app, &parts.headers).ok_or(Unauthenticated)
    }
}

/// The caller named by the `Authorization` header, if its credentials hold.
pub fn authenticate(app: &App, headers: &HeaderMap) -> Option<Caller> {
    if let Some((user, password)) = basic(headers) {
        return app
            .data()
            .check_basic(&user, &password)
            .then_some(Caller { user });
    }
    let token = bearer(headers)?;
    let claims = verify_access(app, token).ok()?;
    // A token outlives its user; Nextcloud refuses a deleted account's token.
    app.data()
        .has_files(&claims.sub)
        .then_some(Caller { user: claims.sub })
}

/// Whether the request carries an `Authorization` header at all (public OCS endpoints answer
/// anonymous callers but refuse wrong credentials).
pub fn has_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
}

/// `Authorization: Basic` as PHP reads it: base64 of `user:password`, split at the first
/// colon, nothing URL-decoded (unlike RFC 6749's client credentials).
fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(B64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_table() {
        let check = |value: &str, expected: Option<(&str, &str)>| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                value
                    .parse()
                    .unwrap_or(header::HeaderValue::from_static("")),
            );
            assert_eq!(
                basic(&headers),
                expected.map(|(u, p)| (u.to_owned(), p.to_owned())),
                "{value}"
            );
        };
        let enc = |s: &str| format!("Basic {}", B64.encode(s));
        check(&enc("alice:pw"), Some(("alice", "pw")));
        check(&enc("alice:a+b%20:c"), Some(("alice", "a+b%20:c")));
        check(&enc("alice"), None);
        check("Bearer x", None);
        check("Basic !!!", None);
    }
}
