//! `DELETE /ocs/v2.php/core/apppassword` (core/Controller/AppPasswordController.php
//! `deleteAppPassword`): Basic auth with an app password and `OCS-APIRequest: true` revokes
//! that app password, answered in the OCS envelope (JSON with `format=json` or an
//! `Accept: application/json`, else XML). A login password is not an app password: 403.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::App;
use crate::http::{basic_credentials, parse_form};

/// An OCS answer: HTTP status, and the envelope's `statuscode` and message.
fn ocs(json: bool, v2: bool, http: StatusCode, code: u16, message: &str) -> Response {
    // OCS v1 answers HTTP 200 with the status in the envelope; v2 mirrors it in HTTP.
    let (status, statuscode) = if v2 {
        (http, code)
    } else {
        (StatusCode::OK, if code == 200 { 100 } else { code })
    };
    let ok = code == 200;
    if json {
        let body = json!({ "ocs": {
            "meta": { "status": if ok { "ok" } else { "failure" }, "statuscode": statuscode, "message": message },
            "data": [],
        }});
        (status, axum::Json(body)).into_response()
    } else {
        let body = format!(
            "<?xml version=\"1.0\"?>\n<ocs>\n <meta>\n  <status>{}</status>\n  <statuscode>{statuscode}</statuscode>\n  <message>{}</message>\n </meta>\n <data/>\n</ocs>\n",
            if ok { "ok" } else { "failure" },
            crate::nclogin::page::escape(message)
        );
        (
            status,
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

pub async fn delete(
    State(app): State<Arc<App>>,
    Path(api): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q = parse_form(query.unwrap_or_default().as_bytes());
    let json = q.get("format").is_some_and(|f| f == "json")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json"));
    let v2 = api == "v2.php";
    if api != "v1.php" && !v2 {
        return StatusCode::NOT_FOUND.into_response();
    }
    // Without the header an OCS call counts as a browser request that fails the CSRF check.
    let ocs_request = headers
        .get("ocs-apirequest")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let Some((user, password)) = basic_credentials(&headers).filter(|_| ocs_request) else {
        return ocs(
            json,
            v2,
            StatusCode::UNAUTHORIZED,
            997,
            "Current user is not logged in",
        );
    };
    let mut data = app.data();
    if data.revoke_app_password(&user, &password) {
        let left = data.app_password_count(&user);
        drop(data);
        tracing::debug!(user, left, "app password revoked");
        return ocs(json, v2, StatusCode::OK, 200, "OK");
    }
    if data.check_password(&user, &password) {
        return ocs(
            json,
            v2,
            StatusCode::FORBIDDEN,
            403,
            "no app password in use",
        );
    }
    ocs(
        json,
        v2,
        StatusCode::UNAUTHORIZED,
        997,
        "Current user is not logged in",
    )
}
