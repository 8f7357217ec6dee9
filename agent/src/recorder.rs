//! Where measurements go: a few mutex-guarded `SeriesSet` shards that tasks
//! write to (one lock per finished workflow, rarely contended), drained once
//! per interval into a delta and added to the cumulative set.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::ErrorKind;
use common::series::{SeriesKey, SeriesSet};

/// Enough shards that two cores' worth of tasks seldom meet on one.
const SHARDS: usize = 16;

/// One measurement.
#[derive(Clone, Debug)]
pub struct Sample {
    pub key: SeriesKey,
    pub latency: Duration,
    /// Open model, workflows only: latency from the intended start.
    pub corrected: Option<Duration>,
    pub error: Option<ErrorKind>,
}

#[derive(Debug)]
pub struct Recorder {
    shards: Vec<Mutex<SeriesSet>>,
    /// Everything drained so far.
    cumulative: Mutex<SeriesSet>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(SeriesSet::default()))
                .collect(),
            cumulative: Mutex::new(SeriesSet::default()),
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

    /// Records samples into the shard picked by `task` (any stable number).
    pub fn record(&self, task: usize, samples: impl IntoIterator<Item = Sample>) {
        let mut set = lock(&self.shards[task % SHARDS]);
        for s in samples {
            let stats = set.entry(s.key);
            match s.error {
                None => stats.record_ok(s.latency),
                Some(kind) => stats.record_failure(s.latency, kind),
            }
            if let Some(c) = s.corrected {
                stats.corrected.record(c);
            }
        }
    }

    /// Everything recorded since the last call; also added to the cumulative set.
    pub fn take_delta(&self) -> SeriesSet {
        let mut delta = SeriesSet::default();
        for shard in &self.shards {
            let part = lock(shard).take();
            delta.merge(&part);
        }
        lock(&self.cumulative).merge(&delta);
        delta
    }

    /// Drains the shards and returns everything recorded in this run.
    pub fn cumulative(&self) -> SeriesSet {
        self.take_delta();
        lock(&self.cumulative).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wf: &str, ms: u64, error: Option<ErrorKind>) -> Sample {
        Sample {
            key: SeriesKey::workflow(wf),
            latency: Duration::from_millis(ms),
            corrected: None,
            error,
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
        let d1 = r.take_delta();
        assert_eq!(d1.series[&SeriesKey::workflow("a")].ok, 2);
        r.record(17, [sample("b", 1, None)]);
        let d2 = r.take_delta();
        assert!(!d2.series.contains_key(&SeriesKey::workflow("a")));
        let all = r.cumulative();
        assert_eq!(all.series[&SeriesKey::workflow("a")].failed, 1);
        assert_eq!(all.series[&SeriesKey::workflow("b")].ok, 1);
    }
}
