//! `/authorize`, `/login` and `/consent`: request validation, the HTML login and consent forms
//! (CSRF-protected, single use) and the redirect carrying `code`, `state` and `iss` (RFC 9207).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::store::{CODE_TTL, CodeGrant, PENDING_TTL, Pending, Stage};
use super::{check_resource, resolve_scope};
use crate::authz::AuthRequest;
use crate::http::{parse_form, random_token};
use crate::{App, Secret};

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} - Mock Nextcloud</title></head>\n<body><main>\n<h1>{t}</h1>\n{body}\n</main></body></html>\n",
        t = escape(title)
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// An error shown to the user instead of redirecting (unknown client or redirect URI).
fn error_page(message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Authorization error",
        &format!("<p class=\"error\">{}</p>", escape(message)),
    )
}

fn login_page(pending_id: &str, csrf: &str, error: Option<&str>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let error = error
        .map(|e| format!("<p class=\"warning\" id=\"error\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"{error}<form method="post" action="/login" name="login" id="login">
<input type="hidden" name="pending" value="{p}">
<input type="hidden" name="csrf_token" value="{c}">
<label for="user">Account name or email</label>
<input type="text" id="user" name="user" autocomplete="username" autocapitalize="none" required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form>"#,
        p = escape(pending_id),
        c = escape(csrf)
    );
    page(status, "Log in", &body)
}

/// Allow and Deny buttons, or (`--consent-label`) one unnamed button with that label.
fn consent_page(
    pending_id: &str,
    csrf: &str,
    client: &str,
    scope: &str,
    label: Option<&str>,
) -> Response {
    let buttons = match label {
        Some(label) => format!(r#"<button type="submit">{}</button>"#, escape(label)),
        None => r#"<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>"#
            .to_owned(),
    };
    let body = format!(
        r#"<p>{client} wants to access your account with scopes: {scope}</p>
<form method="post" action="/consent" name="consent" id="consent">
<input type="hidden" name="pending" value="{p}">
<input type="hidden" name="csrf_token" value="{c}">
{buttons}
</form>"#,
        client = escape(client),
        scope = escape(scope),
        p = escape(pending_id),
        c = escape(csrf)
    );
    page(StatusCode::OK, "Authorize access", &body)
}

/// A 302 back to the client with the given parameters plus `state` and `iss`.
fn redirect(app: &App, req: &AuthRequest, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(&req.redirect_uri) else {
        return error_page("invalid redirect URI");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(state) = &req.state {
            q.append_pair("state", state);
        }
        q.append_pair("iss", &app.issuer);
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, url.to_string()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

pub(super) fn redirect_error(
    app: &App,
    req: &AuthRequest,
    error: &str,
    description: &str,
) -> Response {
    redirect(
        app,
        req,
        &[("error", error), ("error_description", description)],
    )
}

/// Registered and requested redirect URIs match exactly, except that a loopback `http` URI
/// may use any port (RFC 8252 §7.3).
fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Ok(mut a), Ok(mut b)) = (url::Url::parse(registered), url::Url::parse(requested)) else {
        return false;
    };
    let loopback = matches!(a.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
    if !loopback || a.scheme() != "http" {
        return false;
    }
    // Setting the port of an http URL cannot fail.
    let _ = (a.set_port(None), b.set_port(None));
    a == b
}

pub(super) fn issue_code(app: &App, request: AuthRequest, user: &str) -> Response {
    let code = random_token();
    let response = redirect(app, &request, &[("code", &code)]);
    app.auth().codes.insert(
        code,
        CodeGrant {
            request,
            user: user.to_owned(),
            expires: Instant::now() + CODE_TTL,
            used: false,
            family: None,
        },
    );
    tracing::debug!(user, "issued authorization code");
    response
}

pub async fn authorize(
    State(app): State<Arc<App>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = parse_form(query.unwrap_or_default().as_bytes());
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(client_id) = get("client_id") else {
        return error_page("missing client_id");
    };
    let client = if app.client_metadata_documents && super::cimd::is_url_client_id(client_id) {
        match super::cimd::resolve(&app, client_id).await {
            Ok(client) => client,
            Err(e) => return error_page(&e),
        }
    } else {
        let Some(client) = app.auth().clients.get(client_id).cloned() else {
            return error_page("unknown client_id");
        };
        client
    };
    let redirect_uri = match get("redirect_uri") {
        Some(uri)
            if client
                .redirect_uris
                .iter()
                .any(|r| redirect_matches(r, uri)) =>
        {
            uri.to_owned()
        }
        Some(_) => return error_page("redirect_uri does not match a registered one"),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return error_page("redirect_uri is required"),
    };
    let mut request = AuthRequest {
        client_id: client.id.clone(),
        redirect_uri,
        state: get("state").map(str::to_owned),
        code_challenge: String::new(),
        resource: get("resource").map(str::to_owned),
        scope: String::new(),
        nonce: get("nonce").map(str::to_owned),
    };
    if get("response_type") != Some("code") {
        return redirect_error(
            &app,
            &request,
            "unsupported_response_type",
            "response_type must be code",
        );
    }
    if !client.allows_grant("authorization_code") {
        return redirect_error(
            &app,
            &request,
            "unauthorized_client",
            "client may not use authorization_code",
        );
    }
    let challenge = match get("code_challenge") {
        Some(c) => c,
        // Nextcloud's oidc app makes PKCE optional; the real nextcloud-mcp-server, a
        // confidential client, sends none. Public clients still must.
        None if !client.is_public() => "",
        None => {
            return redirect_error(
                &app,
                &request,
                "invalid_request",
                "code_challenge is required (PKCE)",
            );
        }
    };
    if !challenge.is_empty() && get("code_challenge_method") != Some("S256") {
        return redirect_error(
            &app,
            &request,
            "invalid_request",
            "code_challenge_method must be S256",
        );
    }
    if !challenge.is_empty() && (challenge.len() < 43 || challenge.len() > 128) {
        return redirect_error(
            &app,
            &request,
            "invalid_request",
            "malformed code_challenge",
        );
    }
    request.code_challenge = challenge.to_owned();
    if let Err(e) = check_resource(&app, request.resource.as_deref()) {
        return redirect_error(&app, &request, e.error, &e.description);
    }
    request.scope = match resolve_scope(get("scope"), &client.scope) {
        Ok(s) => s,
        Err(e) => return redirect_error(&app, &request, e.error, &e.description),
    };
    if app.auto_approve
        && let Some(hint) = get("login_hint")
    {
        let known = app.data().user(hint).is_some();
        if known {
            return issue_code(&app, request, hint);
        }
    }
    if app.login_pages == crate::LoginPages::Nextcloud {
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        let name = client.name.clone().unwrap_or_else(|| client.id.clone());
        return super::nextcloud::authorize(&app, &headers, path_and_query, request, name);
    }
    let pending_id = random_token();
    let csrf = random_token();
    let mut auth = app.auth();
    let now = Instant::now();
    auth.pending.retain(|_, p| p.created + PENDING_TTL > now);
    auth.pending.insert(
        pending_id.clone(),
        Pending {
            request,
            csrf: Secret::new(csrf.clone()),
            stage: Stage::Login,
            created: now,
        },
    );
    drop(auth);
    login_page(&pending_id, &csrf, None)
}

/// Takes the pending authorization named by the form if its CSRF value matches, and rotates the
/// CSRF value (single use). Errors are finished responses.
fn take_csrf(
    app: &App,
    form: &std::collections::HashMap<String, String>,
) -> Result<(String, String), Box<Response>> {
    let pending_id = form.get("pending").cloned().unwrap_or_default();
    let given = form.get("csrf_token").map(String::as_str).unwrap_or("");
    let mut auth = app.auth();
    let Some(pending) = auth
        .pending
        .get_mut(&pending_id)
        .filter(|p| p.created + PENDING_TTL > Instant::now())
    else {
        return Err(Box::new(error_page(
            "this login request has expired; start again",
        )));
    };
    if given.is_empty() || !pending.csrf.matches(given) {
        return Err(Box::new(error_page("invalid CSRF token")));
    }
    let fresh = random_token();
    pending.csrf = Secret::new(fresh.clone());
    Ok((pending_id, fresh))
}

pub async fn login(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let (pending_id, csrf) = match take_csrf(&app, &form) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let user = form
        .get("user")
        .map(|u| u.trim().to_owned())
        .unwrap_or_default();
    let password = form.get("password").map(String::as_str).unwrap_or("");
    if !app.data().check_password(&user, password) {
        tracing::debug!(user, "login failed");
        return login_page(&pending_id, &csrf, Some("Wrong login or password."));
    }
    let mut auth = app.auth();
    let Some(pending) = auth.pending.get_mut(&pending_id) else {
        return error_page("this login request has expired; start again");
    };
    if pending.stage != Stage::Login {
        return error_page("unexpected login");
    }
    if app.consent {
        pending.stage = Stage::Consent { user: user.clone() };
        let client_id = pending.request.client_id.clone();
        let scope = pending.request.scope.clone();
        let client = auth
            .clients
            .get(&client_id)
            .and_then(|c| c.name.clone())
            .unwrap_or(client_id);
        drop(auth);
        return consent_page(
            &pending_id,
            &csrf,
            &client,
            &scope,
            app.consent_label.as_deref(),
        );
    }
    let Some(pending) = auth.pending.remove(&pending_id) else {
        return error_page("this login request has expired; start again");
    };
    drop(auth);
    issue_code(&app, pending.request, &user)
}

pub async fn consent(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let (pending_id, _) = match take_csrf(&app, &form) {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let Some(pending) = app.auth().pending.remove(&pending_id) else {
        return error_page("this login request has expired; start again");
    };
    let Stage::Consent { user } = pending.stage else {
        return error_page("log in first");
    };
    // With a single unnamed button, posting the form is the consent.
    let decision = form.get("decision").map(String::as_str);
    let allowed = match app.consent_label {
        Some(_) => decision.is_none_or(|d| d == "allow"),
        None => decision == Some("allow"),
    };
    if allowed {
        issue_code(&app, pending.request, &user)
    } else {
        redirect_error(
            &app,
            &pending.request,
            "access_denied",
            "the user denied access",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_matching_table() {
        let check = |reg: &str, req: &str, expected: bool| {
            assert_eq!(redirect_matches(reg, req), expected, "{reg} vs {req}");
        };
        check("http://127.0.0.1:1234/cb", "http://127.0.0.1:1234/cb", true);
        check("http://127.0.0.1/cb", "http://127.0.0.1:5555/cb", true);
        check(
            "http://127.0.0.1:1234/cb",
            "http://127.0.0.1:1234/other",
            false,
        );
        check(
            "https://app.example/cb",
            "https://app.example:444/cb",
            false,
        );
        check(
            "https://app.example/cb",
            "https://app.example/cb?x=1",
            false,
        );
    }

    #[test]
    fn escape_html() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
