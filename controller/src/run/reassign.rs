//! Re-assignment (`--on-agent-loss reassign`, SPEC §5): where a lost agent's
//! user groups go (each whole group to the surviving agent that holds the
//! fewest users so far, so no workflow crosses agents), how much of the
//! open-model rate moves with them, and the record of every move for the
//! report.

use std::collections::BTreeMap;
use std::time::SystemTime;

use common::ids::{AgentId, UserName};

use super::agents::Phase;
use super::aggregate::AgentOutcome;
use super::session::{Schedule, Session};
use crate::messages::{Assignment, GroupsAddedReport, RunSettings, ToAgent, VuserGroup, VuserSpec};
use crate::report::{AgentLoss, UserMove};
use crate::settings::agents::OnAgentLoss;
use crate::tokens::Tokens;

/// One group of an agent's assignment, without tokens (those come from the
/// token task, current, when the group moves).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupUsers {
    pub index: u32,
    /// (user index, name, activation rank)
    pub users: Vec<(u32, UserName, u32)>,
}

/// Spreads `groups` over `receivers` ((agent, users it holds now)): each
/// group, largest first, to the receiver holding the fewest users so far
/// (ties: the first listed). Empty when there is no receiver.
pub fn distribute(
    mut groups: Vec<GroupUsers>,
    receivers: &[(AgentId, usize)],
) -> BTreeMap<AgentId, Vec<GroupUsers>> {
    let mut out: BTreeMap<AgentId, Vec<GroupUsers>> = BTreeMap::new();
    if receivers.is_empty() {
        return out;
    }
    let mut load: Vec<usize> = receivers.iter().map(|(_, n)| *n).collect();
    groups.sort_by(|a, b| {
        b.users
            .len()
            .cmp(&a.users.len())
            .then(a.index.cmp(&b.index))
    });
    for group in groups {
        let (i, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, n)| (**n, *i))
            .unwrap_or((0, &0));
        load[i] += group.users.len();
        out.entry(receivers[i].0.clone()).or_default().push(group);
    }
    out
}

/// The part of a lost agent's open-model rate (or rate share) that moves
/// with `moved` of its `total` users.
pub fn rate_share(rate: f64, moved: usize, total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    rate * moved as f64 / total as f64
}

/// One agent lost during the run.
#[derive(Debug, Clone)]
pub struct Loss {
    pub agent: AgentId,
    pub name: String,
    pub lost_at: SystemTime,
    /// When its last message arrived: its users idle from then on.
    pub last_heard_at: SystemTime,
    pub reason: String,
    pub moves: Vec<Move>,
}

/// Groups moved from a lost agent to one surviving agent.
#[derive(Debug, Clone)]
pub struct Move {
    /// The `AddGroups` assignment id, which the agent's `GroupsAdded` echoes.
    pub id: String,
    pub to: AgentId,
    pub to_name: String,
    pub users: Vec<UserName>,
    pub sent_at: SystemTime,
    /// When the users started working on `to` (from its `GroupsAdded`).
    pub resumed_at: Option<SystemTime>,
    pub sessions_open: u32,
    pub sessions_failed: u32,
}

impl Session {
    /// Marks `agent` lost (once) and applies `--on-agent-loss`; `stopping`:
    /// the run is being stopped, nothing moves any more.
    pub(super) async fn lost(
        &mut self,
        agent: &AgentId,
        reason: String,
        last_heard_at: Option<SystemTime>,
        tokens: &Tokens,
        schedule: &Schedule,
        stopping: bool,
    ) {
        let Some(state) = self.agents.get_mut(agent) else {
            return;
        };
        if !state.transition(Phase::Lost) {
            return;
        }
        self.registry.retire(agent);
        let name = state.name.clone();
        let lost_at = SystemTime::now();
        tracing::warn!(agent = %name, %reason, policy = self.policy.name(), "agent lost; the report keeps what it sent");
        let mut loss = Loss {
            agent: agent.clone(),
            name: name.clone(),
            lost_at,
            last_heard_at: last_heard_at.unwrap_or(lost_at),
            reason,
            moves: Vec::new(),
        };
        match self.policy {
            OnAgentLoss::Continue => {}
            OnAgentLoss::Abort => {
                self.aborted.get_or_insert(name);
            }
            OnAgentLoss::Reassign if !stopping && lost_at < schedule.end_at => {
                loss.moves = self.reassign(agent, tokens).await;
            }
            OnAgentLoss::Reassign => {}
        }
        self.losses.push(loss);
    }

    /// Sends the lost agent's groups, with current tokens, to the agents
    /// still running; returns the moves.
    async fn reassign(&mut self, lost: &AgentId, tokens: &Tokens) -> Vec<Move> {
        let Some(state) = self.agents.get_mut(lost) else {
            return Vec::new();
        };
        let groups = std::mem::take(&mut state.groups);
        let lost_share = state.rate_share;
        let lost_name = state.name.clone();
        let total: usize = groups.iter().map(|g| g.users.len()).sum();
        let receivers: Vec<(AgentId, usize)> = self
            .agents
            .iter()
            .filter(|(_, a)| a.phase == Phase::Running)
            .map(|(id, a)| (id.clone(), a.users.len()))
            .collect();
        let Some(template) = self.settings.clone() else {
            return Vec::new();
        };
        if total == 0 {
            return Vec::new();
        }
        if receivers.is_empty() {
            tracing::warn!(agent = %lost_name, n_users = total, "no agent left to take the lost agent's users");
            return Vec::new();
        }
        let mut moves = Vec::new();
        for (to, groups) in distribute(groups, &receivers) {
            let users: Vec<UserName> = groups
                .iter()
                .flat_map(|g| g.users.iter().map(|(_, u, _)| u.clone()))
                .collect();
            // From now on refreshed tokens go to the new holder.
            for u in &users {
                self.user_agent.insert(u.clone(), to.clone());
            }
            let current: BTreeMap<UserName, _> = tokens
                .current(users.clone())
                .await
                .into_iter()
                .map(|t| (t.user.clone(), t))
                .collect();
            let vuser_groups = groups
                .iter()
                .map(|g| VuserGroup {
                    index: g.index,
                    users: g
                        .users
                        .iter()
                        .map(|(index, name, rank)| {
                            let t = current.get(name);
                            VuserSpec {
                                index: *index,
                                name: name.clone(),
                                rank: *rank,
                                access_token: t.map(|t| t.access_token.clone()).unwrap_or_default(),
                                expires_at_ms: t.map_or(0, |t| t.expires_at_ms),
                            }
                        })
                        .collect(),
                })
                .collect();
            self.n_moves += 1;
            let id = format!("{lost}-moved-{}", self.n_moves);
            self.aggregate.watch(&to, &users);
            let Some(receiver) = self.agents.get_mut(&to) else {
                continue;
            };
            receiver.groups.extend(groups);
            receiver.users.extend(users.iter().cloned());
            let moved_share = rate_share(lost_share, users.len(), total);
            receiver.rate_share += moved_share;
            let assignment = Assignment {
                id: id.clone(),
                settings: RunSettings {
                    rate_share: moved_share,
                    ..template.clone()
                },
                groups: vuser_groups,
            };
            tracing::info!(from = %lost_name, to = %receiver.name, n_users = users.len(), rate_share = moved_share, "moving users of a lost agent");
            if let Err(e) = receiver
                .send(ToAgent::AddGroups(Box::new(assignment)))
                .await
            {
                tracing::warn!(to = %receiver.name, error = %e, "moved users not delivered");
            }
            moves.push(Move {
                id,
                to: to.clone(),
                to_name: receiver.name.clone(),
                users,
                sent_at: SystemTime::now(),
                resumed_at: None,
                sessions_open: 0,
                sessions_failed: 0,
            });
        }
        moves
    }

    /// An agent says moved users run on it now.
    pub(super) fn groups_added(&mut self, agent: &AgentId, added: GroupsAddedReport) {
        let Some(m) = self
            .losses
            .iter_mut()
            .flat_map(|l| l.moves.iter_mut())
            .find(|m| m.id == added.assignment_id && &m.to == agent)
        else {
            tracing::warn!(agent = %agent, id = %added.assignment_id, "GroupsAdded for no known move");
            return;
        };
        m.resumed_at = Some(added.started_at);
        m.sessions_open = added.sessions_open;
        m.sessions_failed = added.sessions_failed;
        if added.sessions_failed > 0 {
            tracing::warn!(agent = %m.to_name, failed = added.sessions_failed, samples = ?added.failure_samples, "some moved users' sessions failed to open");
        }
        tracing::info!(agent = %m.to_name, n_users = m.users.len(), "moved users running again");
    }

    /// The losses as the report shows them, with what each moved user did
    /// on its new agent.
    pub(super) fn loss_report(&self, outcomes: &BTreeMap<AgentId, AgentOutcome>) -> Vec<AgentLoss> {
        self.losses
            .iter()
            .map(|l| AgentLoss {
                agent_id: l.agent.clone(),
                agent: l.name.clone(),
                lost_at: l.lost_at,
                last_heard_at: l.last_heard_at,
                reason: l.reason.clone(),
                policy: self.policy.name().to_owned(),
                moves: l
                    .moves
                    .iter()
                    .map(|m| {
                        let done = outcomes.get(&m.to).map(|o| &o.moved_operations);
                        UserMove {
                            to: m.to_name.clone(),
                            users: m
                                .users
                                .iter()
                                .map(|u| {
                                    let ops = done.and_then(|d| d.get(u)).copied().unwrap_or(0);
                                    (u.to_string(), ops)
                                })
                                .collect(),
                            sent_at: m.sent_at,
                            resumed_at: m.resumed_at,
                            sessions_open: m.sessions_open,
                            sessions_failed: m.sessions_failed,
                        }
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(index: u32, n: usize) -> GroupUsers {
        GroupUsers {
            index,
            users: (0..n)
                .map(|i| (i as u32, UserName::new(format!("g{index}u{i}")), 0))
                .collect(),
        }
    }

    fn check(groups: &[(u32, usize)], receivers: &[(&str, usize)], expected: &[(&str, &[u32])]) {
        let receivers: Vec<(AgentId, usize)> = receivers
            .iter()
            .map(|(a, n)| (AgentId::new(*a), *n))
            .collect();
        let got = distribute(
            groups.iter().map(|(i, n)| group(*i, *n)).collect(),
            &receivers,
        );
        let got: Vec<(String, Vec<u32>)> = got
            .into_iter()
            .map(|(a, gs)| (a.to_string(), gs.iter().map(|g| g.index).collect()))
            .collect();
        let expected: Vec<(String, Vec<u32>)> = expected
            .iter()
            .map(|(a, gs)| ((*a).to_owned(), gs.to_vec()))
            .collect();
        assert_eq!(got, expected, "groups {groups:?} over {receivers:?}");
    }

    #[test]
    fn groups_go_whole_to_the_least_loaded() {
        // Two equal survivors: the groups alternate.
        check(
            &[(0, 2), (1, 2)],
            &[("a", 2), ("b", 2)],
            &[("a", &[0]), ("b", &[1])],
        );
        // The lighter survivor takes the big group first.
        check(
            &[(0, 1), (1, 3)],
            &[("a", 4), ("b", 2)],
            &[("a", &[0]), ("b", &[1])],
        );
        // One survivor takes everything.
        check(&[(0, 2), (1, 1)], &[("a", 9)], &[("a", &[0, 1])]);
        // No survivor: nowhere to go.
        check(&[(0, 2)], &[], &[]);
    }

    #[test]
    fn every_user_moves_exactly_once() {
        let groups: Vec<GroupUsers> = (0..7).map(|i| group(i, 1 + (i as usize % 3))).collect();
        let all: usize = groups.iter().map(|g| g.users.len()).sum();
        let receivers = [
            (AgentId::new("a"), 0),
            (AgentId::new("b"), 5),
            (AgentId::new("c"), 1),
        ];
        let out = distribute(groups, &receivers);
        let moved: usize = out.values().flatten().map(|g| g.users.len()).sum();
        assert_eq!(moved, all);
        let mut indices: Vec<u32> = out.values().flatten().map(|g| g.index).collect();
        indices.sort_unstable();
        assert_eq!(indices, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn the_rate_moves_in_proportion() {
        assert_eq!(rate_share(10.0, 2, 4), 5.0);
        assert_eq!(rate_share(10.0, 4, 4), 10.0);
        assert_eq!(rate_share(10.0, 0, 0), 0.0);
    }
}
