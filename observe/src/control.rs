//! `POST /api/v1/control`: steering a run from the dashboard or a script —
//! the closed model's active users, the open model's rate, or a clean stop
//! (as Ctrl-C). Off unless the controller was started with `--http-control`,
//! and then only with the bearer secret it was given. The handler checks the
//! request's shape; the run decides (its model, its users) and answers.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::secret::Secret;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

/// Longest a control request waits for the run's answer.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// What a control request asks of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// Closed model: this many active users from now on.
    Users(u64),
    /// Open model: this many workflow starts per second from now on.
    Rate(f64),
    /// Stop the run cleanly, as Ctrl-C does.
    Stop,
}

/// One request on its way to the run, with where its answer goes (`Ok`:
/// what was done; `Err`: why not, for a 409).
#[derive(Debug)]
pub struct Request {
    pub change: Change,
    pub answer: oneshot::Sender<Result<String, String>>,
}

/// What `--http-control` gives the HTTP edge: the secret requests must bear
/// and where they go.
#[derive(Clone, Debug)]
pub struct Control {
    pub secret: Secret,
    pub requests: mpsc::Sender<Request>,
}

/// The JSON body: exactly one of the three.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    users: Option<u64>,
    rate: Option<f64>,
    stop: Option<bool>,
}

impl Body {
    fn change(&self) -> Result<Change, String> {
        match (self.users, self.rate, self.stop) {
            (Some(n), None, None) => Ok(Change::Users(n)),
            (None, Some(r), None) if r.is_finite() && r >= 0.0 => Ok(Change::Rate(r)),
            (None, Some(r), None) => Err(format!("rate {r} is not a number of starts per second ≥ 0")),
            (None, None, Some(true)) => Ok(Change::Stop),
            _ => Err(
                "give exactly one of {\"users\": N} (closed model), {\"rate\": R} (open model) or {\"stop\": true}"
                    .to_owned(),
            ),
        }
    }
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

/// The route's handler; `control` is `None` without `--http-control`.
pub async fn handle(
    State(control): State<Option<Control>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(control) = control else {
        return error(
            StatusCode::FORBIDDEN,
            "control is off: start the controller with --http-control (and MCP_SWARM_HTTP_CONTROL_TOKEN in its environment)",
        );
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|b| control.secret.matches(b)) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": "send Authorization: Bearer <MCP_SWARM_HTTP_CONTROL_TOKEN>" })),
        )
            .into_response();
    }
    let body: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a control request: {e}"),
            );
        }
    };
    let change = match body.change() {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (answer, answered) = oneshot::channel();
    if control
        .requests
        .try_send(Request { change, answer })
        .is_err()
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the run is not taking control requests now (not running, or busy): try again",
        );
    }
    match tokio::time::timeout(ANSWER_WITHIN, answered).await {
        Ok(Ok(Ok(done))) => (StatusCode::OK, Json(json!({ "done": done }))).into_response(),
        Ok(Ok(Err(refused))) => error(StatusCode::CONFLICT, refused),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the run did not answer: it may be over",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(json: &str) -> Result<Change, String> {
        serde_json::from_str::<Body>(json)
            .map_err(|e| e.to_string())
            .and_then(|b| b.change())
    }

    #[test]
    fn a_body_asks_for_exactly_one_change() {
        assert_eq!(change(r#"{"users": 4}"#), Ok(Change::Users(4)));
        assert_eq!(change(r#"{"rate": 12.5}"#), Ok(Change::Rate(12.5)));
        assert_eq!(change(r#"{"stop": true}"#), Ok(Change::Stop));
        assert!(
            change(r#"{"users": 4, "rate": 1}"#)
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(change(r#"{}"#).unwrap_err().contains("exactly one"));
        assert!(change(r#"{"stop": false}"#).is_err());
        assert!(change(r#"{"rate": -1}"#).unwrap_err().contains("≥ 0"));
        assert!(change(r#"{"users": -1}"#).is_err());
        assert!(
            change(r#"{"speed": 1}"#)
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
