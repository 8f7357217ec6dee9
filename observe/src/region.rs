//! The live figures split by region (`agent --region`): per region, each
//! workflow's and each tool's executions, failures by kind and latency, so
//! `/metrics` can show what a user in each region sees while the run goes.
//! They grow with regions × (workflows + tools), never with users.

use std::collections::BTreeMap;

use common::histogram::LatencyHistogram;
use common::series::{SeriesKind, SeriesSet, slot};

use crate::counts::Counts;

/// Executions, failures by kind and latency of one workflow or tool.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub counts: Counts,
    pub latency: LatencyHistogram,
}

/// One region's figures.
#[derive(Debug, Clone, Default)]
pub struct RegionFigures {
    /// By workflow: whole executions.
    pub workflows: BTreeMap<String, Tally>,
    /// By tool, over every workflow: `tools/call`s.
    pub tools: BTreeMap<String, Tally>,
}

impl RegionFigures {
    /// Adds one interval delta of an agent in this region (warmup and drain
    /// included, as the other live counters).
    pub fn add(&mut self, delta: &SeriesSet) {
        for (key, stats) in &delta.series {
            let tally = match key.kind {
                SeriesKind::Workflow => slot(&mut self.workflows, key.workflow.as_str()),
                SeriesKind::Operation => slot(&mut self.tools, key.operation.as_str()),
                SeriesKind::Step | SeriesKind::McpInitialize => continue,
            };
            tally.latency.merge(&stats.histogram);
            tally.counts.add(stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use common::error_kind::ErrorKind;
    use common::series::SeriesKey;

    use super::*;

    #[test]
    fn workflows_and_tools_add_up_across_workflows() {
        let mut delta = SeriesSet::default();
        delta
            .entry(SeriesKey::workflow("share"))
            .record_ok(Duration::from_millis(9));
        delta
            .entry(SeriesKey::operation("share", "nc_notes_get_note"))
            .record_ok(Duration::from_millis(2));
        delta
            .entry(SeriesKey::operation("edit", "nc_notes_get_note"))
            .record_failure(Duration::from_millis(4), ErrorKind::Tool);
        delta
            .entry(SeriesKey::step("share", "read"))
            .record_ok(Duration::from_millis(2));
        let mut r = RegionFigures::default();
        r.add(&delta);
        r.add(&delta);
        assert_eq!(r.workflows["share"].counts.operations, 2);
        assert_eq!(r.workflows["share"].latency.len(), 2);
        let tool = &r.tools["nc_notes_get_note"];
        assert_eq!(tool.counts.operations, 4, "both workflows' calls");
        assert_eq!(tool.counts.errors["tool_error"], 2);
        assert_eq!(tool.latency.len(), 4);
        assert!(!r.workflows.contains_key("read"), "steps are not workflows");
    }
}
