//! The run as the agents see it: attach, assign, ready, start, collect.
//! Moves each agent through its phases (`agents`), notices lost agents,
//! passes refresh requests to the token task and pushes its new tokens, and
//! hands what agents measured to the `Aggregate`, which folds it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::bail;
use common::ids::{AgentId, UserName};
use common::series::SeriesSet;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::agents::{AgentState, Phase};
use super::aggregate::{Aggregate, Folded, Window};
use super::status::publish;
use super::steer::Steer;
use crate::messages::{AgentEvent, Assignment, FromAgent, StartCommand, ToAgent, TokenUpdate};
use crate::registry::Registry;
use crate::report::{AgentResult, IntervalPoint, McpStats};
use crate::spawn::AgentProcesses;
use crate::tokens::Tokens;

/// An agent silent this long is lost (heartbeats come every second).
pub const AGENT_LOST_AFTER: Duration = Duration::from_secs(5);
/// Agents start this long after `Start` is sent, all at the same instant.
pub const START_DELAY: Duration = Duration::from_millis(300);
/// After `Stop`, how long agents get to send their final reports.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
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
    registry: Arc<Registry>,
    pub agents: BTreeMap<AgentId, AgentState>,
    /// Attach order: the plan's agent `i` is `order[i]`.
    pub order: Vec<AgentId>,
    user_agent: BTreeMap<UserName, AgentId>,
    /// What the agents measured, folded as it arrives.
    aggregate: Aggregate,
    pub failures: Vec<String>,
    /// What the progress view and `--http` show.
    pub live: observe::Live,
}

pub struct Collected {
    pub interrupted: bool,
    pub ended_at: SystemTime,
}

impl Session {
    pub fn new(
        events: mpsc::Receiver<AgentEvent>,
        registry: Arc<Registry>,
        live: observe::Live,
    ) -> Session {
        Session {
            events,
            registry,
            agents: BTreeMap::new(),
            order: Vec::new(),
            user_agent: BTreeMap::new(),
            aggregate: Aggregate::default(),
            failures: Vec::new(),
            live,
        }
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
                self.order.push(agent.clone());
                self.agents.insert(agent, AgentState::new(name, outbound));
            }
            AgentEvent::Message { agent, message } => {
                let Some(state) = self.agents.get_mut(&agent) else {
                    return Ok(());
                };
                state.last_seen = Instant::now();
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
                ev = self.events.recv() => match ev {
                    Some(AgentEvent::Message { agent, message: FromAgent::RefreshRequest { user } }) => {
                        self.heard(&agent);
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

    /// Runs until every agent has sent its final report or is lost, the
    /// drain deadline passes, or `cancel` fires (then agents are stopped).
    /// A `steer` may change the load on the way.
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
        let mut stopped = false;
        let mut interrupted = false;
        let mut tick = tokio::time::interval(TICK);
        while !self.agents.values().all(AgentState::finished) {
            tokio::select! {
                () = cancel.cancelled(), if !interrupted => {
                    tracing::warn!("interrupted: stopping agents and collecting their final reports");
                    interrupted = true;
                    stopped = true;
                    self.stop_all("interrupted").await;
                    deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
                }
                () = tokio::time::sleep_until(deadline) => {
                    if stopped {
                        for state in self.agents.values_mut().filter(|a| !a.finished()) {
                            tracing::warn!(agent = %state.name, "no final report: reporting it as lost");
                            state.transition(Phase::Lost);
                        }
                        break;
                    }
                    tracing::warn!("agents overran the run: stopping them");
                    stopped = true;
                    self.stop_all("run over").await;
                    deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
                }
                _ = tick.tick() => {
                    self.check_lost();
                    if let Some(steer) = steer.as_deref_mut() && !stopped {
                        self.steer(steer).await;
                    }
                    publish(&self.live, &self.agents, Some(&schedule));
                }
                Some(update) = tokens.updates.recv() => self.push_token(update).await,
                ev = self.events.recv() => match ev {
                    Some(ev) => self.handle_running(ev, &schedule, tokens),
                    None => break,
                },
            }
        }
        Collected {
            interrupted,
            ended_at: SystemTime::now(),
        }
    }

    fn handle_running(&mut self, ev: AgentEvent, schedule: &Schedule, tokens: &Tokens) {
        match ev {
            AgentEvent::Attached { agent, .. } => {
                tracing::warn!(agent = %agent, "agent attached after the start; ignored");
            }
            AgentEvent::Message { agent, message } => {
                let Some(state) = self.agents.get_mut(&agent) else {
                    return;
                };
                state.last_seen = Instant::now();
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
                        self.live.update(|f| {
                            f.add(&i.series, i.start >= schedule.measure_from);
                            f.interval_lag = lag;
                        });
                        // The live view counts from `self.live`, fed above.
                        self.aggregate.interval(&agent, i, window);
                    }
                    FromAgent::Final(f) => {
                        if f.chunk_index == 0 {
                            state.generator = f.generator;
                        }
                        match self.aggregate.final_chunk(&agent, f) {
                            Folded::FinalComplete => {
                                tracing::info!(agent = %state.name, "final report received");
                                state.transition(Phase::Finished);
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
                    FromAgent::Heartbeat { .. } | FromAgent::Ready(_) => {}
                }
            }
            AgentEvent::Detached { agent, reason } => {
                if let Some(state) = self.agents.get_mut(&agent)
                    && !state.finished()
                {
                    tracing::warn!(agent = %state.name, reason = reason.as_deref().unwrap_or("stream closed"),
                        "agent left without a final report: reporting it as lost");
                    state.transition(Phase::Lost);
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

    fn heard(&mut self, agent: &AgentId) {
        if let Some(state) = self.agents.get_mut(agent) {
            state.last_seen = Instant::now();
        }
    }

    /// Agents silent too long are lost; arrival times come from the
    /// service, so events still queued for this loop count as heard.
    fn check_lost(&mut self) {
        for (id, state) in &mut self.agents {
            let heard = self
                .registry
                .last_heard(id)
                .map_or(state.last_seen, |h| h.max(state.last_seen));
            if !state.finished() && heard.elapsed() > AGENT_LOST_AFTER {
                tracing::warn!(agent = %state.name, silent = ?heard.elapsed(), "agent lost");
                state.transition(Phase::Lost);
            }
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

    /// The run's merged series and what each agent contributed, for the
    /// report (moved out: call once).
    pub fn take_results(&mut self) -> (SeriesSet, Vec<AgentResult>) {
        let (merged, mut outcomes) = self.aggregate.finish();
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
        (merged, results)
    }

    /// The cluster timeline, one point per second of the measurement
    /// window (moved out: call once).
    pub fn take_intervals(&mut self) -> Vec<IntervalPoint> {
        self.aggregate.take_intervals()
    }

    /// Why steps failed, from every agent (moved out: call once).
    pub fn take_failures(&mut self) -> common::failures::FailureBook {
        self.aggregate.take_failures()
    }
}
