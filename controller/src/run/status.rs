//! What the run publishes to its live figures (`observe::Live`) besides
//! the interval deltas: each agent's state, the users running and the phase.
//! The progress view and `--http` read them from there.

use std::collections::BTreeMap;
use std::time::SystemTime;

use common::ids::AgentId;
use observe::{AgentView, Live, Phase as RunPhase};

use super::agents::{AgentState, Phase};
use super::session::Schedule;

fn state_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Attached | Phase::Assigned => "attached",
        Phase::Ready => "ready",
        Phase::Running => "running",
        Phase::Finished => "done",
        Phase::Lost => "lost",
    }
}

/// Publishes the agents and, once the run is scheduled, its phase.
pub fn publish(live: &Live, agents: &BTreeMap<AgentId, AgentState>, schedule: Option<&Schedule>) {
    let views: Vec<AgentView> = agents
        .values()
        .map(|a| AgentView {
            name: a.name.clone(),
            state: state_name(a.phase),
            n_users: a.users.len() as u64,
        })
        .collect();
    let active_users = agents
        .values()
        .filter(|a| a.phase == Phase::Running)
        .map(|a| a.generator.active_vusers)
        .sum();
    let mut starts = observe::StartCounts::default();
    for a in agents.values() {
        starts.offered += a.generator.offered_starts;
        starts.dropped += a.generator.dropped_starts;
        starts.late += a.generator.late_starts;
    }
    live.update(|f| {
        f.agents = views;
        f.active_users = active_users;
        f.starts = starts;
        if let Some(s) = schedule
            && f.phase.is_running()
        {
            let now = SystemTime::now();
            f.phase = if now < s.measure_from {
                RunPhase::Warmup
            } else if now < s.end_at {
                RunPhase::Measuring
            } else {
                RunPhase::Draining
            };
        }
    });
}
