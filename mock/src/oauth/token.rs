//! `/token` (authorization_code + PKCE, refresh_token with rotation and reuse detection,
//! password, client_credentials), `/introspect`, `/revoke`, `/userinfo`, and bearer checking.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::jwt::{Claims, IdClaims, audience_json};
use super::store::{Issued, Minter, token_digest};
use super::{GRANT_TYPES, OAuthError, authenticate_client, check_resource, resolve_scope};
use crate::App;
use crate::http::{no_store, parse_form};
use crate::issued::SecretKind;
use crate::state::now_secs;

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("malformed token or bad signature")]
    Invalid,
    #[error("token is for another audience")]
    Audience,
    #[error("token has expired")]
    Expired,
    #[error("token was revoked")]
    Revoked,
}

/// Checks an access token: signature, issuer, audience ∋ our MCP URL (or the issuer's `/mcp`),
/// expiry, not revoked.
///
/// A token that matches the digest of the one we issued under its `jti` is ours byte for
/// byte, which proves what its signature would: only other tokens (forged, revoked, pruned)
/// have their RS256 signature checked, which would cost CPU on every request otherwise.
pub fn verify_access(app: &App, token: &str) -> Result<Claims, BearerError> {
    let claims = app.keys.decode(token).map_err(|_| BearerError::Invalid)?;
    let issued = app.auth().is_issued(&claims.jti, &token_digest(token));
    if !issued {
        app.keys.verify(token).map_err(|_| BearerError::Invalid)?;
    }
    if claims.iss != app.issuer {
        return Err(BearerError::Invalid);
    }
    let issuer_mcp = format!("{}/mcp", app.issuer);
    if !claims
        .aud
        .iter()
        .any(|a| *a == app.mcp_url || *a == issuer_mcp)
    {
        return Err(BearerError::Audience);
    }
    if claims.exp <= now_secs() {
        return Err(BearerError::Expired);
    }
    if !issued {
        return Err(BearerError::Revoked);
    }
    Ok(claims)
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new("invalid_grant", description)
}

fn required<'a>(form: &'a HashMap<String, String>, key: &str) -> Result<&'a str, OAuthError> {
    form.get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OAuthError::new("invalid_request", format!("missing {key}")))
}

pub async fn token(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    match grant(&app, &headers, &form) {
        Ok(issued) => {
            if let Some(log) = &app.secret_log {
                log.record(SecretKind::AccessToken, issued.access_token.expose());
                if let Some(refresh) = &issued.refresh_token {
                    log.record(SecretKind::RefreshToken, refresh.expose());
                }
            }
            let mut body = json!({
                "access_token": issued.access_token.expose(),
                "token_type": "Bearer",
                "expires_in": app.token_ttl.as_secs().max(1),
                "scope": issued.scope,
            });
            if let Some(refresh) = &issued.refresh_token {
                body["refresh_token"] = json!(refresh.expose());
            }
            if let Some(id_token) = &issued.id_token {
                body["id_token"] = json!(id_token.expose());
            }
            (StatusCode::OK, no_store(), axum::Json(body)).into_response()
        }
        Err(e) => {
            tracing::debug!(error = e.error, description = %e.description, "token request refused");
            e.into_response()
        }
    }
}

fn grant(
    app: &App,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Issued, OAuthError> {
    let grant_type = required(form, "grant_type")?;
    if !GRANT_TYPES.contains(&grant_type) {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            format!("unsupported grant type {grant_type}"),
        ));
    }
    let client = authenticate_client(app, headers, form)?;
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::new(
            "unauthorized_client",
            format!("client may not use {grant_type}"),
        ));
    }
    let asked = form.get("resource").map(String::as_str);
    check_resource(app, asked)?;
    // A token is for its client and for the resource asked for (RFC 8707), here or at
    // /authorize; without one, for our own MCP endpoint, so the tokens a client gets for the
    // mock work on it.
    let minter = |resource: Option<&str>| Minter {
        keys: &app.keys,
        iss: &app.issuer,
        aud: vec![
            client.id.clone(),
            resource
                .map(|r| r.trim_end_matches('/'))
                .unwrap_or(&app.mcp_url)
                .to_owned(),
        ],
        ttl: app.token_ttl,
    };
    let (mut issued, nonce) = match grant_type {
        "authorization_code" => {
            let code = required(form, "code")?;
            let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
            let mut auth = app.auth();
            let Some(grant) = auth.codes.get_mut(code) else {
                return Err(invalid_grant("unknown authorization code"));
            };
            if grant.used {
                // Replay: the code may have leaked, so whatever it bought is revoked.
                if let Some(family) = grant.family {
                    auth.revoke_family(family);
                }
                return Err(invalid_grant("authorization code was already used"));
            }
            if grant.expires < Instant::now() {
                return Err(invalid_grant("authorization code has expired"));
            }
            if grant.request.client_id != client.id {
                return Err(invalid_grant(
                    "authorization code was issued to another client",
                ));
            }
            if let Some(uri) = form.get("redirect_uri")
                && *uri != grant.request.redirect_uri
            {
                return Err(invalid_grant(
                    "redirect_uri does not match the authorization request",
                ));
            }
            // A confidential client may skip PKCE at /authorize (as Nextcloud allows); then it
            // must not send a verifier either.
            let pkce_ok = if grant.request.code_challenge.is_empty() {
                verifier.is_empty() && !client.is_public()
            } else {
                let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
                (43..=128).contains(&verifier.len()) && challenge == grant.request.code_challenge
            };
            if !pkce_ok {
                return Err(invalid_grant("PKCE verification failed"));
            }
            grant.used = true;
            let (user, scope) = (grant.user.clone(), grant.request.scope.clone());
            let (nonce, resource) = (grant.request.nonce.clone(), grant.request.resource.clone());
            let refreshable = !app.refresh_needs_offline_access
                || scope.split_whitespace().any(|s| s == "offline_access");
            let family = refreshable.then(|| auth.new_family(&user, &client.id, &scope));
            if let Some(grant) = auth.codes.get_mut(code) {
                grant.family = family;
            }
            let minter = minter(asked.or(resource.as_deref()));
            (
                auth.issue(&minter, &user, &client.id, &scope, family),
                nonce,
            )
        }
        "refresh_token" => {
            let token = required(form, "refresh_token")?;
            let mut auth = app.auth();
            let Some(&family_id) = auth.refresh.get(token) else {
                return Err(invalid_grant("unknown refresh token"));
            };
            let Some(family) = auth.families.get(&family_id) else {
                return Err(invalid_grant("unknown refresh token"));
            };
            if family.client_id != client.id {
                return Err(invalid_grant("refresh token was issued to another client"));
            }
            if family.revoked {
                return Err(invalid_grant("refresh token was revoked"));
            }
            if family.current_refresh.as_deref() != Some(token) {
                tracing::info!(sub = %family.sub, "refresh token reuse detected, revoking its family");
                auth.revoke_family(family_id);
                return Err(invalid_grant(
                    "refresh token was already used; all tokens from this login are revoked",
                ));
            }
            let scope = resolve_scope(form.get("scope").map(String::as_str), &family.scope)?;
            let sub = family.sub.clone();
            (
                auth.issue(&minter(asked), &sub, &client.id, &scope, Some(family_id)),
                None,
            )
        }
        "password" => {
            let user = required(form, "username")?;
            let password = form.get("password").map(String::as_str).unwrap_or("");
            if !app.data().check_password(user, password) {
                return Err(invalid_grant("wrong username or password"));
            }
            let scope = resolve_scope(form.get("scope").map(String::as_str), &client.scope)?;
            let mut auth = app.auth();
            let family = auth.new_family(user, &client.id, &scope);
            (
                auth.issue(&minter(asked), user, &client.id, &scope, Some(family)),
                None,
            )
        }
        _ => {
            if client.is_public() {
                return Err(OAuthError::new(
                    "unauthorized_client",
                    "client_credentials needs a confidential client",
                ));
            }
            let scope = resolve_scope(form.get("scope").map(String::as_str), &client.scope)?;
            // Its tools then work on a tree of its own (taken and released
            // before `auth`, as the lock order asks).
            app.data().ensure_service_account(&client.id);
            let issued = app
                .auth()
                .issue(&minter(asked), &client.id, &client.id, &scope, None);
            return Ok(issued);
        }
    };
    if issued.scope.split_whitespace().any(|s| s == "openid")
        && let Ok(claims) = app.keys.decode(issued.access_token.expose())
    {
        issued.id_token = Some(id_token(app, &claims, nonce));
    }
    Ok(issued)
}

/// An OIDC ID token for the subject of `access` (Core §3.1.3.3), `aud` = the client alone.
fn id_token(app: &App, access: &Claims, nonce: Option<String>) -> crate::Secret {
    crate::Secret::new(app.keys.sign(&IdClaims {
        iss: access.iss.clone(),
        sub: access.sub.clone(),
        aud: access.client_id.clone(),
        azp: access.client_id.clone(),
        exp: access.exp,
        iat: access.iat,
        auth_time: access.iat,
        nonce,
        preferred_username: access.sub.clone(),
    }))
}

pub async fn introspect(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    if let Err(e) = authenticate_client(&app, &headers, &form) {
        return e.into_response();
    }
    let token = form.get("token").map(String::as_str).unwrap_or("");
    let body = if let Ok(claims) = verify_access(&app, token) {
        json!({
            "active": true,
            "token_type": "Bearer",
            "scope": claims.scope,
            "client_id": claims.client_id,
            "username": claims.sub,
            "sub": claims.sub,
            "aud": audience_json(&claims.aud),
            "iss": claims.iss,
            "exp": claims.exp,
            "iat": claims.iat,
            "jti": claims.jti,
        })
    } else {
        let auth = app.auth();
        match auth
            .refresh_family(token)
            .and_then(|id| auth.families.get(&id))
        {
            Some(family) => json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": family.scope,
                "client_id": family.client_id,
                "username": family.sub,
                "sub": family.sub,
                "iss": app.issuer,
            }),
            None => json!({ "active": false }),
        }
    };
    (StatusCode::OK, no_store(), axum::Json(body)).into_response()
}

/// RFC 7009: always 200 for a valid client, whether or not the token was known.
pub async fn revoke(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let client = match authenticate_client(&app, &headers, &form) {
        Ok(client) => client,
        Err(e) => return e.into_response(),
    };
    let token = form.get("token").map(String::as_str).unwrap_or("");
    if let Ok(claims) = app.keys.verify(token) {
        if claims.client_id == client.id {
            app.auth().revoke_access(&claims.jti);
        }
    } else {
        let mut auth = app.auth();
        if let Some(&id) = auth.refresh.get(token)
            && auth
                .families
                .get(&id)
                .is_some_and(|f| f.client_id == client.id)
        {
            auth.revoke_family(id);
        }
    }
    (StatusCode::OK, no_store()).into_response()
}

pub async fn userinfo(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let claims = match bearer(&headers)
        .ok_or(BearerError::Invalid)
        .and_then(|t| verify_access(&app, t))
    {
        Ok(claims) => claims,
        Err(e) => {
            let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{e}\"");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
            )
                .into_response();
        }
    };
    let data = app.data();
    let body = match data.user(&claims.sub) {
        Some(user) => json!({
            "sub": claims.sub,
            "preferred_username": claims.sub,
            "name": user.display_name,
            "email": user.email,
        }),
        None => json!({ "sub": claims.sub, "preferred_username": claims.sub, "name": claims.sub }),
    };
    (StatusCode::OK, no_store(), axum::Json(body)).into_response()
}
