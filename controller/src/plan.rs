//! The plan (pure): users → groups → agents, the open model's rate split and
//! the closed model's activation order.
//!
//! A group holds the users that run multi-user workflows together, so no
//! workflow crosses agents: every group lands wholly on one agent. Groups
//! have the size of the largest workflow of the mix; a trailing short group
//! only runs the workflows that fit it (agents skip a workflow with more
//! roles than its group has users).
//!
//! Loads that change over time (`--stages`, the capacity search) are split
//! the same way at every instant: each agent runs `rate_share` of the
//! cluster's rate, and in the closed model every user has a cluster-wide
//! activation rank, a vuser running while the cluster's active users exceed
//! its rank. Ranks interleave the agents in proportion to their users, so a
//! ramp grows every agent evenly, and put users whose group can run nothing
//! last; the users active at any value are exactly the lowest ranks, so the
//! agents' counts always add up to the cluster's.

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
    /// This agent's fraction of the cluster's rate (its users over all).
    pub rate_share: f64,
    /// Activation rank of each user, as `groups` (a permutation of
    /// 0..n_users over the whole plan).
    pub ranks: Vec<Vec<u32>>,
}

impl AgentShare {
    pub fn n_users(&self) -> usize {
        self.groups.iter().map(Vec::len).sum()
    }

    /// Users active on this agent when the cluster has `active` users active.
    pub fn active_users(&self, active: u64) -> usize {
        self.ranks
            .iter()
            .flatten()
            .filter(|&&r| u64::from(r) < active)
            .count()
    }
}

impl Plan {
    /// Users that can run a workflow (in a group some workflow fits).
    pub fn runnable_users(&self, min_roles: usize) -> usize {
        self.agents
            .iter()
            .flat_map(|a| &a.groups)
            .filter(|g| g.len() >= min_roles)
            .map(Vec::len)
            .sum()
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
            let rate_share = n as f64 / n_users as f64;
            AgentShare {
                rate_per_sec: rate_per_sec.map(|r| r * rate_share),
                rate_share,
                ranks: Vec::new(),
                groups,
            }
        })
        .collect();
    let mut plan = Plan { agents };
    assign_ranks(&mut plan, min_roles);
    Ok(plan)
}

/// Gives every user its activation rank (see the module comment).
fn assign_ranks(plan: &mut Plan, min_roles: usize) {
    // Each agent's users in the order it starts them: those that can run
    // first, a member of every group before a second one of any, so a ramp
    // spreads over groups.
    let orders: Vec<Vec<(usize, usize)>> = plan
        .agents
        .iter()
        .map(|a| {
            let (runnable, idle): (Vec<usize>, Vec<usize>) =
                (0..a.groups.len()).partition(|&g| a.groups[g].len() >= min_roles);
            let mut order = Vec::with_capacity(a.n_users());
            for groups in [runnable, idle] {
                let deepest = groups.iter().map(|&g| a.groups[g].len()).max().unwrap_or(0);
                for m in 0..deepest {
                    order.extend(
                        groups
                            .iter()
                            .filter(|&&g| m < a.groups[g].len())
                            .map(|&g| (g, m)),
                    );
                }
            }
            order
        })
        .collect();
    // Interleave agents: the k-th of an agent's n runnable users comes at
    // (k + ½) / n of the way through the runnable ones; idle users follow.
    let mut keys: Vec<(f64, usize, usize)> = Vec::new();
    for (a, order) in orders.iter().enumerate() {
        let agent = &plan.agents[a];
        let runnable = order
            .iter()
            .filter(|&&(g, _)| agent.groups[g].len() >= min_roles)
            .count();
        let idle = order.len() - runnable;
        for (k, _) in order.iter().enumerate() {
            let key = if k < runnable {
                (k as f64 + 0.5) / runnable as f64
            } else {
                1.0 + (k - runnable) as f64 / idle.max(1) as f64
            };
            keys.push((key, a, k));
        }
    }
    keys.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    for agent in &mut plan.agents {
        agent.ranks = agent.groups.iter().map(|g| vec![0; g.len()]).collect();
    }
    for (rank, &(_, a, k)) in keys.iter().enumerate() {
        let (g, m) = orders[a][k];
        plan.agents[a].ranks[g][m] = u32::try_from(rank).unwrap_or(u32::MAX);
    }
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

    fn input(n_users: usize, n_agents: usize, group_size: usize, min: usize) -> PlanInput {
        PlanInput {
            n_users,
            n_agents,
            group_size,
            min_roles: min.min(group_size),
            rate_per_sec: None,
        }
    }

    #[test]
    fn ramps_spread_over_agents_and_groups() {
        // 3 agents of 2 groups of 2: the first 3 users are one per agent,
        // the next 3 the other group of each agent.
        let p = plan(&input(12, 3, 2, 1)).unwrap();
        let ranks: Vec<Vec<Vec<u32>>> = p.agents.iter().map(|a| a.ranks.clone()).collect();
        assert_eq!(
            ranks,
            vec![
                vec![vec![0, 6], vec![3, 9]],
                vec![vec![1, 7], vec![4, 10]],
                vec![vec![2, 8], vec![5, 11]]
            ]
        );
        // A group too small for any workflow starts last.
        let p = plan(&input(5, 1, 2, 2)).unwrap();
        assert_eq!(p.agents[0].ranks, vec![vec![0, 2], vec![1, 3], vec![4]]);
        assert_eq!(p.runnable_users(2), 4);
    }

    proptest! {
        /// At every instant of any ramp, the agents' active users add up to
        /// the cluster's, each agent stays within one user of its share, and
        /// the agents' rates add up to the cluster's rate.
        #[test]
        fn stages_are_conserved_at_every_instant(
            n_users in 1usize..300,
            n_agents in 1usize..10,
            group_size in 1usize..5,
            min in 1usize..5,
            stages in proptest::collection::vec((0u64..30, 0u32..300), 1..6),
            instants in proptest::collection::vec(0.0f64..200.0, 1..20),
        ) {
            let Ok(p) = plan(&input(n_users, n_agents, group_size, min)) else {
                return Ok(());
            };
            let min = min.min(group_size);
            let runnable = p.runnable_users(min);
            let stages: Vec<common::load::Stage> = stages
                .iter()
                .map(|&(d, t)| common::load::Stage {
                    duration: std::time::Duration::from_secs(d),
                    target: f64::from(t),
                })
                .collect();
            let users = common::load::Profile::from_stages(0.0, &stages);
            let rates = users.clone();
            for t in instants {
                let t = std::time::Duration::from_secs_f64(t);
                let cluster = common::load::active_users(users.value_at(t));
                let per_agent: Vec<usize> = p.agents.iter().map(|a| a.active_users(cluster)).collect();
                prop_assert_eq!(per_agent.iter().sum::<usize>() as u64, cluster.min(n_users as u64));
                if cluster as usize <= runnable {
                    for (a, n) in p.agents.iter().zip(&per_agent) {
                        let runnable_here: usize = a.groups.iter().filter(|g| g.len() >= min).map(Vec::len).sum();
                        let fair = cluster as f64 * runnable_here as f64 / runnable as f64;
                        prop_assert!((*n as f64 - fair).abs() <= 1.0 + 1e-9, "{n} vs {fair}");
                    }
                }
                let cluster_rate = rates.value_at(t);
                let split: f64 = p.agents.iter().map(|a| cluster_rate * a.rate_share).sum();
                prop_assert!((split - cluster_rate).abs() <= 1e-9 * cluster_rate.max(1.0));
            }
            // Ranks are a permutation of 0..n_users.
            let mut all: Vec<u32> = p.agents.iter().flat_map(|a| a.ranks.iter().flatten().copied()).collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..n_users as u32).collect::<Vec<_>>());
        }

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
                    let shares: f64 = p.agents.iter().map(|a| a.rate_share).sum();
                    prop_assert!((shares - 1.0).abs() < 1e-9);
                }
                Err(PlanError::TooFewUsers { .. }) => {
                    prop_assert!(n_users < input.min_roles * n_agents || n_users < n_agents);
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}
