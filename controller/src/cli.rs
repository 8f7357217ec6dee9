//! The command line: `controller start | cleanup | report`, every flag with an
//! `MCP_SWARM_*` env var, parsed into the `settings` types. Values stay
//! optional here so that `config` can merge flags and env over a `--config`
//! TOML file over the defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::settings::agents::OnAgentLoss;
use crate::settings::log::LogFormat;
use crate::settings::login::LoginMethod;
use crate::settings::mcp::{ElicitationArg, McpVersionArg};
use crate::settings::provider::ProviderKind;

#[derive(Debug, Parser)]
#[command(
    name = "controller",
    version,
    about = "Distributed load tester for OAuth-protected MCP servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Provision users, log them in, run the workload on the agents, report.
    Start(Box<StartArgs>),
    /// Delete test users left behind (`{prefix}_user_*`).
    Cleanup(CleanupArgs),
    /// Re-render the console report of a JSON report file (and HTML with --html).
    Report(ReportArgs),
    /// Find the highest open-model rate that meets every --threshold: one setup, then
    /// steps of rising rate (then bisected), each measured after a settle time.
    Capacity(Box<CapacityArgs>),
    /// Compare two JSON reports from their histograms (or a report with the last passing run
    /// of its kind in the run history); exit 3 on a regression.
    Compare(CompareArgs),
    /// List the runs recorded in the run history, newest first.
    History(HistoryArgs),
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    common::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// Logging flags shared by every subcommand.
#[derive(Debug, Clone, Args, Default)]
pub struct LogArgs {
    /// Debug logging.
    #[arg(short, long, env = "MCP_SWARM_VERBOSE", global = true)]
    pub verbose: bool,
    /// Log line format on stderr.
    #[arg(long, value_enum, env = "MCP_SWARM_LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Args, Default)]
pub struct StartArgs {
    /// TOML file with any of these flags as keys (`users = 10`, `duration = "1m"`).
    #[arg(long, env = "MCP_SWARM_CONFIG")]
    pub config: Option<PathBuf>,
    /// Number of test users [default: 2 per agent].
    #[arg(short, long, env = "MCP_SWARM_USERS")]
    pub users: Option<u32>,
    /// Measured duration (500ms, 30s, 5m; a bare number is seconds) [default: 30s].
    #[arg(short, long, env = "MCP_SWARM_DURATION", value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Warmup before measuring, excluded from the report [default: 5s].
    #[arg(short, long, env = "MCP_SWARM_WARMUP", value_parser = duration_arg)]
    pub warmup: Option<Duration>,
    /// MCP endpoint of an external target; without it an embedded mock target runs in-process.
    #[arg(long, env = "MCP_SWARM_URL")]
    pub url: Option<url::Url>,
    /// Write the JSON report here.
    #[arg(short, long, env = "MCP_SWARM_OUTPUT")]
    pub output: Option<PathBuf>,
    /// Write the HTML report (one self-contained file) here.
    #[arg(long, env = "MCP_SWARM_HTML")]
    pub html: Option<PathBuf>,
    /// Most users the JSON report lists one by one; a run with more writes every user to
    /// REPORT.users.csv beside it and lists the slowest and most failing [default: 10000].
    #[arg(long, env = "MCP_SWARM_REPORT_USERS_INLINE")]
    pub report_users_inline: Option<usize>,
    /// Write the thresholds as JUnit XML test cases here.
    #[arg(long, env = "MCP_SWARM_JUNIT")]
    pub junit: Option<PathBuf>,
    /// Workload: mixed, sharing, collaboration, baseline, or one of --scenario [default: mixed].
    #[arg(long, env = "MCP_SWARM_WORKLOAD")]
    pub workload: Option<String>,
    /// Prefix of the test user names (`{prefix}_user_{n}`) [default: loadtest].
    #[arg(long, env = "MCP_SWARM_USER_PREFIX")]
    pub user_prefix: Option<String>,
    /// Delete the created users at the end (default).
    #[arg(long, env = "MCP_SWARM_CLEANUP", num_args = 0..=1, default_missing_value = "true",
          overrides_with = "no_cleanup")]
    pub cleanup: Option<bool>,
    /// Keep the created users.
    #[arg(long, env = "MCP_SWARM_NO_CLEANUP", overrides_with = "cleanup")]
    pub no_cleanup: bool,
    /// Number of agents [default: 1].
    #[arg(long, env = "MCP_SWARM_AGENTS")]
    pub agents: Option<u32>,
    /// Wait for --agents agents started elsewhere instead of spawning them.
    #[arg(long, env = "MCP_SWARM_NO_SPAWN")]
    pub no_spawn: bool,
    /// gRPC address agents dial [default: 127.0.0.1:0 when spawning, 0.0.0.0:7000 with --no-spawn].
    #[arg(long, env = "MCP_SWARM_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// Serve /health (200 once agents can attach), /metrics (Prometheus) and
    /// /api/v1/status (JSON) on this address, e.g. 0.0.0.0:9090.
    #[arg(long, env = "MCP_SWARM_HTTP")]
    pub http: Option<std::net::SocketAddr>,
    /// After the run, keep serving --http this long (phase `done`, the final figures), so a
    /// Prometheus scraping every few seconds gets the last of them [default: 0s].
    #[arg(long, env = "MCP_SWARM_HTTP_LINGER", value_parser = duration_arg)]
    pub http_linger: Option<Duration>,
    /// Let `POST /api/v1/control` (and the dashboard's controls) change the active users or the
    /// rate, or stop the run; requests must bear the secret in MCP_SWARM_HTTP_CONTROL_TOKEN.
    #[arg(long, requires = "http")]
    pub http_control: bool,
    /// A separate agent executable to spawn [default: this executable, run as `controller agent`].
    #[arg(long, env = "MCP_SWARM_AGENT_BIN")]
    pub agent_bin: Option<PathBuf>,
    /// Regions of the spawned agents, `eu,us`: agent i is in entry i mod the
    /// list's length (each 1–32 of A-Z a-z 0-9 _ -); the report breaks
    /// latency and throughput down per region. Agents started elsewhere take
    /// `agent --region` (MCP_SWARM_AGENT_REGION).
    #[arg(long, env = "MCP_SWARM_AGENT_REGIONS")]
    pub agent_regions: Option<String>,
    /// How long to wait for agents to register and become ready [default: 120s].
    #[arg(long, env = "MCP_SWARM_AGENT_TIMEOUT", value_parser = duration_arg)]
    pub agent_timeout: Option<Duration>,
    /// Scenario YAML file whose workflows and workloads replace the built-in ones.
    #[arg(long, env = "MCP_SWARM_SCENARIO")]
    pub scenario: Option<PathBuf>,
    /// Pause between workflows of a user in the closed model [default: 0s].
    #[arg(long, env = "MCP_SWARM_THINK_TIME", value_parser = duration_arg)]
    pub think_time: Option<Duration>,
    /// Open model: workflow starts per second across the cluster.
    #[arg(long, env = "MCP_SWARM_RATE")]
    pub rate: Option<f64>,
    /// Open model: workflows in flight at most across the cluster, split over the agents like the rate; a start beyond it is dropped and counted (dropped_starts), never queued [default: 4096 per agent].
    #[arg(long, env = "MCP_SWARM_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<u64>,
    /// Ramps instead of --duration: DURATION:USERS stages (closed model, active users)
    /// or DURATION:RATE/s (open model), each ramping linearly to its target:
    /// 30s:10,60s:50,30s:0 or 10s:5/s,30s:20/s.
    #[arg(long, env = "MCP_SWARM_STAGES")]
    pub stages: Option<String>,
    /// Spread the users over N tenants (Nextcloud groups `{prefix}_tenant_{n}`) and report
    /// per-tenant statistics and a fairness figure.
    #[arg(long, env = "MCP_SWARM_TENANTS")]
    pub tenants: Option<u32>,
    /// Pass/fail criterion (repeatable): 'note_share.p95<500ms', 'error_rate<1%'.
    #[arg(long = "threshold", env = "MCP_SWARM_THRESHOLD", value_delimiter = ',')]
    pub thresholds: Vec<String>,
    /// How users get tokens [default: direct].
    #[arg(long, value_enum, env = "MCP_SWARM_LOGIN")]
    pub login: Option<LoginMethod>,
    /// Where users come from [default: embedded without --url, nextcloud with it].
    #[arg(long, value_enum, env = "MCP_SWARM_PROVIDER")]
    pub provider: Option<ProviderKind>,
    /// Nextcloud base URL for --provider nextcloud (admin from NEXTCLOUD_ADMIN_USER/PASSWORD).
    #[arg(long, env = "MCP_SWARM_NEXTCLOUD_URL")]
    pub nextcloud_url: Option<url::Url>,
    /// CSV of username,password for --provider static.
    #[arg(long, env = "MCP_SWARM_USERS_FILE")]
    pub users_file: Option<PathBuf>,
    /// Directory of the user journal and the run history [default: .mcp-swarm].
    #[arg(long, env = "MCP_SWARM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Record the finished run in this SQLite run history [default: STATE_DIR/history.sqlite3].
    #[arg(long, env = "MCP_SWARM_HISTORY")]
    pub history: Option<PathBuf>,
    /// Do not record the run in the run history.
    #[arg(
        long,
        env = "MCP_SWARM_NO_HISTORY",
        conflicts_with = "history",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_history: bool,
    /// OAuth client id instead of dynamic client registration (secret from MCP_SWARM_CLIENT_SECRET).
    #[arg(long, env = "MCP_SWARM_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Client ID Metadata Document URL to use as the OAuth client id (https, with a path;
    /// the authorization server fetches it) instead of dynamic client registration.
    #[arg(long, env = "MCP_SWARM_CLIENT_METADATA_URL")]
    pub client_metadata_url: Option<url::Url>,
    /// OAuth scopes to request, space-separated [default: openid and what the workload's tools need when they are Nextcloud tools, else the resource's scopes_supported].
    #[arg(long, visible_alias = "scopes", env = "MCP_SWARM_SCOPE")]
    pub scope: Option<String>,
    /// Most logins (and user creations) at once [default: 32].
    #[arg(long, env = "MCP_SWARM_LOGIN_CONCURRENCY")]
    pub login_concurrency: Option<u32>,
    /// Name of the login form's user field [default: user].
    #[arg(long, env = "MCP_SWARM_LOGIN_USER_FIELD")]
    pub login_user_field: Option<String>,
    /// Name of the login form's password field [default: password].
    #[arg(long, env = "MCP_SWARM_LOGIN_PASSWORD_FIELD")]
    pub login_password_field: Option<String>,
    /// Chromium executable for --login browser [default: /usr/bin/chromium].
    #[arg(long, env = "MCP_SWARM_BROWSER")]
    pub browser: Option<PathBuf>,
    /// Show the browser window during --login browser.
    #[arg(long, env = "MCP_SWARM_HEADED")]
    pub headed: bool,
    /// CSS selector of the login page's user field [default: input[name=USER_FIELD]].
    #[arg(long, env = "MCP_SWARM_LOGIN_USER_SELECTOR")]
    pub login_user_selector: Option<String>,
    /// CSS selector of the login page's password field [default: input[name=PASSWORD_FIELD]].
    #[arg(long, env = "MCP_SWARM_LOGIN_PASSWORD_SELECTOR")]
    pub login_password_selector: Option<String>,
    /// CSS selector of the login page's submit button [default: button[type=submit]].
    #[arg(long, env = "MCP_SWARM_LOGIN_SUBMIT_SELECTOR")]
    pub login_submit_selector: Option<String>,
    /// CSS selector of the consent button [default: a button labelled Allow, Authorize, Grant or Accept].
    #[arg(long, env = "MCP_SWARM_LOGIN_CONSENT_SELECTOR")]
    pub login_consent_selector: Option<String>,
    /// Longest one browser login may take [default: 60s].
    #[arg(long, env = "MCP_SWARM_LOGIN_TIMEOUT", value_parser = duration_arg)]
    pub login_timeout: Option<Duration>,
    /// Where --login browser catches the OAuth redirect; fix the port when the client's
    /// redirect URI (http://ADDR/callback) is registered in advance [default: 127.0.0.1:0].
    #[arg(long, env = "MCP_SWARM_CALLBACK_LISTEN")]
    pub callback_listen: Option<std::net::SocketAddr>,
    /// JSON file of pre-acquired tokens per user for --login tokens-file.
    #[arg(long, env = "MCP_SWARM_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Keep the OAuth client and the users' tokens in --state-dir, sealed under the key in
    /// MCP_SWARM_TOKEN_CACHE_KEY, and reuse or refresh them on the next run of the same users
    /// and target instead of logging them in again.
    #[arg(long)]
    pub token_cache: bool,
    /// PEM certificate (chain) the gRPC listener presents: agents then dial https://.
    #[arg(long, env = "MCP_SWARM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "MCP_SWARM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) agents' client certificates must be signed by (mTLS; needs --tls-cert).
    #[arg(long, env = "MCP_SWARM_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Timeout of one MCP request on the agents [default: 30s].
    #[arg(long, env = "MCP_SWARM_REQUEST_TIMEOUT", value_parser = duration_arg)]
    pub request_timeout: Option<Duration>,
    /// MCP protocol version the agents speak [default: auto].
    #[arg(long, value_enum, env = "MCP_SWARM_MCP_VERSION")]
    pub mcp_version: Option<McpVersionArg>,
    /// How agents answer a server's elicitation/create (a server asking its user for input mid-call) [default: decline]; ping, sampling and roots requests get what a client without those capabilities answers.
    #[arg(long, value_enum, env = "MCP_SWARM_ELICITATION")]
    pub elicitation: Option<ElicitationArg>,
    /// What to do when an agent is lost mid-run: move its users to the other agents, stop the run (exit 1), or go on without them [default: reassign].
    #[arg(long, env = "MCP_SWARM_ON_AGENT_LOSS", value_enum)]
    pub on_agent_loss: Option<OnAgentLoss>,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    /// Prefix of the users to delete (`{prefix}_user_*`) [default: loadtest].
    #[arg(long, env = "MCP_SWARM_USER_PREFIX")]
    pub prefix: Option<String>,
    /// Only list what would be deleted.
    #[arg(long, env = "MCP_SWARM_DRY_RUN")]
    pub dry_run: bool,
    /// Where users live [default: nextcloud].
    #[arg(long, value_enum, env = "MCP_SWARM_PROVIDER")]
    pub provider: Option<ProviderKind>,
    /// Nextcloud base URL (admin from NEXTCLOUD_ADMIN_USER/PASSWORD).
    #[arg(long, env = "MCP_SWARM_NEXTCLOUD_URL")]
    pub nextcloud_url: Option<url::Url>,
    /// Directory of the user journal [default: .mcp-swarm].
    #[arg(long, env = "MCP_SWARM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CapacityArgs {
    /// Rate of the first step, workflow starts per second across the cluster [default: 5].
    #[arg(long, env = "MCP_SWARM_START_RATE")]
    pub start_rate: Option<f64>,
    /// Highest rate to try [default: 1000].
    #[arg(long, env = "MCP_SWARM_MAX_RATE")]
    pub max_rate: Option<f64>,
    /// Length of each step, whole seconds [default: 30s].
    #[arg(long, env = "MCP_SWARM_STEP_DURATION", value_parser = duration_arg)]
    pub step_duration: Option<Duration>,
    /// First part of each step that is not measured, whole seconds [default: a fifth of the step].
    #[arg(long, env = "MCP_SWARM_SETTLE", value_parser = duration_arg)]
    pub settle: Option<Duration>,
    /// Most steps of the search [default: 12].
    #[arg(long, env = "MCP_SWARM_MAX_STEPS")]
    pub max_steps: Option<u32>,
    #[command(flatten)]
    pub start: StartArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A JSON report written by `controller start -o`.
    pub file: PathBuf,
    /// Also write the HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Where a run history is: `--history FILE`, else STATE_DIR/history.sqlite3.
#[derive(Debug, Clone, Args, Default)]
pub struct HistoryFile {
    /// The state directory whose history.sqlite3 to read [default: .mcp-swarm].
    #[arg(long, env = "MCP_SWARM_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// The run history file itself.
    #[arg(long, env = "MCP_SWARM_HISTORY", conflicts_with = "state_dir")]
    pub history: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Most runs to list.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub file: HistoryFile,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Which run to compare with, besides a report file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// The newest run of the same kind (target, workload, load model) that met its thresholds.
    LastPassing,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// BASE NEW: the reference run's JSON report and the run to judge against it; with
    /// --baseline, only NEW.
    #[arg(num_args = 1..=2, required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// Take the base from the run history instead of a file.
    #[arg(long, value_enum)]
    pub baseline: Option<Baseline>,
    #[command(flatten)]
    pub file: HistoryFile,
    /// How much worse a figure may get before it is a regression: p50/p95/p99
    /// and throughput relative to the base (and a latency by at least 1 ms),
    /// the error rate by this share of the base and at least 1 point.
    #[arg(long, default_value = "10%", value_parser = percent_arg)]
    pub tolerance: f64,
    /// Write each compared figure as a JUnit XML test case here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub log: LogArgs,
}

/// `10%`, `10` or `0.5%` as a fraction (0.1, 0.1, 0.005).
fn percent_arg(s: &str) -> Result<f64, String> {
    let number = s.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v / 100.0),
        _ => Err(format!("{s:?} is not a percentage: write it as `10%`")),
    }
}

impl Command {
    pub fn log_args(&self) -> &LogArgs {
        match self {
            Command::Start(a) => &a.log,
            Command::Cleanup(a) => &a.log,
            Command::Report(a) => &a.log,
            Command::Capacity(a) => &a.start.log,
            Command::Compare(a) => &a.log,
            Command::History(a) => &a.log,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_framework_flags() {
        let cli = Cli::try_parse_from([
            "controller",
            "start",
            "-u",
            "4",
            "-d",
            "300",
            "-w",
            "500ms",
            "--no-cleanup",
            "--threshold",
            "error_rate<1%",
            "--threshold",
            "note_share.p95<500ms",
        ])
        .unwrap();
        let Command::Start(a) = cli.command else {
            panic!("not start")
        };
        assert_eq!(a.users, Some(4));
        assert_eq!(a.duration, Some(Duration::from_secs(300)));
        assert_eq!(a.warmup, Some(Duration::from_millis(500)));
        assert!(a.no_cleanup);
        assert_eq!(a.thresholds.len(), 2);
    }

    #[test]
    fn bad_duration_names_the_flag() {
        let err = Cli::try_parse_from(["controller", "start", "-d", "3x"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--duration"), "{text}");
        assert!(text.contains("500ms"), "{text}");
    }
}
