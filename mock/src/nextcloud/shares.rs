//! OCS `files_sharing` (`/ocs/v{1,2}.php/apps/files_sharing/api/v1/shares`) as Nextcloud's
//! `ShareAPIController` answers it: list (own, `shared_with_me`, one `path`, `subfiles` of a
//! folder), create from a form, get (a one-element list), update `permissions`, delete, with
//! its messages and status codes in the OCS envelope.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::auth::{Caller, Unauthenticated};
use super::ocs::Ocs;
use crate::App;
use crate::state::{NcError, PERM_ALL, parent};

/// Nextcloud's share type for a user share.
const SHARE_TYPE_USER: i64 = 0;
/// A public link share, which the mock does not offer.
const SHARE_TYPE_LINK: i64 = 3;

fn wrong_share_id(ocs: Ocs) -> Response {
    ocs.fail(
        StatusCode::NOT_FOUND,
        "Wrong share ID, share does not exist",
    )
}

/// A state error as the controller's OCS exception: its status and message.
fn failure(ocs: Ocs, e: &NcError) -> Response {
    let (status, message) = match e {
        NcError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        NcError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
        NcError::BadRequest(m)
        | NcError::NotAllowed(m)
        | NcError::Conflict(m)
        | NcError::PreconditionFailed(m) => (StatusCode::BAD_REQUEST, m),
    };
    ocs.fail(status, message)
}

/// A share id from the URL: `11` or the provider-qualified `ocinternal:11`.
fn share_id(raw: &str) -> Option<u64> {
    raw.strip_prefix("ocinternal:").unwrap_or(raw).parse().ok()
}

/// The request's parameters: query string, then a form or JSON body over it (OCS controllers
/// read all three).
fn params(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let mut out: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    if is_json {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s,
                    Value::Null => continue,
                    other => other.to_string(),
                };
                out.insert(k, v);
            }
        }
    } else {
        out.extend(url::form_urlencoded::parse(body).into_owned());
    }
    out
}

/// `GET …/shares[?shared_with_me=true][&path=…][&subfiles=true][&reshares=true]`.
pub async fn list(
    State(app): State<Arc<App>>,
    ocs: Ocs,
    caller: Result<Caller, Unauthenticated>,
    RawQuery(query): RawQuery,
) -> Response {
    let user = match ocs.caller(caller) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let q = params(query.as_deref(), &HeaderMap::new(), &[]);
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true");
    let path = q.get("path").map(String::as_str).filter(|p| !p.is_empty());
    let data = app.data();
    let listed = if flag("subfiles") && !flag("shared_with_me") {
        // The shares on the folder's direct children, as `getSharesInDir`.
        let Some(dir) = path else {
            return ocs.fail(StatusCode::BAD_REQUEST, "Not a directory");
        };
        match data.list_directory(&user, dir) {
            Err(NcError::NotFound(_)) => {
                return ocs.fail(
                    StatusCode::NOT_FOUND,
                    "Wrong path, file/folder does not exist",
                );
            }
            Err(_) => return ocs.fail(StatusCode::BAD_REQUEST, "Not a directory"),
            Ok(_) => {}
        }
        let dir = crate::state::norm(dir).unwrap_or_default();
        data.list_shares(&user, None, false).map(|shares| {
            shares
                .into_iter()
                .filter(|s| {
                    s["path"]
                        .as_str()
                        .is_some_and(|p| parent(p) == dir && p != dir)
                })
                .collect()
        })
    } else {
        data.list_shares(&user, path, flag("shared_with_me"))
    };
    drop(data);
    match listed {
        Ok(shares) => ocs.ok(Value::Array(shares)),
        Err(e) => failure(ocs, &e),
    }
}

/// `POST …/shares`, form `path`, `shareType`, `shareWith`, `permissions` (default all).
pub async fn create(
    State(app): State<Arc<App>>,
    ocs: Ocs,
    caller: Result<Caller, Unauthenticated>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match ocs.caller(caller) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let p = params(query.as_deref(), &headers, &body);
    let Some(path) = p.get("path") else {
        return ocs.fail(
            StatusCode::NOT_FOUND,
            "Please specify a file or folder path",
        );
    };
    let permissions = match p.get("permissions").map(|v| v.parse::<i64>()) {
        None => i64::from(PERM_ALL),
        Some(Ok(n)) => n,
        Some(Err(_)) => return ocs.fail(StatusCode::BAD_REQUEST, "Invalid permissions"),
    };
    let share_type = p
        .get("shareType")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(-1);
    let share_with = p.get("shareWith").map(String::as_str).unwrap_or("");
    if share_type == SHARE_TYPE_LINK {
        // The mock's capabilities say `public.enabled: false`, and it answers as such a server.
        return ocs.fail(
            StatusCode::NOT_FOUND,
            "Public link sharing is disabled by the administrator",
        );
    }
    let mut data = app.data();
    if share_type == SHARE_TYPE_USER && data.user(share_with).is_none() {
        // Nextcloud checks the path first; the state does too, so only ask when it exists.
        let loc = data.locate(&user, &crate::state::norm(path).unwrap_or_default());
        if data.node(&loc.owner, &loc.path).is_some() {
            return ocs.fail(
                StatusCode::NOT_FOUND,
                "Please specify a valid account to share with",
            );
        }
    }
    let (Ok(share_type), Ok(permissions)) = (u8::try_from(share_type), u32::try_from(permissions))
    else {
        return if share_type < 0 || share_type > i64::from(u8::MAX) {
            ocs.fail(StatusCode::BAD_REQUEST, "Unknown share type")
        } else {
            ocs.fail(StatusCode::BAD_REQUEST, "Invalid permissions")
        };
    };
    let created = data.create_share(&user, path, share_with, share_type, permissions);
    drop(data);
    match created {
        Ok(share) => ocs.ok(share),
        Err(e) => failure(ocs, &e),
    }
}

/// `GET …/shares/{id}`: a one-element list, as Nextcloud returns it.
pub async fn get(
    State(app): State<Arc<App>>,
    ocs: Ocs,
    caller: Result<Caller, Unauthenticated>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let user = match ocs.caller(caller) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let Some(id) = share_id(&id) else {
        return wrong_share_id(ocs);
    };
    let share = app.data().get_share(&user, id);
    match share {
        Ok(share) => ocs.ok(json!([share])),
        Err(e) => failure(ocs, &e),
    }
}

/// `PUT …/shares/{id}`, form `permissions`.
pub async fn update(
    State(app): State<Arc<App>>,
    ocs: Ocs,
    caller: Result<Caller, Unauthenticated>,
    Path((_, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match ocs.caller(caller) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let Some(id) = share_id(&id) else {
        return wrong_share_id(ocs);
    };
    let p = params(query.as_deref(), &headers, &body);
    let mut data = app.data();
    // Existence and access come before the parameters, as in `updateShare`.
    if let Err(e) = data.get_share(&user, id) {
        return failure(ocs, &e);
    }
    let Some(permissions) = p.get("permissions") else {
        return ocs.fail(
            StatusCode::BAD_REQUEST,
            "Wrong or no update parameter given",
        );
    };
    let Ok(permissions) = permissions.parse::<u32>() else {
        return ocs.fail(StatusCode::BAD_REQUEST, "Invalid permissions");
    };
    let updated = data.update_share(&user, id, permissions);
    drop(data);
    match updated {
        Ok(share) => ocs.ok(share),
        Err(e) => failure(ocs, &e),
    }
}

/// `DELETE …/shares/{id}`: empty data on success.
pub async fn delete(
    State(app): State<Arc<App>>,
    ocs: Ocs,
    caller: Result<Caller, Unauthenticated>,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    let user = match ocs.caller(caller) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let Some(id) = share_id(&id) else {
        return wrong_share_id(ocs);
    };
    let deleted = app.data().delete_share(&user, id);
    match deleted {
        Ok(()) => ocs.ok(json!([])),
        Err(e) => failure(ocs, &e),
    }
}
