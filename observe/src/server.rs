//! The HTTP edge of `--http ADDR`: `/health` (200 once ready, 503 before),
//! `/metrics` (Prometheus text) and, on the controller, `/api/v1/status`
//! (phase, agents and live totals as JSON) and `/`, the live dashboard (one
//! self-contained page polling the status API; served on loopback only, as
//! it shows the target's error messages). Serves until the token is
//! cancelled.

use std::net::SocketAddr;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::control::Control;
use crate::live::{Figures, Live};

/// The OpenMetrics text content type `prometheus-client` writes.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("--http {addr}: cannot listen there ({source}); pick a free port or 127.0.0.1:0")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Which process serves: the controller adds `/api/v1/status` and agent
/// figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Controller,
    Agent,
}

/// The live dashboard: no resource from the network, no build step.
const DASHBOARD: &str = include_str!("dashboard.html");

#[derive(Clone)]
struct AppState {
    live: Live,
    role: Role,
    /// Whether the address is a loopback one (the dashboard is served there only).
    loopback: bool,
    /// `--http-control`: where `POST /api/v1/control` goes.
    control: Option<Control>,
}

/// Binds `addr` and serves in a spawned task; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    live: Live,
    role: Role,
    shutdown: CancellationToken,
) -> Result<SocketAddr, HttpError> {
    serve_with_control(addr, live, role, shutdown, None).await
}

/// As `serve`, with `POST /api/v1/control` on the controller taking the
/// requests that bear `control`'s secret (refused without it).
pub async fn serve_with_control(
    addr: SocketAddr,
    live: Live,
    role: Role,
    shutdown: CancellationToken,
    control: Option<Control>,
) -> Result<SocketAddr, HttpError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let mut app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics));
    if role == Role::Controller {
        app = app
            .route("/api/v1/status", get(status))
            .route(
                "/api/v1/control",
                post(|State(s): State<AppState>, headers, body| {
                    crate::control::handle(State(s.control), headers, body)
                }),
            )
            .route("/", get(dashboard));
    }
    let loopback = local.ip().is_loopback();
    let app = app.with_state(AppState {
        live,
        role,
        loopback,
        control,
    });
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "--http server stopped");
        }
    });
    tracing::info!(addr = %local, "serving /health and /metrics");
    if role == Role::Controller {
        if loopback {
            tracing::info!(url = %format!("http://{local}/"), "live dashboard");
        } else {
            tracing::info!(
                "the live dashboard is served on loopback only: bind --http 127.0.0.1:PORT, or reach this one through an SSH tunnel"
            );
        }
    }
    Ok(local)
}

async fn dashboard(State(s): State<AppState>) -> Response {
    if !s.loopback {
        return (
            StatusCode::FORBIDDEN,
            "the live dashboard is served on loopback only: bind --http 127.0.0.1:PORT (an SSH tunnel reaches it from elsewhere)\n",
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Nothing but itself: inline script and style, fetches to this origin.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
            ),
        ],
        DASHBOARD,
    )
        .into_response()
}

async fn health(State(s): State<AppState>) -> Response {
    let f = s.live.snapshot();
    let code = if f.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{}\n", f.phase.as_str())).into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    let text = crate::metrics::encode(s.live.snapshot(), s.role == Role::Controller);
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    let mut doc = status_json(&s.live.snapshot(), SystemTime::now());
    doc["control"] = json!(s.control.is_some());
    axum::Json(doc).into_response()
}

fn unix_seconds(t: Option<SystemTime>) -> Option<f64> {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

/// The `/api/v1/status` document.
pub fn status_json(f: &Figures, now: SystemTime) -> serde_json::Value {
    let elapsed = f
        .started_at
        .and_then(|t| now.duration_since(t).ok())
        .map(|d| d.as_secs_f64());
    let operations: u64 = f.steps.values().map(|c| c.operations).sum();
    let errors: u64 = f.steps.values().map(|c| c.n_errors()).sum();
    let workflows: serde_json::Map<String, serde_json::Value> = f
        .workflows
        .iter()
        .map(|(name, wf)| {
            (
                name.clone(),
                json!({
                    "executions": wf.counts.operations,
                    "errors": wf.counts.n_errors(),
                    "p50_ms": wf.latency.quantile_us(0.50) as f64 / 1e3,
                    "p95_ms": wf.latency.quantile_us(0.95) as f64 / 1e3,
                    "p99_ms": wf.latency.quantile_us(0.99) as f64 / 1e3,
                    // The last complete second's executions (absent: none ended in it).
                    "recent": (!wf.recent.is_empty()).then(|| json!({
                        "executions": wf.recent.len(),
                        "p50_ms": wf.recent.quantile_us(0.50) as f64 / 1e3,
                        "p95_ms": wf.recent.quantile_us(0.95) as f64 / 1e3,
                        "p99_ms": wf.recent.quantile_us(0.99) as f64 / 1e3,
                    })),
                }),
            )
        })
        .collect();
    json!({
        "phase": f.phase,
        "ready": f.ready,
        "started_at": unix_seconds(f.started_at),
        "elapsed_seconds": elapsed,
        "measure_from": unix_seconds(f.measure_from),
        "measure_seconds": f.measure_for.map(|d| d.as_secs_f64()),
        "agents": f.agents,
        "totals": {
            "step_executions": operations,
            "step_errors": errors,
            "measured_operations": f.measured.operations,
            "measured_errors": f.measured.n_errors(),
            "measured_operations_per_second": f.measured_rate(now),
            "active_users": f.active_users,
            "token_refreshes": f.token_refreshes,
            "interval_lag_seconds": f.interval_lag.as_secs_f64(),
            "offered_starts": f.starts.offered,
            "dropped_starts": f.starts.dropped,
            "late_starts": f.starts.late,
        },
        "target": f.target(now),
        "load_model": f.load_model,
        "workflows": workflows,
        "failures": failure_rows(f),
        "events": f.events,
        "trend": f.trend.iter().map(|(at, p95, rate)| json!({
            "started_at": at, "p95_ms": p95 * 1e3, "throughput": rate,
        })).collect::<Vec<_>>(),
    })
}

/// Most rows of the status document's failures table.
const FAILURE_ROWS: usize = 20;

/// Per workflow, step and kind: the count and the target's messages, most
/// frequent first.
fn failure_rows(f: &Figures) -> Vec<serde_json::Value> {
    let mut rows: Vec<(u64, serde_json::Value)> = f
        .steps
        .iter()
        .flat_map(|((workflow, step), counts)| {
            counts.errors.iter().map(move |(kind, n)| (workflow, step, kind, *n))
        })
        .filter(|(.., n)| *n > 0)
        .map(|(workflow, step, kind, n)| {
            let messages: Vec<&String> = f
                .failures
                .iter()
                .find(|(k, _)| k.workflow == *workflow && k.step == *step && k.kind.as_str() == kind)
                .map(|(_, m)| m.iter().collect())
                .unwrap_or_default();
            (
                n,
                json!({ "workflow": workflow, "step": step, "kind": kind, "count": n, "messages": messages }),
            )
        })
        .collect();
    rows.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    rows.into_iter()
        .take(FAILURE_ROWS)
        .map(|(_, r)| r)
        .collect()
}
