//! Who is calling Nextcloud's data APIs: HTTP Basic with the login password or an app password
//! (what the real nextcloud-mcp-server sends, Login Flow v2's app passwords included), or an
//! access token of ours as `Bearer`, whatever its audience: Nextcloud's oidc app accepts on its
//! own APIs any live token it issued, and the real server's ownership check sends it one minted
//! for the MCP server in front.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::App;
use crate::oauth::store::token_digest;
use crate::oauth::token::bearer;
use crate::state::now_secs;

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
    let user = live_token_subject(app, bearer(headers)?)?;
    // A token outlives its user; Nextcloud refuses a deleted account's token.
    app.data().has_files(&user).then_some(Caller { user })
}

/// The subject of an access token this server issued, has not revoked and that has not
/// expired. A token that matches the digest kept under its `jti` is the one we minted byte for
/// byte, so its signature needs no check; anything else (forged, revoked, an ID token) is refused.
fn live_token_subject(app: &App, token: &str) -> Option<String> {
    let claims = app.keys.decode(token).ok()?;
    let issued = app.auth().is_issued(&claims.jti, &token_digest(token));
    (issued && claims.iss == app.issuer && claims.exp > now_secs()).then_some(claims.sub)
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
