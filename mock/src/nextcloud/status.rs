//! What the server and the caller are: `GET /status.php` (unauthenticated, polled by the real
//! server's health check), `GET /ocs/v{1,2}.php/cloud/capabilities` (public; the real server
//! hides its notes tools without a `notes` block) and `GET /ocs/v{1,2}.php/cloud/user`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{Caller, Unauthenticated, authenticate, has_credentials};
use super::ocs::Ocs;
use crate::App;

/// The Nextcloud release the mock stands in for.
const VERSION: [u32; 4] = [31, 0, 5, 1];
/// The Notes app release whose API the mock serves: notes are `.md` files (4.7+), API 1.3.
const NOTES_VERSION: &str = "4.11.0";
const NOTES_API_VERSIONS: [&str; 1] = ["1.3"];

fn version_string() -> String {
    format!("{}.{}.{}", VERSION[0], VERSION[1], VERSION[2])
}

pub async fn status() -> Response {
    let [major, minor, micro, build] = VERSION;
    axum::Json(json!({
        "installed": true,
        "maintenance": false,
        "needsDbUpgrade": false,
        "version": format!("{major}.{minor}.{micro}.{build}"),
        "versionstring": version_string(),
        "edition": "",
        "productname": "Nextcloud",
        "extendedSupport": false,
    }))
    .into_response()
}

/// Public, as on Nextcloud; credentials, when sent, must hold, and add the caller's notes path.
pub async fn capabilities(State(app): State<Arc<App>>, ocs: Ocs, headers: HeaderMap) -> Response {
    let user = match authenticate(&app, &headers) {
        Some(caller) => Some(caller.user),
        None if has_credentials(&headers) => return ocs.unauthenticated(),
        None => None,
    };
    let [major, minor, micro, _] = VERSION;
    ocs.ok(json!({
        "version": {
            "major": major, "minor": minor, "micro": micro,
            "string": version_string(), "edition": "", "extendedSupport": false,
        },
        "capabilities": {
            "core": {
                "pollinterval": 60,
                "webdav-root": "remote.php/webdav",
                "reference-api": true,
            },
            "dav": { "chunking": "1.0", "bulkupload": "1.0" },
            "files": {
                "bigfilechunking": true,
                "undelete": false,
                "versioning": false,
            },
            "files_sharing": {
                "api_enabled": true,
                "public": { "enabled": false },
                "resharing": true,
                "group_sharing": false,
                "user": { "send_mail": false, "expire_date": { "enabled": false } },
                "default_permissions": crate::state::PERM_ALL,
            },
            "notes": {
                "api_version": NOTES_API_VERSIONS,
                "version": NOTES_VERSION,
                "notes_path": user.map(|_| "Notes"),
            },
        },
    }))
}

/// `GET /ocs/v2.php/cloud/user`: the authenticated account, as the provisioning API shows it.
pub async fn current_user(
    State(app): State<Arc<App>>,
    ocs: Ocs,
    caller: Result<Caller, Unauthenticated>,
) -> Response {
    let user = match ocs.caller(caller) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let data = app.data();
    let Some(account) = data.user(&user) else {
        // A client acting for itself (client_credentials) has files but no account.
        return ocs.fail(StatusCode::NOT_FOUND, "User does not exist");
    };
    let body: Value = json!({
        "enabled": true,
        "storageLocation": format!("/var/www/html/data/{user}"),
        "id": user,
        "lastLogin": crate::state::now_secs() * 1000,
        "backend": "Database",
        "subadmin": [],
        "quota": { "free": -3, "used": 0, "total": -3, "relative": 0, "quota": -3 },
        "email": account.email,
        "additional_mail": [],
        "displayname": account.display_name,
        "display-name": account.display_name,
        "phone": "",
        "address": "",
        "website": "",
        "twitter": "",
        "organisation": "",
        "role": "",
        "headline": "",
        "biography": "",
        "profile_enabled": "1",
        "groups": account.groups,
        "language": "en",
        "locale": "",
        "backendCapabilities": { "setDisplayName": true, "setPassword": true },
    });
    drop(data);
    ocs.ok(body)
}
