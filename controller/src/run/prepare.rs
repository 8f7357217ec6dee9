//! Every check of a run that needs no network, before anything starts:
//! scenario, workload, plan, thresholds, output directory, users file, agent
//! executable. Errors name the flag and the fix.

use anyhow::{Context, bail};
use common::protocol::LoadModel;
use common::scenario::{Scenario, Workload};

use super::capacity::CapacityConfig;
use crate::plan::{Plan, PlanError, PlanInput};
use crate::settings::RunConfig;
use crate::settings::agents::AgentsMode;
use crate::thresholds::Threshold;

/// A run checked from end to end before anything starts.
pub struct Prepared {
    pub config: RunConfig,
    pub scenario: Scenario,
    pub workload: Workload,
    pub plan: Plan,
    pub thresholds: Vec<Threshold>,
    /// `controller capacity`: the search that steers the run.
    pub capacity: Option<CapacityConfig>,
}

/// Every check that needs no network: scenario, workload, plan, thresholds,
/// files. Errors name the flag and the fix.
pub fn prepare(mut config: RunConfig) -> anyhow::Result<Prepared> {
    let scenario = match &config.scenario_file {
        Some(path) => {
            let source = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --scenario {}", path.display()))?;
            Scenario::parse(&source, &path.display().to_string()).context("--scenario")?
        }
        None => Scenario::builtin().clone(),
    };
    let workload = scenario
        .resolve_workload(config.workload.as_deref())
        .with_context(|| {
            format!(
                "--workload {}",
                config.workload.as_deref().unwrap_or("(default)")
            )
        })?;
    if config.login.scope.is_none() {
        config.login.scope = crate::setup::default_scope(&scenario, &workload);
    }
    let roles: Vec<usize> = workload
        .mix
        .iter()
        .filter(|m| m.weight > 0)
        .map(|m| {
            scenario
                .workflow(&m.workflow)
                .map(|w| w.roles.len())
                .with_context(|| {
                    format!(
                        "workload {} names unknown workflow {}",
                        workload.name, m.workflow
                    )
                })
        })
        .collect::<anyhow::Result<_>>()?;
    let (Some(&group_size), Some(&min_roles)) = (roles.iter().max(), roles.iter().min()) else {
        bail!(
            "workload {} has no workflow with a positive weight",
            workload.name
        );
    };
    let plan = crate::plan::plan(&PlanInput {
        n_users: config.n_users as usize,
        n_agents: config.n_agents as usize,
        group_size,
        min_roles,
        rate_per_sec: match config.load {
            LoadModel::Open { rate_per_sec } => Some(rate_per_sec),
            LoadModel::Closed { .. } => None,
        },
    })
    .map_err(|e| match e {
        PlanError::TooFewUsers {
            n_users,
            n_agents,
            per_agent,
            needed,
        } => anyhow::anyhow!(
            "--users {n_users} too small for workload {}: needs at least {per_agent} users per agent ({n_agents} agents: --users {needed} or more)",
            workload.name
        ),
        other => anyhow::anyhow!("workload {}: {other}", workload.name),
    })?;
    let peak = common::load::peak(&config.stages);
    if matches!(config.load, LoadModel::Closed { .. })
        && plan.runnable_users(min_roles) < peak as usize
    {
        bail!(
            "--stages asks for {peak} active users, but only {} of the {} users are in groups that can run workload {} (groups of {group_size}): raise --users",
            plan.runnable_users(min_roles),
            config.n_users,
            workload.name
        );
    }
    let thresholds = config
        .thresholds
        .iter()
        .map(|t| Threshold::parse(t).context("--threshold"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(out) = &config.output
        && let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!(
            "--output {}: directory {} does not exist",
            out.display(),
            dir.display()
        );
    }
    if let crate::settings::provider::ProviderConfig::Static { users_file } = &config.provider {
        crate::provision::StaticUsers::load(users_file, config.n_users)?;
    }
    if let AgentsMode::Spawn { agent, .. } = &config.agents
        && !agent.program.is_file()
    {
        bail!(
            "agent executable not found at {}: pass --agent-bin with the path of an `agent` (or `controller`) executable, or leave it out to run this executable as the agents",
            agent.program.display()
        );
    }
    Ok(Prepared {
        config,
        scenario,
        workload,
        plan,
        thresholds,
        capacity: None,
    })
}
