//! Login Flow v2 as Nextcloud core serves it (core/Controller/ClientFlowLoginV2Controller.php,
//! core/templates/loginflowv2/): `POST /index.php/login/v2` → `{poll: {token, endpoint},
//! login}`; the login URL `/index.php/login/v2/flow/<token>` works once and 303s to the
//! picker page `/index.php/login/v2/flow` (initial state `core-loginFlowAuth` with
//! `loginRedirectUrl`); the grant page `/index.php/login/v2/grant?stateToken=…` sends a
//! visitor without a session to the login page, and otherwise shows "Grant access"
//! (initial state `core-loginFlowGrant`: `actionUrl`, `stateToken`, …); `POST
//! /index.php/login/v2/grant` with `stateToken` and the request token mints an app password;
//! `POST /index.php/login/v2/poll` with `token` answers 404 until then and 200 `{server,
//! loginName, appPassword}` exactly once. Pending flows are bounded and expire.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::login::{login_url, posted_token};
use super::page::{Page, message, see_other};
use super::session::set_cookie;
use crate::http::{no_store, parse_form, random_token};
use crate::issued::SecretKind;
use crate::{App, Secret};

/// Nextcloud's flows expire after 20 minutes (LoginFlowV2Service).
pub const FLOW_TTL: Duration = Duration::from_secs(20 * 60);
/// More pending flows than this: the oldest goes.
pub const MAX_FLOWS: usize = 10_000;

struct Flow {
    poll_token: String,
    client_name: String,
    created: Instant,
    /// The login URL was opened (it works once).
    started: bool,
    /// Granted: the user and the app password the next poll hands out.
    done: Option<(String, Secret)>,
}

/// Pending flows by login token, and poll token → login token.
#[derive(Default)]
pub struct Flows {
    by_login: HashMap<String, Flow>,
    by_poll: HashMap<String, String>,
}

impl Flows {
    fn prune(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .by_login
            .iter()
            .filter(|(_, f)| f.created + FLOW_TTL <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.remove(&k);
        }
        while self.by_login.len() >= MAX_FLOWS {
            let Some(oldest) = self
                .by_login
                .iter()
                .min_by_key(|(_, f)| f.created)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.remove(&oldest);
        }
    }

    fn remove(&mut self, login: &str) -> Option<Flow> {
        let flow = self.by_login.remove(login)?;
        self.by_poll.remove(&flow.poll_token);
        Some(flow)
    }

    fn live(&mut self, login: &str) -> Option<&mut Flow> {
        self.by_login
            .get_mut(login)
            .filter(|f| f.created + FLOW_TTL > Instant::now())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_login.len()
    }
}

const FLOW_PATH: &str = "/index.php/login/v2";

pub async fn init(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let client_name = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .chars()
        .take(256)
        .collect();
    let (login, poll) = (random_token(), random_token());
    let mut flows = app.flows();
    flows.prune();
    flows.by_poll.insert(poll.clone(), login.clone());
    flows.by_login.insert(
        login.clone(),
        Flow {
            poll_token: poll.clone(),
            client_name,
            created: Instant::now(),
            started: false,
            done: None,
        },
    );
    drop(flows);
    let i = &app.issuer;
    Json(json!({
        "poll": { "token": poll, "endpoint": format!("{i}{FLOW_PATH}/poll") },
        "login": format!("{i}{FLOW_PATH}/flow/{login}"),
    }))
    .into_response()
}

fn token_invalid(token: &str) -> Response {
    message(
        StatusCode::FORBIDDEN,
        "Access forbidden",
        "Your login token is invalid or has expired",
        token,
    )
}

/// The login URL: marks the flow started (once only) and parks it in the session.
pub async fn landing(
    State(app): State<Arc<App>>,
    Path(login): Path<String>,
    headers: HeaderMap,
) -> Response {
    let started = {
        let mut flows = app.flows();
        match flows.live(&login) {
            Some(f) if !f.started && f.done.is_none() => {
                f.started = true;
                true
            }
            _ => false,
        }
    };
    if !started {
        return token_invalid("");
    }
    let mut sessions = app.sessions();
    let (id, new) = sessions.get_or_create(&headers);
    if let Some(s) = sessions.by_id(&id) {
        s.flow_login_token = Some(login);
    }
    drop(sessions);
    let mut response = see_other(&format!("{}{FLOW_PATH}/flow", app.issuer));
    if new {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, set_cookie(&id));
    }
    response
}

/// A session's pending flow.
struct SessionFlow {
    /// The session's request token.
    token: String,
    client: String,
    /// The grant page's state token, once the picker was shown.
    state: Option<String>,
    /// The logged-in user and the flow's login token.
    user: Option<(String, String)>,
}

/// The session's flow, if it is still pending, or the page Nextcloud shows instead.
fn session_flow(app: &App, headers: &HeaderMap) -> Result<SessionFlow, Box<Response>> {
    let mut sessions = app.sessions();
    let Some((_, session)) = sessions.get(headers) else {
        return Err(Box::new(token_invalid("")));
    };
    let token = session.request_token.expose().to_owned();
    let Some(login) = session.flow_login_token.clone() else {
        return Err(Box::new(token_invalid(&token)));
    };
    let state = session
        .flow_state_token
        .as_ref()
        .map(|s| s.expose().to_owned());
    let user = session.user.clone();
    drop(sessions);
    let client = app
        .flows()
        .live(&login)
        .filter(|f| f.done.is_none())
        .map(|f| f.client_name.clone());
    let Some(client) = client else {
        return Err(Box::new(token_invalid(&token)));
    };
    Ok(SessionFlow {
        token,
        client,
        state,
        user: user.map(|u| (u, login)),
    })
}

const PICKER_SCRIPT: &str = r#"(function () {
  var auth = state('core', 'loginFlowAuth');
  var root = document.getElementById('login-flow');
  root.append(el('h2', {}, ['Connect to your account']),
    el('p', {class: 'info'}, ['Please log in before granting ' + auth.client + ' access to your ' + auth.instanceName + ' account.']),
    el('a', {href: auth.loginRedirectUrl, id: 'login-flow-log-in', class: 'button primary'}, ['Log in']));
})();"#;

pub async fn picker(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let SessionFlow { token, client, .. } = match session_flow(&app, &headers) {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let state_token = random_token();
    if let Some((_, s)) = app.sessions().get(&headers) {
        s.flow_state_token = Some(Secret::new(state_token.clone()));
    }
    let grant = format!(
        "{}{FLOW_PATH}/grant?{}",
        app.issuer,
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("stateToken", &state_token)
            .finish()
    );
    Page {
        status: StatusCode::OK,
        title: "Login",
        request_token: &token,
        states: vec![
            ("core", "loginFlowState", json!("auth")),
            (
                "core",
                "loginFlowAuth",
                json!({ "client": client, "instanceName": "Nextcloud", "loginRedirectUrl": grant }),
            ),
        ],
        mount: "<div id=\"login-flow\" class=\"guest-box\"></div>",
        script: PICKER_SCRIPT,
    }
    .render()
}

const GRANT_SCRIPT: &str = r#"(function () {
  var g = state('core', 'loginFlowGrant');
  var root = document.getElementById('login-flow');
  root.append(el('h2', {}, ['Account access']),
    el('p', {class: 'info'}, ['Currently logged in as ' + g.userDisplayName + ' (' + g.userId + ').']),
    el('p', {class: 'info'}, ['You are about to grant ' + g.client + ' access to your ' + g.instanceName + ' account.']),
    el('form', {method: 'post', action: g.actionUrl}, [
      hidden('requesttoken', requestToken()), hidden('stateToken', g.stateToken),
      el('button', {type: 'submit', class: 'primary', id: 'grant'}, ['Grant access'])]));
})();"#;

fn state_matches(expected: Option<&str>, given: Option<&str>) -> bool {
    match (expected, given) {
        (Some(e), Some(g)) => Secret::new(e.to_owned()).matches(g),
        _ => false,
    }
}

pub async fn grant_page(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = parse_form(query.clone().unwrap_or_default().as_bytes());
    // Not logged in: the login page first, back here after (NoAdminRequired, not a public page).
    let logged_in = app
        .sessions()
        .get(&headers)
        .is_some_and(|(_, s)| s.user.is_some());
    if !logged_in {
        let here = format!("{FLOW_PATH}/grant?{}", query.unwrap_or_default());
        return see_other(&format!("{}{}", app.issuer, login_url(&here)));
    }
    let SessionFlow {
        token,
        client,
        state,
        user,
    } = match session_flow(&app, &headers) {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let given = q.get("stateToken").map(String::as_str);
    if !state_matches(state.as_deref(), given) {
        return message(
            StatusCode::FORBIDDEN,
            "Access forbidden",
            "State token does not match",
            &token,
        );
    }
    let Some((user, _)) = user else {
        return token_invalid(&token);
    };
    let display = app
        .data()
        .user(&user)
        .map(|u| u.display_name.clone())
        .unwrap_or_else(|| user.clone());
    Page {
        status: StatusCode::OK,
        title: "Login",
        request_token: &token,
        states: vec![
            ("core", "loginFlowState", json!("grant")),
            (
                "core",
                "loginFlowGrant",
                json!({
                    "actionUrl": format!("{}{FLOW_PATH}/grant", app.issuer),
                    "client": client,
                    "direct": false,
                    "instanceName": "Nextcloud",
                    "stateToken": given.unwrap_or_default(),
                    "userId": user,
                    "userDisplayName": display,
                }),
            ),
        ],
        mount: "<div id=\"login-flow\" class=\"guest-box\"></div>",
        script: GRANT_SCRIPT,
    }
    .render()
}

/// `POST /index.php/login/v2/grant`: mints the app password the next poll hands out.
pub async fn grant(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let SessionFlow {
        token,
        client,
        state,
        user,
    } = match session_flow(&app, &headers) {
        Ok(f) => f,
        Err(response) => return *response,
    };
    let csrf_ok = app.sessions().get(&headers).is_some_and(|(_, s)| {
        posted_token(&headers, &form).is_some_and(|t| s.request_token.matches(t))
    });
    let Some((user, login)) = user.filter(|_| csrf_ok) else {
        return message(
            StatusCode::PRECONDITION_FAILED,
            "Access forbidden",
            "CSRF check failed",
            &token,
        );
    };
    if !state_matches(state.as_deref(), form.get("stateToken").map(String::as_str)) {
        return message(
            StatusCode::FORBIDDEN,
            "Access forbidden",
            "State token does not match",
            &token,
        );
    }
    if let Some((_, s)) = app.sessions().get(&headers) {
        s.flow_login_token = None;
        s.flow_state_token = None;
    }
    let password = match app.data().add_app_password(&user, &client) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(user, error = %e, "no app password");
            return message(
                StatusCode::FORBIDDEN,
                "Access forbidden",
                "Could not complete login",
                &token,
            );
        }
    };
    if let Some(log) = &app.secret_log {
        log.record(SecretKind::AppPassword, password.expose());
    }
    let done = match app.flows().live(&login) {
        Some(f) if f.done.is_none() => {
            f.done = Some((user.clone(), password));
            true
        }
        _ => false,
    };
    if !done {
        return message(
            StatusCode::FORBIDDEN,
            "Access forbidden",
            "Could not complete login",
            &token,
        );
    }
    tracing::debug!(user, "login flow v2 granted");
    message(
        StatusCode::OK,
        "Account connected",
        "Your client should now be connected! You can close this window.",
        &token,
    )
}

/// `POST /index.php/login/v2/poll` with `token` (form, query or JSON).
pub async fn poll(State(app): State<Arc<App>>, RawQuery(query): RawQuery, body: Bytes) -> Response {
    let token = parse_form(&body)
        .remove("token")
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["token"].as_str().map(str::to_owned))
        })
        .or_else(|| parse_form(query.unwrap_or_default().as_bytes()).remove("token"))
        .unwrap_or_default();
    let not_found = || (StatusCode::NOT_FOUND, Json(json!([]))).into_response();
    let mut flows = app.flows();
    let Some(login) = flows.by_poll.get(&token).cloned() else {
        return not_found();
    };
    if flows.live(&login).is_none_or(|f| f.done.is_none()) {
        return not_found();
    }
    let Some(Flow {
        done: Some((user, password)),
        ..
    }) = flows.remove(&login)
    else {
        return not_found();
    };
    drop(flows);
    (
        StatusCode::OK,
        no_store(),
        Json(json!({
            "server": app.issuer,
            "loginName": user,
            "appPassword": password.expose(),
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flows_stay_bounded() {
        let mut flows = Flows::default();
        for i in 0..MAX_FLOWS + 5 {
            flows.prune();
            flows.by_poll.insert(format!("p{i}"), format!("l{i}"));
            flows.by_login.insert(
                format!("l{i}"),
                Flow {
                    poll_token: format!("p{i}"),
                    client_name: String::new(),
                    created: Instant::now(),
                    started: false,
                    done: None,
                },
            );
        }
        assert!(flows.len() <= MAX_FLOWS);
        assert_eq!(flows.by_poll.len(), flows.len());
    }
}
