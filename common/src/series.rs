//! Series of measurements: what agents record and the controller merges.
//!
//! A series is keyed by what was measured (a workflow, a step, one user's
//! tool call, a session initialization) and holds counts, error kinds and a
//! latency histogram. `SeriesSet` is the unit that crosses the wire, both as
//! interval deltas and as the final cumulative report.

use std::collections::BTreeMap;

use crate::error_kind::ErrorKind;
use crate::histogram::{HistogramError, LatencyHistogram};
use crate::proto;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeriesKind {
    /// A whole workflow execution.
    Workflow,
    /// One step of a workflow.
    Step,
    /// One MCP tool call by one user.
    Operation,
    /// Opening an MCP session (connect + initialize).
    McpInitialize,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub kind: SeriesKind,
    pub workflow: String,
    pub step: String,
    pub user: String,
    pub operation: String,
}

impl SeriesKey {
    pub fn workflow(workflow: &str) -> Self {
        Self::new(SeriesKind::Workflow, workflow, "", "", "")
    }

    pub fn step(workflow: &str, step: &str) -> Self {
        Self::new(SeriesKind::Step, workflow, step, "", "")
    }

    pub fn operation(workflow: &str, user: &str, tool: &str) -> Self {
        Self::new(SeriesKind::Operation, workflow, "", user, tool)
    }

    pub fn mcp_initialize(user: &str) -> Self {
        Self::new(SeriesKind::McpInitialize, "", "", user, "")
    }

    fn new(kind: SeriesKind, workflow: &str, step: &str, user: &str, operation: &str) -> Self {
        Self {
            kind,
            workflow: workflow.to_owned(),
            step: step.to_owned(),
            user: user.to_owned(),
            operation: operation.to_owned(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesStats {
    pub ok: u64,
    pub failed: u64,
    /// Latencies of every outcome, successes and failures.
    pub histogram: LatencyHistogram,
    /// Open model only: latency from the intended start.
    pub corrected: LatencyHistogram,
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl SeriesStats {
    pub fn total(&self) -> u64 {
        self.ok + self.failed
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0 && self.histogram.is_empty()
    }

    pub fn record_ok(&mut self, latency: std::time::Duration) {
        self.ok += 1;
        self.histogram.record(latency);
    }

    pub fn record_failure(&mut self, latency: std::time::Duration, kind: ErrorKind) {
        self.failed += 1;
        self.histogram.record(latency);
        *self.errors.entry(kind).or_default() += 1;
    }

    pub fn merge(&mut self, other: &SeriesStats) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.histogram.merge(&other.histogram);
        self.corrected.merge(&other.corrected);
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_default() += n;
        }
    }
}

/// Every series of one agent (or of the whole cluster once merged).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesSet {
    pub series: BTreeMap<SeriesKey, SeriesStats>,
}

impl SeriesSet {
    pub fn entry(&mut self, key: SeriesKey) -> &mut SeriesStats {
        self.series.entry(key).or_default()
    }

    pub fn merge(&mut self, other: &SeriesSet) {
        for (key, stats) in &other.series {
            self.series.entry(key.clone()).or_default().merge(stats);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.series.values().all(SeriesStats::is_empty)
    }

    /// Takes everything recorded so far, leaving an empty set: the interval
    /// delta.
    pub fn take(&mut self) -> SeriesSet {
        std::mem::take(self)
    }

    pub fn iter_kind(&self, kind: SeriesKind) -> impl Iterator<Item = (&SeriesKey, &SeriesStats)> {
        self.series.iter().filter(move |(k, _)| k.kind == kind)
    }

    pub fn to_proto(&self) -> Result<Vec<proto::Series>, HistogramError> {
        self.series
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(key, stats)| {
                Ok(proto::Series {
                    key: Some(key_to_proto(key)),
                    ok: stats.ok,
                    failed: stats.failed,
                    histogram: stats.histogram.encode()?,
                    errors: stats
                        .errors
                        .iter()
                        .map(|(kind, count)| proto::ErrorCount {
                            kind: kind.to_proto() as i32,
                            count: *count,
                        })
                        .collect(),
                    corrected_histogram: if stats.corrected.is_empty() {
                        Vec::new()
                    } else {
                        stats.corrected.encode()?
                    },
                })
            })
            .collect()
    }

    /// Decodes series from the wire. Series with an unknown kind (from a newer
    /// agent) are skipped rather than failing the whole report.
    pub fn from_proto(series: &[proto::Series]) -> Result<SeriesSet, HistogramError> {
        let mut set = SeriesSet::default();
        for s in series {
            let Some(key) = s.key.as_ref().and_then(key_from_proto) else {
                continue;
            };
            let mut stats = SeriesStats {
                ok: s.ok,
                failed: s.failed,
                histogram: LatencyHistogram::decode(&s.histogram)?,
                corrected: LatencyHistogram::decode(&s.corrected_histogram)?,
                errors: BTreeMap::new(),
            };
            for e in &s.errors {
                if let Some(kind) = ErrorKind::from_proto(e.kind) {
                    *stats.errors.entry(kind).or_default() += e.count;
                }
            }
            set.entry(key).merge(&stats);
        }
        Ok(set)
    }
}

fn key_to_proto(key: &SeriesKey) -> proto::SeriesKey {
    let kind = match key.kind {
        SeriesKind::Workflow => proto::SeriesKind::Workflow,
        SeriesKind::Step => proto::SeriesKind::Step,
        SeriesKind::Operation => proto::SeriesKind::Operation,
        SeriesKind::McpInitialize => proto::SeriesKind::McpInitialize,
    };
    proto::SeriesKey {
        kind: kind as i32,
        workflow: key.workflow.clone(),
        step: key.step.clone(),
        user: key.user.clone(),
        operation: key.operation.clone(),
    }
}

fn key_from_proto(key: &proto::SeriesKey) -> Option<SeriesKey> {
    let kind = match proto::SeriesKind::try_from(key.kind).ok()? {
        proto::SeriesKind::Unspecified => return None,
        proto::SeriesKind::Workflow => SeriesKind::Workflow,
        proto::SeriesKind::Step => SeriesKind::Step,
        proto::SeriesKind::Operation => SeriesKind::Operation,
        proto::SeriesKind::McpInitialize => SeriesKind::McpInitialize,
    };
    Some(SeriesKey {
        kind,
        workflow: key.workflow.clone(),
        step: key.step.clone(),
        user: key.user.clone(),
        operation: key.operation.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn sample_set(samples: &[(u8, u64, bool)]) -> SeriesSet {
        let mut set = SeriesSet::default();
        for &(key, us, ok) in samples {
            let key = SeriesKey::step("wf", &format!("s{}", key % 4));
            let d = Duration::from_micros(us);
            if ok {
                set.entry(key).record_ok(d);
            } else {
                set.entry(key).record_failure(d, ErrorKind::Tool);
            }
        }
        set
    }

    proptest! {
        /// What the controller does with per-agent final reports (decode and
        /// merge) gives what recording every sample in one place gives.
        #[test]
        fn merging_agents_equals_one_recorder(
            agents in proptest::collection::vec(
                proptest::collection::vec((any::<u8>(), 1u64..50_000_000, any::<bool>()), 0..40), 1..6)
        ) {
            let all: Vec<_> = agents.iter().flatten().copied().collect();
            let expected = sample_set(&all);
            let mut merged = SeriesSet::default();
            for a in &agents {
                let wire = sample_set(a).to_proto().unwrap();
                merged.merge(&SeriesSet::from_proto(&wire).unwrap());
            }
            merged.series.retain(|_, s| !s.is_empty());
            prop_assert_eq!(merged, expected);
        }
    }

    #[test]
    fn unknown_kinds_are_skipped() {
        let wire = vec![proto::Series {
            key: Some(proto::SeriesKey {
                kind: 42,
                ..Default::default()
            }),
            ok: 1,
            ..Default::default()
        }];
        assert!(SeriesSet::from_proto(&wire).unwrap().series.is_empty());
    }
}
