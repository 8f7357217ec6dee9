//! The cluster timeline of a run, kept at a bounded size however long the
//! run lasts: one point per second for the last ten minutes, coarser points
//! for older seconds (10 s up to two hours back, 1 min up to a day, 10 min
//! beyond). A soak of hours holds hundreds of points, not one per second —
//! each point carries a compact histogram per workflow, so one per second
//! grew the controller by tens of MB an hour. Points no agent has written to
//! for `SEAL_AFTER` seconds are sealed: their histograms held as V2 bytes
//! (hundreds of bytes instead of kilobytes each) until a late delta, a merge
//! or the report opens them again.

use std::collections::BTreeMap;
use std::time::Duration;

use common::histogram::CompactHistogram;

use crate::report::IntervalPoint;

/// How wide a point may be once its end is this many seconds older than the
/// newest second seen: (age, width), oldest tier last.
const TIERS: [(u64, u64); 3] = [(600, 10), (2 * 3_600, 60), (24 * 3_600, 600)];

/// Coarsening runs once every this many new seconds.
const COMPACT_EVERY: u64 = 30;

/// A point whose end is this many seconds older than the newest second is
/// sealed at the next compaction (agents' deltas arrive within seconds).
const SEAL_AFTER: u64 = 30;

/// Points by their first second (offset from the start of measurement).
#[derive(Debug, Default)]
pub struct Timeline {
    points: BTreeMap<u64, Held>,
    newest: u64,
    compacted_at: u64,
}

/// A point as held: its workflows' latency histograms in memory (open), or,
/// once sealed, encoded as HdrHistogram V2 in `sealed` and left empty in
/// `point` (whose counts stay).
#[derive(Debug)]
struct Held {
    point: IntervalPoint,
    sealed: Vec<(String, Box<[u8]>)>,
}

impl Held {
    fn new(point: IntervalPoint) -> Held {
        Held {
            point,
            sealed: Vec::new(),
        }
    }

    fn is_sealed(&self) -> bool {
        !self.sealed.is_empty()
    }

    /// The point, its histograms decoded back if it was sealed.
    fn open(&mut self) -> &mut IntervalPoint {
        for (name, bytes) in self.sealed.drain(..) {
            // Our own encoding of a histogram that was in memory: it decodes.
            // Were it ever not to, the counts stay and the latencies go.
            let latency = CompactHistogram::decode(&bytes).unwrap_or_else(|e| {
                tracing::warn!(workflow = %name, error = %e, "a sealed timeline histogram did not decode");
                CompactHistogram::new()
            });
            self.point.workflows.entry(name).or_default().latency = latency;
        }
        &mut self.point
    }

    fn into_point(mut self) -> IntervalPoint {
        self.open();
        self.point
    }

    /// Encodes the histograms (all or none: one that fails to encode leaves
    /// the point open, so nothing is lost).
    fn seal(&mut self) {
        if self.is_sealed() {
            return;
        }
        let mut sealed = Vec::with_capacity(self.point.workflows.len());
        for (name, w) in &self.point.workflows {
            match w.latency.encode() {
                Ok(bytes) => sealed.push((name.clone(), bytes.into_boxed_slice())),
                Err(_) => return,
            }
        }
        for w in self.point.workflows.values_mut() {
            w.latency = CompactHistogram::new();
        }
        self.sealed = sealed;
    }
}

impl Timeline {
    /// The point holding `second`: the (possibly coarse) point that covers
    /// it, or a new one-second point marked `drain` or not.
    pub fn at(&mut self, second: u64, drain: bool) -> &mut IntervalPoint {
        if second > self.newest {
            self.newest = second;
            if self.newest >= self.compacted_at + COMPACT_EVERY {
                self.compacted_at = self.newest;
                self.compact();
            }
        }
        let covering = self
            .points
            .range(..=second)
            .next_back()
            .filter(|(_, h)| h.point.at > Duration::from_secs(second))
            .map(|(first, _)| *first);
        let first = covering.unwrap_or(second);
        self.points
            .entry(first)
            .or_insert_with(|| {
                Held::new(IntervalPoint {
                    at: Duration::from_secs(second + 1),
                    span: Duration::from_secs(1),
                    drain,
                    ..Default::default()
                })
            })
            .open()
    }

    /// Number of points held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Number of points held sealed.
    #[cfg(test)]
    fn sealed(&self) -> usize {
        self.points.values().filter(|h| h.is_sealed()).count()
    }

    /// The points, oldest first (moved out).
    pub fn take(&mut self) -> Vec<IntervalPoint> {
        std::mem::take(&mut self.points)
            .into_values()
            .map(Held::into_point)
            .collect()
    }

    /// Folds points older than each tier's age into buckets of its width,
    /// aligned to multiples of the width; window and drain points never
    /// share a bucket.
    fn compact(&mut self) {
        let tier_of = |end: u64| {
            let age = self.newest.saturating_sub(end);
            TIERS
                .iter()
                .rev()
                .find(|(older_than, _)| age >= *older_than)
                .map(|(_, width)| *width)
        };
        let old: Vec<u64> = self
            .points
            .iter()
            .filter(|(first, h)| {
                let end = h.point.at.as_secs();
                tier_of(end).is_some_and(|w| end - **first < w)
            })
            .map(|(first, _)| *first)
            .collect();
        for first in old {
            let Some(held) = self.points.remove(&first) else {
                continue;
            };
            let point = held.into_point();
            let width = tier_of(point.at.as_secs()).unwrap_or(1);
            let bucket = first - first % width;
            let key = self
                .points
                .range(bucket..first)
                .find(|(_, h)| {
                    h.point.drain == point.drain && h.point.at.as_secs() <= bucket + width
                })
                .map(|(k, _)| *k);
            match key.and_then(|k| self.points.get_mut(&k)) {
                Some(into) => into.open().absorb(point),
                None => {
                    self.points.insert(first, Held::new(point));
                }
            }
        }
        let quiet = self.newest.saturating_sub(SEAL_AFTER);
        for held in self.points.values_mut() {
            if held.point.at.as_secs() <= quiet {
                held.seal();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(t: &mut Timeline, seconds: std::ops::Range<u64>, drain: bool) {
        for s in seconds {
            let p = t.at(s, drain);
            p.operations += 1;
            p.active_users = s;
        }
    }

    #[test]
    fn a_short_run_keeps_one_point_per_second() {
        let mut t = Timeline::default();
        fill(&mut t, 0..300, false);
        let points = t.take();
        assert_eq!(points.len(), 300);
        assert!(points.iter().all(|p| p.span == Duration::from_secs(1)));
    }

    #[test]
    fn a_long_run_stays_bounded_and_counts_every_operation() {
        let mut t = Timeline::default();
        let hours = 30;
        fill(&mut t, 0..hours * 3_600, false);
        fill(&mut t, hours * 3_600..hours * 3_600 + 20, true);
        // 10 min at 1 s, up to 2 h at 10 s, up to a day at 1 min, 10 min after.
        let bound = 600 + (7_200 - 600) / 10 + (86_400 - 7_200) / 60 + 6 * 6 + 20 + 40;
        assert!(t.len() <= bound, "{} points, bound {bound}", t.len());
        let points = t.take();
        let total: u64 = points.iter().map(|p| p.operations).sum();
        assert_eq!(total, hours * 3_600 + 20);
        // Contiguous, ordered, each point's span ending at its `at`.
        let mut end = Duration::ZERO;
        for p in &points {
            assert_eq!(p.at - p.span, end, "{p:?}");
            assert_eq!(p.operations, p.span.as_secs(), "one per second");
            end = p.at;
        }
        // The drain keeps its own points, after the window's.
        assert!(points.iter().rev().take(20).all(|p| p.drain));
        assert_eq!(points.iter().filter(|p| p.drain).count(), 20);
        // Coarse points carry the last second's level.
        let first = &points[0];
        assert_eq!(first.active_users, first.at.as_secs() - 1);
    }

    #[test]
    fn quiet_points_are_sealed_and_read_back_whole() {
        let mut t = Timeline::default();
        let mut want = CompactHistogram::new();
        for s in 0..200u64 {
            let p = t.at(s, false);
            let w = p.workflows.entry("share".to_owned()).or_default();
            w.count += 1;
            let us = 1_000 + s * 997;
            w.latency.record_us(us);
            want.record_us(us);
        }
        assert!(t.sealed() > 100, "{} of {} sealed", t.sealed(), t.len());
        // A late delta opens its point again.
        t.at(3, false).operations += 1;
        let points = t.take();
        let mut got = CompactHistogram::new();
        let mut count = 0;
        for p in &points {
            let w = &p.workflows["share"];
            count += w.count;
            assert_eq!(w.latency.len(), w.count, "{p:?}");
            got.merge(&w.latency);
        }
        assert_eq!(count, 200);
        assert_eq!(got, want, "every latency is back, exactly");
        assert_eq!(points.iter().map(|p| p.operations).sum::<u64>(), 1);
    }

    #[test]
    fn a_late_second_lands_in_the_coarse_point_that_covers_it() {
        let mut t = Timeline::default();
        fill(&mut t, 0..2_000, false);
        t.at(5, false).operations += 7;
        let points = t.take();
        let covering = points
            .iter()
            .find(|p| p.at > Duration::from_secs(5))
            .expect("a point covers second 5");
        assert_eq!(covering.operations, covering.span.as_secs() + 7);
    }
}
