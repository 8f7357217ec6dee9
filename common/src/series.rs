//! Series of measurements: what agents record and the controller merges.
//!
//! Everything here grows with workflows × steps × tools, never with users ×
//! tools. A series is keyed by what was measured (a workflow, a step, a tool
//! called within a workflow, session initialization) and holds counts, error
//! kinds and full-precision histograms; each user has counters and one
//! compact histogram (`UserStats`) for the per-user figures of the report.
//! `SeriesSet` is the unit that crosses the wire, both as interval deltas
//! (only what changed) and as the final cumulative report (chunked).

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::time::Duration;

use crate::error_kind::ErrorKind;
use crate::histogram::{CompactHistogram, HistogramError, LatencyHistogram};
use crate::ids::UserName;
use crate::limits::BoundError;
use crate::proto;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeriesKind {
    /// A whole workflow execution: `workflow`.
    Workflow,
    /// One step of a workflow: `workflow`, `step`.
    Step,
    /// One MCP tool call within a workflow, over every user: `workflow`,
    /// `operation` (the tool).
    Operation,
    /// Opening an MCP session (connect + initialize), over every user.
    McpInitialize,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    pub kind: SeriesKind,
    pub workflow: String,
    pub step: String,
    pub operation: String,
}

impl SeriesKey {
    pub fn workflow(workflow: &str) -> Self {
        Self::new(SeriesKind::Workflow, workflow, "", "")
    }

    pub fn step(workflow: &str, step: &str) -> Self {
        Self::new(SeriesKind::Step, workflow, step, "")
    }

    pub fn operation(workflow: &str, tool: &str) -> Self {
        Self::new(SeriesKind::Operation, workflow, "", tool)
    }

    pub fn mcp_initialize() -> Self {
        Self::new(SeriesKind::McpInitialize, "", "", "")
    }

    fn new(kind: SeriesKind, workflow: &str, step: &str, operation: &str) -> Self {
        Self {
            kind,
            workflow: workflow.to_owned(),
            step: step.to_owned(),
            operation: operation.to_owned(),
        }
    }
}

/// The value under `key`, inserted as the default first when missing: the
/// key is cloned only then (`entry` would need an owned key on every call,
/// and these maps are updated on every recorded sample).
pub fn slot<'a, K, Q, V>(map: &'a mut BTreeMap<K, V>, key: &Q) -> &'a mut V
where
    K: Borrow<Q> + Ord,
    Q: Ord + ToOwned<Owned = K> + ?Sized,
    V: Default,
{
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    // Inserted just above when it was missing.
    map.get_mut(key).expect("the entry exists")
}

/// Adds an owned `value` under an owned `key`: moved in when new, merged
/// into the one there otherwise.
fn add_owned<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, value: V, merge: fn(&mut V, &V)) {
    match map.entry(key) {
        Entry::Occupied(mut mine) => merge(mine.get_mut(), &value),
        Entry::Vacant(slot) => {
            slot.insert(value);
        }
    }
}

/// Adds every count of `from` to `into`.
fn add_errors(into: &mut BTreeMap<ErrorKind, u64>, from: &BTreeMap<ErrorKind, u64>) {
    for (kind, n) in from {
        *into.entry(*kind).or_default() += n;
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesStats {
    pub ok: u64,
    pub failed: u64,
    /// Calls (operation series) or step executions (step series) that lost
    /// a write race (an `If-Match` etag gone stale: HTTP 412) where the step
    /// allows it: an outcome of their own, neither a success nor a failure.
    pub conflicts: u64,
    /// Executions still in flight when the run ended or was interrupted:
    /// counted, but neither a success nor a failure, and without a latency.
    pub interrupted: u64,
    /// Latencies of every finished outcome, successes and failures.
    pub histogram: LatencyHistogram,
    /// Open model only: latency from the intended start.
    pub corrected: LatencyHistogram,
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl SeriesStats {
    /// Finished executions (successes, conflicts and failures).
    pub fn total(&self) -> u64 {
        self.ok + self.conflicts + self.failed
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0 && self.interrupted == 0 && self.histogram.is_empty()
    }

    pub fn record_ok(&mut self, latency: Duration) {
        self.ok += 1;
        self.histogram.record(latency);
    }

    pub fn record_failure(&mut self, latency: Duration, kind: ErrorKind) {
        self.failed += 1;
        self.histogram.record(latency);
        *self.errors.entry(kind).or_default() += 1;
    }

    pub fn record_conflict(&mut self, latency: Duration) {
        self.conflicts += 1;
        self.histogram.record(latency);
    }

    pub fn merge(&mut self, other: &SeriesStats) {
        self.merge_counts(other);
        self.histogram.merge(&other.histogram);
        self.corrected.merge(&other.corrected);
    }

    /// Adds `other`'s counts and error kinds, not its latencies.
    pub fn merge_counts(&mut self, other: &SeriesStats) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.conflicts += other.conflicts;
        self.interrupted += other.interrupted;
        add_errors(&mut self.errors, &other.errors);
    }

    /// Empties the counts but keeps the histograms' memory, so a series
    /// recorded every interval is not rebuilt every interval.
    pub fn reset(&mut self) {
        self.ok = 0;
        self.failed = 0;
        self.conflicts = 0;
        self.interrupted = 0;
        self.histogram.reset();
        self.corrected.reset();
        self.errors.clear();
    }
}

/// One user's operations over every workflow: counters and one compact
/// histogram (2 significant digits), never a histogram per tool.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserStats {
    pub ok: u64,
    pub failed: u64,
    /// Calls that lost a write race the step allows (see `SeriesStats`).
    pub conflicts: u64,
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Tool → calls.
    pub tools: BTreeMap<String, u64>,
    pub latency: CompactHistogram,
}

impl UserStats {
    pub fn total(&self) -> u64 {
        self.ok + self.conflicts + self.failed
    }

    /// A call that lost a write race the step allows.
    pub fn record_conflict(&mut self, tool: &str, latency: Duration) {
        self.conflicts += 1;
        *slot(&mut self.tools, tool) += 1;
        self.latency.record(latency);
    }

    pub fn record(&mut self, tool: &str, latency: Duration, error: Option<ErrorKind>) {
        match error {
            None => self.ok += 1,
            Some(kind) => {
                self.failed += 1;
                *self.errors.entry(kind).or_default() += 1;
            }
        }
        *slot(&mut self.tools, tool) += 1;
        self.latency.record(latency);
    }

    pub fn merge(&mut self, other: &UserStats) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.conflicts += other.conflicts;
        add_errors(&mut self.errors, &other.errors);
        for (tool, n) in &other.tools {
            *self.tools.entry(tool.clone()).or_default() += n;
        }
        self.latency.merge(&other.latency);
    }
}

/// Every series of one agent (or of the whole cluster once merged), and
/// every user's statistics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesSet {
    pub series: BTreeMap<SeriesKey, SeriesStats>,
    pub users: BTreeMap<UserName, UserStats>,
}

impl SeriesSet {
    pub fn entry(&mut self, key: SeriesKey) -> &mut SeriesStats {
        self.series.entry(key).or_default()
    }

    /// The series of `key`, created on first use (the key is cloned only then).
    pub fn stats(&mut self, key: &SeriesKey) -> &mut SeriesStats {
        slot(&mut self.series, key)
    }

    pub fn user(&mut self, user: &UserName) -> &mut UserStats {
        slot(&mut self.users, user)
    }

    pub fn merge(&mut self, other: &SeriesSet) {
        for (key, stats) in &other.series {
            self.stats(key).merge(stats);
        }
        for (user, stats) in &other.users {
            self.user(user).merge(stats);
        }
    }

    /// Merges `other` in by value: what is new here moves in uncopied.
    pub fn absorb(&mut self, mut other: SeriesSet) {
        for (key, stats) in std::mem::take(&mut other.series) {
            add_owned(&mut self.series, key, stats, SeriesStats::merge);
        }
        self.absorb_users(&mut other);
    }

    /// Takes `other`'s users without copying them, leaving its series.
    pub fn absorb_users(&mut self, other: &mut SeriesSet) {
        if self.users.is_empty() {
            self.users = std::mem::take(&mut other.users);
            return;
        }
        for (user, stats) in std::mem::take(&mut other.users) {
            add_owned(&mut self.users, user, stats, UserStats::merge);
        }
    }

    /// Drops the series whose key `known` refuses (a name no scenario step
    /// has); returns how many were dropped.
    pub fn retain_known(&mut self, known: impl Fn(&SeriesKey) -> bool) -> usize {
        let before = self.series.len();
        self.series.retain(|key, _| known(key));
        before - self.series.len()
    }

    /// Tool calls over every operation series: (finished, failed).
    pub fn operation_counts(&self) -> (u64, u64) {
        self.iter_kind(SeriesKind::Operation)
            .fold((0, 0), |(n, failed), (_, s)| {
                (n + s.total(), failed + s.failed)
            })
    }

    pub fn is_empty(&self) -> bool {
        self.series.values().all(SeriesStats::is_empty) && self.users.is_empty()
    }

    pub fn iter_kind(&self, kind: SeriesKind) -> impl Iterator<Item = (&SeriesKey, &SeriesStats)> {
        self.series.iter().filter(move |(k, _)| k.kind == kind)
    }

    /// The non-empty series in wire form.
    pub fn series_to_proto(&self) -> Result<Vec<proto::Series>, HistogramError> {
        self.series
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(key, stats)| series_to_proto(key, stats))
            .collect()
    }

    /// Every user in wire form, in name order.
    pub fn users_to_proto(&self) -> Result<Vec<proto::UserSeries>, HistogramError> {
        self.users
            .iter()
            .map(|(user, stats)| user_to_proto(user, stats))
            .collect()
    }

    /// Adds series and users from the wire. Series with an unknown kind
    /// (from a newer agent) are skipped rather than failing the whole report.
    /// Counts and names are checked against `limits` before any histogram is
    /// decoded or anything is added: a message past a bound changes nothing.
    pub fn merge_proto(
        &mut self,
        series: Vec<proto::Series>,
        users: Vec<proto::UserSeries>,
    ) -> Result<(), WireError> {
        check_bounds(&series, &users)?;
        for s in series {
            let Some(key) = s.key.and_then(key_from_proto) else {
                continue;
            };
            let mut stats = SeriesStats {
                ok: s.ok,
                failed: s.failed,
                conflicts: s.conflicts,
                interrupted: s.interrupted,
                histogram: LatencyHistogram::decode(&s.histogram)?,
                corrected: LatencyHistogram::decode(&s.corrected_histogram)?,
                errors: BTreeMap::new(),
            };
            errors_from_proto(&mut stats.errors, &s.errors);
            add_owned(&mut self.series, key, stats, SeriesStats::merge);
        }
        for u in users {
            let mut stats = UserStats {
                ok: u.ok,
                failed: u.failed,
                conflicts: u.conflicts,
                errors: BTreeMap::new(),
                tools: u.tools.into_iter().map(|t| (t.tool, t.count)).collect(),
                latency: CompactHistogram::decode(&u.histogram)?,
            };
            errors_from_proto(&mut stats.errors, &u.errors);
            add_owned(
                &mut self.users,
                UserName::new(u.user),
                stats,
                UserStats::merge,
            );
        }
        Ok(())
    }

    /// Decodes series and users from the wire into a new set (their names
    /// moved, not copied: a delta arrives every second from every agent).
    pub fn from_proto(
        series: Vec<proto::Series>,
        users: Vec<proto::UserSeries>,
    ) -> Result<SeriesSet, WireError> {
        let mut set = SeriesSet::default();
        set.merge_proto(series, users)?;
        Ok(set)
    }
}

/// Why series or users from the wire were refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Bound(#[from] BoundError),
    #[error(transparent)]
    Histogram(#[from] HistogramError),
}

/// Every count and name of a message within `limits`, checked up front.
fn check_bounds(series: &[proto::Series], users: &[proto::UserSeries]) -> Result<(), BoundError> {
    use crate::limits::*;
    check_count(
        "series in one message",
        series.len(),
        MAX_SERIES_PER_MESSAGE,
    )?;
    check_count("users in one message", users.len(), MAX_USERS_PER_MESSAGE)?;
    for s in series {
        check_count(
            "error entries of a series",
            s.errors.len(),
            MAX_ERROR_ENTRIES,
        )?;
        if let Some(key) = &s.key {
            check_len("workflow name", &key.workflow, MAX_NAME_BYTES)?;
            check_len("step name", &key.step, MAX_NAME_BYTES)?;
            check_len("tool name", &key.operation, MAX_NAME_BYTES)?;
        }
    }
    for u in users {
        check_len("user name", &u.user, MAX_NAME_BYTES)?;
        check_count("error entries of a user", u.errors.len(), MAX_ERROR_ENTRIES)?;
        check_count("tools of a user", u.tools.len(), MAX_TOOLS_PER_USER)?;
        for t in &u.tools {
            check_len("tool name", &t.tool, MAX_NAME_BYTES)?;
        }
    }
    Ok(())
}

fn errors_to_proto(errors: &BTreeMap<ErrorKind, u64>) -> Vec<proto::ErrorCount> {
    errors
        .iter()
        .map(|(kind, count)| proto::ErrorCount {
            kind: kind.to_proto() as i32,
            count: *count,
        })
        .collect()
}

fn errors_from_proto(into: &mut BTreeMap<ErrorKind, u64>, from: &[proto::ErrorCount]) {
    for e in from {
        if let Some(kind) = ErrorKind::from_proto(e.kind) {
            *into.entry(kind).or_default() += e.count;
        }
    }
}

fn series_to_proto(key: &SeriesKey, stats: &SeriesStats) -> Result<proto::Series, HistogramError> {
    Ok(proto::Series {
        key: Some(key_to_proto(key)),
        ok: stats.ok,
        failed: stats.failed,
        conflicts: stats.conflicts,
        interrupted: stats.interrupted,
        histogram: stats.histogram.encode()?,
        errors: errors_to_proto(&stats.errors),
        corrected_histogram: if stats.corrected.is_empty() {
            Vec::new()
        } else {
            stats.corrected.encode()?
        },
    })
}

fn user_to_proto(user: &UserName, stats: &UserStats) -> Result<proto::UserSeries, HistogramError> {
    Ok(proto::UserSeries {
        user: user.as_str().to_owned(),
        ok: stats.ok,
        failed: stats.failed,
        conflicts: stats.conflicts,
        errors: errors_to_proto(&stats.errors),
        tools: stats
            .tools
            .iter()
            .map(|(tool, count)| proto::ToolCount {
                tool: tool.clone(),
                count: *count,
            })
            .collect(),
        histogram: if stats.latency.is_empty() {
            Vec::new()
        } else {
            stats.latency.encode()?
        },
    })
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
        operation: key.operation.clone(),
    }
}

fn key_from_proto(key: proto::SeriesKey) -> Option<SeriesKey> {
    let kind = match proto::SeriesKind::try_from(key.kind).ok()? {
        proto::SeriesKind::Unspecified => return None,
        proto::SeriesKind::Workflow => SeriesKind::Workflow,
        proto::SeriesKind::Step => SeriesKind::Step,
        proto::SeriesKind::Operation => SeriesKind::Operation,
        proto::SeriesKind::McpInitialize => SeriesKind::McpInitialize,
    };
    Some(SeriesKey {
        kind,
        workflow: key.workflow,
        step: key.step,
        operation: key.operation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (series or user selector, latency µs, ok)
    type Sample = (u8, u64, bool);

    fn sample_set(samples: &[Sample]) -> SeriesSet {
        let mut set = SeriesSet::default();
        for &(key, us, ok) in samples {
            let d = Duration::from_micros(us);
            let error = (!ok).then_some(ErrorKind::Tool);
            let series = set.entry(SeriesKey::step("wf", &format!("s{}", key % 4)));
            match error {
                None => series.record_ok(d),
                Some(kind) => series.record_failure(d, kind),
            }
            if key % 3 == 0 {
                set.entry(SeriesKey::workflow("wf")).interrupted += 1;
            }
            let user = UserName::new(format!("u{}", key % 5));
            set.user(&user).record(&format!("t{}", key % 2), d, error);
        }
        set
    }

    fn through_wire(set: &SeriesSet) -> SeriesSet {
        let series = set.series_to_proto().unwrap();
        let users = set.users_to_proto().unwrap();
        SeriesSet::from_proto(series, users).unwrap()
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
                merged.merge(&through_wire(&sample_set(a)));
            }
            merged.series.retain(|_, s| !s.is_empty());
            prop_assert_eq!(merged, expected);
        }

        /// Users split over chunks (as a chunked final report does) merge back whole.
        #[test]
        fn users_in_chunks_merge_back(samples in proptest::collection::vec((any::<u8>(), 1u64..5_000_000, any::<bool>()), 0..60), chunk in 1usize..4) {
            let set = sample_set(&samples);
            let users = set.users_to_proto().unwrap();
            let mut back = SeriesSet::from_proto(set.series_to_proto().unwrap(), Vec::new()).unwrap();
            for part in users.chunks(chunk) {
                back.merge_proto(Vec::new(), part.to_vec()).unwrap();
            }
            back.series.retain(|_, s| !s.is_empty());
            prop_assert_eq!(back, set);
        }
    }

    #[test]
    fn reset_keeps_nothing_but_memory() {
        let mut set = sample_set(&[(1, 10, true), (2, 20, false)]);
        for s in set.series.values_mut() {
            s.reset();
        }
        assert!(set.series.values().all(SeriesStats::is_empty));
    }

    #[test]
    fn messages_past_a_bound_are_refused_before_decoding() {
        use crate::limits::{MAX_NAME_BYTES, MAX_SERIES_PER_MESSAGE, MAX_TOOLS_PER_USER};
        // Histogram bytes that would fail to decode: a bound must refuse first.
        let bad_histogram = vec![0xff; 8];
        let series = |n: usize, name: &str| -> Vec<proto::Series> {
            (0..n)
                .map(|_| proto::Series {
                    key: Some(key_to_proto(&SeriesKey::workflow(name))),
                    histogram: bad_histogram.clone(),
                    ..Default::default()
                })
                .collect()
        };
        let user = |tools: usize| proto::UserSeries {
            user: "u".into(),
            tools: (0..tools)
                .map(|i| proto::ToolCount {
                    tool: format!("t{i}"),
                    count: 1,
                })
                .collect(),
            histogram: bad_histogram.clone(),
            ..Default::default()
        };
        let bound =
            |series: &[proto::Series], users: &[proto::UserSeries]| match SeriesSet::from_proto(
                series.to_vec(),
                users.to_vec(),
            ) {
                Err(WireError::Bound(b)) => b.to_string(),
                other => panic!("not refused by a bound: {other:?}"),
            };
        assert!(
            bound(&series(MAX_SERIES_PER_MESSAGE + 1, "w"), &[]).contains("series in one message")
        );
        assert!(bound(&series(1, &"w".repeat(MAX_NAME_BYTES + 1)), &[]).contains("workflow name"));
        assert!(bound(&[], &[user(MAX_TOOLS_PER_USER + 1)]).contains("tools of a user"));
        // Within every bound, the bad histogram is what fails.
        assert!(matches!(
            SeriesSet::from_proto(series(1, "w"), Vec::new()),
            Err(WireError::Histogram(_))
        ));
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
        assert!(
            SeriesSet::from_proto(wire, Vec::new())
                .unwrap()
                .series
                .is_empty()
        );
    }
}
