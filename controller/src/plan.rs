//! The plan (pure): users → groups → agents, and the open model's rate split.
//!
//! A group holds the users that run multi-user workflows together, so no
//! workflow crosses agents: every group lands wholly on one agent. Groups
//! have the size of the largest workflow of the mix; a trailing short group
//! only runs the workflows that fit it (agents skip a workflow with more
//! roles than its group has users).

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanInput {
    pub n_users: usize,
    pub n_agents: usize,
    /// Largest `n_roles` of the mix: the group size.
    pub group_size: usize,
    /// Smallest `n_roles` of the mix: a group smaller than this runs nothing.
    pub min_roles: usize,
    /// Open model: cluster-wide workflow starts per second.
    pub rate_per_sec: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub agents: Vec<AgentShare>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentShare {
    /// Groups of user indices (0-based into the run's user list).
    pub groups: Vec<Vec<usize>>,
    /// Open model: this agent's share of the rate, proportional to its users.
    pub rate_per_sec: Option<f64>,
}

impl AgentShare {
    pub fn n_users(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "--users {n_users} too small for the workload: needs at least {per_agent} users per agent ({n_agents} agents: --users {needed} or more)"
    )]
    TooFewUsers {
        n_users: usize,
        n_agents: usize,
        per_agent: usize,
        needed: usize,
    },
    #[error("the workload has no workflow with a positive weight")]
    EmptyMix,
}

pub fn plan(input: &PlanInput) -> Result<Plan, PlanError> {
    let PlanInput {
        n_users,
        n_agents,
        group_size,
        min_roles,
        rate_per_sec,
    } = *input;
    if group_size == 0 || n_agents == 0 {
        return Err(PlanError::EmptyMix);
    }
    let min_roles = min_roles.clamp(1, group_size);
    let too_few = || PlanError::TooFewUsers {
        n_users,
        n_agents,
        per_agent: min_roles,
        needed: min_roles * n_agents,
    };

    // Sizes of each agent's groups.
    let full = n_users / group_size;
    let rest = n_users % group_size;
    let mut sizes: Vec<Vec<usize>> = vec![Vec::new(); n_agents];
    if full >= n_agents {
        // Whole groups round-robin, the short one to a least-loaded agent.
        for g in 0..full {
            sizes[g % n_agents].push(group_size);
        }
        if rest > 0 {
            let least = (0..n_agents)
                .min_by_key(|&a| sizes[a].iter().sum::<usize>())
                .unwrap_or(0);
            sizes[least].push(rest);
        }
    } else {
        // Too few whole groups to go round: split users evenly, then group.
        for (a, agent) in sizes.iter_mut().enumerate() {
            let mut n = n_users / n_agents + usize::from(a < n_users % n_agents);
            while n > 0 {
                let g = n.min(group_size);
                agent.push(g);
                n -= g;
            }
        }
    }
    // Every agent needs a group some workflow fits.
    if sizes.iter().any(|s| !s.iter().any(|&g| g >= min_roles)) {
        return Err(too_few());
    }

    let mut next = 0;
    let agents = sizes
        .into_iter()
        .map(|group_sizes| {
            let groups: Vec<Vec<usize>> = group_sizes
                .into_iter()
                .map(|g| {
                    let group = (next..next + g).collect();
                    next += g;
                    group
                })
                .collect();
            let n: usize = groups.iter().map(Vec::len).sum();
            AgentShare {
                rate_per_sec: rate_per_sec.map(|r| r * n as f64 / n_users as f64),
                groups,
            }
        })
        .collect();
    Ok(Plan { agents })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(
        n_users: usize,
        n_agents: usize,
        group_size: usize,
        min_roles: usize,
        expected: Result<Vec<Vec<usize>>, ()>,
    ) {
        let got = plan(&PlanInput {
            n_users,
            n_agents,
            group_size,
            min_roles,
            rate_per_sec: None,
        })
        .map(|p| {
            p.agents
                .iter()
                .map(|a| a.groups.iter().map(Vec::len).collect())
                .collect::<Vec<Vec<usize>>>()
        })
        .map_err(|_| ());
        assert_eq!(
            got, expected,
            "users {n_users} agents {n_agents} group {group_size} min {min_roles}"
        );
    }

    #[test]
    fn table() {
        check(6, 3, 2, 1, Ok(vec![vec![2], vec![2], vec![2]]));
        check(7, 3, 2, 1, Ok(vec![vec![2, 1], vec![2], vec![2]]));
        check(9, 2, 3, 1, Ok(vec![vec![3, 3], vec![3]]));
        check(2, 1, 2, 1, Ok(vec![vec![2]]));
        check(3, 3, 2, 1, Ok(vec![vec![1], vec![1], vec![1]]));
        check(3, 3, 2, 2, Err(()));
        check(2, 3, 2, 1, Err(()));
        check(5, 1, 2, 2, Ok(vec![vec![2, 2, 1]]));
        check(1, 1, 2, 2, Err(()));
    }

    #[test]
    fn error_names_the_fix() {
        let e = plan(&PlanInput {
            n_users: 2,
            n_agents: 3,
            group_size: 2,
            min_roles: 2,
            rate_per_sec: None,
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--users 2 too small for the workload: needs at least 2 users per agent (3 agents: --users 6 or more)"
        );
    }

    proptest! {
        #[test]
        fn conserves_users_and_rate(n_users in 1usize..400, n_agents in 1usize..12, group_size in 1usize..6, min in 1usize..6, rate in 0.1f64..1000.0) {
            let input = PlanInput { n_users, n_agents, group_size, min_roles: min.min(group_size), rate_per_sec: Some(rate) };
            match plan(&input) {
                Ok(p) => {
                    prop_assert_eq!(p.agents.len(), n_agents);
                    // Every user exactly once, each group on one agent by construction.
                    let mut seen: Vec<usize> = p.agents.iter().flat_map(|a| a.groups.iter().flatten().copied()).collect();
                    seen.sort_unstable();
                    prop_assert_eq!(seen, (0..n_users).collect::<Vec<_>>());
                    for a in &p.agents {
                        prop_assert!(a.n_users() > 0);
                        for g in &a.groups {
                            prop_assert!(!g.is_empty() && g.len() <= group_size);
                        }
                    }
                    let total: f64 = p.agents.iter().map(|a| a.rate_per_sec.unwrap()).sum();
                    prop_assert!((total - rate).abs() < 1e-6 * rate.max(1.0));
                    // Balanced to within one group.
                    let loads: Vec<usize> = p.agents.iter().map(AgentShare::n_users).collect();
                    prop_assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= group_size);
                }
                Err(PlanError::TooFewUsers { .. }) => {
                    prop_assert!(n_users < input.min_roles * n_agents || n_users < n_agents);
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
