//! The authorization step as Nextcloud's oidc app takes it (H2CK/oidc
//! LoginRedirectorController, ConsentController, templates/consent.php, src/Consent.vue):
//! `/index.php/apps/oidc/authorize` without a session → 303 to `/index.php/login?redirect_url=
//! <the authorize URL>`; logged in without a consent on record for (user, client, scopes) →
//! the request is parked in the session and 303 to `/index.php/apps/oidc/consent`, a page whose
//! HTML holds only `<div id="oidc-consent" data-client-name data-scopes data-client-id>`;
//! `POST /index.php/apps/oidc/consent/grant` (`scopes`, the request token as a header or
//! field) records the consent and 303s back to authorize with every parameter, which then
//! redirects with `code` and `state`; `POST …/consent/deny` redirects with `access_denied`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::OIDC_APP;
use super::authorize::{issue_code, redirect_error};
use crate::App;
use crate::authz::AuthRequest;
use crate::http::parse_form;
use crate::nclogin::login::{login_url, posted_token};
use crate::nclogin::page::{Page, message, see_other};
use crate::nclogin::session::PendingConsent;

/// The consent page's script: Consent.vue's scope list and its Deny and Allow buttons, as
/// real forms posting where Consent.vue's fetches go.
const CONSENT_SCRIPT: &str = r#"(function () {
  var root = document.getElementById('oidc-consent');
  var scopes = (root.dataset.scopes || '').split(' ').filter(function (s) { return s; });
  var list = el('ul', {class: 'scope-list'}, scopes.map(function (s) { return el('li', {class: 'scope-item'}, [s]); }));
  var grant = el('form', {method: 'post', action: '/index.php/apps/oidc/consent/grant', id: 'consent-grant'}, [
    hidden('requesttoken', requestToken()), hidden('scopes', scopes.join(' ')),
    el('button', {type: 'submit', class: 'primary', id: 'grant'}, ['Allow'])]);
  var deny = el('form', {method: 'post', action: '/index.php/apps/oidc/consent/deny', id: 'consent-deny'}, [
    hidden('requesttoken', requestToken()),
    el('button', {type: 'submit', id: 'deny'}, ['Deny'])]);
  root.append(el('h2', {}, [root.dataset.clientName + ' wants to access your account']), list, deny, grant);
})();"#;

/// `authorize` once the request is valid, on Nextcloud's pages: log in, consent, code.
pub fn authorize(
    app: &App,
    headers: &HeaderMap,
    path_and_query: &str,
    request: AuthRequest,
    client_name: String,
) -> Response {
    let mut sessions = app.sessions();
    let user = sessions.get(headers).and_then(|(_, s)| s.user.clone());
    let Some(user) = user else {
        return see_other(&login_url(path_and_query));
    };
    if sessions.has_consent(&user, &request.client_id, &request.scope) {
        drop(sessions);
        return issue_code(app, request, &user);
    }
    if let Some((_, session)) = sessions.get(headers) {
        session.consent = Some(PendingConsent {
            request,
            client_name,
        });
    }
    see_other(&format!("{OIDC_APP}/consent"))
}

pub async fn show(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let mut sessions = app.sessions();
    let Some((_, session)) = sessions.get(&headers) else {
        return message(
            StatusCode::FORBIDDEN,
            "Access forbidden",
            "You must be logged in to view this page.",
            "",
        );
    };
    let token = session.request_token.expose().to_owned();
    if session.user.is_none() {
        return message(
            StatusCode::FORBIDDEN,
            "Access forbidden",
            "You must be logged in to view this page.",
            &token,
        );
    }
    let Some(pending) = session.consent.clone() else {
        return message(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "No consent request pending.",
            &token,
        );
    };
    drop(sessions);
    let escape = crate::nclogin::page::escape;
    Page {
        status: StatusCode::OK,
        title: "OpenID Connect",
        request_token: &token,
        states: Vec::new(),
        mount: &format!(
            "<div id=\"oidc-consent\" data-client-name=\"{}\" data-scopes=\"{}\" data-client-id=\"{}\">\n</div>",
            escape(&pending.client_name),
            escape(&pending.request.scope),
            escape(&pending.request.client_id)
        ),
        script: CONSENT_SCRIPT,
    }
    .render()
}

/// The logged-in user and the pending consent of a POST that passes the CSRF check, or the
/// response Nextcloud gives instead.
fn pending(
    app: &App,
    headers: &HeaderMap,
    body: &Bytes,
    take: bool,
) -> Result<(String, PendingConsent, String), Box<Response>> {
    let form = parse_form(body);
    let mut sessions = app.sessions();
    let Some((_, session)) = sessions.get(headers) else {
        return Err(Box::new(see_other(crate::nclogin::login::LOGIN_PATH)));
    };
    let Some(user) = session.user.clone() else {
        return Err(Box::new(see_other(crate::nclogin::login::LOGIN_PATH)));
    };
    if !posted_token(headers, &form).is_some_and(|t| session.request_token.matches(t)) {
        return Err(Box::new(message(
            StatusCode::PRECONDITION_FAILED,
            "Access forbidden",
            "CSRF check failed",
            "",
        )));
    }
    let consent = if take {
        session.consent.take()
    } else {
        session.consent.clone()
    };
    let Some(consent) = consent else {
        return Err(Box::new(see_other(&format!("{}/", app.issuer))));
    };
    let scopes = form.get("scopes").cloned().unwrap_or_default();
    Ok((user, consent, scopes))
}

pub async fn grant(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let (user, consent, asked) = match pending(&app, &headers, &body, true) {
        Ok(p) => p,
        Err(response) => return *response,
    };
    let request = consent.request;
    // Granted = what was asked for and chosen (no choice = all of it); `openid` stays.
    let requested: Vec<&str> = request.scope.split_whitespace().collect();
    let mut granted: Vec<&str> = asked
        .split_whitespace()
        .filter(|s| requested.contains(s))
        .collect();
    if granted.is_empty() {
        granted = requested.clone();
    }
    if requested.contains(&"openid") && !granted.contains(&"openid") {
        granted.insert(0, "openid");
    }
    let scope = granted.join(" ");
    app.sessions()
        .remember_consent(&user, &request.client_id, &scope);
    tracing::debug!(user, client_id = %request.client_id, "consent granted");
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("client_id", &request.client_id)
        .append_pair("scope", &scope)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", &request.redirect_uri);
    for (k, v) in [
        ("state", &request.state),
        ("nonce", &request.nonce),
        ("resource", &request.resource),
    ] {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    if !request.code_challenge.is_empty() {
        query
            .append_pair("code_challenge", &request.code_challenge)
            .append_pair("code_challenge_method", "S256");
    }
    see_other(&format!(
        "{}{OIDC_APP}/authorize?{}",
        app.issuer,
        query.finish()
    ))
}

pub async fn deny(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    match pending(&app, &headers, &body, true) {
        Ok((_, consent, _)) => redirect_error(
            &app,
            &consent.request,
            "access_denied",
            "User denied consent",
        ),
        Err(response) => *response,
    }
}
