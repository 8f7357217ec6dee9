//! The run as the agents see it: attach, assign, ready, start, collect.
//! Moves each agent through its phases (`agents`), hears from the watchdog
//! (`liveness`) which agents went silent, in every phase, and hands lost
//! agents to the policy (`reassign`), passes refresh requests to the token
//! task and pushes its new tokens, and hands what agents measured to the
//! `Aggregate`, which folds it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use common::ids::{AgentId, UserName};
use common::series::SeriesSet;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::agents::{AgentState, Phase};
use super::aggregate::{Aggregate, Folded, Window};
use super::liveness::AGENT_LOST_AFTER;
use super::reassign::{GroupUsers, Loss};
use super::status::publish;
use super::steer::Steer;
use crate::messages::{
    AgentEvent, Assignment, FromAgent, RunSettings, StartCommand, ToAgent, TokenUpdate,
};
use crate::registry::Registry;
use crate::registry::Silent;
use crate::report::{AgentLoss, AgentResult, IntervalPoint, McpStats};
use crate::settings::agents::OnAgentLoss;
use crate::spawn::AgentProcesses;
use crate::tokens::Tokens;

/// Agents start this long after `Start` is sent, all at the same instant.
pub const START_DELAY: Duration = Duration::from_millis(300);
/// After `Stop` (or the drain deadline), on top of the drain itself, the
/// longest an agent still heard from is waited for. Told to stop, an agent
/// abandons its workflows (its request timeout at most, plus a second),
/// then encodes and sends its final report: for 100,000 users some 100 MB
/// in 1 MiB chunks, which a saturated host can take tens of seconds over.
/// A silent agent is lost within 5 s anyway (the watchdog, `liveness`),
/// and one whose stream closes at once; this bound is for an agent wedged
/// yet heartbeating, which must not hold the run forever.
pub const FINAL_REPORT_ALLOWANCE: Duration = Duration::from_secs(120);
const TICK: Duration = Duration::from_millis(250);

/// Times of the run, fixed at `Start`.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub started_at: SystemTime,
    pub measure_from: SystemTime,
    pub end_at: SystemTime,
}

pub struct Session {
    events: mpsc::Receiver<AgentEvent>,
    /// Agents the watchdog found silent.
    silent: mpsc::UnboundedReceiver<Silent>,
    pub(super) registry: Arc<Registry>,
    pub(super) policy: OnAgentLoss,
    pub agents: BTreeMap<AgentId, AgentState>,
    /// Attach order: the plan's agent `i` is `order[i]`.
    pub order: Vec<AgentId>,
    pub(super) user_agent: BTreeMap<UserName, AgentId>,
    /// The settings every assignment shares (moved groups get them too).
    pub(super) settings: Option<RunSettings>,
    /// What the agents measured, folded as it arrives.
    pub(super) aggregate: Aggregate,
    pub failures: Vec<String>,
    /// What the progress view and `--http` show.
    pub live: observe::Live,
    /// Agents lost during the run, and where their users went.
    pub(super) losses: Vec<Loss>,
    /// Set by `--on-agent-loss abort`: the lost agent's name.
    pub(super) aborted: Option<String>,
    /// Re-assignments sent so far (numbers their ids).
    pub(super) n_moves: u32,
    /// `--http-control`: the requests of `POST /api/v1/control`, taken by
    /// the run once it starts.
    pub control: Option<mpsc::Receiver<observe::control::Request>>,
}

pub struct Collected {
    pub interrupted: bool,
    /// `--on-agent-loss abort` stopped the run: the lost agent's name.
    pub aborted: Option<String>,
    pub ended_at: SystemTime,
}

/// What the report takes from the session.
pub struct Results {
    pub series: SeriesSet,
    /// The same, per region.
    pub regions: std::collections::BTreeMap<common::region::Region, crate::report::RegionSeries>,
    pub agents: Vec<AgentResult>,
    pub losses: Vec<AgentLoss>,
}

impl Session {
    pub fn new(
        events: mpsc::Receiver<AgentEvent>,
        silent: mpsc::UnboundedReceiver<Silent>,
        registry: Arc<Registry>,
        live: observe::Live,
        policy: OnAgentLoss,
    ) -> Session {
        Session {
            events,
            silent,
            registry,
            policy,
            agents: BTreeMap::new(),
            order: Vec::new(),
            user_agent: BTreeMap::new(),
            settings: None,
            aggregate: Aggregate::default(),
            failures: Vec::new(),
            live,
            losses: Vec::new(),
            aborted: None,
            n_moves: 0,
            control: None,
        }
    }

    /// The error for an agent gone silent before the run started.
    fn silent_before_start(&self, s: &Silent) -> anyhow::Error {
        let name = self
            .agents
            .get(&s.agent)
            .map_or(s.agent.to_string(), |a| a.name.clone());
        anyhow::anyhow!(
            "agent {name} went silent before the run started (nothing heard for {:.1} s): is it stopped or cut off?",
            s.silent_for.as_secs_f64()
        )
    }

    /// Waits until `n` agents have attached.
    pub async fn wait_attached(
        &mut self,
        n: usize,
        timeout: Duration,
        mut processes: Option<&mut AgentProcesses>,
        cancel: &CancellationToken,
        hint: &str,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut tick = tokio::time::interval(TICK);
        while self.order.len() < n {
            tokio::select! {
                () = cancel.cancelled() => bail!("interrupted while waiting for agents"),
                () = tokio::time::sleep_until(deadline) => bail!(
                    "only {} of {n} agents attached within {}: {hint}",
                    self.order.len(),
                    common::duration::format_duration(timeout)
                ),
                _ = tick.tick() => {
                    publish(&self.live, &self.agents, None);
                    if let Some(p) = processes.as_deref_mut()
                        && let Some(exit) = p.exited()
                    {
                        bail!("{exit} before attaching (see its log above)");
                    }
                }
                Some(s) = self.silent.recv() => return Err(self.silent_before_start(&s)),
                ev = self.events.recv() => match ev {
                    Some(ev) => self.handle_pre_start(ev)?,
                    None => bail!("the gRPC service stopped"),
                },
            }
        }
        tracing::info!(n_agents = n, "all agents attached");
        Ok(())
    }

    /// Events before `Start`: attachment, readiness, liveness.
    fn handle_pre_start(&mut self, ev: AgentEvent) -> anyhow::Result<()> {
        match ev {
            AgentEvent::Attached {
                agent,
                name,
                outbound,
            } => {
                tracing::info!(agent = %agent, "agent attached");
                let region = self.registry.region(&agent).unwrap_or_default();
                self.aggregate.regions.place(&agent, &name, region);
                self.order.push(agent.clone());
                self.agents.insert(agent, AgentState::new(name, outbound));
            }
            AgentEvent::Message { agent, message } => {
                let Some(state) = self.agents.get_mut(&agent) else {
                    return Ok(());
                };
                match message {
                    FromAgent::Ready(r) => {
                        if r.sessions_failed > 0 {
                            tracing::warn!(agent = %agent, failed = r.sessions_failed, open = r.sessions_open,
                                samples = ?r.failure_samples, "some MCP sessions failed to open");
                        }
                        state.ready = Some(r);
                        state.transition(Phase::Ready);
                    }
                    FromAgent::Failure { message } => {
                        bail!("agent {} failed: {message}", state.name);
                    }
                    _ => {}
                }
            }
            AgentEvent::Detached { agent, reason } => {
                let name = self
                    .agents
                    .get(&agent)
                    .map_or(agent.to_string(), |s| s.name.clone());
                bail!(
                    "agent {name} went away before the run started{}",
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// Sends each agent its assignment; `assignments[i]` goes to `order[i]`.
    pub async fn assign(&mut self, assignments: Vec<Assignment>) -> anyhow::Result<()> {
        for (id, a) in self.order.clone().iter().zip(assignments) {
            if self.settings.is_none() {
                self.settings = Some(a.settings.clone());
            }
            let users: Vec<UserName> = a
                .groups
                .iter()
                .flat_map(|g| g.users.iter().map(|u| u.name.clone()))
                .collect();
            for u in &users {
                self.user_agent.insert(u.clone(), id.clone());
            }
            let Some(state) = self.agents.get_mut(id) else {
                continue;
            };
            state.users = users;
            state.rate_share = a.settings.rate_share;
            state.groups = a
                .groups
                .iter()
                .map(|g| GroupUsers {
                    index: g.index,
                    users: g
                        .users
                        .iter()
                        .map(|u| (u.index, u.name.clone(), u.rank))
                        .collect(),
                })
                .collect();
            state.send(ToAgent::Assignment(Box::new(a))).await?;
            state.transition(Phase::Assigned);
        }
        Ok(())
    }

    /// Waits until every agent has opened its sessions.
    /// Tokens keep being refreshed meanwhile: opening many sessions can
    /// outlast a short-lived token.
    pub async fn wait_ready(
        &mut self,
        timeout: Duration,
        tokens: &mut Tokens,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.agents.values().any(|a| a.phase != Phase::Ready) {
            tokio::select! {
                () = cancel.cancelled() => bail!("interrupted while agents were opening MCP sessions"),
                () = tokio::time::sleep_until(deadline) => {
                    let waiting: Vec<&str> = self.agents.values().filter(|a| a.phase != Phase::Ready).map(|a| a.name.as_str()).collect();
                    bail!("agents {} not ready within {}", waiting.join(", "), common::duration::format_duration(timeout));
                }
                Some(update) = tokens.updates.recv() => self.push_token(update).await,
                Some(s) = self.silent.recv() => return Err(self.silent_before_start(&s)),
                ev = self.events.recv() => match ev {
                    Some(AgentEvent::Message { message: FromAgent::RefreshRequest { user }, .. }) => {
                        tokens.request(user);
                    }
                    Some(ev) => self.handle_pre_start(ev)?,
                    None => bail!("the gRPC service stopped"),
                },
            }
        }
        let open: u32 = self
            .agents
            .values()
            .filter_map(|a| a.ready.as_ref())
            .map(|r| r.sessions_open)
            .sum();
        if open == 0 {
            let samples: Vec<String> = self
                .agents
                .values()
                .filter_map(|a| a.ready.as_ref())
                .flat_map(|r| r.failure_samples.iter().cloned())
                .take(3)
                .collect();
            bail!("no agent could open an MCP session: {}", samples.join("; "));
        }
        tracing::info!(sessions = open, "all agents ready");
        publish(&self.live, &self.agents, None);
        Ok(())
    }

    /// Tells every agent when to start; returns the schedule.
    pub async fn start(
        &mut self,
        warmup: Duration,
        duration: Duration,
    ) -> anyhow::Result<Schedule> {
        let started_at = SystemTime::now() + START_DELAY;
        let cmd = StartCommand {
            start_at: started_at,
            warmup,
            duration,
        };
        for state in self.agents.values_mut() {
            state.send(ToAgent::Start(cmd)).await?;
            state.transition(Phase::Running);
        }
        Ok(Schedule {
            started_at,
            measure_from: started_at + warmup,
            end_at: started_at + warmup + duration,
        })
    }

    /// Runs until every agent has sent its final report or is lost. At the
    /// drain deadline (or on `cancel`, or an abort) agents that have not
    /// begun their final report are stopped; from then on an agent is lost
    /// only if it goes silent (the watchdog), leaves, or is still without a
    /// complete report `drain + FINAL_REPORT_ALLOWANCE` later — a live agent
    /// slow to drain is waited for. A `steer` may change the load on the way.
    pub async fn collect(
        &mut self,
        schedule: Schedule,
        drain: Duration,
        tokens: &mut Tokens,
        cancel: &CancellationToken,
        mut steer: Option<&mut dyn Steer>,
    ) -> Collected {
        let until_end = schedule
            .end_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let mut deadline = tokio::time::Instant::now() + until_end + drain;
        // Past `Stop`, agents still heard from are waited for this long.
        let after_stop = drain + FINAL_REPORT_ALLOWANCE;
        let mut stopped = false;
        let mut interrupted = false;
        let mut abort_handled = false;
        let mut tick = tokio::time::interval(TICK);
        while !self.agents.values().all(AgentState::finished) {
            tokio::select! {
                () = cancel.cancelled(), if !interrupted => {
                    tracing::warn!("interrupted: stopping agents and collecting their final reports");
                    interrupted = true;
                    stopped = true;
                    self.stop_all("interrupted").await;
                    deadline = tokio::time::Instant::now() + after_stop;
                }
                () = tokio::time::sleep_until(deadline) => {
                    if stopped {
                        self.past_hard_bound(after_stop, tokens, &schedule).await;
                        break;
                    }
                    stopped = true;
                    self.stop_overrunning().await;
                    deadline = tokio::time::Instant::now() + after_stop;
                }
                _ = tick.tick() => {
                    if let Some(steer) = steer.as_deref_mut() && !stopped {
                        self.steer(steer).await;
                    }
                    publish(&self.live, &self.agents, Some(&schedule));
                }
                Some(update) = tokens.updates.recv() => self.push_token(update).await,
                Some(s) = self.silent.recv() => {
                    let draining = if stopped { ", its final report incomplete" } else { "" };
                    let reason = format!("silent for {:.1} s{draining}", s.silent_for.as_secs_f64());
                    self.lost(&s.agent, reason, Some(s.last_heard), tokens, &schedule, stopped).await;
                }
                ev = self.events.recv() => match ev {
                    Some(ev) => self.handle_running(ev, &schedule, tokens, stopped).await,
                    None => break,
                },
            }
            if let Some(name) = &self.aborted
                && !abort_handled
            {
                abort_handled = true;
                tracing::warn!(agent = %name, "agent lost: stopping the run (--on-agent-loss abort)");
                if !stopped {
                    stopped = true;
                    self.stop_all("an agent was lost (--on-agent-loss abort)")
                        .await;
                    deadline = tokio::time::Instant::now() + after_stop;
                }
            }
        }
        Collected {
            interrupted,
            aborted: self.aborted.clone(),
            ended_at: SystemTime::now(),
        }
    }

    async fn handle_running(
        &mut self,
        ev: AgentEvent,
        schedule: &Schedule,
        tokens: &Tokens,
        stopped: bool,
    ) {
        match ev {
            AgentEvent::Attached { agent, .. } => {
                tracing::warn!(agent = %agent, "agent attached after the start; ignored");
            }
            AgentEvent::Message { agent, message } => {
                let Some(state) = self.agents.get_mut(&agent) else {
                    return;
                };
                match message {
                    FromAgent::Interval(i) => {
                        state.intervals_received += 1;
                        state.generator = i.generator;
                        let window = Window {
                            from: schedule.measure_from,
                            until: schedule.end_at,
                        };
                        let lag = SystemTime::now()
                            .duration_since(i.start + i.length)
                            .unwrap_or_default();
                        let region = self.registry.region(&agent).unwrap_or_default();
                        self.live.update(|f| {
                            // The drain's calls are not the window's.
                            f.add(
                                region.as_str(),
                                &i.series,
                                i.start >= schedule.measure_from && i.start < schedule.end_at,
                            );
                            f.interval_lag = lag;
                            f.failures.merge(&i.failures);
                        });
                        // The live view counts from `self.live`, fed above.
                        self.aggregate.interval(&agent, i, window);
                    }
                    FromAgent::Final(f) => {
                        state.final_begun = true;
                        if f.chunk_index == 0 {
                            state.generator = f.generator;
                        }
                        match self.aggregate.final_chunk(&agent, *f) {
                            Folded::FinalComplete => {
                                tracing::info!(agent = %state.name, "final report received");
                                state.transition(Phase::Finished);
                                self.registry.retire(&agent);
                            }
                            Folded::Refused(why) => {
                                tracing::warn!(agent = %state.name, %why, "final report chunk ignored");
                                self.failures.push(format!("{}: {why}", state.name));
                            }
                            Folded::FinalChunk | Folded::Interval { .. } => {}
                        }
                    }
                    FromAgent::RefreshRequest { user } => tokens.request(user),
                    FromAgent::Failure { message } => {
                        tracing::warn!(agent = %state.name, %message, "agent reported a failure");
                        self.failures.push(format!("{}: {message}", state.name));
                    }
                    FromAgent::GroupsAdded(added) => self.groups_added(&agent, added),
                    // Heartbeats come from the start, intervals only once the
                    // window opens: warmup shows its users from them.
                    FromAgent::Heartbeat { active_vusers } => {
                        state.generator.active_vusers = u64::from(active_vusers);
                    }
                    FromAgent::Ready(_) => {}
                }
            }
            AgentEvent::Detached { agent, reason } => {
                if self.agents.get(&agent).is_some_and(|a| !a.finished()) {
                    let reason = format!(
                        "left without a final report ({})",
                        reason.as_deref().unwrap_or("stream closed")
                    );
                    let heard = self.registry.last_heard_at(&agent);
                    self.lost(&agent, reason, heard, tokens, schedule, stopped)
                        .await;
                }
            }
        }
    }

    /// Asks `steer` for a load update and sends it to every running agent.
    async fn steer(&mut self, steer: &mut dyn Steer) {
        let running: Vec<AgentId> = self
            .order
            .iter()
            .filter(|id| {
                self.agents
                    .get(*id)
                    .is_some_and(|a| a.phase == Phase::Running)
            })
            .cloned()
            .collect();
        let Some(update) = steer.tick(SystemTime::now(), &mut self.aggregate.probe, &running)
        else {
            return;
        };
        for id in &running {
            if let Some(state) = self.agents.get(id)
                && let Err(e) = state.send(ToAgent::LoadUpdate(update.clone())).await
            {
                tracing::warn!(error = %e, "load update not delivered");
            }
        }
    }

    /// Pushes a new token to the agent that holds the user.
    async fn push_token(&mut self, update: TokenUpdate) {
        let agent = self.user_agent.get(&update.user);
        if let Some(state) = agent.and_then(|a| self.agents.get(a))
            && !state.finished()
        {
            match state.send(ToAgent::TokenUpdate(update)).await {
                Ok(()) => self.live.update(|f| f.token_refreshes += 1),
                Err(e) => tracing::debug!(error = %e, "token update not delivered"),
            }
        }
    }

    /// At the drain deadline: stops the agents still running their load;
    /// those already sending their final report need no `Stop`.
    async fn stop_overrunning(&mut self) {
        let overran: Vec<&str> = self
            .agents
            .values()
            .filter(|a| !a.finished() && !a.final_begun)
            .map(|a| a.name.as_str())
            .collect();
        if overran.is_empty() {
            tracing::info!("final reports still arriving past the drain deadline; waiting");
            return;
        }
        tracing::warn!(agents = %overran.join(", "), "agents overran the run: stopping them");
        for state in self
            .agents
            .values()
            .filter(|a| !a.finished() && !a.final_begun)
        {
            let _ = state
                .send(ToAgent::Stop {
                    reason: "run over".to_owned(),
                })
                .await;
        }
    }

    /// `after_stop` past `Stop`: every agent still without a complete final
    /// report is lost, with a reason that says whether it was still heard
    /// from (wedged) or had gone quiet.
    async fn past_hard_bound(
        &mut self,
        after_stop: Duration,
        tokens: &Tokens,
        schedule: &Schedule,
    ) {
        let late: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, a)| !a.finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            let heard = self.registry.last_heard(&id).map(|h| h.elapsed());
            let reason = late_reason(heard, after_stop);
            let heard_at = self.registry.last_heard_at(&id);
            self.lost(&id, reason, heard_at, tokens, schedule, true)
                .await;
        }
    }

    pub async fn stop_all(&mut self, reason: &str) {
        for state in self.agents.values().filter(|a| !a.finished()) {
            let _ = state
                .send(ToAgent::Stop {
                    reason: reason.to_owned(),
                })
                .await;
        }
    }

    /// Ends every stream (agents see the end and exit).
    pub fn close(&mut self) {
        for state in self.agents.values_mut() {
            state.close();
        }
    }

    /// The run's merged series, what each agent contributed and the
    /// agents lost, for the report (moved out: call once).
    pub fn take_results(&mut self) -> Results {
        let (merged, mut outcomes) = self.aggregate.finish();
        let losses = self.loss_report(&outcomes);
        let mut results = Vec::with_capacity(self.order.len());
        for id in &self.order {
            let Some(s) = self.agents.get(id) else {
                continue;
            };
            let outcome = outcomes.remove(id);
            let head = outcome.as_ref().and_then(|o| o.head.as_ref());
            results.push(AgentResult {
                id: id.clone(),
                name: s.name.clone(),
                n_users: s.users.len(),
                lost: s.phase == Phase::Lost,
                final_received: head.is_some(),
                totals: outcome
                    .as_ref()
                    .map(|o| o.totals.clone())
                    .unwrap_or_default(),
                generator: head.map_or_else(|| s.generator, |h| h.generator),
                mcp: head.map(|h| h.mcp).unwrap_or_else(McpStats::default),
                intervals_received: s.intervals_received,
            });
        }
        Results {
            regions: self.aggregate.regions.take(),
            series: merged,
            agents: results,
            losses,
        }
    }

    /// The cluster timeline, one point per second of the measurement
    /// window (moved out: call once).
    pub fn take_intervals(&mut self) -> Vec<IntervalPoint> {
        self.aggregate.take_intervals()
    }

    /// Per series, executions completed in the drain (moved out: call once).
    pub fn take_drain(&mut self) -> std::collections::BTreeMap<common::series::SeriesKey, u64> {
        self.aggregate.take_drain()
    }

    /// Why steps failed, from every agent (moved out: call once).
    pub fn take_failures(&mut self) -> common::failures::FailureBook {
        self.aggregate.take_failures()
    }
}

/// Why an agent without a complete final report `after_stop` past `Stop`
/// is lost; `heard_ago`: how long since its last message.
fn late_reason(heard_ago: Option<Duration>, after_stop: Duration) -> String {
    let bound = common::duration::format_duration(after_stop);
    match heard_ago {
        Some(ago) if ago <= AGENT_LOST_AFTER => format!(
            "still heard from ({:.1} s ago) but no complete final report {bound} after Stop (the hard bound): wedged?",
            ago.as_secs_f64()
        ),
        Some(ago) => format!(
            "no complete final report {bound} after Stop, silent for {:.1} s",
            ago.as_secs_f64()
        ),
        None => format!("no complete final report {bound} after Stop"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_agent_is_lost_for_being_wedged_or_silent() {
        let check = |heard: Option<u64>, expected: &str| {
            let reason = late_reason(heard.map(Duration::from_millis), Duration::from_secs(150));
            assert!(reason.contains(expected), "{heard:?}: {reason}");
        };
        check(Some(300), "still heard from (0.3 s ago)");
        check(Some(300), "wedged?");
        check(Some(4_000), "still heard from");
        check(Some(9_500), "silent for 9.5 s");
        check(None, "no complete final report 2m 30s after Stop");
    }
}
