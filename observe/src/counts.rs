//! Executions and their failures by kind: what the live figures count per
//! step, workflow, tool and region.

use std::collections::BTreeMap;

use common::series::{SeriesStats, slot};
use serde::Serialize;

/// Counts of one step (or of a workflow's executions, or a tool's calls).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub operations: u64,
    pub errors: BTreeMap<String, u64>,
}

impl Counts {
    pub fn n_errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds one series' executions and failures.
    pub fn add(&mut self, stats: &SeriesStats) {
        self.operations += stats.total();
        for (kind, n) in &stats.errors {
            *slot(&mut self.errors, kind.as_str()) += n;
        }
    }
}
