//! The cluster timeline of a run, kept at a bounded size however long the
//! run lasts: one point per second for the last ten minutes, coarser points
//! for older seconds (10 s up to two hours back, 1 min up to a day, 10 min
//! beyond). A soak of hours holds hundreds of points, not one per second —
//! each point carries a compact histogram per workflow, so one per second
//! grew the controller by tens of MB an hour.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::report::IntervalPoint;

/// How wide a point may be once its end is this many seconds older than the
/// newest second seen: (age, width), oldest tier last.
const TIERS: [(u64, u64); 3] = [(600, 10), (2 * 3_600, 60), (24 * 3_600, 600)];

/// Coarsening runs once every this many new seconds.
const COMPACT_EVERY: u64 = 30;

/// Points by their first second (offset from the start of measurement).
#[derive(Debug, Default)]
pub struct Timeline {
    points: BTreeMap<u64, IntervalPoint>,
    newest: u64,
    compacted_at: u64,
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
            .filter(|(_, p)| p.at > Duration::from_secs(second))
            .map(|(first, _)| *first);
        let first = covering.unwrap_or(second);
        self.points.entry(first).or_insert_with(|| IntervalPoint {
            at: Duration::from_secs(second + 1),
            span: Duration::from_secs(1),
            drain,
            ..Default::default()
        })
    }

    /// Number of points held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// The points, oldest first (moved out).
    pub fn take(&mut self) -> Vec<IntervalPoint> {
        std::mem::take(&mut self.points).into_values().collect()
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
            .filter(|(first, p)| {
                let end = p.at.as_secs();
                tier_of(end).is_some_and(|w| end - **first < w)
            })
            .map(|(first, _)| *first)
            .collect();
        for first in old {
            let Some(point) = self.points.remove(&first) else {
                continue;
            };
            let width = tier_of(point.at.as_secs()).unwrap_or(1);
            let bucket = first - first % width;
            let key = self
                .points
                .range(bucket..first)
                .find(|(_, p)| p.drain == point.drain && p.at.as_secs() <= bucket + width)
                .map(|(k, _)| *k);
            match key.and_then(|k| self.points.get_mut(&k)) {
                Some(into) => into.absorb(point),
                None => {
                    self.points.insert(first, point);
                }
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
