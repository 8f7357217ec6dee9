//! The mock target: an OAuth 2.1 authorization server plus a protected, Nextcloud-like MCP server
//! and a Nextcloud-shaped admin API, all served from one listener (see SPEC §7).
//!
//! Code map: `oauth/` (AS endpoints, JWTs, client/code/token store), `mcp/` (bearer guard, faults,
//! tools), `state/` (users, files, notes, shares), `admin` (OCS provisioning API), `cli` (the
//! `mock-target` binary).

use std::future::IntoFuture;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod admin;
mod authz;
pub mod cli;
mod http;
mod issued;
mod mcp;
mod nclogin;
mod nextcloud;
mod oauth;
mod secret;
mod state;

pub use issued::Issued;
use issued::{SecretKind, SecretLog};
pub use mcp::faults::{FaultRates, Injected};
pub use mcp::wire_stats::WireStatsSnapshot;
pub use nclogin::LoginPages;
pub use oauth::TokenAuthMethod;
pub use secret::Secret;

/// How long open connections (SSE streams) may keep the server alive after shutdown is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Scopes the authorization server knows and the MCP server advertises, as nextcloud-mcp-server
/// names them. Any valid token gets into the MCP endpoint; each tool needs its own scope
/// (`notes.read`, `files.write`, …), and `tools/list` shows only the tools the token's scopes allow.
pub const SCOPES: [&str; 9] = [
    "openid",
    "profile",
    "email",
    "offline_access",
    "notes.read",
    "notes.write",
    "files.read",
    "files.write",
    "sharing.write",
];
/// Every scope a tool needs: what a client asks for to use all the mock's tools.
pub const TOOL_SCOPES: [&str; 5] = [
    "notes.read",
    "notes.write",
    "files.read",
    "files.write",
    "sharing.write",
];

/// Knobs of the mock target. `Debug` never prints passwords.
#[derive(Clone)]
pub struct MockConfig {
    /// Users created at start: (name, password).
    pub users: Vec<(String, String)>,
    pub token_ttl: Duration,
    /// `GET /authorize` with `login_hint` of an existing user issues a code without a form.
    pub auto_approve: bool,
    /// Show a consent page after login.
    pub consent: bool,
    /// The consent page has one submit button with this label and no name or value (as many
    /// OIDC providers' pages do) instead of Allow/Deny; implies `consent`.
    pub consent_label: Option<String>,
    /// Client authentication methods the token, introspection and revocation endpoints accept
    /// (and DCR registers); never empty.
    pub token_auth_methods: Vec<TokenAuthMethod>,
    /// Accept https URLs as client ids by fetching their Client ID Metadata Document.
    pub client_metadata_documents: bool,
    /// An authorization code brings a refresh token only with `offline_access`.
    pub refresh_needs_offline_access: bool,
    /// MCP protocol versions served (`2025-06-18`, `2025-11-25`, `2026-07-28`, …); empty =
    /// every version rmcp knows.
    pub mcp_versions: Vec<String>,
    /// Sleep before each MCP request is handled.
    pub latency: Duration,
    /// Fraction of MCP `tools/call` POSTs answered with HTTP 503.
    pub error_rate: f64,
    /// Fraction of MCP `tools/call` POSTs whose connection breaks mid-answer.
    pub reset_rate: f64,
    /// Fraction of MCP `tools/call` POSTs left unanswered for `faults::STALL_FOR`.
    pub stall_rate: f64,
    /// Keep every password, client secret, access and refresh token issued,
    /// for `GET /mock/issued-secrets` (leak tests). Off by default.
    pub record_secrets: bool,
    /// `initialize` beyond this many live sessions gets HTTP 503.
    pub max_sessions: Option<usize>,
    /// MCP requests worked on at once (each for `latency`); more wait their
    /// turn, so the target saturates as a real server does.
    pub max_concurrency: Option<usize>,
    pub admin_user: String,
    pub admin_password: String,
    /// `Host` headers the MCP endpoint accepts; empty = any host.
    pub allowed_hosts: Vec<String>,
    /// Base URL to advertise instead of `http://<bound addr>`.
    pub public_url: Option<url::Url>,
    /// The login and consent pages `/authorize` shows: Nextcloud's (script-rendered, no
    /// `<form>` in the HTML) or the mock's plain forms.
    pub login_pages: LoginPages,
    /// Answer each MCP POST with `application/json` rather than an SSE stream whenever the
    /// answer is one message (the Streamable HTTP spec allows either; some clients read only
    /// JSON).
    pub json_replies: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            token_ttl: Duration::from_secs(3600),
            auto_approve: false,
            consent: false,
            consent_label: None,
            token_auth_methods: TokenAuthMethod::ALL.to_vec(),
            client_metadata_documents: false,
            refresh_needs_offline_access: false,
            mcp_versions: Vec::new(),
            latency: Duration::ZERO,
            error_rate: 0.0,
            reset_rate: 0.0,
            stall_rate: 0.0,
            record_secrets: false,
            max_sessions: None,
            max_concurrency: None,
            admin_user: "admin".into(),
            admin_password: "admin".into(),
            allowed_hosts: Vec::new(),
            public_url: None,
            login_pages: LoginPages::default(),
            json_replies: false,
        }
    }
}

impl std::fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<(&str, Secret)> = self
            .users
            .iter()
            .map(|(name, _)| (name.as_str(), Secret::default()))
            .collect();
        f.debug_struct("MockConfig")
            .field("users", &users)
            .field("token_ttl", &self.token_ttl)
            .field("auto_approve", &self.auto_approve)
            .field("consent", &self.consent)
            .field("consent_label", &self.consent_label)
            .field("token_auth_methods", &self.token_auth_methods)
            .field("client_metadata_documents", &self.client_metadata_documents)
            .field(
                "refresh_needs_offline_access",
                &self.refresh_needs_offline_access,
            )
            .field("mcp_versions", &self.mcp_versions)
            .field("latency", &self.latency)
            .field("error_rate", &self.error_rate)
            .field("reset_rate", &self.reset_rate)
            .field("stall_rate", &self.stall_rate)
            .field("record_secrets", &self.record_secrets)
            .field("max_sessions", &self.max_sessions)
            .field("max_concurrency", &self.max_concurrency)
            .field("admin_user", &self.admin_user)
            .field("admin_password", &Secret::default())
            .field("allowed_hosts", &self.allowed_hosts)
            .field("public_url", &self.public_url)
            .field("login_pages", &self.login_pages)
            .field("json_replies", &self.json_replies)
            .finish()
    }
}

/// A running mock target. Its URLs never end with a slash.
pub struct MockTarget {
    /// The OAuth issuer (`http://127.0.0.1:PORT` or the public URL).
    pub issuer: String,
    /// The protected MCP endpoint, `{issuer}/mcp`; also the token audience.
    pub mcp_url: String,
    /// The Nextcloud base URL: the OCS API lives at `{admin_url}/ocs/v2.php/cloud/users`.
    pub admin_url: String,
    app: Arc<App>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MockTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockTarget")
            .field("issuer", &self.issuer)
            .field("mcp_url", &self.mcp_url)
            .field("admin_url", &self.admin_url)
            .finish_non_exhaustive()
    }
}

impl MockTarget {
    /// Waits until the server has stopped (after the shutdown token is cancelled).
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "mock target task failed");
        }
    }

    /// How many MCP requests the `error_rate` fault has failed so far.
    pub fn injected_errors(&self) -> u64 {
        self.app.faults.injected_errors()
    }

    /// What the MCP endpoint has seen on the wire so far (also at `GET /mock/stats`).
    pub fn wire_stats(&self) -> WireStatsSnapshot {
        self.app.wire_stats.snapshot()
    }

    /// How many faults of each kind were injected so far.
    pub fn injected(&self) -> mcp::faults::Injected {
        self.app.faults.injected()
    }

    /// Issues an app password for `user`, as a Login Flow v2 grant would, without the browser
    /// steps (tests of Basic auth with app passwords); `None` for an unknown user.
    pub fn issue_app_password(&self, user: &str, client_name: &str) -> Option<Secret> {
        self.app.data().add_app_password(user, client_name).ok()
    }
}

/// Everything the handlers share. Locks are std mutexes never held across `.await`; when both
/// are needed, `data` is taken and released before `auth`.
pub(crate) struct App {
    pub issuer: String,
    pub mcp_url: String,
    pub token_ttl: Duration,
    pub auto_approve: bool,
    pub consent: bool,
    pub consent_label: Option<String>,
    pub token_auth_methods: Vec<TokenAuthMethod>,
    pub client_metadata_documents: bool,
    /// An authorization code brings a refresh token only with `offline_access`.
    pub refresh_needs_offline_access: bool,
    /// `None` = every version rmcp knows.
    pub mcp_versions: Option<Vec<rmcp::model::ProtocolVersion>>,
    pub wire_stats: mcp::wire_stats::WireStats,
    /// Fetches client metadata documents.
    pub http: reqwest::Client,
    pub admin_user: String,
    pub admin_password: Secret,
    pub keys: oauth::jwt::Keys,
    pub auth: Mutex<oauth::store::AuthStore>,
    pub data: Mutex<state::Data>,
    pub login_pages: LoginPages,
    /// Nextcloud browser sessions; taken alone, never while `data` or `auth` is held.
    pub sessions: Mutex<nclogin::session::Sessions>,
    /// Pending Login Flow v2 flows; taken alone, never while another lock is held.
    pub flows: Mutex<nclogin::flow_v2::Flows>,
    pub faults: mcp::faults::Faults,
    /// Every secret issued, with `MockConfig::record_secrets`.
    pub secret_log: Option<SecretLog>,
}

impl App {
    pub fn data(&self) -> MutexGuard<'_, state::Data> {
        lock(&self.data)
    }

    pub fn auth(&self) -> MutexGuard<'_, oauth::store::AuthStore> {
        lock(&self.auth)
    }

    pub fn sessions(&self) -> MutexGuard<'_, nclogin::session::Sessions> {
        lock(&self.sessions)
    }

    pub fn flows(&self) -> MutexGuard<'_, nclogin::flow_v2::Flows> {
        lock(&self.flows)
    }

    /// The protected-resource metadata URL put into `WWW-Authenticate` challenges (where the real
    /// server points: the root well-known path, not the `/mcp`-suffixed one).
    pub fn resource_metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource", self.issuer)
    }
}

/// Locks a mutex, recovering from poisoning: our critical sections leave the data consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the mock target on `listener` and returns at once; the server runs until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: MockConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<MockTarget> {
    for (name, rate) in [
        ("error_rate", config.error_rate),
        ("reset_rate", config.reset_rate),
        ("stall_rate", config.stall_rate),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&rate),
            "{name} must be between 0 and 1, got {rate}"
        );
    }
    anyhow::ensure!(
        !config.token_auth_methods.is_empty(),
        "token_auth_methods must name at least one method"
    );
    let known = rmcp::model::ProtocolVersion::KNOWN_VERSIONS;
    let mcp_versions = if config.mcp_versions.is_empty() {
        None
    } else {
        let mut versions = Vec::new();
        for v in &config.mcp_versions {
            let Some(known) = known.iter().find(|k| k.as_str() == v) else {
                let names: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
                anyhow::bail!(
                    "unknown MCP protocol version {v:?}: use {}",
                    names.join(", ")
                );
            };
            versions.push(known.clone());
        }
        Some(versions)
    };
    let http = reqwest::Client::builder()
        .timeout(oauth::cimd_fetch_timeout())
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let secret_log = config.record_secrets.then(SecretLog::default);
    let addr = listener.local_addr()?;
    let issuer = match &config.public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
        None => format!("http://{addr}"),
    };
    let mcp_url = format!("{issuer}/mcp");
    let mut data = state::Data::default();
    for (name, password) in &config.users {
        if let Some(log) = &secret_log {
            log.record(SecretKind::Password, password);
        }
        data.add_user(
            name,
            Secret::new(password.clone()),
            name,
            &format!("{name}@benchmark.local"),
            Vec::new(),
        )
        .map_err(|e| anyhow::anyhow!("user {name}: {e}"))?;
    }
    let app = Arc::new(App {
        issuer: issuer.clone(),
        mcp_url: mcp_url.clone(),
        token_ttl: config.token_ttl,
        auto_approve: config.auto_approve,
        consent: config.consent || config.consent_label.is_some(),
        consent_label: config.consent_label.clone(),
        token_auth_methods: config.token_auth_methods.clone(),
        client_metadata_documents: config.client_metadata_documents,
        refresh_needs_offline_access: config.refresh_needs_offline_access,
        mcp_versions,
        wire_stats: Default::default(),
        http,
        admin_user: config.admin_user.clone(),
        admin_password: Secret::new(config.admin_password.clone()),
        keys: oauth::jwt::Keys::generate()?,
        auth: Mutex::new(oauth::store::AuthStore::default()),
        data: Mutex::new(data),
        login_pages: config.login_pages,
        sessions: Mutex::default(),
        flows: Mutex::default(),
        faults: mcp::faults::Faults::new(
            config.latency,
            mcp::faults::FaultRates {
                error: config.error_rate,
                reset: config.reset_rate,
                stall: config.stall_rate,
            },
            config.max_sessions,
        )
        .with_max_concurrency(config.max_concurrency),
        secret_log,
    });
    let router = oauth::router(app.clone())
        .merge(admin::router(app.clone()))
        .merge(nclogin::router(app.clone()))
        .merge(nextcloud::router(app.clone()))
        .merge(mcp::router(app.clone(), &config, shutdown.clone()));
    // Without TCP_NODELAY, small SSE writes meet delayed ACKs and every MCP call takes ~40 ms.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    let task = tokio::spawn(async move {
        tokio::select! {
            result = server => if let Err(e) = result {
                tracing::error!(error = %e, "mock target server failed");
            },
            () = async { shutdown.cancelled().await; tokio::time::sleep(DRAIN_TIMEOUT).await } => {
                tracing::warn!("mock target: open connections did not drain in time, stopping anyway");
            }
        }
    });
    tracing::info!(%issuer, "mock target listening");
    Ok(MockTarget {
        issuer: issuer.clone(),
        mcp_url,
        admin_url: issuer,
        app,
        task,
    })
}
