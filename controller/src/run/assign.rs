//! Each agent's assignment: its groups of users with their tokens and
//! activation ranks, the workload's mix, and its share of the load.

use std::collections::BTreeMap;

use common::protocol::LoadModel;

use super::Prepared;
use crate::login::TokenSet;
use crate::messages::{Assignment, RunSettings, VuserGroup, VuserSpec};
use crate::target::Target;

/// Each agent's slice: its groups with tokens, the mix and its load share.
pub(super) fn assignments(
    p: &Prepared,
    target: &Target,
    users: &[crate::provision::TestUser],
    tokens: &BTreeMap<common::ids::UserName, TokenSet>,
) -> Vec<Assignment> {
    let run_id = uuid::Uuid::new_v4();
    let mut group_index = 0u32;
    p.plan
        .agents
        .iter()
        .enumerate()
        .map(|(i, share)| {
            let groups = share
                .groups
                .iter()
                .zip(&share.ranks)
                .map(|(g, ranks)| {
                    group_index += 1;
                    VuserGroup {
                        index: group_index - 1,
                        users: g
                            .iter()
                            .zip(ranks)
                            .filter_map(|(&u, &rank)| users.get(u).map(|u| (u, rank)))
                            .map(|(u, rank)| {
                                let t = tokens.get(&u.name);
                                VuserSpec {
                                    index: u.index,
                                    name: u.name.clone(),
                                    access_token: t.map(|t| t.access.clone()).unwrap_or_default(),
                                    expires_at_ms: t.map_or(0, TokenSet::expires_at_ms),
                                    rank,
                                }
                            })
                            .collect(),
                    }
                })
                .collect();
            let load = match (p.config.load, share.rate_per_sec) {
                (LoadModel::Open { .. }, Some(rate_per_sec)) => LoadModel::Open { rate_per_sec },
                (load, _) => load,
            };
            Assignment {
                id: format!("{run_id}-{i}"),
                settings: RunSettings {
                    mcp_url: target.mcp_url.to_string(),
                    scenario_source: p.scenario.source().to_owned(),
                    scenario_digest: p.scenario.digest().to_owned(),
                    mix: p
                        .workload
                        .mix
                        .iter()
                        .map(|m| (m.workflow.clone(), m.weight))
                        .collect(),
                    load,
                    request_timeout: p.config.request_timeout,
                    mcp_version: p.config.mcp_version,
                    elicitation: p.config.elicitation,
                    // Split like the rate, rounded up, so no agent gets 0.
                    max_in_flight: p.config.max_in_flight.map_or(0, |total| {
                        ((total as f64 * share.rate_share).ceil() as u64).max(1)
                    }),
                    stages: p.config.stages.clone(),
                    rate_share: share.rate_share,
                },
                groups,
            }
        })
        .collect()
}
