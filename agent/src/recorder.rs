//! Where measurements go: a few mutex-guarded `SeriesSet` shards that tasks
//! write to (one lock per finished workflow, rarely contended), drained once
//! per interval into a delta and added to the cumulative set.
//!
//! A shard's series keep their histograms' memory between intervals (they
//! are reset, not rebuilt); its users move out with every
//! `USER_FIGURES_EVERY`th delta (and the last), so a user's compact histogram
//! lives in the cumulative set and, for the ten seconds in which it changed,
//! in its shard and then in one delta, never once per shard per second. The
//! controller needs per-user figures only when an agent's final report never
//! comes; merging one per active user per agent every second was most of its
//! work at 64 agents (BENCHMARKS.md, "The controller at 64 agents").

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::ErrorKind;
use common::failures::{
    Added, FailureBook, FailureKey, FailureSample, MAX_SAMPLES_PER_MESSAGE, clean_message,
};
use common::ids::UserName;
use common::series::{SeriesKey, SeriesSet};

/// Shards per core the runtime may run tasks on: enough that tasks on
/// different cores seldom meet on one. Each shard keeps its series'
/// histograms as wide as the slowest call it has seen, so a shard more
/// than the cores need is memory held for nothing (an agent on 2 cores
/// had 16 and grew in steps when a slow call widened them all).
const SHARDS_PER_CORE: usize = 2;
/// At most this many shards, however many cores.
const MAX_SHARDS: usize = 16;

/// How many shards an agent on this machine uses: two per core it may run
/// on (its CPU affinity counts, as `taskset` sets it), 2 to 16.
fn shard_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores * SHARDS_PER_CORE).clamp(SHARDS_PER_CORE, MAX_SHARDS)
}

/// Every this many interval deltas carries the users who called in them
/// (and the last delta, whenever it comes).
pub const USER_FIGURES_EVERY: u64 = 10;

/// Whether a delta moves the users out of the shards or leaves them there
/// for a later one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Users {
    Include,
    Hold,
}

impl Users {
    /// The users of delta number `seq` (from 0), or of the last one.
    pub fn for_delta(seq: u64, last: bool) -> Users {
        if last || (seq + 1).is_multiple_of(USER_FIGURES_EVERY) {
            Users::Include
        } else {
            Users::Hold
        }
    }
}

/// One measurement.
#[derive(Clone, Debug)]
pub struct Sample {
    pub key: SeriesKey,
    /// Operation samples: the user who made the call, whose own statistics
    /// the call also counts in.
    pub user: Option<UserName>,
    pub latency: Duration,
    /// Open model, workflows only: latency from the intended start.
    pub corrected: Option<Duration>,
    pub error: Option<ErrorKind>,
    /// Lost a write race the step allows (never with `error`).
    pub conflict: bool,
}

#[derive(Debug)]
pub struct Recorder {
    shards: Vec<Mutex<SeriesSet>>,
    /// Everything drained so far.
    cumulative: Mutex<SeriesSet>,
    failures: Mutex<FailureLog>,
}

/// Failure messages: every one kept so far (so each is sent once) and those
/// not sent yet.
#[derive(Debug, Default)]
struct FailureLog {
    sent: FailureBook,
    pending: Vec<FailureSample>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            shards: (0..shard_count())
                .map(|_| Mutex::new(SeriesSet::default()))
                .collect(),
            cumulative: Mutex::new(SeriesSet::default()),
            failures: Mutex::new(FailureLog::default()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The shard of `task` (any stable number).
    fn shard(&self, task: usize) -> MutexGuard<'_, SeriesSet> {
        lock(&self.shards[task % self.shards.len()])
    }

    /// Records samples into the shard picked by `task` (any stable number).
    pub fn record(&self, task: usize, samples: impl IntoIterator<Item = Sample>) {
        let mut set = self.shard(task);
        for s in samples {
            if let Some(user) = &s.user {
                let user = set.user(user);
                if s.conflict && s.error.is_none() {
                    user.record_conflict(&s.key.operation, s.latency);
                } else {
                    user.record(&s.key.operation, s.latency, s.error);
                }
            }
            let stats = set.stats(&s.key);
            match s.error {
                None if s.conflict => stats.record_conflict(s.latency),
                None => stats.record_ok(s.latency),
                Some(kind) => stats.record_failure(s.latency, kind),
            }
            if let Some(c) = s.corrected {
                stats.corrected.record(c);
            }
        }
    }

    /// Keeps why `step` of `workflow` failed, if it is a new message for its
    /// key and the key has fewer than three (the count is the step sample's).
    pub fn record_failure(&self, workflow: &str, step: &str, kind: ErrorKind, message: &str) {
        let key = FailureKey::new(workflow, step, kind);
        let mut log = lock(&self.failures);
        if log.sent.is_full(&key) {
            return;
        }
        let message = clean_message(message);
        if let Added::New { .. } = log.sent.add(&key, &message) {
            log.pending.push(FailureSample { key, message });
        }
    }

    /// Failure messages not sent yet, at most one message's worth; the rest
    /// wait for the next interval.
    pub fn take_failures(&self) -> Vec<FailureSample> {
        let mut log = lock(&self.failures);
        let n = log.pending.len().min(MAX_SAMPLES_PER_MESSAGE);
        log.pending.drain(..n).collect()
    }

    /// Counts a workflow that was still running when the run ended.
    pub fn record_interrupted(&self, task: usize, workflow: &str) {
        let mut set = self.shard(task);
        set.entry(SeriesKey::workflow(workflow)).interrupted += 1;
    }

    /// Everything recorded since the last call (only what changed), with
    /// the users recorded since the last delta that included them, or none
    /// (`Users::Hold`); also added to the cumulative set.
    pub fn take_delta(&self, users: Users) -> SeriesSet {
        let mut delta = SeriesSet::default();
        for shard in &self.shards {
            let mut shard = lock(shard);
            for (key, stats) in shard.series.iter_mut().filter(|(_, s)| !s.is_empty()) {
                delta.stats(key).merge(stats);
                stats.reset();
            }
            if users == Users::Include {
                delta.absorb_users(&mut shard);
            }
        }
        lock(&self.cumulative).merge(&delta);
        delta
    }

    /// Drains the shards and hands over everything recorded in this run,
    /// leaving the recorder empty (the final report is built once).
    pub fn take_cumulative(&self) -> SeriesSet {
        self.take_delta(Users::Include);
        std::mem::take(&mut *lock(&self.cumulative))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wf: &str, ms: u64, error: Option<ErrorKind>) -> Sample {
        Sample {
            key: SeriesKey::workflow(wf),
            user: None,
            latency: Duration::from_millis(ms),
            corrected: None,
            error,
            conflict: false,
        }
    }

    fn call(user: &str, tool: &str, error: Option<ErrorKind>) -> Sample {
        Sample {
            key: SeriesKey::operation("wf", tool),
            user: Some(UserName::new(user)),
            latency: Duration::from_millis(3),
            corrected: None,
            error,
            conflict: false,
        }
    }

    #[test]
    fn deltas_add_up_to_cumulative() {
        let r = Recorder::new();
        r.record(
            0,
            [sample("a", 1, None), sample("a", 2, Some(ErrorKind::Tool))],
        );
        r.record(5, [sample("a", 3, None)]);
        let d1 = r.take_delta(Users::Include);
        assert_eq!(d1.series[&SeriesKey::workflow("a")].ok, 2);
        r.record(17, [sample("b", 1, None)]);
        r.record_interrupted(3, "b");
        let d2 = r.take_delta(Users::Include);
        assert!(
            !d2.series.contains_key(&SeriesKey::workflow("a")),
            "an unchanged series is not in the delta"
        );
        assert_eq!(d2.series[&SeriesKey::workflow("b")].interrupted, 1);
        let all = r.take_cumulative();
        assert_eq!(all.series[&SeriesKey::workflow("a")].failed, 1);
        assert_eq!(all.series[&SeriesKey::workflow("a")].ok, 2);
        assert_eq!(all.series[&SeriesKey::workflow("b")].ok, 1);
        assert!(r.take_cumulative().is_empty(), "handed over once");
    }

    #[test]
    fn each_failure_message_is_sent_once() {
        let r = Recorder::new();
        for _ in 0..5 {
            r.record_failure("wf", "s", ErrorKind::Http5xx, "HTTP 503: busy");
        }
        r.record_failure(
            "wf",
            "s",
            ErrorKind::Tool,
            "tool error: no such note token=abc",
        );
        let first = r.take_failures();
        assert_eq!(first.len(), 2, "{first:?}");
        assert_eq!(first[1].message, "tool error: no such note token=***");
        for i in 0..(MAX_SAMPLES_PER_MESSAGE + 10) {
            r.record_failure("wf", &format!("s{i}"), ErrorKind::Tool, "m");
        }
        r.record_failure("wf", "s", ErrorKind::Http5xx, "HTTP 503: busy");
        assert_eq!(r.take_failures().len(), MAX_SAMPLES_PER_MESSAGE);
        assert_eq!(r.take_failures().len(), 10, "the rest wait a turn");
        assert!(r.take_failures().is_empty());
    }

    #[test]
    fn calls_count_for_the_tool_and_the_user() {
        let r = Recorder::new();
        r.record(0, [call("ann", "t1", None), call("bob", "t1", None)]);
        r.record(1, [call("ann", "t2", Some(ErrorKind::Http5xx))]);
        let d1 = r.take_delta(Users::Include);
        assert_eq!(d1.series[&SeriesKey::operation("wf", "t1")].ok, 2);
        let ann = &d1.users[&UserName::new("ann")];
        assert_eq!((ann.ok, ann.failed), (1, 1));
        assert_eq!(ann.tools["t2"], 1);
        assert_eq!(ann.latency.len(), 2);
        r.record(2, [call("bob", "t1", None)]);
        let d2 = r.take_delta(Users::Include);
        assert_eq!(
            d2.users.keys().map(UserName::as_str).collect::<Vec<_>>(),
            ["bob"],
            "only users that changed"
        );
        let all = r.take_cumulative();
        assert_eq!(all.users[&UserName::new("bob")].tools["t1"], 2);
    }

    #[test]
    fn held_users_come_with_a_later_delta_and_the_cumulative_set() {
        let r = Recorder::new();
        r.record(0, [call("ann", "t1", None)]);
        let held = r.take_delta(Users::Hold);
        assert_eq!(held.series[&SeriesKey::operation("wf", "t1")].ok, 1);
        assert!(held.users.is_empty(), "users wait for their delta");
        r.record(1, [call("ann", "t1", None), call("bob", "t2", None)]);
        let with_users = r.take_delta(Users::Include);
        assert_eq!(with_users.series[&SeriesKey::operation("wf", "t1")].ok, 1);
        assert_eq!(
            with_users.users[&UserName::new("ann")].ok,
            2,
            "both seconds"
        );
        assert_eq!(with_users.users[&UserName::new("bob")].ok, 1);
        r.record(2, [call("bob", "t2", None)]);
        r.take_delta(Users::Hold);
        let all = r.take_cumulative();
        assert_eq!(all.users[&UserName::new("bob")].ok, 2, "held ones are in");
        assert_eq!(all.users[&UserName::new("ann")].ok, 2);
    }

    #[test]
    fn every_tenth_delta_and_the_last_carry_users() {
        let due: Vec<u64> = (0..30)
            .filter(|&seq| Users::for_delta(seq, false) == Users::Include)
            .collect();
        assert_eq!(due, [9, 19, 29]);
        assert_eq!(Users::for_delta(3, true), Users::Include);
    }
}
