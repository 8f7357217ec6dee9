//! One simulated agent, as the controller sees it: it registers and attaches
//! through the real agent's `link`, beats through its `beat`, reassembles
//! the assignment with its `ChunkAssembler`, answers `Ready` at once (one
//! "session" per user, recorded as an initialize sample as a real agent
//! does), and from `Start` plays the assigned scenario on paper (`load`)
//! at the rate the load model gives, into the real agent's `Recorder`:
//! one interval delta a second from the start of measurement, a last
//! partial one, then the chunked cumulative final report.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agent::beat;
use agent::link::{self, Link, LinkConfig, LinkReceiver, LinkSender, SendError};
use agent::messages::{AgentEvent, ControllerEvent, LoadModel, McpStats, StartPlan, unix_ms};
use agent::prepare::{self, Assignment, ChunkAssembler};
use agent::recorder::{Recorder, Sample, Users};
use agent::runner::{GeneratorCounters, REPORT_INTERVAL};
use anyhow::Context as _;
use common::protocol::McpVersion;
use common::scenario::{MixEntry, Scenario};
use common::series::SeriesKey;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::load::{self, Behaviour, Cast};

/// How often the load loop plays the workflows that fell due.
const TICK: Duration = Duration::from_millis(50);
/// How long to wait for the controller to close the stream after the final report.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The simulated session open, recorded once per user.
const INITIALIZE_LATENCY: Duration = Duration::from_millis(12);
/// The protocol version every simulated session settles on.
const SESSION_VERSION: McpVersion = McpVersion::V2025_11_25;

/// What every simulated agent shares.
#[derive(Debug)]
pub struct Shared {
    pub link: LinkConfig,
    /// The links' own runtime (`agent::beat::LinkRuntime`'s handle).
    pub link_runtime: tokio::runtime::Handle,
    pub behaviour: Behaviour,
    /// Multiplies the rate the load model gives (1 = as assigned).
    pub rate_scale: f64,
    pub counters: Counters,
}

/// Totals over every simulated agent, for the summary line.
#[derive(Debug, Default)]
pub struct Counters {
    pub workflows: AtomicU64,
    pub samples: AtomicU64,
    pub intervals: AtomicU64,
    pub final_reports: AtomicU64,
}

/// The assignment, ready to play.
struct Prepared {
    scenario: Arc<Scenario>,
    mix: Vec<MixEntry>,
    load: LoadModel,
    groups: Vec<Vec<common::ids::UserName>>,
}

/// Runs simulated agent `index` until its run is over and its final report
/// sent, `shutdown` (final report marked interrupted), or a link error.
pub async fn run(
    index: usize,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stop_run = shutdown.child_token();
    let mut config = shared.link.clone();
    config.agent_name = format!("{}-{index}", shared.link.agent_name);
    let Link {
        heartbeat_interval,
        sender,
        mut receiver,
        gone,
        ..
    } = {
        // On the link runtime, as in a real agent: the stream's reader and
        // the heartbeats keep time there while the load saturates the rest.
        let (config, stop) = (config.clone(), stop_run.clone());
        let connecting = shared
            .link_runtime
            .spawn(async move { link::connect(&config, stop).await });
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            link = connecting => link.context("the link task failed")??,
        }
    };
    tracing::debug!(agent = %config.agent_name, "attached");
    let generator = Arc::new(GeneratorCounters::default());
    let beats = CancellationToken::new();
    shared.link_runtime.spawn(beat::heartbeats(
        sender.clone(),
        heartbeat_interval,
        generator.clone(),
        beats.clone(),
    ));
    let recorder = Recorder::new();
    let ended = control(
        index,
        &shared,
        &sender,
        &mut receiver,
        &recorder,
        &generator,
        &stop_run,
    )
    .await;
    let ended = match ended {
        Ok(_) if gone.is_cancelled() => Err(receiver.why_gone().await),
        other => other,
    };
    let result = match ended {
        Ok((interrupted, n_users)) => {
            let mut mcp = McpStats::default();
            mcp.sessions_by_version[SESSION_VERSION as usize] = n_users;
            let report = AgentEvent::Final {
                series: recorder.take_cumulative(),
                generator: generator.snapshot(),
                mcp,
                interrupted,
                failures: recorder.take_failures(),
            };
            let sent = sender.send(report).await;
            if sent.is_ok() {
                shared
                    .counters
                    .final_reports
                    .fetch_add(1, Ordering::Relaxed);
            }
            sent.context("could not send the final report")
        }
        Err(e) => Err(e),
    };
    beats.cancel();
    drop(sender);
    if result.is_ok() {
        // Our half is closed; the controller hangs up once it has the report.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Ok(Some(_)) = receiver.next().await {}
        })
        .await;
    }
    result.with_context(|| format!("simulated agent {}", config.agent_name))
}

/// The protocol loop: returns whether the run was interrupted and how many
/// users this agent held.
async fn control(
    index: usize,
    shared: &Arc<Shared>,
    sender: &LinkSender,
    receiver: &mut LinkReceiver,
    recorder: &Arc<Recorder>,
    generator: &Arc<GeneratorCounters>,
    stop_run: &CancellationToken,
) -> anyhow::Result<(bool, u64)> {
    let mut assembler = ChunkAssembler::default();
    let mut prepared: Option<Prepared> = None;
    let mut running: Option<JoinHandle<bool>> = None;
    let mut n_users = 0;
    loop {
        tokio::select! {
            () = stop_run.cancelled(), if running.is_none() => return Ok((true, n_users)),
            event = receiver.next() => match event? {
                None => anyhow::bail!("the controller closed the stream before the run ended"),
                Some(ControllerEvent::Assignment(chunk)) => {
                    if let Some(assignment) = assembler.add(chunk)? {
                        let p = prepare(assignment, recorder, sender).await?;
                        n_users = p.groups.iter().map(|g| g.len() as u64).sum();
                        prepared = Some(p);
                    }
                }
                Some(ControllerEvent::Start(plan)) => {
                    let Some(p) = prepared.take() else {
                        anyhow::bail!("the controller sent Start before a complete assignment");
                    };
                    running = Some(tokio::spawn(play(Play {
                        index,
                        shared: shared.clone(),
                        prepared: p,
                        plan,
                        recorder: recorder.clone(),
                        generator: generator.clone(),
                        sender: sender.clone(),
                        stop: stop_run.clone(),
                    })));
                }
                Some(ControllerEvent::Stop { reason }) => {
                    tracing::debug!(%reason, "stopped by the controller");
                    if running.is_none() {
                        return Ok((true, n_users));
                    }
                    stop_run.cancel();
                }
                // Nothing to call with a token; the load stays as assigned.
                Some(ControllerEvent::TokenUpdate { .. } | ControllerEvent::LoadUpdate(_)) => {}
                Some(ControllerEvent::AddGroups(chunk)) => {
                    tracing::warn!(assignment = %chunk.id, "moved groups are not simulated; ignored");
                }
            },
            interrupted = join_opt(&mut running) => {
                return Ok((interrupted.context("the simulated load panicked")?, n_users));
            }
        }
    }
}

/// Awaits an optional task; pending forever when there is none.
async fn join_opt<T>(handle: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match handle {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// Checks the assignment as a real agent does, "opens" a session per user
/// (an initialize sample each) and says `Ready`.
async fn prepare(
    assignment: Assignment,
    recorder: &Recorder,
    sender: &LinkSender,
) -> anyhow::Result<Prepared> {
    let scenario = Arc::new(prepare::load_scenario(&assignment.settings)?);
    let groups: Vec<Vec<_>> = assignment
        .groups
        .iter()
        .map(|g| g.iter().map(|u| u.name.clone()).collect())
        .collect();
    let n_users = groups.iter().map(Vec::len).sum::<usize>();
    for (g, group) in groups.iter().enumerate() {
        recorder.record(
            g,
            group.iter().map(|_| Sample {
                key: SeriesKey::mcp_initialize(),
                user: None,
                latency: INITIALIZE_LATENCY,
                corrected: None,
                error: None,
                conflict: false,
            }),
        );
    }
    sender
        .send(AgentEvent::Ready {
            assignment_id: assignment.id,
            sessions_open: u32::try_from(n_users).unwrap_or(u32::MAX),
            sessions_failed: 0,
            failure_samples: Vec::new(),
        })
        .await
        .context("could not send Ready")?;
    Ok(Prepared {
        scenario,
        mix: assignment.settings.mix,
        load: assignment.settings.load,
        groups,
    })
}

struct Play {
    index: usize,
    shared: Arc<Shared>,
    prepared: Prepared,
    plan: StartPlan,
    recorder: Arc<Recorder>,
    generator: Arc<GeneratorCounters>,
    sender: LinkSender,
    stop: CancellationToken,
}

/// Plays workflows from the measurement's start to its end (warmup is
/// never recorded, so it is not played) and reports every interval;
/// returns whether the run was stopped early.
async fn play(p: Play) -> bool {
    let delay_ms = u64::try_from(p.plan.start_at_ms - unix_ms()).unwrap_or(0);
    let measure_start = Instant::now() + Duration::from_millis(delay_ms) + p.plan.warmup;
    let end = measure_start + p.plan.duration;
    let Some(cast) = Cast::new(&p.prepared.scenario, &p.prepared.mix, p.prepared.groups) else {
        tracing::warn!("no workflow of the mix fits this agent's groups; reporting nothing");
        return false;
    };
    let mut rng = StdRng::seed_from_u64(p.index as u64);
    let behaviour = p.shared.behaviour;
    // Closed model: each user loops over a workflow and a think time.
    let rate = p.shared.rate_scale
        * match p.prepared.load {
            LoadModel::Closed { think_time } => {
                let cycle = think_time + cast.mean_latency(behaviour, &mut rng);
                cast.n_users() as f64 / cycle.as_secs_f64().max(1e-3)
            }
            LoadModel::Open { rate_per_sec } => rate_per_sec,
        };
    p.generator.active_vusers.store(
        u32::try_from(cast.n_users()).unwrap_or(u32::MAX),
        Ordering::Relaxed,
    );
    tracing::debug!(agent = p.index, rate, "simulated load scheduled");
    let reporting = CancellationToken::new();
    let reporter = tokio::spawn(report_intervals(
        p.recorder.clone(),
        p.generator.clone(),
        p.plan,
        measure_start,
        p.sender.clone(),
        reporting.clone(),
        p.shared.clone(),
    ));
    tokio::select! {
        () = tokio::time::sleep_until(measure_start) => {}
        () = p.stop.cancelled() => {}
    }
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due = 0.0;
    let mut last = Instant::now();
    let mut task = 0;
    while !p.stop.is_cancelled() {
        tokio::select! {
            () = p.stop.cancelled() => break,
            () = tokio::time::sleep_until(end) => break,
            now = ticks.tick() => {
                due += rate * now.saturating_duration_since(last).as_secs_f64();
                last = now;
            }
        }
        let mut played = 0;
        while due >= 1.0 {
            due -= 1.0;
            let (workflow, run) = cast.play_one(behaviour, &mut rng);
            p.shared
                .counters
                .samples
                .fetch_add(run.samples.len() as u64, Ordering::Relaxed);
            load::record(&p.recorder, task, workflow, run);
            task = task.wrapping_add(1);
            played += 1;
        }
        p.shared
            .counters
            .workflows
            .fetch_add(played, Ordering::Relaxed);
    }
    let interrupted = p.stop.is_cancelled();
    reporting.cancel();
    if let Err(e) = reporter.await {
        tracing::warn!(error = %e, "interval reporter failed");
    }
    interrupted
}

/// Sends the delta of every interval from the start of measurement and a
/// last partial one when `done` fires, timed as `agent::runner` times them.
async fn report_intervals(
    recorder: Arc<Recorder>,
    generator: Arc<GeneratorCounters>,
    plan: StartPlan,
    measure_start: Instant,
    sender: LinkSender,
    done: CancellationToken,
    shared: Arc<Shared>,
) {
    let mut ticks = tokio::time::interval_at(measure_start + REPORT_INTERVAL, REPORT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let measure_start_ms = plan.start_at_ms + i64::try_from(plan.warmup.as_millis()).unwrap_or(0);
    let interval_ms = i64::try_from(REPORT_INTERVAL.as_millis()).unwrap_or(1000);
    let mut seq: u64 = 0;
    loop {
        let last = tokio::select! {
            () = done.cancelled() => true,
            _ = ticks.tick() => false,
        };
        let series = recorder.take_delta(Users::for_delta(seq, last));
        if last && series.is_empty() {
            return;
        }
        let interval = if last {
            let since = measure_start + REPORT_INTERVAL * u32::try_from(seq).unwrap_or(u32::MAX);
            Instant::now()
                .saturating_duration_since(since)
                .clamp(Duration::from_millis(1), REPORT_INTERVAL)
        } else {
            REPORT_INTERVAL
        };
        let event = AgentEvent::Interval {
            seq,
            interval_start_ms: measure_start_ms + i64::try_from(seq).unwrap_or(0) * interval_ms,
            interval,
            series,
            generator: generator.snapshot(),
            failures: recorder.take_failures(),
        };
        match sender.send(event).await {
            Ok(()) => {
                shared.counters.intervals.fetch_add(1, Ordering::Relaxed);
            }
            Err(SendError::Encode(_)) => {}
            Err(SendError::Closed) => return,
        }
        if last {
            return;
        }
        seq += 1;
    }
}
