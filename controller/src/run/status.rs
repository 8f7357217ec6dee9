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

/// Publishes the agents and, once the run is scheduled, its phase; an agent
/// lost or taking on users becomes an event on the live charts.
pub fn publish(live: &Live, agents: &BTreeMap<AgentId, AgentState>, schedule: Option<&Schedule>) {
    let views: Vec<AgentView> = agents
        .values()
        .map(|a| AgentView {
            name: a.name.clone(),
            state: state_name(a.phase),
            n_users: a.users.len() as u64,
            active: a.generator.active_vusers,
            late_starts: a.generator.late_starts,
            dropped_starts: a.generator.dropped_starts,
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
        let now = SystemTime::now();
        for event in changes(&f.agents, &views) {
            f.event(now, event);
        }
        f.agents = views;
        f.active_users = active_users;
        f.starts = starts;
        f.rotate(now);
        if let Some(s) = schedule
            && f.phase.is_running()
        {
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

/// What changed between two views of the agents worth a mark on the charts.
fn changes(before: &[AgentView], after: &[AgentView]) -> Vec<String> {
    let mut events = Vec::new();
    for a in after {
        let Some(b) = before.iter().find(|b| b.name == a.name) else {
            continue;
        };
        if a.state == "lost" && b.state != "lost" {
            events.push(format!("agent {} lost ({} users)", a.name, b.n_users));
        } else if a.n_users > b.n_users && a.state != "lost" {
            events.push(format!(
                "agent {} took {} moved users",
                a.name,
                a.n_users - b.n_users
            ));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, state: &'static str, n_users: u64) -> AgentView {
        AgentView {
            name: name.to_owned(),
            state,
            n_users,
            ..AgentView::default()
        }
    }

    #[test]
    fn a_loss_and_a_move_are_events_and_nothing_else_is() {
        let before = [view("a", "running", 4), view("b", "running", 4)];
        let after = [view("a", "lost", 4), view("b", "running", 8)];
        assert_eq!(
            changes(&before, &after),
            vec!["agent a lost (4 users)", "agent b took 4 moved users"]
        );
        assert!(changes(&after, &after).is_empty());
        assert!(
            changes(&[], &after).is_empty(),
            "agents attaching are not events"
        );
    }
}
