//! Choosing and timing workflow starts: the weighted workflow mix (limited
//! to what a group can play), think-time jitter, the open model's fixed
//! schedule, and the process CPU time for generator stats.

use std::time::Duration;

use common::scenario::{MixEntry, Scenario, Workflow};
use rand::Rng;

/// Think time varies uniformly by this fraction either way, so vusers do not
/// march in lockstep.
pub const THINK_JITTER: f64 = 0.2;
/// A start this much later than intended counts as late.
pub const LATE_START: Duration = Duration::from_millis(5);

/// The workflows a group of `group_size` users can run, with their weights.
#[derive(Clone, Debug)]
pub struct Picker<'s> {
    entries: Vec<(&'s Workflow, u64)>,
    total: u64,
}

impl<'s> Picker<'s> {
    /// `None` when no workflow of the mix fits the group.
    pub fn new(scenario: &'s Scenario, mix: &[MixEntry], group_size: usize) -> Option<Picker<'s>> {
        let entries: Vec<(&Workflow, u64)> = mix
            .iter()
            .filter(|m| m.weight > 0)
            .filter_map(|m| {
                scenario
                    .workflow(&m.workflow)
                    .map(|w| (w, u64::from(m.weight)))
            })
            .filter(|(w, _)| w.n_roles() <= group_size)
            .collect();
        let total = entries.iter().map(|(_, w)| w).sum();
        (total > 0).then_some(Picker { entries, total })
    }

    pub fn pick(&self, rng: &mut impl Rng) -> &'s Workflow {
        let mut r = rng.random_range(0..self.total);
        for (wf, weight) in &self.entries {
            if r < *weight {
                return wf;
            }
            r -= weight;
        }
        // Unreachable: r < total = sum of weights.
        self.entries[self.entries.len() - 1].0
    }
}

/// Indexes (into the group) of the users playing roles 1.. of a workflow
/// whose role 0 is `me`: the others, rotated by `offset` so partners vary.
pub fn partners(me: usize, group_size: usize, n_others: usize, offset: usize) -> Vec<usize> {
    let pool = group_size.saturating_sub(1).max(1);
    (0..n_others)
        .map(|j| (me + 1 + (offset + j) % pool) % group_size)
        .collect()
}

pub fn jittered(think: Duration, rng: &mut impl Rng) -> Duration {
    if think.is_zero() {
        return think;
    }
    think.mul_f64(rng.random_range((1.0 - THINK_JITTER)..(1.0 + THINK_JITTER)))
}

/// Closed model: when a vuser starts its first workflow, as an offset from
/// the start, uniform over one think time. Thousands of users that all began
/// at the same instant would hit the target with one burst and then in
/// waves; spread like this, the load is steady from the first second.
pub fn first_start(think: Duration, rng: &mut impl Rng) -> Duration {
    if think.is_zero() {
        return think;
    }
    think.mul_f64(rng.random_range(0.0..1.0))
}

/// The open model's gap between two starts.
pub fn open_interval(rate_per_sec: f64) -> Option<Duration> {
    (rate_per_sec > 0.0 && rate_per_sec.is_finite())
        .then(|| Duration::from_secs_f64(1.0 / rate_per_sec))
}

/// CPU time (user + system) used by this process, from /proc (0 elsewhere).
pub fn cpu_seconds() -> f64 {
    // /proc reports in USER_HZ clock ticks, which Linux fixes at 100.
    const TICKS_PER_SEC: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesized command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / TICKS_PER_SEC
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn first_starts_spread_over_one_think_time() {
        let mut rng = StdRng::seed_from_u64(7);
        let think = Duration::from_secs(30);
        let starts: Vec<Duration> = (0..1000).map(|_| first_start(think, &mut rng)).collect();
        assert!(starts.iter().all(|s| *s < think));
        let early = starts.iter().filter(|s| **s < think / 2).count();
        assert!(
            (400..600).contains(&early),
            "{early} of 1000 in the first half"
        );
        assert_eq!(first_start(Duration::ZERO, &mut rng), Duration::ZERO);
    }

    #[test]
    fn picker_respects_weights_and_group_size() {
        let s = Scenario::builtin();
        let mix = s.resolve_workload(Some("mixed")).unwrap().mix;
        let mut rng = StdRng::seed_from_u64(7);
        let solo = Picker::new(s, &mix, 1).unwrap();
        for _ in 0..100 {
            assert_eq!(solo.pick(&mut rng).name, "baseline");
        }
        let pair = Picker::new(s, &mix, 2).unwrap();
        let n = 10_000;
        let baseline = (0..n)
            .filter(|_| pair.pick(&mut rng).name == "baseline")
            .count();
        assert!((4_500..5_500).contains(&baseline), "{baseline}");
        let sharing = s.resolve_workload(Some("sharing")).unwrap().mix;
        assert!(Picker::new(s, &sharing, 1).is_none());
    }

    #[test]
    fn partners_never_include_me() {
        for size in 2..5 {
            for me in 0..size {
                for offset in 0..6 {
                    let p = partners(me, size, 1, offset);
                    assert!(!p.contains(&me), "{size} {me} {offset} {p:?}");
                    assert!(p.iter().all(|&i| i < size));
                }
            }
        }
    }

    #[test]
    fn cpu_time_is_readable() {
        let t = cpu_seconds();
        assert!(t >= 0.0);
    }
}
