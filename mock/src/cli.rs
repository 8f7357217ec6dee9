//! The `mock-target` command line: flags, admin password from the environment, the one JSON
//! line announcing the URLs on stdout, and shutdown on Ctrl-C/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::{MockConfig, TokenAuthMethod, serve};

const ADMIN_PASSWORD_ENV: &str = "MOCK_TARGET_ADMIN_PASSWORD";
/// Log filter without `RUST_LOG`: rmcp logs several info lines per session, which at
/// thousands of sessions cost more than the sessions themselves.
const DEFAULT_LOG_FILTER: &str = "info,rmcp=warn";

/// Mock target for mcp-swarm: an OAuth 2.1 authorization server plus a protected, Nextcloud-like
/// MCP server. Prints {"issuer","mcp_url","admin_url"} as one JSON line once it listens.
#[derive(Parser)]
#[command(name = "mock-target", version)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A user to create at start, as NAME:PASSWORD (repeatable).
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_user)]
    pub users: Vec<(String, String)>,
    /// Access token lifetime (500ms, 30s, 1h; a bare number means seconds).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub token_ttl: Duration,
    /// Issue a code at once for /authorize requests with login_hint of an existing user.
    #[arg(long)]
    pub auto_approve: bool,
    /// Show a consent page after login.
    #[arg(long)]
    pub consent: bool,
    /// Consent page with one submit button labelled LABEL (no name or value, as many OIDC
    /// providers show) instead of Allow/Deny; implies --consent.
    #[arg(long, value_name = "LABEL")]
    pub consent_label: Option<String>,
    /// Client authentication methods the token endpoint accepts and advertises
    /// (comma-separated: none, client_secret_basic, client_secret_post) [default: all three].
    #[arg(long, value_delimiter = ',', value_name = "METHODS")]
    pub token_auth_methods: Vec<TokenAuthMethod>,
    /// Accept https URLs as client ids by fetching their Client ID Metadata Document
    /// (http too on loopback hosts, for tests).
    #[arg(long)]
    pub client_metadata_documents: bool,
    /// Issue a refresh token with an authorization code only when `offline_access` was
    /// granted, as a Nextcloud whose client was registered without it does (the Nextcloud
    /// MCP server's): clients must log users in again before their tokens expire.
    #[arg(long)]
    pub refresh_needs_offline_access: bool,
    /// MCP protocol versions to serve (comma-separated, e.g. 2025-06-18,2025-11-25)
    /// [default: every version, up to 2026-07-28].
    #[arg(long, value_delimiter = ',', value_name = "VERSIONS")]
    pub mcp_versions: Vec<String>,
    /// Delay before each MCP request is handled.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub latency: Duration,
    /// Fraction (0..=1) of MCP tools/call requests answered with HTTP 503.
    #[arg(long, default_value = "0", value_parser = parse_rate)]
    pub error_rate: f64,
    /// Fraction (0..=1) of MCP tools/call requests whose connection breaks mid-answer.
    #[arg(long, default_value = "0", value_parser = parse_rate)]
    pub reset_rate: f64,
    /// Fraction (0..=1) of MCP tools/call requests left unanswered for 10 minutes
    /// (past any client's request timeout).
    #[arg(long, default_value = "0", value_parser = parse_rate)]
    pub stall_rate: f64,
    /// Keep every password, client secret and token issued and serve them at
    /// GET /mock/issued-secrets (admin auth): for leak tests only.
    #[arg(long)]
    pub record_secrets: bool,
    /// Refuse MCP initialize (HTTP 503) beyond this many live sessions.
    #[arg(long)]
    pub max_sessions: Option<usize>,
    /// Work on at most this many MCP requests at once (each for --latency); the rest queue.
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Host header the MCP endpoint accepts (repeatable; none = any host).
    #[arg(long = "allowed-host", value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// Base URL to advertise instead of http://<listen address>.
    #[arg(long)]
    pub public_url: Option<url::Url>,
    /// Login and consent pages: `nextcloud` (as Nextcloud serves them: rendered by script, no
    /// <form> in the HTML, POST /index.php/login, the oidc app's consent) or `forms` (plain
    /// HTML forms, with --consent and --consent-label).
    #[arg(long, default_value = "nextcloud", value_name = "PAGES")]
    pub login_pages: crate::LoginPages,
    /// Answer MCP POSTs with application/json instead of an SSE stream when the answer is one
    /// message (for clients that read only JSON bodies, e.g. cargo-pmcp's loadtest).
    #[arg(long)]
    pub json_replies: bool,
    /// Admin user name for the OCS provisioning API.
    #[arg(long, env = "MOCK_TARGET_ADMIN_USER", default_value = "admin")]
    pub admin_user: String,
}

fn parse_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((name, password)) if !name.is_empty() && !password.is_empty() => {
            Ok((name.to_owned(), password.to_owned()))
        }
        _ => Err("expected NAME:PASSWORD with both parts non-empty".to_owned()),
    }
}

/// `500ms`, `30s`, `1h` (humantime) or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|e| format!("invalid duration {s:?}: {e}"));
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("expected a number between 0 and 1, got {s:?}")),
    }
}

/// The binary's whole life: parse flags (exit 2 on bad ones), serve, exit 0 on a signal.
pub fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds the config from flags and environment, serves until Ctrl-C or SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let admin_password = match std::env::var(ADMIN_PASSWORD_ENV) {
        Ok(p) if !p.is_empty() => p,
        _ if args.listen.ip().is_loopback() => "admin".to_owned(),
        _ => anyhow::bail!(
            "{ADMIN_PASSWORD_ENV} must be set when listening on a non-loopback address ({})",
            args.listen
        ),
    };
    let config = MockConfig {
        users: args.users,
        token_ttl: args.token_ttl,
        auto_approve: args.auto_approve,
        consent: args.consent,
        consent_label: args.consent_label,
        token_auth_methods: if args.token_auth_methods.is_empty() {
            TokenAuthMethod::ALL.to_vec()
        } else {
            args.token_auth_methods
        },
        client_metadata_documents: args.client_metadata_documents,
        refresh_needs_offline_access: args.refresh_needs_offline_access,
        mcp_versions: args.mcp_versions,
        latency: args.latency,
        error_rate: args.error_rate,
        reset_rate: args.reset_rate,
        stall_rate: args.stall_rate,
        record_secrets: args.record_secrets,
        max_sessions: args.max_sessions,
        max_concurrency: args.max_concurrency,
        admin_user: args.admin_user,
        admin_password,
        allowed_hosts: args.allowed_hosts,
        public_url: args.public_url,
        login_pages: args.login_pages,
        json_replies: args.json_replies,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let shutdown = CancellationToken::new();
    let target = serve(listener, config, shutdown.clone()).await?;
    let line = serde_json::json!({
        "issuer": target.issuer,
        "mcp_url": target.mcp_url,
        "admin_url": target.admin_url,
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").context("cannot write to stdout")?;
    stdout.flush().context("cannot flush stdout")?;
    drop(stdout);
    tokio::spawn(cancel_on_signal(shutdown));
    target.wait().await;
    Ok(())
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let check = |input: &str, expected: Option<Duration>| {
            assert_eq!(parse_duration(input).ok(), expected, "{input}");
        };
        check("500ms", Some(Duration::from_millis(500)));
        check("30s", Some(Duration::from_secs(30)));
        check("1h", Some(Duration::from_secs(3600)));
        check("300", Some(Duration::from_secs(300)));
        check("0", Some(Duration::ZERO));
        check("soon", None);
        check("-1", None);
    }

    #[test]
    fn users_and_rates() {
        assert_eq!(
            parse_user("alice:pw:x"),
            Ok(("alice".into(), "pw:x".into()))
        );
        assert!(parse_user("alice").is_err());
        assert!(parse_rate("0.5").is_ok());
        assert!(parse_rate("2").is_err());
    }
}
