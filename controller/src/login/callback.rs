//! The local OAuth callback listener: catches the authorization server's
//! redirect (`/callback?code=…&state=…&iss=…`) and hands it to the login that
//! is waiting for that `state`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use common::Secret;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// What the authorization server sent back to the redirect URI.
#[derive(Debug)]
pub struct CallbackParams {
    pub code: Option<Secret>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawCallback {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<CallbackParams>>>>;

/// A listener (by default on `127.0.0.1:0`) serving `/callback`.
pub struct CallbackServer {
    addr: SocketAddr,
    waiters: Waiters,
}

impl CallbackServer {
    /// Binds `addr` (a fixed port when the client's redirect URI is
    /// registered in advance) and serves until `shutdown` is cancelled.
    pub async fn start(addr: SocketAddr, shutdown: CancellationToken) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let waiters: Waiters = Arc::default();
        let app = axum::Router::new()
            .route("/callback", get(callback))
            .with_state(waiters.clone());
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "OAuth callback listener stopped");
            }
        });
        Ok(Self { addr, waiters })
    }

    /// The redirect URI to register with the authorization server.
    pub fn redirect_uri(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    /// Registers interest in the redirect that carries `state`.
    pub fn expect(&self, state: &str) -> oneshot::Receiver<CallbackParams> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(state.to_owned(), tx);
        rx
    }

    /// Forgets a login that gave up, so its slot does not linger.
    pub fn forget(&self, state: &str) {
        lock(&self.waiters).remove(state);
    }
}

fn lock(
    waiters: &Waiters,
) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<CallbackParams>>> {
    // A panic while holding this lock cannot leave the map inconsistent.
    waiters
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn callback(State(waiters): State<Waiters>, Query(raw): Query<RawCallback>) -> Html<String> {
    let waiter = raw.state.as_deref().and_then(|s| lock(&waiters).remove(s));
    let ok = raw.error.is_none() && raw.code.is_some();
    let params = CallbackParams {
        code: raw.code.map(Secret::new),
        state: raw.state,
        iss: raw.iss,
        error: raw.error,
        error_description: raw.error_description,
    };
    let page = match (waiter, ok) {
        (Some(tx), true) => {
            let _ = tx.send(params);
            "Login complete; mcp-swarm has the authorization code. You can close this page."
        }
        (Some(tx), false) => {
            let _ = tx.send(params);
            "The authorization server refused the login; mcp-swarm reports why."
        }
        (None, _) => "No login of this run is waiting for this redirect (unknown or reused state).",
    };
    Html(format!(
        "<!doctype html><html><head><title>mcp-swarm</title></head><body><p>{page}</p></body></html>"
    ))
}
