//! `controller start`: check everything, start the target and the gRPC
//! service, create and log in users while agents register, plan, assign,
//! start, collect, report, and clean up whatever happened.

pub mod agents;
pub mod aggregate;
mod assign;
pub mod capacity;
pub mod control;
mod frame;
pub mod liveness;
mod prepare;
pub mod progress;
pub mod reassign;
pub mod regions;
pub mod session;
mod standin;
pub mod status;
pub mod steer;
mod timeline;
pub mod users;

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use common::ids::UserName;
use common::scenario::Scenario;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::login::Authenticator;
use crate::login::cache::TokenCache;
use crate::provision::random_secret;
use crate::registry::Registry;
use crate::report::{self, AuthInput, ReportInput, RunInfo};
use crate::service::{self, SwarmService};
use crate::settings::RunConfig;
use crate::settings::agents::AgentsMode;
use crate::spawn::AgentProcesses;
use crate::target::Target;
use crate::tls::ServerTls;
use crate::tokens::{self, TokenKeeper};
use assign::assignments;
use frame::{login_method_text, report_frame, with_targets};
pub use prepare::{Prepared, prepare};
use session::Session;
use users::UserPool;

/// Exit code when a threshold failed.
pub const EXIT_THRESHOLD: u8 = 3;
/// Extra time after the run's end for final reports, on top of the request
/// timeout. An agent's own drain is strictly shorter: it waits the request
/// timeout for workflows in flight, abandons the rest with a 1 s grace
/// (`agent::runner`), then sends its final report; so in the normal case
/// every final report is under way before this passes and no `Stop` is
/// needed. Past it, only agents that have not begun their report are
/// stopped, and agents still heard from are waited for (`run::session`).
const DRAIN_MARGIN: Duration = Duration::from_secs(10);
/// How long spawned agents get to exit after the run.
/// Runs the HTML report's trend shows (this one included).
const TREND_RUNS: usize = 10;
const AGENT_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the gRPC server and tasks get to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a prepared run to its exit code.
pub async fn execute(prepared: Prepared, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    let tasks = TaskTracker::new();
    let run_token = shutdown.child_token();
    // The target outlives a Ctrl-C until users are deleted: its own token.
    let target_token = CancellationToken::new();
    let target = Target::start(&prepared.config.target, &target_token).await?;
    let result = with_target(&prepared, &target, &run_token, &tasks).await;
    target.stop().await;
    target_token.cancel();
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::debug!("some tasks were still running at exit");
    }
    result
}

async fn with_target(
    p: &Prepared,
    target: &Target,
    cancel: &CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<ExitCode> {
    let config = &p.config;
    let spawning = matches!(config.agents, AgentsMode::Spawn { .. });
    let tls = config
        .tls
        .as_ref()
        .map(|files| ServerTls::load(files, spawning))
        .transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on --listen {}", config.listen))?;
    let local = listener
        .local_addr()
        .context("the gRPC listener's address")?;
    tracing::info!("listening for agents on {scheme}://{local}");
    // Ready (for a container probe) once agents can attach.
    let live = observe::Live::new();
    live.update(|f| {
        f.started_at = Some(SystemTime::now());
        f.phase = observe::Phase::Agents;
        f.ready = true;
    });
    let http_token = CancellationToken::new();
    let (control, control_rx) = match &config.http_control {
        Some(secret) => {
            let (tx, rx) = tokio::sync::mpsc::channel(control::QUEUE);
            let control = observe::control::Control {
                secret: secret.clone(),
                requests: tx,
            };
            (Some(control), Some(rx))
        }
        None => (None, None),
    };
    if let Some(addr) = config.http {
        observe::serve_with_control(
            addr,
            live.clone(),
            observe::server::Role::Controller,
            http_token.clone(),
            control,
        )
        .await?;
    }

    let secret = match &config.agents {
        AgentsMode::Spawn { .. } => random_secret(48),
        AgentsMode::NoSpawn { cluster_secret } => cluster_secret.clone(),
    };
    let registry = Arc::new(Registry::new(config.n_agents as usize));
    // The service stamps arrivals on a runtime of its own (liveness), which
    // the ear watches, so a controller that could not hear blames no agent.
    let service_runtime =
        liveness::ServiceRuntime::start().context("could not start the gRPC runtime")?;
    let ear = liveness::Ear::new();
    ear.listen(&service_runtime.handle());
    let (watchdog, silent) = liveness::watch(registry.clone(), ear, liveness::AGENT_LOST_AFTER)
        .context("could not start the liveness watchdog")?;
    let listener = listener
        .into_std()
        .context("the gRPC listener for its own runtime")?;
    let (events_tx, events_rx) = mpsc::channel(1024);
    let server_token = CancellationToken::new();
    let service = SwarmService::new(
        registry.clone(),
        events_tx,
        Scenario::builtin().digest().to_owned(),
        p.scenario.series_keys(),
        tasks.clone(),
        server_token.clone(),
    );
    let serve_secret = secret.clone();
    let serve_token = server_token.clone();
    let serve_tls = tls.as_ref().map(|t| t.acceptor.clone());
    let server = tasks.spawn_on(
        async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            service::serve(listener, service, serve_secret, serve_tls, serve_token)
                .await
                .map_err(anyhow::Error::from)
        },
        &service_runtime.handle(),
    );

    let mut processes = match &config.agents {
        AgentsMode::Spawn { agent, regions } => {
            let url = format!("{scheme}://{}", service::dial_address(local));
            let trust = tls.as_ref().map_or(&[][..], |t| &t.spawned_agent_args[..]);
            Some(AgentProcesses::spawn(
                agent,
                config.n_agents,
                regions,
                &url,
                trust,
                &secret,
            )?)
        }
        AgentsMode::NoSpawn { .. } => None,
    };

    let mut pool = UserPool::new(config, target)?;
    let mut session = Session::new(
        events_rx,
        silent,
        registry,
        live.clone(),
        config.on_agent_loss,
    );
    session.control = control_rx;
    let result = drive(
        p,
        target,
        &mut pool,
        &mut session,
        processes.as_mut(),
        cancel,
        tasks,
    )
    .await;

    // Whatever happened: stop agents, delete users, stop the server.
    session.stop_all("run over").await;
    session.close();
    if config.cleanup {
        pool.cleanup(config.login.concurrency).await;
    } else if !pool.created.is_empty() {
        tracing::info!(
            n_users = pool.created.len(),
            "users kept (--no-cleanup); remove them with `controller cleanup --prefix {}`",
            config.user_prefix
        );
    }
    if let Some(p) = processes {
        p.finish(AGENT_EXIT_TIMEOUT).await;
    }
    live.update(|f| {
        f.phase = observe::Phase::Done;
        f.ready = false;
    });
    if config.http.is_some() && !config.http_linger.is_zero() {
        tracing::info!(linger = ?config.http_linger, "run over; still serving /metrics and /api/v1/status");
        tokio::select! {
            () = tokio::time::sleep(config.http_linger) => {}
            () = cancel.cancelled() => {}
        }
    }
    http_token.cancel();
    server_token.cancel();
    match tokio::time::timeout(SHUTDOWN_TIMEOUT, server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "gRPC server error"),
        Err(_) => tracing::debug!("gRPC server still draining at exit"),
        _ => {}
    }
    drop(watchdog);
    drop(service_runtime);
    result
}

async fn drive(
    p: &Prepared,
    target: &Target,
    pool: &mut UserPool,
    session: &mut Session,
    processes: Option<&mut AgentProcesses>,
    cancel: &CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<ExitCode> {
    let config = &p.config;
    let concurrency = config.login.concurrency;
    let hint = match config.agents {
        AgentsMode::Spawn { .. } => "see the agents' logs above".to_owned(),
        AgentsMode::NoSpawn { .. } => format!(
            "start them with `agent --controller http://<this host>:<port> --name NAME` and the same {}",
            common::CLUSTER_SECRET_ENV
        ),
    };

    // `--token-cache`: the client and tokens of an earlier run, if usable.
    let token_cache = config
        .login
        .token_cache
        .clone()
        .map(|key| TokenCache::new(&config.state_dir, &target.mcp_url, key));
    let cached = token_cache.as_ref().map(TokenCache::load);
    // Users (create, discover, log in) while agents register.
    let users = async {
        let (auth, created) = tokio::join!(
            Authenticator::setup(&config.login, &target.mcp_url, cached.as_ref()),
            pool.create(concurrency)
        );
        created?;
        let auth = Arc::new(auth?);
        let reuse = cached
            .map(|c| c.tokens_for(&auth.endpoints.issuer, auth.client_id()))
            .unwrap_or_default();
        let outcome = pool.login(&auth, concurrency, reuse).await?;
        if let Some(cache) = &token_cache {
            cache.keep(&auth, &outcome.tokens, &doomed_users(config, pool));
        }
        // Before any load: the workload's tools are there, and every user
        // the server wants provisioned is.
        let setup = crate::setup::run(
            &p.scenario,
            &p.workload,
            &target.mcp_url,
            &pool.users,
            &outcome.tokens,
            concurrency,
            config.mcp_version,
        )
        .await
        .context("setting users up before the load")?;
        anyhow::Ok((auth, outcome, setup))
    };
    let agents = session.wait_attached(
        config.n_agents as usize,
        config.agent_timeout,
        processes,
        cancel,
        &hint,
    );
    let ((auth, logins, setup), ()) = tokio::select! {
        r = async { tokio::try_join!(users, agents) } => r?,
        () = cancel.cancelled() => bail!("interrupted before the run started"),
    };

    let assignments = assignments(p, target, &pool.users, &logins.tokens);
    let keeper = TokenKeeper::new(auth.clone(), &pool.users, logins.tokens);
    let mut tokens = tokens::spawn(keeper, tasks, cancel.child_token());
    session.assign(assignments).await?;
    session
        .wait_ready(config.agent_timeout, &mut tokens, cancel)
        .await?;
    let schedule = session.start(config.warmup, config.duration).await?;
    tracing::info!(
        warmup = %common::duration::format_duration(config.warmup),
        duration = %common::duration::format_duration(config.duration),
        "run started"
    );
    session.live.update(|f| {
        // Elapsed and total in the live view count from the agents' start.
        f.started_at = Some(schedule.started_at);
        f.phase = observe::Phase::Warmup;
        f.measure_from = Some(schedule.measure_from);
        f.measure_for = Some(config.duration);
        f.load_model = Some(match config.load {
            common::protocol::LoadModel::Closed { .. } => "closed",
            common::protocol::LoadModel::Open { .. } => "open",
        });
        f.stages = (!config.stages.is_empty())
            .then(|| common::load::Profile::from_stages(0.0, &config.stages));
    });
    let view_stop = CancellationToken::new();
    let view = progress::spawn(session.live.clone(), view_stop.clone());

    let frame = report_frame(p, target, pool.users.len());
    // The last runs of this kind, read once: the dashboard shows them
    // beside this run, the HTML report's trend ends with it.
    let earlier = earlier_runs(config.history.as_deref(), &frame.run);
    session.live.update(|f| {
        f.trend = earlier
            .iter()
            .map(|t| (t.started_at.clone(), t.p95, t.throughput))
            .collect();
    });
    let mut search = p.capacity.clone().map(|c| {
        let step_frame = frame.clone();
        let judge: capacity::Judge = Box::new(move |series, measured| {
            let mut input = step_frame.clone();
            input.series = series;
            input.run.duration = measured;
            report::build_report(&input)
        });
        capacity::Driver::new(c, judge, schedule.measure_from)
    });
    let drain = config.request_timeout + DRAIN_MARGIN;
    // By hand (`--http-control`), unless a capacity search steers.
    let mut manual = match (&search, session.control.take()) {
        (None, Some(requests)) => Some(control::Manual::new(
            requests,
            config.load,
            pool.users.len() as u64,
            cancel.clone(),
            session.live.clone(),
        )),
        _ => None,
    };
    let steer = match (search.as_mut(), manual.as_mut()) {
        (Some(d), _) => Some(d as &mut dyn steer::Steer),
        (None, Some(m)) => Some(m as &mut dyn steer::Steer),
        (None, None) => None,
    };
    let collected = session
        .collect(schedule, drain, &mut tokens, cancel, steer)
        .await;
    let changes = manual.map(|m| m.changes).unwrap_or_default();
    session.live.update(|f| f.phase = observe::Phase::Draining);
    view_stop.cancel();
    let _ = view.await;
    let token_stats = tokens.finish().await;
    if let Some(cache) = &token_cache {
        cache.keep(&auth, &token_stats.tokens, &doomed_users(config, pool));
    }
    auth.close().await;

    let measured = collected
        .ended_at
        .duration_since(schedule.measure_from)
        .unwrap_or_default()
        .min(config.duration);
    let results = session.take_results();
    let input = ReportInput {
        run: RunInfo {
            started_at: schedule.started_at,
            ended_at: collected.ended_at,
            warmup: config.warmup,
            // A capacity search ends when it is done, before the bound it set.
            duration: if collected.interrupted || collected.aborted.is_some() || search.is_some() {
                measured
            } else {
                config.duration
            },
            interrupted: collected.interrupted || collected.aborted.is_some(),
            login_method: login_method_text(auth.method()),
            ..frame.run
        },
        series: results.series,
        regions: results.regions,
        agents: results.agents,
        agent_losses: results.losses,
        intervals: with_targets(
            session.take_intervals(),
            config,
            pool.users.len(),
            schedule.started_at,
            &changes,
        ),
        drain: session.take_drain(),
        auth: AuthInput {
            login_method: login_method_text(auth.method()),
            logins_ok: logins.latency.len(),
            logins_failed: logins.failures.len() as u64,
            tokens_from_cache: logins.from_cache,
            login_latency: logins.latency,
            provisioned: setup.provisioned,
            provisioned_already: setup.already,
            provisioning_latency: setup.latency,
            provisioning_skipped: setup.skipped,
            refreshes: token_stats.refreshes,
            refresh_failures: token_stats.refresh_failures,
            relogins: token_stats.relogins,
            auth_failures: token_stats.refresh_failures,
        },
        users: pool.users.iter().map(|u| u.name.to_string()).collect(),
        tenants: pool.tenant_of(),
        failures: session.take_failures(),
        // The search's thresholds are judged per step, not over the run.
        thresholds: if search.is_some() {
            Vec::new()
        } else {
            frame.thresholds
        },
        ..frame
    };
    let mut report = report::build_report(&input);
    report.capacity = search.map(capacity::Driver::finish);
    println!("{}", report::render_console(&report));
    if let Some(path) = &config.output {
        report::write_json(&report, path, config.report_users_inline)?;
        tracing::info!(path = %path.display(), "JSON report written");
    }
    if let Some(path) = &config.html {
        let mut trend = earlier;
        trend.push(report::html::TrendPoint {
            started_at: report.run.started_at.clone(),
            p95: report.summary.latency.p95,
            throughput: report.summary.throughput_per_sec,
        });
        report::write_html_with_trend(&report, path, &trend)?;
        tracing::info!(path = %path.display(), "HTML report written");
    }
    if let Some(path) = &config.junit {
        report::write_junit(&report, path)?;
        tracing::info!(path = %path.display(), "JUnit XML written");
    }
    // After the reports: a history that cannot be written loses no report.
    if let Some(path) = &config.history {
        match crate::history::History::open(path)
            .and_then(|h| h.record(&report, config.output.as_deref()))
        {
            Ok(id) => {
                tracing::info!(path = %path.display(), run = id, "run recorded in the history")
            }
            Err(e) => {
                tracing::warn!("{e}; the run is not in the history (its reports are written)")
            }
        }
    }
    let lost: Vec<&str> = session
        .agents
        .values()
        .filter(|a| a.phase == agents::Phase::Lost)
        .map(|a| a.name.as_str())
        .collect();
    if !lost.is_empty() {
        tracing::warn!(agents = ?lost, "some agents were lost; the report keeps what they sent");
    }
    if collected.interrupted {
        bail!("the run was interrupted; the report above covers what was measured");
    }
    if let Some(agent) = &collected.aborted {
        bail!(
            "agent {agent} was lost and --on-agent-loss abort stopped the run; the report above covers what was measured"
        );
    }
    if let Some(why) = report::nothing_succeeded(&report) {
        bail!("{why}");
    }
    if !report.thresholds_passed() {
        tracing::warn!("a threshold failed");
        return Ok(ExitCode::from(EXIT_THRESHOLD));
    }
    if let Some(c) = &report.capacity
        && c.max_passing_rate.is_none()
    {
        tracing::warn!("no step of the capacity search met every threshold");
        return Ok(ExitCode::from(EXIT_THRESHOLD));
    }
    Ok(ExitCode::SUCCESS)
}

/// Users deleted at the end of the run, whose tokens are not worth keeping.
/// The last runs of `run`'s kind in the history at `path`, oldest first
/// (none without a history, or when it cannot be read).
fn earlier_runs(
    path: Option<&std::path::Path>,
    run: &report::RunInfo,
) -> Vec<report::html::TrendPoint> {
    let Some(path) = path.filter(|p| p.exists()) else {
        return Vec::new();
    };
    let kind = crate::history::Kind::new(
        &run.target,
        run.embedded_target,
        &run.workload,
        &run.load_model,
    );
    crate::history::History::open(path)
        .and_then(|h| h.trend(&kind, TREND_RUNS - 1))
        .unwrap_or_else(|e| {
            tracing::debug!("{e}: no trend of earlier runs");
            Vec::new()
        })
}

fn doomed_users(config: &RunConfig, pool: &UserPool) -> BTreeSet<UserName> {
    if config.cleanup {
        pool.created.iter().cloned().collect()
    } else {
        BTreeSet::new()
    }
}
