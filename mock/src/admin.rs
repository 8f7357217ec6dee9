//! The admin API, shaped like Nextcloud's OCS provisioning API (`/ocs/v{1,2}.php/cloud/users`
//! and `/cloud/groups`), behind admin Basic auth: create, list by search, get and delete users
//! and groups; users join existing groups when created (`groups[]`). Plus mock-only endpoints,
//! behind the same auth: `GET /mock/stats` (the MCP endpoint's wire counters),
//! and, for tests, `POST /mock/revoke-access-tokens` (a 401 storm), `GET /mock/injected-faults` and
//! `GET /mock/issued-secrets` (with `--record-secrets`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::http::{basic_credentials, parse_form};
use crate::{App, Secret};

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/mock/revoke-access-tokens",
            axum::routing::post(revoke_access_tokens),
        )
        .route("/mock/issued-secrets", get(issued_secrets))
        .route("/mock/injected-faults", get(injected_faults))
        .route("/ocs/{api}/cloud/users", get(list_users).post(create_user))
        .route(
            "/ocs/{api}/cloud/users/{id}",
            get(get_user).delete(delete_user),
        )
        .route(
            "/ocs/{api}/cloud/groups",
            get(list_groups).post(create_group),
        )
        .route(
            "/ocs/{api}/cloud/groups/{id}",
            get(group_members).delete(delete_group),
        )
        .route("/mock/stats", get(stats))
        .with_state(app)
}

async fn stats(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(response) = admit(&app, "v2.php", &headers) {
        return *response;
    }
    axum::Json(app.wire_stats.snapshot()).into_response()
}

/// An OCS envelope. v2 answers with the real HTTP status and statuscode 200 on success; v1
/// always answers HTTP 200 with statuscode 100 on success, as Nextcloud does.
fn ocs(api: &str, status: StatusCode, statuscode: u32, message: &str, data: Value) -> Response {
    let v1 = api == "v1.php";
    let ok = status.is_success();
    let statuscode = match (ok, v1) {
        (true, true) => 100,
        (true, false) => 200,
        (false, _) => statuscode,
    };
    let body = json!({ "ocs": {
        "meta": { "status": if ok { "ok" } else { "failure" }, "statuscode": statuscode, "message": message },
        "data": data,
    }});
    let http_status = if v1 && status != StatusCode::UNAUTHORIZED {
        StatusCode::OK
    } else {
        status
    };
    (http_status, axum::Json(body)).into_response()
}

/// Checks admin Basic auth and the API version; errors are finished responses.
fn admit(app: &App, api: &str, headers: &HeaderMap) -> Result<(), Box<Response>> {
    if api != "v1.php" && api != "v2.php" {
        return Err(Box::new(StatusCode::NOT_FOUND.into_response()));
    }
    let ok = basic_credentials(headers).is_some_and(|(user, password)| {
        user == app.admin_user && app.admin_password.matches(&password)
    });
    if ok {
        Ok(())
    } else {
        Err(Box::new(ocs(
            api,
            StatusCode::UNAUTHORIZED,
            997,
            "Current user is not logged in",
            json!([]),
        )))
    }
}

/// `POST /mock/revoke-access-tokens`: every access token stops working at
/// once (a 401 storm); refresh tokens still work. Answers `{"revoked": N}`.
async fn revoke_access_tokens(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(response) = admit(&app, "v2.php", &headers) {
        return *response;
    }
    let revoked = app.auth().revoke_all_access();
    tracing::info!(revoked, "admin revoked every access token");
    axum::Json(json!({ "revoked": revoked })).into_response()
}

/// `GET /mock/injected-faults`: how many faults of each kind were injected.
async fn injected_faults(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(response) = admit(&app, "v2.php", &headers) {
        return *response;
    }
    axum::Json(app.faults.injected()).into_response()
}

/// `GET /mock/issued-secrets`: everything `MockConfig::record_secrets` kept
/// (404 without it).
async fn issued_secrets(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(response) = admit(&app, "v2.php", &headers) {
        return *response;
    }
    match &app.secret_log {
        Some(log) => axum::Json(log.snapshot()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "secrets are not recorded: start the mock with --record-secrets",
        )
            .into_response(),
    }
}

async fn create_user(
    State(app): State<Arc<App>>,
    Path(api): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = admit(&app, &api, &headers) {
        return *response;
    }
    let groups: Vec<String> = url::form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "groups[]" || k == "groups")
        .map(|(_, v)| v.into_owned())
        .collect();
    let form = parse_form(&body);
    let field = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let (Some(userid), Some(password)) = (
        field("userid"),
        form.get("password").filter(|p| !p.is_empty()),
    ) else {
        return ocs(
            &api,
            StatusCode::BAD_REQUEST,
            101,
            "userid and password are required",
            json!([]),
        );
    };
    if let Some(log) = &app.secret_log {
        log.record(crate::issued::SecretKind::Password, password);
    }
    let display = field("displayName").unwrap_or_else(|| userid.clone());
    let email = field("email").unwrap_or_default();
    let added = app.data().add_user(
        &userid,
        Secret::new(password.clone()),
        &display,
        &email,
        groups,
    );
    match added {
        Ok(()) => {
            tracing::debug!(%userid, "admin created user");
            ocs(&api, StatusCode::OK, 200, "OK", json!({ "id": userid }))
        }
        Err(crate::state::NcError::Conflict(_)) => ocs(
            &api,
            StatusCode::BAD_REQUEST,
            102,
            "User already exists",
            json!([]),
        ),
        Err(crate::state::NcError::NotFound(why)) => {
            ocs(&api, StatusCode::BAD_REQUEST, 104, &why, json!([]))
        }
        Err(e) => ocs(
            &api,
            StatusCode::BAD_REQUEST,
            101,
            &e.to_string(),
            json!([]),
        ),
    }
}

async fn list_users(
    State(app): State<Arc<App>>,
    Path(api): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(response) = admit(&app, &api, &headers) {
        return *response;
    }
    let query = parse_form(query.unwrap_or_default().as_bytes());
    let search = query
        .get("search")
        .map(|s| s.to_lowercase())
        .unwrap_or_default();
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let offset = query
        .get("offset")
        .and_then(|o| o.parse::<usize>().ok())
        .unwrap_or(0);
    let users: Vec<String> = app
        .data()
        .user_ids()
        .filter(|id| id.to_lowercase().contains(&search))
        .skip(offset)
        .take(limit)
        .cloned()
        .collect();
    ocs(&api, StatusCode::OK, 200, "OK", json!({ "users": users }))
}

async fn get_user(
    State(app): State<Arc<App>>,
    Path((api, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&app, &api, &headers) {
        return *response;
    }
    let data = app.data();
    match data.user(&id) {
        Some(user) => {
            let body = json!({
                "id": id,
                "enabled": true,
                "displayname": user.display_name,
                "email": user.email,
                "groups": user.groups,
            });
            ocs(&api, StatusCode::OK, 200, "OK", body)
        }
        None => ocs(
            &api,
            StatusCode::NOT_FOUND,
            998,
            "User does not exist",
            json!([]),
        ),
    }
}

async fn create_group(
    State(app): State<Arc<App>>,
    Path(api): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = admit(&app, &api, &headers) {
        return *response;
    }
    let form = parse_form(&body);
    let Some(id) = form
        .get("groupid")
        .map(|g| g.trim())
        .filter(|g| !g.is_empty())
    else {
        return ocs(
            &api,
            StatusCode::BAD_REQUEST,
            101,
            "Invalid group name",
            json!([]),
        );
    };
    match app.data().add_group(id) {
        Ok(()) => {
            tracing::debug!(group = %id, "admin created group");
            ocs(&api, StatusCode::OK, 200, "OK", json!([]))
        }
        Err(crate::state::NcError::Conflict(_)) => ocs(
            &api,
            StatusCode::BAD_REQUEST,
            102,
            "group exists",
            json!([]),
        ),
        Err(e) => ocs(
            &api,
            StatusCode::BAD_REQUEST,
            101,
            &e.to_string(),
            json!([]),
        ),
    }
}

async fn list_groups(
    State(app): State<Arc<App>>,
    Path(api): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if let Err(response) = admit(&app, &api, &headers) {
        return *response;
    }
    let query = parse_form(query.unwrap_or_default().as_bytes());
    let search = query
        .get("search")
        .map(|s| s.to_lowercase())
        .unwrap_or_default();
    let groups: Vec<String> = app
        .data()
        .group_ids()
        .filter(|id| id.to_lowercase().contains(&search))
        .cloned()
        .collect();
    ocs(&api, StatusCode::OK, 200, "OK", json!({ "groups": groups }))
}

async fn group_members(
    State(app): State<Arc<App>>,
    Path((api, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&app, &api, &headers) {
        return *response;
    }
    let data = app.data();
    match data.group_members(&id) {
        Some(users) => ocs(&api, StatusCode::OK, 200, "OK", json!({ "users": users })),
        None => ocs(
            &api,
            StatusCode::NOT_FOUND,
            404,
            "The requested group could not be found",
            json!([]),
        ),
    }
}

async fn delete_group(
    State(app): State<Arc<App>>,
    Path((api, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&app, &api, &headers) {
        return *response;
    }
    if !app.data().delete_group(&id) {
        return ocs(
            &api,
            StatusCode::BAD_REQUEST,
            101,
            "Group does not exist",
            json!([]),
        );
    }
    tracing::debug!(group = %id, "admin deleted group");
    ocs(&api, StatusCode::OK, 200, "OK", json!([]))
}

async fn delete_user(
    State(app): State<Arc<App>>,
    Path((api, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = admit(&app, &api, &headers) {
        return *response;
    }
    let deleted = app.data().delete_user(&id);
    if !deleted {
        return ocs(
            &api,
            StatusCode::NOT_FOUND,
            998,
            "User does not exist",
            json!([]),
        );
    }
    app.auth().revoke_subject(&id);
    tracing::debug!(%id, "admin deleted user");
    ocs(&api, StatusCode::OK, 200, "OK", json!([]))
}
