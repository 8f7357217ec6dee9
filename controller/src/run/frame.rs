//! What the report knows of a run apart from what agents measured: its
//! description (target, workload, load model, login method), the scenario's
//! workflow and step order, the thresholds, and the stages' targets.

use std::collections::BTreeMap;

use common::protocol::LoadModel;

use super::Prepared;
use crate::report::{IntervalPoint, ReportInput, RunInfo};
use crate::settings::RunConfig;
use crate::settings::login::LoginMethod;
use crate::target::Target;

/// What the report knows before the run: the run's description, the
/// scenario's workflow and step order, the thresholds.
pub(super) fn report_frame(p: &Prepared, target: &Target, n_users: usize) -> ReportInput {
    ReportInput {
        run: RunInfo {
            target: target.mcp_url.to_string(),
            workload: p.workload.name.clone(),
            load_model: match &p.capacity {
                Some(c) => format!(
                    "open, capacity search from {}/s to at most {}/s",
                    c.start_rate, c.max_rate
                ),
                None => load_model_text(&p.config),
            },
            n_users,
            n_agents: p.config.n_agents as usize,
            embedded_target: target.embedded.is_some(),
            ..RunInfo::default()
        },
        baseline_workflows: p
            .scenario
            .workflows()
            .filter(|w| w.baseline)
            .map(|w| w.name.clone())
            .collect(),
        // The workload's workflows are listed even if they never ran; the
        // scenario's others only if they did.
        step_order: p
            .scenario
            .workflows()
            .filter(|w| {
                p.workload
                    .mix
                    .iter()
                    .any(|m| m.workflow == w.name && m.weight > 0)
            })
            .map(|w| {
                (
                    w.name.clone(),
                    w.steps.iter().map(|s| s.name.clone()).collect(),
                )
            })
            .collect::<BTreeMap<_, _>>(),
        thresholds: p.thresholds.clone(),
        ..ReportInput::default()
    }
}

fn load_model_text(config: &RunConfig) -> String {
    use common::load::{StageUnit, StagesText};
    match (&config.load, config.stages.is_empty()) {
        (LoadModel::Closed { think_time }, true) => format!(
            "closed, think time {}",
            common::duration::format_duration(*think_time)
        ),
        (LoadModel::Closed { think_time }, false) => format!(
            "closed, stages {}, think time {}",
            StagesText(&config.stages, StageUnit::Users),
            common::duration::format_duration(*think_time)
        ),
        (LoadModel::Open { rate_per_sec }, true) => format!("open, {rate_per_sec}/s"),
        (LoadModel::Open { .. }, false) => {
            format!(
                "open, stages {}",
                StagesText(&config.stages, StageUnit::Rate)
            )
        }
    }
}

/// With `--stages`, each point of the timeline carries what the stages
/// asked for at its end (active users or starts per second).
pub(super) fn with_targets(
    mut points: Vec<IntervalPoint>,
    config: &RunConfig,
    n_users: usize,
    started_at: std::time::SystemTime,
    changes: &[super::control::LoadChange],
) -> Vec<IntervalPoint> {
    if config.stages.is_empty() && changes.is_empty() {
        return points;
    }
    let mut profile = if config.stages.is_empty() {
        // What the run started with: every user, or the rate.
        common::load::Profile::constant(match config.load {
            common::protocol::LoadModel::Closed { .. } => n_users as f64,
            common::protocol::LoadModel::Open { rate_per_sec } => rate_per_sec,
        })
    } else {
        common::load::Profile::from_stages(0.0, &config.stages)
    };
    for change in changes {
        let at = change.at.duration_since(started_at).unwrap_or_default();
        profile.amend(
            at,
            &[common::load::Stage {
                duration: std::time::Duration::ZERO,
                target: change.value,
            }],
        );
    }
    for p in &mut points {
        p.target = Some(profile.value_at(config.warmup + p.at));
    }
    points
}

pub(super) fn login_method_text(m: LoginMethod) -> String {
    use clap::ValueEnum;
    m.to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}
