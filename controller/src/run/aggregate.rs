//! What the agents measured, folded as it arrives into one merged set:
//! complete final reports go straight into it (the agent keeps only
//! counters), interval deltas are summed per agent only as the stand-in for
//! an agent that never completes its final report (`standin`: latencies at
//! 2 significant digits), and the timeline keeps
//! per-second counts and one compact histogram per workflow, never users.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use common::failures::FailureBook;
use common::ids::{AgentId, UserName};
use common::series::{SeriesKey, SeriesSet, slot};

use super::regions::RegionFold;
use super::standin::StandIn;
use super::steer::Probe;
use super::timeline::Timeline;
use crate::messages::{FinalData, IntervalData};
use crate::report::{AgentTotals, GeneratorStats, IntervalPoint, McpStats};

/// Most chunks one final report may announce; more is a misbehaving agent.
pub const MAX_FINAL_CHUNKS: u32 = 1 << 16;
/// Seconds of drain the timeline keeps after the window (an agent's drain
/// is bounded by its request timeout; more is a misbehaving agent).
const MAX_DRAIN_SECONDS: u64 = 3_600;

/// The measurement window, as the agents' interval times are read.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub from: SystemTime,
    pub until: SystemTime,
}

/// The head of a final report (chunk 0).
#[derive(Debug, Clone, Default)]
pub struct FinalHead {
    pub generator: GeneratorStats,
    pub mcp: McpStats,
    pub interrupted: bool,
}

/// A final report whose chunks are still arriving.
#[derive(Debug, Default)]
struct Assembly {
    series: SeriesSet,
    seen: BTreeSet<u32>,
    count: u32,
    head: Option<FinalHead>,
}

#[derive(Debug, Default)]
struct AgentFold {
    /// Interval deltas of the measurement window, summed.
    measured: StandIn,
    assembly: Option<Assembly>,
    /// Set once the whole final report is folded in.
    done: Option<(AgentTotals, FinalHead)>,
    /// Operations of the users moved to this agent, from its final report.
    moved_operations: BTreeMap<UserName, u64>,
    /// Its generator's cumulative counters as last reported, so each
    /// second of the timeline gets what changed in it.
    last_generator: GeneratorStats,
}

/// What an agent's message changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Folded {
    /// An interval: operations and failed operations in it (live view).
    Interval { operations: u64, errors: u64 },
    /// A chunk of a final report that is not complete yet.
    FinalChunk,
    /// The last missing chunk: the final report is in.
    FinalComplete,
    /// A chunk that does not fit the report it belongs to (ignored).
    Refused(String),
}

/// One agent's share of the report.
#[derive(Debug)]
pub struct AgentOutcome {
    pub totals: AgentTotals,
    /// `None` when the final report never completed.
    pub head: Option<FinalHead>,
    /// Operations each user moved to this agent made here.
    pub moved_operations: BTreeMap<UserName, u64>,
}

#[derive(Debug, Default)]
pub struct Aggregate {
    merged: SeriesSet,
    agents: BTreeMap<AgentId, AgentFold>,
    /// Cluster-wide figures per second of the measurement window and of
    /// the drain after it (coarser for the older part of a long run).
    timeline: Timeline,
    /// Per series, executions that completed in the drain (after the
    /// window): counted in the totals, not in the window's throughput.
    drain: BTreeMap<SeriesKey, u64>,
    /// The window a `Steer` is measuring.
    pub probe: Probe,
    /// Why steps failed, from every agent (bounded per key and in keys).
    failures: FailureBook,
    /// Users moved to each agent, whose operations there the report shows.
    watched: BTreeMap<AgentId, BTreeSet<UserName>>,
    /// The same results merged per region (`agent --region`).
    pub regions: RegionFold,
}

/// Operations (ok and failed) of `users` in `set`.
fn operations_of(set: &SeriesSet, users: Option<&BTreeSet<UserName>>) -> BTreeMap<UserName, u64> {
    users
        .into_iter()
        .flatten()
        .map(|u| (u.clone(), set.users.get(u).map_or(0, |s| s.total())))
        .collect()
}

impl Aggregate {
    /// Users moved to `agent`: the report shows what they did there.
    pub fn watch(&mut self, agent: &AgentId, users: &[UserName]) {
        self.watched
            .entry(agent.clone())
            .or_default()
            .extend(users.iter().cloned());
    }

    pub fn interval(&mut self, agent: &AgentId, data: IntervalData, window: Window) -> Folded {
        add_failures(&mut self.failures, agent, &data.failures);
        let (operations, errors) = data.series.operation_counts();
        self.probe.add(agent, &data);
        let fold = self.agents.entry(agent.clone()).or_default();
        let offered = data
            .generator
            .offered_starts
            .saturating_sub(fold.last_generator.offered_starts);
        let dropped = data
            .generator
            .dropped_starts
            .saturating_sub(fold.last_generator.dropped_starts);
        fold.last_generator = data.generator;
        // Every delta counts toward the agent's totals (its stand-in for a
        // final report), the drain's too: the final report has them all.
        let middle = data.start + data.length / 2;
        let Ok(offset) = middle.duration_since(window.from) else {
            if fold.done.is_none() {
                fold.measured.absorb(data.series);
            }
            return Folded::Interval { operations, errors };
        };
        let drain = middle >= window.until;
        let second = offset.as_secs();
        let drain_seconds = middle
            .duration_since(window.until)
            .unwrap_or_default()
            .as_secs();
        if drain && drain_seconds < MAX_DRAIN_SECONDS {
            for (key, stats) in &data.series.series {
                if stats.total() > 0 {
                    *slot(&mut self.drain, key) += stats.total();
                }
            }
        }
        if drain_seconds < MAX_DRAIN_SECONDS {
            let point = self.timeline.at(second, drain);
            point.add(&data.series);
            point.active_users += data.generator.active_vusers;
            point.offered_starts += offered;
            point.dropped_starts += dropped;
        }
        if fold.done.is_none() {
            fold.measured.absorb(data.series);
        }
        Folded::Interval { operations, errors }
    }

    /// Adds one chunk of `agent`'s final report; the complete report goes
    /// into the merged set and the agent's interval sum is dropped.
    pub fn final_chunk(&mut self, agent: &AgentId, chunk: FinalData) -> Folded {
        let fold = self.agents.entry(agent.clone()).or_default();
        if fold.done.is_some() {
            return Folded::Refused("a final report arrived twice".to_owned());
        }
        if chunk.chunk_count > MAX_FINAL_CHUNKS || chunk.chunk_index >= chunk.chunk_count {
            return Folded::Refused(format!(
                "final report chunk {} of {} is out of range (at most {MAX_FINAL_CHUNKS} chunks)",
                chunk.chunk_index, chunk.chunk_count
            ));
        }
        let assembly = fold.assembly.get_or_insert_with(|| Assembly {
            count: chunk.chunk_count,
            ..Default::default()
        });
        if chunk.chunk_count != assembly.count || !assembly.seen.insert(chunk.chunk_index) {
            return Folded::Refused(format!(
                "final report chunk {} of {} repeats or contradicts earlier chunks",
                chunk.chunk_index, chunk.chunk_count
            ));
        }
        add_failures(&mut self.failures, agent, &chunk.failures);
        assembly.series.absorb(chunk.series);
        if chunk.chunk_index == 0 {
            assembly.head = Some(FinalHead {
                generator: chunk.generator,
                mcp: chunk.mcp,
                interrupted: chunk.interrupted,
            });
        }
        if assembly.seen.len() < assembly.count as usize {
            return Folded::FinalChunk;
        }
        let Some(assembly) = fold.assembly.take() else {
            return Folded::FinalChunk;
        };
        // Chunk 0 is among the chunks seen, so the head is there.
        let head = assembly.head.unwrap_or_default();
        fold.done = Some((AgentTotals::of(&assembly.series), head));
        fold.moved_operations = operations_of(&assembly.series, self.watched.get(agent));
        fold.measured = StandIn::default();
        self.regions.absorb(agent, &assembly.series);
        self.merged.absorb(assembly.series);
        Folded::FinalComplete
    }

    /// Why steps failed (moved out: call once).
    pub fn take_failures(&mut self) -> FailureBook {
        std::mem::take(&mut self.failures)
    }

    /// Whether `agent`'s whole final report is in.
    pub fn has_final(&self, agent: &AgentId) -> bool {
        self.agents.get(agent).is_some_and(|f| f.done.is_some())
    }

    /// Ends the run: agents without a complete final report contribute
    /// their interval sums. Returns the merged set and each agent's share.
    pub fn finish(&mut self) -> (SeriesSet, BTreeMap<AgentId, AgentOutcome>) {
        let mut merged = std::mem::take(&mut self.merged);
        let mut outcomes = BTreeMap::new();
        for (agent, fold) in std::mem::take(&mut self.agents) {
            let outcome = match fold.done {
                Some((totals, head)) => AgentOutcome {
                    totals,
                    head: Some(head),
                    moved_operations: fold.moved_operations,
                },
                None => {
                    let measured = fold.measured.into_series_set();
                    let totals = AgentTotals::of(&measured);
                    let moved_operations = operations_of(&measured, self.watched.get(&agent));
                    self.regions.absorb(&agent, &measured);
                    merged.absorb(measured);
                    AgentOutcome {
                        totals,
                        head: None,
                        moved_operations,
                    }
                }
            };
            outcomes.insert(agent, outcome);
        }
        (merged, outcomes)
    }

    /// The cluster timeline, one point per second of the measurement
    /// window and of the drain after it (moved out: call once).
    pub fn take_intervals(&mut self) -> Vec<IntervalPoint> {
        self.timeline.take()
    }

    /// Per series, executions completed in the drain (moved out: call once).
    pub fn take_drain(&mut self) -> BTreeMap<SeriesKey, u64> {
        std::mem::take(&mut self.drain)
    }
}

/// Folds an agent's failure messages in; `-v` logs the first message of
/// each workflow, step and kind, and refusals are logged as they happen.
fn add_failures(into: &mut FailureBook, agent: &AgentId, book: &FailureBook) {
    if book.is_empty() && book.refused == 0 {
        return;
    }
    if book.refused > 0 {
        tracing::warn!(%agent, refused = book.refused, "failure samples past the bounds were refused");
    }
    for key in into.merge(book) {
        let message = into.messages(&key).first().map_or("", String::as_str);
        tracing::debug!(workflow = %key.workflow, step = %key.step, kind = key.kind.as_str(), %message, "first failure of its kind");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use common::ids::UserName;
    use common::series::SeriesKey;

    fn set(ok: u64, user: &str) -> SeriesSet {
        let mut s = SeriesSet::default();
        for _ in 0..ok {
            s.entry(SeriesKey::workflow("wf"))
                .record_ok(Duration::from_millis(5));
            s.entry(SeriesKey::operation("wf", "tool"))
                .record_ok(Duration::from_millis(2));
            s.user(&UserName::new(user))
                .record("tool", Duration::from_millis(2), None);
        }
        s
    }

    fn chunk(index: u32, count: u32, series: SeriesSet) -> FinalData {
        FinalData {
            chunk_index: index,
            chunk_count: count,
            series,
            generator: GeneratorStats::default(),
            mcp: McpStats::default(),
            interrupted: false,
            failures: FailureBook::default(),
        }
    }

    fn window() -> Window {
        Window {
            from: SystemTime::UNIX_EPOCH,
            until: SystemTime::UNIX_EPOCH + Duration::from_secs(60),
        }
    }

    fn interval(series: SeriesSet) -> IntervalData {
        IntervalData {
            seq: 0,
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(3),
            length: Duration::from_secs(1),
            series,
            generator: GeneratorStats::default(),
            failures: FailureBook::default(),
        }
    }

    #[test]
    fn a_complete_final_replaces_the_interval_sum() {
        let a = AgentId::new("a");
        let mut agg = Aggregate::default();
        assert_eq!(
            agg.interval(&a, interval(set(2, "u1")), window()),
            Folded::Interval {
                operations: 2,
                errors: 0
            }
        );
        let mut users_only = SeriesSet::default();
        users_only
            .user(&UserName::new("u2"))
            .record("tool", Duration::from_millis(1), None);
        assert_eq!(
            agg.final_chunk(&a, chunk(1, 2, users_only.clone())),
            Folded::FinalChunk
        );
        assert!(matches!(
            agg.final_chunk(&a, chunk(1, 2, users_only)),
            Folded::Refused(_)
        ));
        assert!(!agg.has_final(&a));
        assert_eq!(
            agg.final_chunk(&a, chunk(0, 2, set(5, "u1"))),
            Folded::FinalComplete
        );
        assert!(agg.has_final(&a));
        let (merged, outcomes) = agg.finish();
        assert_eq!(merged.series[&SeriesKey::workflow("wf")].ok, 5, "not 5 + 2");
        assert_eq!(merged.users.len(), 2);
        assert_eq!(outcomes[&a].totals.operations, 5);
        assert!(outcomes[&a].head.is_some());
    }

    #[test]
    fn an_agent_without_a_final_counts_its_intervals() {
        let (a, b) = (AgentId::new("a"), AgentId::new("b"));
        let mut agg = Aggregate::default();
        agg.interval(&a, interval(set(2, "u1")), window());
        agg.interval(&a, interval(set(1, "u1")), window());
        agg.final_chunk(&b, chunk(0, 1, set(4, "u9")));
        // Half a final report (chunk 0 of 2) does not count: the intervals do.
        agg.final_chunk(&a, chunk(0, 2, set(50, "u1")));
        let points = agg.take_intervals();
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].operations, 3);
        assert_eq!(points[0].workflows["wf"].count, 3);
        assert_eq!(points[0].at, Duration::from_secs(4));
        let (merged, outcomes) = agg.finish();
        assert_eq!(merged.series[&SeriesKey::workflow("wf")].ok, 3 + 4);
        assert_eq!(merged.users[&UserName::new("u1")].ok, 3);
        assert!(outcomes[&a].head.is_none());
        assert_eq!(outcomes[&a].totals.operations, 3);
    }

    #[test]
    fn out_of_range_chunks_are_refused() {
        let a = AgentId::new("a");
        let mut agg = Aggregate::default();
        assert!(matches!(
            agg.final_chunk(&a, chunk(3, 2, set(1, "u"))),
            Folded::Refused(_)
        ));
        assert!(matches!(
            agg.final_chunk(&a, chunk(0, MAX_FINAL_CHUNKS + 1, set(1, "u"))),
            Folded::Refused(_)
        ));
        assert!(!agg.has_final(&a));
    }
}
