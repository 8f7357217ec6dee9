//! The mcp-swarm agent: dials the controller, receives an assignment of
//! users, holds one MCP session per user, runs the assigned workflows under
//! the assigned load model and streams measurements back (SPEC §4, §5).
//!
//! Code map: `link` (gRPC) and `convert` (proto ↔ `messages`) are the only
//! modules that see generated types; `prepare` turns an assignment into open
//! sessions; `runner` drives the load with `pacing`; `steps` executes one
//! workflow over `session`s; `recorder` collects series per task; `beat`
//! keeps the link and the heartbeats on a runtime of their own.

pub mod beat;
pub mod convert;
pub mod link;
pub mod messages;
pub mod pacing;
pub mod prepare;
pub mod recorder;
pub mod runner;
pub mod session;
pub mod steps;
pub mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use common::Secret;
use common::ids::UserName;
use common::scenario::Scenario;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::beat::LinkRuntime;
use crate::link::{Link, LinkConfig, LinkReceiver, LinkSender};
use crate::messages::{AgentEvent, ControllerEvent, LoadUpdate, RunSettings, StartPlan, unix_ms};
use crate::pacing::LoadState;
use crate::prepare::{Assignment, ChunkAssembler, OpenedSessions};
use crate::recorder::Recorder;
use crate::runner::{AddedLoad, GeneratorCounters, Run};
use crate::session::{McpCounters, SessionContext, UserToken};
use crate::tls::{ClientTls, TlsFiles};

/// Refresh requests queued towards the controller before new ones are dropped.
const REFRESH_QUEUE: usize = 1024;
/// How long to wait for the controller to close the stream after the final report.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Longest one TCP connect plus TLS handshake to the controller may take.
const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long background tasks get to finish at exit.
const TASKS_EXIT_TIMEOUT: Duration = Duration::from_secs(2);
/// When the run ends on an error (the controller silent or gone), how long
/// the stopped load gets to unwind — workflows abandoned, counted
/// interrupted — before the agent exits anyway.
const STOPPED_UNWIND: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Command line of `agent`; every flag can also come from `MCP_SWARM_AGENT_*`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "agent",
    version,
    about = "mcp-swarm load agent: holds MCP sessions for the users a controller assigns and runs their workflows",
    after_help = "The cluster secret comes from the MCP_SWARM_CLUSTER_SECRET environment variable."
)]
pub struct Cli {
    /// gRPC address of the controller, e.g. http://10.0.0.5:7000.
    #[arg(long, env = "MCP_SWARM_AGENT_CONTROLLER")]
    pub controller: String,
    /// Name shown in reports (default: host name and process id).
    #[arg(long, env = "MCP_SWARM_AGENT_NAME")]
    pub name: Option<String>,
    /// Most vusers this agent accepts; 0 = no limit.
    #[arg(long, env = "MCP_SWARM_AGENT_CAPACITY", default_value_t = 0)]
    pub capacity: u32,
    /// Where this agent runs (`eu`, `us-east`): 1–32 of A-Z a-z 0-9 _ -. The
    /// report breaks latency and throughput down by region [default: default].
    #[arg(long, env = "MCP_SWARM_AGENT_REGION")]
    pub region: Option<common::region::Region>,
    #[arg(long, env = "MCP_SWARM_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How long to keep trying to reach the controller (500ms, 30s, 5m; a bare number is seconds).
    #[arg(long, env = "MCP_SWARM_AGENT_CONNECT_TIMEOUT", default_value = "30s", value_parser = common::duration::parse_duration)]
    pub connect_timeout: Duration,
    /// Compress messages to the controller with gzip (the controller must accept gzip).
    #[arg(long, env = "MCP_SWARM_AGENT_GRPC_GZIP")]
    pub grpc_gzip: bool,
    /// Serve /health (200 once registered with the controller) and /metrics
    /// (Prometheus) on this address, e.g. 0.0.0.0:9090.
    #[arg(long, env = "MCP_SWARM_AGENT_HTTP")]
    pub http: Option<std::net::SocketAddr>,
    /// PEM CA certificate(s) that signed the controller's --tls-cert (or that certificate
    /// itself); needed to dial an https:// controller.
    #[arg(long, env = "MCP_SWARM_AGENT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for a controller with --tls-client-ca (mTLS).
    #[arg(long, env = "MCP_SWARM_AGENT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "MCP_SWARM_AGENT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name to check the controller's certificate against [default: the host of --controller].
    #[arg(long, env = "MCP_SWARM_AGENT_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// Fault injection for tests: hold the final report this long after the
    /// run ends, heartbeats going on — how a large report on a saturated
    /// host looks to the controller.
    #[arg(long, hide = true, value_parser = common::duration::parse_duration)]
    pub fault_final_report_delay: Option<Duration>,
}

/// Everything `run` needs.
#[derive(Clone, Debug)]
pub struct Config {
    pub controller: String,
    pub name: String,
    pub capacity: u32,
    /// `--region`; `None` is the default region.
    pub region: Option<common::region::Region>,
    pub connect_timeout: Duration,
    pub cluster_secret: Secret,
    pub grpc_gzip: bool,
    pub http: Option<std::net::SocketAddr>,
    pub tls: TlsFiles,
    /// `--fault-final-report-delay` (tests only).
    pub fault_final_report_delay: Option<Duration>,
}

impl Config {
    pub fn from_cli(cli: Cli, cluster_secret: Secret) -> Config {
        Config {
            controller: cli.controller,
            name: cli.name.unwrap_or_else(default_name),
            capacity: cli.capacity,
            region: cli.region,
            connect_timeout: cli.connect_timeout,
            cluster_secret,
            grpc_gzip: cli.grpc_gzip,
            http: cli.http,
            tls: TlsFiles {
                ca: cli.tls_ca,
                cert: cli.tls_cert,
                key: cli.tls_key,
                server_name: cli.tls_server_name,
            },
            fault_final_report_delay: cli.fault_final_report_delay,
        }
    }
}

/// The cluster secret from `MCP_SWARM_CLUSTER_SECRET`.
pub fn secret_from_env() -> anyhow::Result<Secret> {
    match std::env::var(common::CLUSTER_SECRET_ENV) {
        Ok(s) if !s.is_empty() => Ok(Secret::new(s)),
        _ => anyhow::bail!(
            "{} is not set: export the cluster secret the controller uses (it is never taken from the command line)",
            common::CLUSTER_SECRET_ENV
        ),
    }
}

fn default_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agent".to_owned());
    format!("{host}-{}", std::process::id())
}

pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // `try_init` fails only if a subscriber is already set (tests); keep that one.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// An assignment with its sessions open, waiting for `Start`.
struct Prepared {
    scenario: Arc<Scenario>,
    settings: RunSettings,
    sessions: OpenedSessions,
    /// Each user's activation rank (closed-model stages).
    ranks: Arc<HashMap<UserName, u32>>,
}

/// How the control loop ended.
enum Ending {
    /// The run finished (or was stopped); send the final report.
    Finished { interrupted: bool },
}

/// Runs the agent until its run is over, `Stop` arrives, or `shutdown` is
/// cancelled. Errors: unreachable or refusing controller, a broken stream,
/// an unusable assignment.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let link_config = LinkConfig {
        controller: config.controller.clone(),
        agent_name: config.name.clone(),
        capacity: config.capacity,
        region: config.region.clone(),
        connect_timeout: config.connect_timeout,
        secret: config.cluster_secret.clone(),
        scenario_digest: Scenario::builtin().digest().to_owned(),
        gzip: config.grpc_gzip,
        tls: ClientTls::for_controller(
            &config.controller,
            &config.tls,
            config.connect_timeout.min(CONNECT_ATTEMPT_TIMEOUT),
        )?,
    };
    let live = observe::Live::new();
    live.update(|f| {
        f.started_at = Some(std::time::SystemTime::now());
        f.home_region = config
            .region
            .as_ref()
            .map_or(
                common::region::Region::DEFAULT,
                common::region::Region::as_str,
            )
            .to_owned();
    });
    if let Some(addr) = config.http {
        observe::serve(
            addr,
            live.clone(),
            observe::server::Role::Agent,
            shutdown.child_token(),
        )
        .await?;
    }
    // One token tree: `agent` ends the agent's tasks; `stop_run`, under it,
    // stops the load — cancelled by a `Stop`, a shutdown, or the link when
    // the controller goes silent or its stream breaks.
    let agent = shutdown.child_token();
    let stop_run = agent.child_token();
    // The connection's tasks live on the link runtime: it is created there.
    let link_runtime = LinkRuntime::start().context("could not start the link runtime")?;
    let stop_load = stop_run.clone();
    let connecting = link_runtime
        .handle()
        .spawn(async move { link::connect(&link_config, stop_load).await });
    let link = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        link = connecting => link.context("the link task failed")??,
    };
    let Link {
        agent_id,
        heartbeat_interval,
        sender,
        mut receiver,
        gone,
    } = link;
    tracing::info!(%agent_id, name = %config.name, controller = %config.controller, "registered with the controller");
    live.update(|f| {
        f.ready = true;
        f.phase = observe::Phase::Agents;
    });

    let tasks = TaskTracker::new();
    let generator = Arc::new(GeneratorCounters::default());
    let counters = Arc::new(McpCounters::default());
    let recorder = Recorder::new();
    tasks.spawn_on(
        beat::heartbeats(
            sender.clone(),
            heartbeat_interval,
            generator.clone(),
            agent.clone(),
        ),
        &link_runtime.handle(),
    );
    let (refresh_tx, refresh_rx) = mpsc::channel(REFRESH_QUEUE);
    tasks.spawn(forward_refreshes(refresh_rx, sender.clone(), agent.clone()));

    let mut machine = Machine {
        config: &config,
        sender: sender.clone(),
        refresh_tx,
        counters: counters.clone(),
        recorder: recorder.clone(),
        generator: generator.clone(),
        assembler: ChunkAssembler::default(),
        added_assembler: ChunkAssembler::default(),
        tokens: HashMap::new(),
        session_ctx: None,
        preparing: None,
        prepared: None,
        pending_start: None,
        running: None,
        load: None,
        adding: JoinSet::new(),
        added_tx: None,
        stop_run: stop_run.clone(),
        live: live.clone(),
    };
    let ended = machine.control_loop(&mut receiver, &shutdown).await;
    machine.adding.abort_all();
    if let Some(preparing) = machine.preparing.take() {
        preparing.abort();
    }
    let prepared = machine.prepared.take();
    let running = machine.running.take();
    drop(machine);
    // The silence stops the load on the link runtime, so the run may end
    // before the control loop hears why: the link's error wins.
    let ended = match ended {
        Ok(_) if gone.is_cancelled() => Err(receiver.why_gone().await),
        other => other,
    };

    let result = match ended {
        Ok(Ending::Finished { interrupted }) => {
            if let Some(delay) = config.fault_final_report_delay {
                tracing::warn!(?delay, "fault injection: holding the final report");
                tokio::time::sleep(delay).await;
            }
            let final_report = AgentEvent::Final {
                series: recorder.take_cumulative(),
                generator: generator.snapshot(),
                mcp: counters.snapshot(),
                interrupted,
                failures: recorder.take_failures(),
            };
            let sent = sender.send(final_report).await;
            if sent.is_ok() {
                tracing::info!(interrupted, "final report sent");
            }
            live.update(|f| f.phase = observe::Phase::Done);
            sent.context("could not send the final report")
        }
        Err(e) => {
            stop_run.cancel();
            // What was measured stays in the recorder and the live view;
            // abandoned workflows are counted interrupted as they unwind.
            if let Some(running) = running
                && tokio::time::timeout(STOPPED_UNWIND, running).await.is_err()
            {
                tracing::warn!(
                    "the stopped load did not unwind within {STOPPED_UNWIND:?}; exiting anyway"
                );
            }
            Err(e)
        }
    };

    if let Some(prepared) = prepared {
        close_sessions(prepared.sessions).await;
    }
    agent.cancel();
    tasks.close();
    let _ = tokio::time::timeout(TASKS_EXIT_TIMEOUT, tasks.wait()).await;
    drop(sender);
    if result.is_ok() {
        // Our half is closed; give the controller a moment to take the final report and hang up.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Ok(Some(_)) = receiver.next().await {}
        })
        .await;
    }
    drop(receiver);
    drop(link_runtime);
    result
}

/// The agent's state between controller messages.
struct Machine<'c> {
    config: &'c Config,
    sender: LinkSender,
    refresh_tx: mpsc::Sender<UserName>,
    counters: Arc<McpCounters>,
    recorder: Arc<Recorder>,
    generator: Arc<GeneratorCounters>,
    assembler: ChunkAssembler,
    /// Chunks of groups moved here from a lost agent.
    added_assembler: ChunkAssembler,
    tokens: HashMap<UserName, Arc<UserToken>>,
    /// What every session of this agent shares (set with the assignment).
    session_ctx: Option<Arc<SessionContext>>,
    preparing: Option<JoinHandle<anyhow::Result<Prepared>>>,
    prepared: Option<Prepared>,
    /// A `Start` that arrived while sessions were still opening.
    pending_start: Option<StartPlan>,
    running: Option<JoinHandle<bool>>,
    /// While running: the load the run follows, and the start (unix ms).
    load: Option<(watch::Sender<LoadState>, i64)>,
    /// Sessions opening for moved groups.
    adding: JoinSet<Added>,
    /// Hands opened moved groups to the running load.
    added_tx: Option<mpsc::UnboundedSender<AddedLoad>>,
    stop_run: CancellationToken,
    live: observe::Live,
}

/// Moved groups whose sessions are open.
struct Added {
    id: String,
    settings: RunSettings,
    sessions: OpenedSessions,
    /// Each moved user's activation rank (closed-model stages).
    ranks: HashMap<UserName, u32>,
}

/// Awaits an optional task; pending forever when there is none.
async fn join_opt<T>(handle: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match handle {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

impl Machine<'_> {
    async fn control_loop(
        &mut self,
        receiver: &mut LinkReceiver,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Ending> {
        let mut shutting_down = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled(), if !shutting_down => {
                    tracing::info!("shutdown requested");
                    shutting_down = true;
                    if self.running.is_none() {
                        return Ok(Ending::Finished { interrupted: true });
                    }
                    self.stop_run.cancel();
                }
                event = receiver.next() => match event? {
                    None => anyhow::bail!("the controller closed the stream before the run ended"),
                    Some(event) => {
                        if let Some(ending) = self.handle(event).await? {
                            return Ok(ending);
                        }
                    }
                },
                prepared = join_opt(&mut self.preparing) => {
                    self.preparing = None;
                    let prepared = match prepared.context("session setup panicked")? {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = self.sender.send(AgentEvent::Failure { message: format!("{e:#}") }).await;
                            return Err(e);
                        }
                    };
                    self.prepared = Some(prepared);
                    if let Some(plan) = self.pending_start.take() {
                        self.start(plan);
                    }
                }
                Some(added) = self.adding.join_next() => {
                    match added {
                        Ok(added) => self.run_added(added).await?,
                        Err(e) => tracing::warn!(error = %e, "opening moved groups failed"),
                    }
                }
                interrupted = join_opt(&mut self.running) => {
                    self.running = None;
                    let interrupted = interrupted.context("the run panicked")?;
                    return Ok(Ending::Finished { interrupted });
                }
            }
        }
    }

    async fn handle(&mut self, event: ControllerEvent) -> anyhow::Result<Option<Ending>> {
        match event {
            ControllerEvent::Assignment(chunk) => {
                if self.preparing.is_some() || self.prepared.is_some() {
                    tracing::warn!(assignment = %chunk.id, "ignoring an assignment: this agent already has one");
                    return Ok(None);
                }
                if let Some(assignment) = self.assembler.add(chunk)? {
                    self.prepare(assignment)?;
                }
            }
            ControllerEvent::AddGroups(chunk) => {
                if self.running.is_none() {
                    tracing::warn!(assignment = %chunk.id, "ignoring moved groups: this agent is not running");
                    return Ok(None);
                }
                if let Some(added) = self.added_assembler.add(chunk)? {
                    self.add_groups(added)?;
                }
            }
            ControllerEvent::Start(plan) => {
                if self.running.is_some() {
                    tracing::warn!("ignoring a second Start");
                } else if self.prepared.is_some() {
                    self.start(plan);
                } else if self.preparing.is_some() {
                    self.pending_start = Some(plan);
                } else {
                    anyhow::bail!("the controller sent Start before any assignment");
                }
            }
            ControllerEvent::TokenUpdate { user, token } => match self.tokens.get(&user) {
                Some(t) => {
                    tracing::debug!(%user, "token updated");
                    t.set(token);
                    self.live.update(|f| f.token_refreshes += 1);
                }
                None => tracing::warn!(%user, "token update for a user this agent does not hold"),
            },
            ControllerEvent::LoadUpdate(update) => self.update_load(&update),
            ControllerEvent::Stop { reason } => {
                tracing::info!(%reason, "the controller stopped the run");
                if self.running.is_none() {
                    return Ok(Some(Ending::Finished { interrupted: true }));
                }
                self.stop_run.cancel();
            }
        }
        Ok(None)
    }

    /// Checks the assignment and opens its sessions in the background; sends `Ready` when done.
    fn prepare(&mut self, assignment: Assignment) -> anyhow::Result<()> {
        self.tokens = assignment.tokens();
        let ranks = Arc::new(assignment.ranks());
        let Assignment {
            id,
            settings,
            groups,
        } = assignment;
        let n_users: usize = groups.iter().map(Vec::len).sum();
        if self.config.capacity > 0 && n_users > self.config.capacity as usize {
            tracing::warn!(
                n_users,
                capacity = self.config.capacity,
                "assignment exceeds this agent's capacity"
            );
        }
        let scenario = Arc::new(prepare::load_scenario(&settings)?);
        let headers = prepare::headers(&settings)?;
        let ctx = Arc::new(SessionContext {
            http: session::http_client().context("could not build the HTTP client")?,
            mcp_url: settings.mcp_url.clone(),
            headers,
            counters: self.counters.clone(),
            refresh: self.refresh_tx.clone(),
            version: settings.mcp_version,
            elicitation: settings.elicitation,
        });
        self.session_ctx = Some(ctx.clone());
        let tokens = self.tokens.clone();
        let recorder = self.recorder.clone();
        let sender = self.sender.clone();
        tracing::info!(assignment = %id, n_users, groups = groups.len(), mcp_url = %settings.mcp_url, "opening MCP sessions");
        self.preparing = Some(tokio::spawn(async move {
            let timeout = prepare::request_timeout(&settings);
            let sessions = prepare::open_sessions(&ctx, &groups, &tokens, timeout, &recorder).await;
            tracing::info!(
                open = sessions.open_count(),
                failed = sessions.failed,
                "MCP sessions ready"
            );
            sender
                .send(AgentEvent::Ready {
                    assignment_id: id,
                    sessions_open: sessions.open_count(),
                    sessions_failed: sessions.failed,
                    failure_samples: sessions.failure_samples.clone(),
                })
                .await
                .context("could not send Ready")?;
            Ok(Prepared {
                scenario,
                settings,
                sessions,
                ranks,
            })
        }));
        Ok(())
    }

    /// Opens sessions for groups moved here from a lost agent, in the
    /// background; `run_added` hands them to the load.
    fn add_groups(&mut self, added: Assignment) -> anyhow::Result<()> {
        let ctx = self
            .session_ctx
            .clone()
            .context("moved groups arrived before this agent's own assignment")?;
        let tokens = added.tokens();
        self.tokens
            .extend(tokens.iter().map(|(u, t)| (u.clone(), t.clone())));
        let ranks = added.ranks();
        let Assignment {
            id,
            settings,
            groups,
        } = added;
        let n_users: usize = groups.iter().map(Vec::len).sum();
        tracing::info!(assignment = %id, n_users, groups = groups.len(), "opening MCP sessions for users moved from a lost agent");
        let recorder = self.recorder.clone();
        self.adding.spawn(async move {
            let timeout = prepare::request_timeout(&settings);
            let sessions = prepare::open_sessions(&ctx, &groups, &tokens, timeout, &recorder).await;
            Added {
                id,
                settings,
                sessions,
                ranks,
            }
        });
        Ok(())
    }

    /// Starts moved groups whose sessions are open and tells the controller.
    async fn run_added(&mut self, added: Added) -> anyhow::Result<()> {
        let Added {
            id,
            settings,
            sessions,
            ranks,
        } = added;
        let started_at_ms = unix_ms();
        // Open model: the lost agent's share of the rate moves with its users.
        if let Some((load, _)) = &self.load
            && settings.rate_share > 0.0
        {
            load.send_modify(|s| s.add_rate_share(settings.rate_share));
        }
        if let Some(tx) = &self.added_tx {
            let _ = tx.send(AddedLoad {
                groups: sessions.groups.clone(),
                ranks,
            });
        }
        tracing::info!(assignment = %id, open = sessions.open_count(), failed = sessions.failed, "moved users running");
        self.sender
            .send(AgentEvent::GroupsAdded {
                assignment_id: id,
                sessions_open: sessions.open_count(),
                sessions_failed: sessions.failed,
                failure_samples: sessions.failure_samples.clone(),
                started_at_ms,
            })
            .await
            .context("could not tell the controller the moved users run")?;
        if let Some(prepared) = &mut self.prepared {
            // Closed with the others at the end.
            prepared.sessions.groups.extend(sessions.groups);
        }
        Ok(())
    }

    fn start(&mut self, plan: StartPlan) {
        let Some(prepared) = &self.prepared else {
            return;
        };
        let state = LoadState::new(
            prepared.settings.load,
            &prepared.settings.stages,
            prepared.settings.rate_share,
            plan.warmup + plan.duration,
        );
        let (load_tx, load_rx) = watch::channel(state);
        self.load = Some((load_tx, plan.start_at_ms));
        let (added_tx, added) = mpsc::unbounded_channel();
        self.added_tx = Some(added_tx);
        let run = Run {
            scenario: prepared.scenario.clone(),
            mix: prepared.settings.mix.clone(),
            load: prepared.settings.load,
            request_timeout: prepare::request_timeout(&prepared.settings),
            max_in_flight: prepared.settings.max_in_flight,
            groups: prepared.sessions.groups.clone(),
            plan,
            recorder: self.recorder.clone(),
            generator: self.generator.clone(),
            live: self.live.clone(),
            load_state: load_rx,
            ranks: prepared.ranks.clone(),
            added,
        };
        self.running = Some(tokio::spawn(runner::run(
            run,
            self.sender.clone(),
            self.stop_run.clone(),
        )));
    }
}

impl Machine<'_> {
    /// Applies a load update to the running run; its times become offsets
    /// from the start, never in the past.
    fn update_load(&mut self, update: &LoadUpdate) {
        let Some((load, start_at_ms)) = &self.load else {
            tracing::warn!("ignoring a load update: no run is going");
            return;
        };
        let offset = |ms: i64| {
            Duration::from_millis(u64::try_from(ms.saturating_sub(*start_at_ms)).unwrap_or(0))
        };
        let at = offset(update.at_ms.max(unix_ms()));
        let end = update.end_at_ms.map(offset);
        tracing::info!(at = ?at, stages = update.stages.len(), end = ?end, "load update");
        load.send_modify(|s| s.apply(at, &update.stages, end));
    }
}

async fn close_sessions(sessions: OpenedSessions) {
    let all: Vec<_> = sessions.groups.into_iter().flatten().collect();
    let closing = all
        .into_iter()
        .filter_map(|s| Arc::try_unwrap(s).ok())
        .map(|s| s.close());
    futures::future::join_all(closing).await;
}

async fn forward_refreshes(
    mut rx: mpsc::Receiver<UserName>,
    sender: LinkSender,
    done: CancellationToken,
) {
    loop {
        let user = tokio::select! {
            _ = done.cancelled() => return,
            user = rx.recv() => match user {
                Some(u) => u,
                None => return,
            },
        };
        tracing::debug!(%user, "asking the controller for a fresh token");
        if sender
            .send(AgentEvent::RefreshRequest { user })
            .await
            .is_err()
        {
            return;
        }
    }
}
