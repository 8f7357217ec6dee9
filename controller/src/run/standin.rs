//! What the controller keeps of one agent's interval deltas, in case its
//! final report never comes (the agent is lost or cut off): every count
//! exact, latencies at the per-user precision (2 significant digits, within
//! 1%). Held at full precision, each series' histogram grew to ~100 KB as
//! slower calls arrived, 7–8 MB per agent of the `mixed` workload: at 64
//! agents the controller's memory was these stand-ins and kept growing
//! (BENCHMARKS.md, "The controller merging 8, 64, 256 agents"). An agent
//! whose final report arrives is reported from that report, at full
//! precision; its stand-in is dropped.

use std::collections::BTreeMap;

use common::histogram::{CompactHistogram, LatencyHistogram};
use common::series::{SeriesKey, SeriesSet, SeriesStats, slot};

/// One series of an agent's interval sum.
#[derive(Debug, Default)]
struct Coarse {
    /// Counts and error kinds; its own histograms stay empty.
    counts: SeriesStats,
    histogram: CompactHistogram,
    corrected: CompactHistogram,
}

impl Coarse {
    fn add(&mut self, s: &SeriesStats) {
        self.counts.merge_counts(s);
        self.histogram.merge_from(&s.histogram);
        self.corrected.merge_from(&s.corrected);
    }

    fn into_stats(self) -> SeriesStats {
        let widen = |h: &CompactHistogram| {
            let mut wide = LatencyHistogram::new();
            wide.merge_from(h);
            wide
        };
        SeriesStats {
            histogram: widen(&self.histogram),
            corrected: widen(&self.corrected),
            ..self.counts
        }
    }
}

/// An agent's interval deltas, summed.
#[derive(Debug, Default)]
pub struct StandIn {
    series: BTreeMap<SeriesKey, Coarse>,
    /// Users only (already at per-user precision).
    users: SeriesSet,
}

impl StandIn {
    /// Adds a delta: its series' latencies coarsened, its users moved in.
    pub fn absorb(&mut self, mut delta: SeriesSet) {
        for (key, stats) in &delta.series {
            slot(&mut self.series, key).add(stats);
        }
        self.users.absorb_users(&mut delta);
    }

    /// The sum as a series set, the report's form.
    pub fn into_series_set(self) -> SeriesSet {
        let mut set = self.users;
        set.series = self
            .series
            .into_iter()
            .map(|(key, coarse)| (key, coarse.into_stats()))
            .collect();
        set
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use common::ErrorKind;
    use common::ids::UserName;

    use super::*;

    fn delta(latencies_ms: &[u64], user: &str) -> SeriesSet {
        let mut set = SeriesSet::default();
        let key = SeriesKey::operation("wf", "tool");
        for &ms in latencies_ms {
            set.stats(&key).record_ok(Duration::from_millis(ms));
            set.user(&UserName::new(user))
                .record("tool", Duration::from_millis(ms), None);
        }
        set.stats(&key)
            .record_failure(Duration::from_millis(900), ErrorKind::Http5xx);
        set.stats(&SeriesKey::workflow("wf")).interrupted += 1;
        set
    }

    #[test]
    fn counts_stay_exact_and_latencies_within_one_percent() {
        let mut exact = SeriesSet::default();
        let mut stand_in = StandIn::default();
        for (i, part) in [[3, 17, 250], [41, 41, 1_900], [5, 77, 12_000]]
            .iter()
            .enumerate()
        {
            let user = format!("u{}", i % 2);
            exact.merge(&delta(part, &user));
            stand_in.absorb(delta(part, &user));
        }
        let back = stand_in.into_series_set();
        assert_eq!(back.users, exact.users, "users kept whole");
        assert_eq!(back.series.len(), exact.series.len());
        for (key, want) in &exact.series {
            let got = &back.series[key];
            assert_eq!(
                (got.ok, got.failed, got.conflicts, got.interrupted),
                (want.ok, want.failed, want.conflicts, want.interrupted),
                "{key:?}"
            );
            assert_eq!(got.errors, want.errors);
            assert_eq!(got.histogram.len(), want.histogram.len());
            for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
                let (a, b) = (
                    got.histogram.quantile_us(q) as f64,
                    want.histogram.quantile_us(q) as f64,
                );
                assert!((a - b).abs() <= b * 0.011, "{key:?} q{q}: {a} vs {b}");
            }
        }
    }
}
