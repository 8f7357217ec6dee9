//! The live status line, printed every `STATUS_EVERY` while the run goes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::ids::AgentId;

use super::agents::{AgentState, Phase};
use super::session::Schedule;

/// How often the live status line is printed.
pub const STATUS_EVERY: Duration = Duration::from_secs(5);

pub fn print_status(agents: &BTreeMap<AgentId, AgentState>, schedule: &Schedule) {
    let elapsed = SystemTime::now()
        .duration_since(schedule.started_at)
        .unwrap_or_default();
    let ops: u64 = agents.values().map(|a| a.live_ops).sum();
    let errors: u64 = agents.values().map(|a| a.live_errors).sum();
    let running = agents
        .values()
        .filter(|a| a.phase == Phase::Running)
        .count();
    let lost = agents.values().filter(|a| a.phase == Phase::Lost).count();
    let phase = if SystemTime::now() < schedule.measure_from {
        "warmup"
    } else {
        "measuring"
    };
    tracing::info!(
        "[{:>4}s {phase}] operations {ops} ({:.1}/s), errors {errors}, agents running {running}/{}{}",
        elapsed.as_secs(),
        ops as f64 / elapsed.as_secs_f64().max(0.001),
        agents.len(),
        if lost > 0 {
            format!(", lost {lost}")
        } else {
            String::new()
        }
    );
}
