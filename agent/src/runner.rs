//! Runs the load of one assignment: waits for the start time, drives vusers
//! (closed model: each runs while the load's active users exceed its rank) or
//! a generator of starts at the load's rate (open model), follows load
//! updates, keeps warmup out of the measurements, streams interval deltas
//! every second, takes on groups moved from a lost agent while it runs, and
//! drains in-flight workflows at the end or on `Stop`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use common::ids::UserName;
use common::scenario::{MixEntry, Scenario, Workflow};
use common::series::SeriesKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::link::{LinkSender, SendError};
use crate::messages::{AgentEvent, GeneratorStats, LoadModel, StartPlan, unix_ms};
use crate::pacing::{self, LoadState, Picker};
use crate::recorder::{Recorder, Sample, Users};
use crate::session::McpSession;
use crate::steps::run_workflow;

/// Interval of the live deltas.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// After the drain timeout, how long cancelled workflows get to unwind.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// Counters behind `GeneratorStats`, shared by the load tasks.
#[derive(Debug, Default)]
pub struct GeneratorCounters {
    pub late_starts: AtomicU64,
    pub max_lateness_us: AtomicU64,
    /// Closed model: looping vusers; open model: workflows in flight.
    pub active_vusers: AtomicU32,
    /// Open model: starts dropped at the in-flight bound.
    pub dropped_starts: AtomicU64,
    /// Open model: starts due in the measured window, made or dropped.
    pub offered_starts: AtomicU64,
}

impl GeneratorCounters {
    pub fn snapshot(&self) -> GeneratorStats {
        GeneratorStats {
            cpu_seconds: pacing::cpu_seconds(),
            late_starts: self.late_starts.load(Ordering::Relaxed),
            max_lateness_us: self.max_lateness_us.load(Ordering::Relaxed),
            active_vusers: u64::from(self.active_vusers.load(Ordering::Relaxed)),
            dropped_starts: self.dropped_starts.load(Ordering::Relaxed),
            offered_starts: self.offered_starts.load(Ordering::Relaxed),
        }
    }
}

/// Everything one run needs.
pub struct Run {
    pub scenario: Arc<Scenario>,
    pub mix: Vec<MixEntry>,
    pub load: LoadModel,
    pub request_timeout: Duration,
    /// Open model: workflows in flight at most on this agent.
    pub max_in_flight: usize,
    /// Open sessions by group; multi-user workflows stay inside a group.
    pub groups: Vec<Vec<Arc<McpSession>>>,
    pub plan: StartPlan,
    pub recorder: Arc<Recorder>,
    pub generator: Arc<GeneratorCounters>,
    /// What `--http` shows: fed with every interval delta sent.
    pub live: observe::Live,
    /// What the load follows; load updates change it while the run goes.
    pub load_state: watch::Receiver<LoadState>,
    /// Closed model: each user's activation rank (absent: 0).
    pub ranks: Arc<HashMap<UserName, u32>>,
    /// Groups added while running (re-assigned from a lost agent).
    pub added: mpsc::UnboundedReceiver<AddedLoad>,
}

/// Groups moved here from a lost agent, to run from now on under the run's
/// load: closed, each vuser by its rank; open, among this agent's starts
/// (whose rate the moved share has already raised).
pub struct AddedLoad {
    pub groups: Vec<Vec<Arc<McpSession>>>,
    pub ranks: HashMap<UserName, u32>,
}

/// The measured window: workflows starting inside it are recorded.
#[derive(Clone, Copy, Debug)]
struct Phase {
    measure_start: Instant,
    end: Instant,
}

impl Phase {
    fn measures(&self, started: Instant) -> bool {
        started >= self.measure_start && started < self.end
    }
}

/// What load tasks share.
struct Ctx {
    scenario: Arc<Scenario>,
    mix: Vec<MixEntry>,
    request_timeout: Duration,
    max_in_flight: usize,
    start: Instant,
    phase: Phase,
    /// Cancelled when no new workflow may start.
    starting: CancellationToken,
    /// Cancelled to abandon workflows in flight.
    abandon: CancellationToken,
    recorder: Arc<Recorder>,
    generator: Arc<GeneratorCounters>,
    live: observe::Live,
    load: watch::Receiver<LoadState>,
}

impl Ctx {
    /// Time since the start (0 before it).
    fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// The instant of an offset from the start; `None` past any clock.
    fn at(&self, offset: Duration) -> Option<Instant> {
        self.start.checked_add(offset)
    }
}

/// Sleeps until `at`, or forever when there is none.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs the load until the end of the plan or until `stop` is cancelled;
/// returns whether it was interrupted.
pub async fn run(mut run: Run, sender: LinkSender, stop: CancellationToken) -> bool {
    let delay_ms = u64::try_from(run.plan.start_at_ms - unix_ms()).unwrap_or(0);
    let start = Instant::now() + Duration::from_millis(delay_ms);
    let measure_start = start + run.plan.warmup;
    let phase = Phase {
        measure_start,
        end: measure_start + run.plan.duration,
    };
    let ctx = Arc::new(Ctx {
        scenario: run.scenario,
        mix: run.mix,
        request_timeout: run.request_timeout,
        max_in_flight: run.max_in_flight.max(1),
        start,
        phase,
        starting: stop.child_token(),
        abandon: CancellationToken::new(),
        recorder: run.recorder.clone(),
        generator: run.generator.clone(),
        load: run.load_state.clone(),
        live: run.live.clone(),
    });
    let measure_from = std::time::UNIX_EPOCH
        + Duration::from_millis(u64::try_from(run.plan.start_at_ms).unwrap_or(0))
        + run.plan.warmup;
    run.live.update(|f| {
        f.phase = observe::Phase::Warmup;
        f.measure_from = Some(measure_from);
        f.measure_for = Some(run.plan.duration);
    });
    tracing::info!(
        start_in_ms = delay_ms,
        warmup = ?run.plan.warmup,
        duration = ?run.plan.duration,
        load = ?run.load,
        "run scheduled"
    );

    let tracker = TaskTracker::new();
    let mut task = 0;
    // Where moved groups go: more vusers (closed) or the generator's
    // initiators (open).
    let more = match run.load {
        LoadModel::Closed { think_time } => {
            spawn_vusers(
                &ctx, &tracker, run.groups, &run.ranks, think_time, &mut task,
            );
            MoreLoad::Vusers { think_time }
        }
        LoadModel::Open { .. } => {
            let (tx, rx) = mpsc::unbounded_channel();
            tracker.spawn(open_generator(ctx.clone(), run.groups, rx, tracker.clone()));
            MoreLoad::Generator(tx)
        }
    };

    let reporting = CancellationToken::new();
    let reporter = tokio::spawn(report_intervals(
        ctx.clone(),
        run.plan,
        sender,
        reporting.clone(),
    ));

    // Until the end, which a load update can bring forward.
    let mut load = run.load_state;
    let mut updates_open = true;
    loop {
        let end = ctx
            .at(load.borrow().end)
            .unwrap_or(phase.end)
            .min(phase.end);
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = stop.cancelled() => break,
            changed = load.changed(), if updates_open => updates_open = changed.is_ok(),
            Some(added) = run.added.recv() => {
                let n_users: usize = added.groups.iter().map(Vec::len).sum();
                tracing::info!(n_users, "running groups moved from a lost agent");
                match &more {
                    MoreLoad::Vusers { think_time } => {
                        spawn_vusers(&ctx, &tracker, added.groups, &added.ranks, *think_time, &mut task);
                    }
                    MoreLoad::Generator(tx) => {
                        let _ = tx.send(added.groups);
                    }
                }
            }
        }
    }
    let interrupted = stop.is_cancelled();
    ctx.starting.cancel();
    if interrupted {
        tracing::info!("stopping early: abandoning workflows in flight");
        ctx.abandon.cancel();
    }
    tracker.close();
    if tokio::time::timeout(ctx.request_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(drain_timeout = ?ctx.request_timeout, "workflows still in flight after the drain timeout; abandoning them");
        ctx.abandon.cancel();
        let _ = tokio::time::timeout(CANCEL_GRACE, tracker.wait()).await;
    }
    reporting.cancel();
    if let Err(e) = reporter.await {
        tracing::warn!(error = %e, "interval reporter failed");
    }
    interrupted
}

/// How groups moved here join the running load.
enum MoreLoad {
    /// Closed model: a vuser each, with this think time.
    Vusers { think_time: Duration },
    /// Open model: to the generator, as initiators.
    Generator(mpsc::UnboundedSender<Vec<Vec<Arc<McpSession>>>>),
}

/// Closed model: a looping task per user of `groups`; `task` numbers them.
fn spawn_vusers(
    ctx: &Arc<Ctx>,
    tracker: &TaskTracker,
    groups: Vec<Vec<Arc<McpSession>>>,
    ranks: &HashMap<UserName, u32>,
    think: Duration,
    task: &mut usize,
) {
    for group in groups {
        let group = Arc::new(group);
        for me in 0..group.len() {
            let rank = ranks.get(group[me].user()).copied().unwrap_or(0);
            let vuser = Vuser {
                group: group.clone(),
                me,
                think,
                task: *task,
                rank,
            };
            tracker.spawn(vuser.run(ctx.clone()));
            *task += 1;
        }
    }
}

/// Closed model: one user looping over workflows with think time while the
/// load's active users exceed its rank.
struct Vuser {
    group: Arc<Vec<Arc<McpSession>>>,
    me: usize,
    think: Duration,
    task: usize,
    rank: u32,
}

impl Vuser {
    async fn run(self, ctx: Arc<Ctx>) {
        let Some(picker) = Picker::new(&ctx.scenario, &ctx.mix, self.group.len()) else {
            tracing::warn!(
                group_size = self.group.len(),
                "no workflow of the mix fits this group; vuser idle"
            );
            return;
        };
        let mut rng = StdRng::from_rng(&mut rand::rng());
        let mut load = ctx.load.clone();
        let mut updates_open = true;
        let mut iteration: u64 = 0;
        while !ctx.starting.is_cancelled() {
            // Idle until the load reaches this vuser's rank.
            let now = ctx.elapsed();
            let next = load.borrow().profile.next_active(self.rank, now);
            if next != Some(now) {
                tokio::select! {
                    _ = ctx.starting.cancelled() => return,
                    _ = sleep_until_opt(next.and_then(|t| ctx.at(t))) => {}
                    changed = load.changed(), if updates_open => updates_open = changed.is_ok(),
                }
                continue;
            }
            // Active: start within one think time (not all at once), then loop.
            let first = ctx
                .at(now)
                .map(|t| t + pacing::first_start(self.think, &mut rng));
            tokio::select! {
                _ = ctx.starting.cancelled() => return,
                _ = sleep_until_opt(first) => {}
            }
            ctx.generator.active_vusers.fetch_add(1, Ordering::Relaxed);
            self.active(&ctx, &picker, &mut rng, &mut load, &mut iteration)
                .await;
            ctx.generator.active_vusers.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Runs workflows until the load drops below this vuser's rank or no
    /// workflow may start any more.
    async fn active(
        &self,
        ctx: &Ctx,
        picker: &Picker<'_>,
        rng: &mut StdRng,
        load: &mut watch::Receiver<LoadState>,
        iteration: &mut u64,
    ) {
        while !ctx.starting.is_cancelled()
            && load.borrow().profile.is_active(self.rank, ctx.elapsed())
        {
            let wf = picker.pick(rng);
            let offset = usize::try_from(*iteration).unwrap_or(0);
            let sessions = cast(&self.group, self.me, wf, offset);
            execute(ctx, wf, &sessions, *iteration, None, self.task).await;
            *iteration += 1;
            let pause = pacing::jittered(self.think, rng);
            if pause.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            // A ramp down does not wait for the end of the think time.
            let inactive = load
                .borrow()
                .profile
                .next_inactive(self.rank, ctx.elapsed())
                .and_then(|t| ctx.at(t));
            tokio::select! {
                _ = ctx.starting.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
                _ = sleep_until_opt(inactive) => {}
            }
        }
    }
}

/// The sessions playing `wf`'s roles: `me` first, then partners from the group.
fn cast(
    group: &[Arc<McpSession>],
    me: usize,
    wf: &Workflow,
    offset: usize,
) -> Vec<Arc<McpSession>> {
    let mut sessions = Vec::with_capacity(wf.n_roles());
    sessions.push(group[me].clone());
    for p in pacing::partners(me, group.len(), wf.n_roles().saturating_sub(1), offset) {
        sessions.push(group[p].clone());
    }
    sessions
}

/// Open model: who can start a workflow — every user of every group, with
/// the workflows that fit the group.
#[derive(Default)]
struct Initiators<'s> {
    /// (group, member)
    members: Vec<(usize, usize)>,
    groups: Vec<Arc<Vec<Arc<McpSession>>>>,
    pickers: Vec<Option<Picker<'s>>>,
}

impl<'s> Initiators<'s> {
    fn add(
        &mut self,
        scenario: &'s Scenario,
        mix: &'s [MixEntry],
        groups: Vec<Vec<Arc<McpSession>>>,
    ) {
        for group in groups {
            let g = self.groups.len();
            self.members.extend((0..group.len()).map(|m| (g, m)));
            self.pickers.push(Picker::new(scenario, mix, group.len()));
            self.groups.push(Arc::new(group));
        }
    }
}

/// Open model: starts workflows at the load's rate (due times from the
/// profile, so a ramp or an update moves them) with random initiators, to
/// whom `more` adds groups moved from a lost agent.
async fn open_generator(
    ctx: Arc<Ctx>,
    groups: Vec<Vec<Arc<McpSession>>>,
    mut more: mpsc::UnboundedReceiver<Vec<Vec<Arc<McpSession>>>>,
    tracker: TaskTracker,
) {
    let mut initiators = Initiators::default();
    initiators.add(&ctx.scenario, &ctx.mix, groups);
    let mut more_open = true;
    let permits = Arc::new(Semaphore::new(ctx.max_in_flight));
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let mut load = ctx.load.clone();
    let mut updates_open = true;
    // The intended time of the previous start, from the run's start.
    let mut last = Duration::ZERO;
    let mut n: u32 = 0;
    loop {
        // One start is due once the area under the rate since the last grew by 1.
        let due = load.borrow().profile.time_after(last, 1.0);
        let intended = due.and_then(|t| ctx.at(t));
        tokio::select! {
            _ = ctx.starting.cancelled() => break,
            _ = sleep_until_opt(intended) => {}
            changed = load.changed(), if updates_open => {
                updates_open = changed.is_ok();
                continue;
            }
            moved = more.recv(), if more_open => {
                match moved {
                    Some(groups) => initiators.add(&ctx.scenario, &ctx.mix, groups),
                    None => more_open = false,
                }
                continue;
            }
        }
        let (Some(due), Some(intended)) = (due, intended) else {
            continue;
        };
        last = due;
        n = n.saturating_add(1);
        if ctx.phase.measures(intended) {
            ctx.generator.offered_starts.fetch_add(1, Ordering::Relaxed);
        }
        // At the bound the start is dropped, not queued: a target that has
        // fallen behind is not fed an ever longer backlog.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if ctx.phase.measures(intended) {
                ctx.generator.dropped_starts.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        };
        let lateness = Instant::now().saturating_duration_since(intended);
        if lateness > pacing::LATE_START && ctx.phase.measures(intended) {
            ctx.generator.late_starts.fetch_add(1, Ordering::Relaxed);
            let us = u64::try_from(lateness.as_micros()).unwrap_or(u64::MAX);
            ctx.generator
                .max_lateness_us
                .fetch_max(us, Ordering::Relaxed);
        }
        if initiators.members.is_empty() {
            continue;
        }
        let (g, me) = initiators.members[rng.random_range(0..initiators.members.len())];
        let Some(picker) = &initiators.pickers[g] else {
            continue;
        };
        let wf_name = picker.pick(&mut rng).name.clone();
        let offset = rng.random_range(0..usize::MAX);
        let group = initiators.groups[g].clone();
        let ctx2 = ctx.clone();
        let iteration = u64::from(n);
        tracker.spawn(async move {
            let _permit = permit;
            // Looked up again so the task owns nothing borrowed from the generator.
            let Some(wf) = ctx2.scenario.workflow(&wf_name) else {
                return;
            };
            let sessions = cast(&group, me, wf, offset);
            ctx2.generator.active_vusers.fetch_add(1, Ordering::Relaxed);
            execute(
                &ctx2,
                wf,
                &sessions,
                iteration,
                Some(intended),
                iteration as usize,
            )
            .await;
            ctx2.generator.active_vusers.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Runs one workflow and records it if it started in the measured window.
async fn execute(
    ctx: &Ctx,
    wf: &Workflow,
    sessions: &[Arc<McpSession>],
    iteration: u64,
    intended: Option<Instant>,
    task: usize,
) {
    let began = Instant::now();
    let record = ctx.phase.measures(intended.unwrap_or(began));
    // A v4 UUID from the thread's RNG: `Uuid::new_v4` asks the kernel for
    // entropy on every call, a system call per workflow on the hot path.
    let uuid = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .simple()
        .to_string();
    // Each call and step as it completes, into the interval it completes in.
    let sink = |s: Sample| {
        if record {
            ctx.recorder.record(task, [s]);
        }
    };
    let outcome = tokio::select! {
        _ = ctx.abandon.cancelled() => {
            // Still in flight at the end: counted as interrupted, not dropped.
            if record {
                ctx.recorder.record_interrupted(task, &wf.name);
            }
            return;
        }
        o = run_workflow(wf, sessions, uuid, iteration, ctx.request_timeout, &sink) => o,
    };
    if !record {
        return;
    }
    for f in &outcome.failures {
        ctx.recorder
            .record_failure(&wf.name, &f.step, f.kind, &f.message);
    }
    ctx.recorder.record(
        task,
        [Sample {
            key: SeriesKey::workflow(&wf.name),
            user: None,
            latency: outcome.latency,
            corrected: intended.map(|i| i.elapsed()),
            error: outcome.error,
            conflict: false,
        }],
    );
}

/// Sends the delta of every interval from the start of measurement, through
/// the drain, and once more when `done` fires: what completed since the last
/// tick (the drain's tail) is in the timeline too, so the timeline adds up to
/// the final report.
async fn report_intervals(
    ctx: Arc<Ctx>,
    plan: StartPlan,
    sender: LinkSender,
    done: CancellationToken,
) {
    let first = ctx.phase.measure_start + REPORT_INTERVAL;
    let mut ticks = tokio::time::interval_at(first, REPORT_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let measure_start_ms = plan.start_at_ms + i64::try_from(plan.warmup.as_millis()).unwrap_or(0);
    let interval_ms = i64::try_from(REPORT_INTERVAL.as_millis()).unwrap_or(1000);
    let mut seq: u64 = 0;
    loop {
        let last = tokio::select! {
            _ = done.cancelled() => true,
            _ = ticks.tick() => false,
        };
        let series = ctx.recorder.take_delta(Users::for_delta(seq, last));
        let interval_start_ms = measure_start_ms + i64::try_from(seq).unwrap_or(0) * interval_ms;
        // The last delta covers from its interval's start to now (less than
        // an interval, or nothing before measurement began).
        let interval = if last {
            let since =
                ctx.phase.measure_start + REPORT_INTERVAL * u32::try_from(seq).unwrap_or(u32::MAX);
            Instant::now()
                .saturating_duration_since(since)
                .clamp(Duration::from_millis(1), REPORT_INTERVAL)
        } else {
            REPORT_INTERVAL
        };
        if last && series.is_empty() {
            return;
        }
        let active = u64::from(ctx.generator.active_vusers.load(Ordering::Relaxed));
        let generator = ctx.generator.snapshot();
        ctx.live.update(|f| {
            f.phase = observe::Phase::Measuring;
            // The delta sent at the window's end is its last; later ones are the drain's.
            let region = std::mem::take(&mut f.home_region);
            f.add(
                &region,
                &series,
                Instant::now() <= ctx.phase.end + REPORT_INTERVAL / 2,
            );
            f.home_region = region;
            f.active_users = active;
            f.starts = observe::StartCounts {
                offered: generator.offered_starts,
                dropped: generator.dropped_starts,
                late: generator.late_starts,
            };
        });
        let event = AgentEvent::Interval {
            seq,
            interval_start_ms,
            interval,
            series,
            generator,
            failures: ctx.recorder.take_failures(),
        };
        match sender.send(event).await {
            Ok(()) => {}
            // Logged by the sender; the cumulative set still has it all.
            Err(SendError::Encode(_)) => {}
            Err(SendError::Closed) => {
                tracing::debug!("controller gone; interval reports stop");
                return;
            }
        }
        if last {
            return;
        }
        seq += 1;
    }
}
