//! Measuring harness (not a test, not shipped): what one open MCP session
//! costs the agent (RSS, tokio tasks, sockets) and how much CPU one tool
//! call takes, for the thin client and for the rmcp baseline it replaced,
//! against a standalone `mock-target` (users come from its admin API,
//! tokens from its password grant), or any MCP server with `--no-auth`.
//!
//! ```text
//! session_cost --mcp-url URL --client thin rss --sessions 2000
//! taskset -c 0 session_cost --mcp-url URL --client rmcp cpu --concurrency 16 --seconds 10
//! session_cost --mcp-url URL --no-auth call --tool add --args '{"a":1,"b":2}'
//! ```

mod rmcp_session;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agent::session::{McpCounters, McpSession, SessionContext, UserToken};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use common::Secret;
use futures::StreamExt;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(30);
const OPEN_CONCURRENCY: usize = 64;
/// Users created for a run; sessions share them round-robin (each session
/// still holds its own `UserToken`, as the agent does).
const MAX_USERS: usize = 200;

#[derive(Parser)]
struct Args {
    /// The MCP endpoint (a mock-target's `mcp_url`).
    #[arg(long)]
    mcp_url: String,
    #[arg(long, value_enum, default_value = "thin")]
    client: Client,
    /// Send a dummy bearer token and create no users (a server without auth).
    #[arg(long)]
    no_auth: bool,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
enum Client {
    Thin,
    Rmcp,
}

#[derive(Subcommand)]
enum Mode {
    /// Opens N sessions and reports RSS, tasks and sockets per session.
    Rss {
        #[arg(long, default_value_t = 2000)]
        sessions: usize,
    },
    /// K tasks call a tool in a loop on a single-threaded runtime; reports
    /// process CPU per call.
    Cpu {
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value = "nc_notes_search_notes")]
        tool: String,
        #[arg(long, default_value = r#"{"query":"x"}"#)]
        args: String,
    },
    /// Opens one session, calls one tool, prints the result, closes.
    Call {
        #[arg(long)]
        tool: String,
        #[arg(long, default_value = "{}")]
        args: String,
    },
}

enum Session {
    Thin(McpSession),
    Rmcp(rmcp_session::McpSession),
}

impl Session {
    async fn open(
        client: Client,
        ctx: &Arc<SessionContext>,
        user: &str,
        token: &str,
    ) -> anyhow::Result<Session> {
        let secret = Secret::new(token.to_owned());
        Ok(match client {
            Client::Thin => {
                let token = UserToken::new(user.into(), secret);
                Session::Thin(McpSession::open(ctx, token, TIMEOUT).await?.0)
            }
            Client::Rmcp => {
                let token = rmcp_session::UserToken::new(user.into(), secret);
                Session::Rmcp(rmcp_session::McpSession::open(ctx, token, TIMEOUT).await?.0)
            }
        })
    }

    async fn call(&self, tool: &str, args: Value) -> anyhow::Result<common::scenario::ToolOutput> {
        Ok(match self {
            Session::Thin(s) => s.call(tool, args, TIMEOUT).await?,
            Session::Rmcp(s) => s.call(tool, args, TIMEOUT).await?,
        })
    }

    async fn close(self) {
        match self {
            Session::Thin(s) => s.close().await,
            Session::Rmcp(s) => s.close().await,
        }
    }
}

fn context(mcp_url: &str) -> anyhow::Result<Arc<SessionContext>> {
    let (refresh, refresh_rx) = tokio::sync::mpsc::channel(16);
    // Nobody answers refresh requests here; keep the receiver alive.
    std::mem::forget(refresh_rx);
    Ok(Arc::new(SessionContext {
        http: agent::session::http_client()?,
        mcp_url: mcp_url.to_owned(),
        headers: HashMap::new(),
        counters: Arc::new(McpCounters::default()),
        refresh,
        // The figures in BENCHMARKS.md are of sessions (initialize, Mcp-Session-Id).
        version: common::protocol::McpVersionChoice::Fixed(
            common::protocol::McpVersion::V2025_11_25,
        ),
        elicitation: Default::default(),
    }))
}

/// Creates `n` users on the mock (OCS admin API) and gets a token for each.
async fn users(mcp_url: &str, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    let issuer = mcp_url.trim_end_matches("/mcp");
    let http = reqwest::Client::new();
    let admin_password =
        std::env::var("MOCK_TARGET_ADMIN_PASSWORD").unwrap_or_else(|_| "admin".into());
    let registered: Value = http
        .post(format!("{issuer}/register"))
        .json(&json!({
            "client_name": "session-cost",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["password", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let client_id = registered["client_id"]
        .as_str()
        .context("no client_id from /register")?
        .to_owned();
    let run = std::process::id();
    let jobs = (0..n).map(|i| {
        let (http, client_id, admin_password) = (&http, &client_id, &admin_password);
        async move {
            let name = format!("cost_{run}_{i}");
            let password = format!("pw-{run}-{i}");
            http.post(format!("{issuer}/ocs/v2.php/cloud/users"))
                .basic_auth("admin", Some(admin_password))
                .header("OCS-APIRequest", "true")
                .header("Accept", "application/json")
                .form(&[("userid", name.as_str()), ("password", password.as_str())])
                .send()
                .await?
                .error_for_status()
                .context("creating a user")?;
            let token: Value = http
                .post(format!("{issuer}/token"))
                .form(&[
                    ("grant_type", "password"),
                    ("username", name.as_str()),
                    ("password", password.as_str()),
                    ("client_id", client_id.as_str()),
                    ("resource", mcp_url),
                ])
                .send()
                .await?
                .json()
                .await?;
            let token = token["access_token"]
                .as_str()
                .context("no access token")?
                .to_owned();
            anyhow::Ok((name, token))
        }
    });
    futures::stream::iter(jobs)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn credentials(args: &Args, n: usize) -> anyhow::Result<Vec<(String, String)>> {
    if args.no_auth {
        return Ok(vec![("anonymous".into(), "no-auth".into())]);
    }
    users(&args.mcp_url, n.clamp(1, MAX_USERS)).await
}

async fn open_all(
    client: Client,
    ctx: &Arc<SessionContext>,
    creds: &[(String, String)],
    n: usize,
) -> anyhow::Result<Vec<Session>> {
    let jobs = (0..n).map(|i| {
        let (user, token) = &creds[i % creds.len()];
        Session::open(client, ctx, user, token)
    });
    futures::stream::iter(jobs)
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// VmRSS of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn open_sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// User and system CPU time of this process.
fn cpu_time() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After `(comm)`, the state is field 3; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ, which /proc reports in, is 100 on Linux.
    let micros = |t: u64| Duration::from_micros(t * 10_000);
    (micros(ticks(11)), micros(ticks(12)))
}

fn tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

struct Snapshot {
    rss_kib: u64,
    tasks: usize,
    sockets: usize,
}

fn snapshot() -> Snapshot {
    Snapshot {
        rss_kib: rss_kib(),
        tasks: tasks(),
        sockets: open_sockets(),
    }
}

async fn rss(args: &Args, n: usize) -> anyhow::Result<()> {
    let creds = credentials(args, n).await?;
    let ctx = context(&args.mcp_url)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = snapshot();
    let started = Instant::now();
    let sessions = open_all(args.client, &ctx, &creds, n).await?;
    let open_s = started.elapsed().as_secs_f64();
    // rmcp opens its GET stream after initialize, in the background.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let open = snapshot();
    let calls = sessions
        .iter()
        .map(|s| s.call("nc_notes_search_notes", json!({"query": "x"})));
    let results: Vec<_> = futures::stream::iter(calls)
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let called = snapshot();
    let per = |a: u64, b: u64| (b.saturating_sub(a) as f64) * 1024.0 / n as f64;
    let report = json!({
        "client": format!("{:?}", args.client).to_lowercase(),
        "sessions": n,
        "open_s": (open_s * 100.0).round() / 100.0,
        "rss_before_kib": before.rss_kib,
        "rss_open_kib": open.rss_kib,
        "rss_after_one_call_each_kib": called.rss_kib,
        "bytes_per_open_session": per(before.rss_kib, open.rss_kib).round(),
        "bytes_per_session_after_a_call": per(before.rss_kib, called.rss_kib).round(),
        "tasks_per_session": (open.tasks as f64 - before.tasks as f64) / n as f64,
        "sockets_per_session": (open.sockets as f64 - before.sockets as f64) / n as f64,
        "sockets_open": open.sockets,
        "failed_calls": failed,
    });
    println!("{report}");
    let started = Instant::now();
    futures::future::join_all(sessions.into_iter().map(Session::close)).await;
    eprintln!("closed {n} sessions in {:?}", started.elapsed());
    Ok(())
}

async fn cpu(
    args: &Args,
    k: usize,
    seconds: u64,
    tool: &str,
    call_args: &str,
) -> anyhow::Result<()> {
    let call_args: Value = serde_json::from_str(call_args).context("--args is not JSON")?;
    let creds = credentials(args, k).await?;
    let ctx = context(&args.mcp_url)?;
    let sessions: Vec<Arc<Session>> = open_all(args.client, &ctx, &creds, k)
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    let calls = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for s in &sessions {
        let (s, calls, errors, stop) = (s.clone(), calls.clone(), errors.clone(), stop.clone());
        let (tool, call_args) = (tool.to_owned(), call_args.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match s.call(&tool, call_args.clone()).await {
                    Ok(out) if !out.is_error => calls.fetch_add(1, Ordering::Relaxed),
                    _ => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    // Warm up: connections, allocator, caches.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (calls0, cpu0, t0) = (calls.load(Ordering::Relaxed), cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (calls1, cpu1, elapsed) = (calls.load(Ordering::Relaxed), cpu_time(), t0.elapsed());
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let n = calls1 - calls0;
    let per_call = |d: Duration| (d.as_secs_f64() * 1e6 / n.max(1) as f64 * 10.0).round() / 10.0;
    let (user, sys) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    let report = json!({
        "client": format!("{:?}", args.client).to_lowercase(),
        "concurrency": k,
        "seconds": elapsed.as_secs_f64(),
        "calls": n,
        "calls_per_s": (n as f64 / elapsed.as_secs_f64()).round(),
        "cpu_s": (user + sys).as_secs_f64(),
        "cpu_us_per_call": per_call(user + sys),
        "user_us_per_call": per_call(user),
        "sys_us_per_call": per_call(sys),
        "errors": errors.load(Ordering::Relaxed),
        "sockets_open": open_sockets(),
    });
    println!("{report}");
    for s in sessions {
        if let Ok(s) = Arc::try_unwrap(s) {
            s.close().await;
        }
    }
    Ok(())
}

async fn call(args: &Args, tool: &str, call_args: &str) -> anyhow::Result<()> {
    let call_args: Value = serde_json::from_str(call_args).context("--args is not JSON")?;
    let creds = credentials(args, 1).await?;
    let ctx = context(&args.mcp_url)?;
    let (user, token) = &creds[0];
    let started = Instant::now();
    let session = Session::open(args.client, &ctx, user, token).await?;
    eprintln!("initialized in {:?}", started.elapsed());
    let out = session.call(tool, call_args).await?;
    println!(
        "{}",
        json!({"is_error": out.is_error, "text": out.text, "json": out.json})
    );
    session.close().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // CPU runs on one thread, like one agent core; RSS runs on the agent's
    // multi-threaded runtime.
    let runtime = match args.mode {
        Mode::Cpu { .. } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
    };
    runtime.block_on(async {
        match &args.mode {
            Mode::Rss { sessions } => rss(&args, *sessions).await,
            Mode::Cpu {
                concurrency,
                seconds,
                tool,
                args: call_args,
            } => cpu(&args, *concurrency, *seconds, tool, call_args).await,
            Mode::Call {
                tool,
                args: call_args,
            } => call(&args, tool, call_args).await,
        }
    })
}
