//! Nextcloud's login page and its POST (core/Controller/LoginController.php: `showLoginForm`,
//! `tryLogin`): `GET /index.php/login?redirect_url=…` renders the page (no `<form>` in the
//! HTML; the token in `<head data-requesttoken>`), `POST /index.php/login` with `user`,
//! `password`, `requesttoken`, `redirect_url`, `timezone`, `timezone_offset` and the session
//! cookie answers 303 to the redirect URL under a new session id, or 303 back to the login
//! page with `user`, `direct=1` and the message kept in the session.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::json;

use super::page::{Page, see_other};
use super::session::set_cookie;
use crate::App;
use crate::http::parse_form;

/// Where a login without a redirect URL lands.
pub const DEFAULT_PAGE: &str = "/index.php/apps/dashboard/";
pub const LOGIN_PATH: &str = "/index.php/login";

/// The login page's script: Nextcloud's LoginForm posts a real form, so this one does too.
const LOGIN_SCRIPT: &str = r#"(function () {
  var redirect = state('core', 'loginRedirectUrl');
  var errors = state('core', 'loginErrors') || [];
  var user = el('input', {type: 'text', name: 'user', id: 'user', autocomplete: 'username', autocapitalize: 'none', required: ''});
  user.value = state('core', 'loginUsername') || '';
  var fields = [
    el('label', {for: 'user'}, ['Account name or email']), user,
    el('label', {for: 'password'}, ['Password']),
    el('input', {type: 'password', name: 'password', id: 'password', autocomplete: 'current-password', required: ''}),
    hidden('requesttoken', requestToken()),
    hidden('timezone', Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'),
    hidden('timezone_offset', String(-new Date().getTimezoneOffset() / 60)),
    el('button', {type: 'submit', id: 'submit-form', class: 'login-form__submit'}, ['Log in'])
  ];
  if (redirect) fields.push(hidden('redirect_url', redirect));
  var children = errors.map(function (m) { return el('p', {class: 'warning', id: 'error'}, [m]); });
  children.push(el('form', {method: 'post', name: 'login', action: '/index.php/login'}, fields));
  document.getElementById('login').append.apply(document.getElementById('login'), children);
})();"#;

/// A redirect URL Nextcloud would follow: a path on this server (`getAbsoluteURL`), never one
/// with `@` (LoginController::generateRedirect).
pub fn safe_redirect(app: &App, redirect_url: Option<&str>) -> String {
    match redirect_url {
        Some(r) if r.starts_with('/') && !r.starts_with("//") && !r.contains('@') => {
            format!("{}{r}", app.issuer)
        }
        _ => format!("{}{DEFAULT_PAGE}", app.issuer),
    }
}

/// `/index.php/login?redirect_url=…` (relative, as `linkToRoute` makes it).
pub fn login_url(redirect_url: &str) -> String {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("redirect_url", redirect_url)
        .finish();
    format!("{LOGIN_PATH}?{query}")
}

pub async fn show(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = parse_form(query.unwrap_or_default().as_bytes());
    let redirect_url = q
        .get("redirect_url")
        .map(String::as_str)
        .filter(|r| !r.is_empty());
    let mut sessions = app.sessions();
    let (id, new) = sessions.get_or_create(&headers);
    let Some(session) = sessions.by_id(&id) else {
        return see_other(LOGIN_PATH);
    };
    if session.user.is_some() && redirect_url.is_some() {
        return see_other(&safe_redirect(&app, redirect_url));
    }
    let errors: Vec<String> = session.login_message.take().into_iter().collect();
    let token = session.request_token.expose().to_owned();
    drop(sessions);
    let mut states = vec![
        ("core", "loginErrors", json!(errors)),
        (
            "core",
            "loginUsername",
            json!(q.get("user").cloned().unwrap_or_default()),
        ),
        ("core", "loginAutocomplete", json!(true)),
        ("core", "loginCanResetPassword", json!(false)),
        ("core", "hideLoginForm", json!(false)),
    ];
    if let Some(r) = redirect_url {
        states.push(("core", "loginRedirectUrl", json!(r)));
    }
    let mut response = Page {
        status: StatusCode::OK,
        title: "Login",
        request_token: &token,
        states,
        mount: "<div id=\"login\" class=\"guest-box login-box\"></div>",
        script: LOGIN_SCRIPT,
    }
    .render();
    if new {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, set_cookie(&id));
    }
    response
}

/// The request token of a POST: the `requesttoken` field or header (Nextcloud takes both).
pub fn posted_token<'a>(
    headers: &'a HeaderMap,
    form: &'a std::collections::HashMap<String, String>,
) -> Option<&'a str> {
    form.get("requesttoken")
        .map(String::as_str)
        .or_else(|| headers.get("requesttoken").and_then(|v| v.to_str().ok()))
        .filter(|t| !t.is_empty())
}

pub async fn try_login(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let user = form
        .get("user")
        .map(|u| u.trim().to_owned())
        .unwrap_or_default();
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let redirect_url = form
        .get("redirect_url")
        .map(String::as_str)
        .filter(|r| !r.is_empty());
    let failed = |app: &App, id: &str, new: bool, message: &str| {
        if let Some(s) = app.sessions().by_id(id) {
            s.login_message = Some(message.to_owned());
        }
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("user", &user).append_pair("direct", "1");
        if let Some(r) = redirect_url {
            query.append_pair("redirect_url", r);
        }
        let mut response = see_other(&format!("{LOGIN_PATH}?{}", query.finish()));
        if new {
            response
                .headers_mut()
                .insert(header::SET_COOKIE, set_cookie(id));
        }
        response
    };
    let (id, new) = app.sessions().get_or_create(&headers);
    let (csrf_ok, logged_in) = {
        let mut sessions = app.sessions();
        match sessions.by_id(&id) {
            Some(s) => (
                !new && posted_token(&headers, &form).is_some_and(|t| s.request_token.matches(t)),
                s.user.is_some(),
            ),
            None => (false, false),
        }
    };
    if !csrf_ok {
        if logged_in {
            return see_other(&safe_redirect(&app, redirect_url));
        }
        tracing::debug!("login refused: CSRF check failed");
        return failed(&app, &id, new, "Please try again");
    }
    if !app.data().check_password(&user, password) {
        tracing::debug!(user, "login failed");
        return failed(&app, &id, new, "Wrong login or password.");
    }
    let fresh = app.sessions().log_in(&id, &user);
    tracing::debug!(user, "logged in");
    let mut response = see_other(&safe_redirect(&app, redirect_url));
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&fresh));
    response
}
