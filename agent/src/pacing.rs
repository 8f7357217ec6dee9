//! Choosing and timing workflow starts: the weighted workflow mix (limited
//! to what a group can play), think-time jitter, the load the run follows
//! over time (`LoadState`: stages and load updates), and the process CPU
//! time for generator stats.

use std::time::Duration;

use common::load::{Profile, Stage};
use common::protocol::LoadModel;
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

/// What the load follows, as offsets from the run's start; the load tasks
/// watch it, and a load update changes it while they run.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadState {
    /// Closed model: the cluster's active users (a vuser runs while the
    /// value exceeds its rank); open model: this agent's starts per second.
    pub profile: Profile,
    /// No workflow starts from here on.
    pub end: Duration,
    /// Open model: this agent's fraction of the cluster's rate.
    rate_share: f64,
    open: bool,
}

impl LoadState {
    /// The load of an assignment: its stages, or its constant model.
    pub fn new(load: LoadModel, stages: &[Stage], rate_share: f64, end: Duration) -> LoadState {
        let (profile, open) = match load {
            LoadModel::Closed { .. } if stages.is_empty() => {
                (Profile::constant(f64::INFINITY), false)
            }
            LoadModel::Closed { .. } => (Profile::from_stages(0.0, stages), false),
            LoadModel::Open { rate_per_sec } if stages.is_empty() => {
                (Profile::constant(rate_per_sec), true)
            }
            LoadModel::Open { .. } => (Profile::from_stages(0.0, stages).scaled(rate_share), true),
        };
        LoadState {
            profile,
            end,
            rate_share,
            open,
        }
    }

    /// Open model: take on `extra` more of the cluster's rate (moved here
    /// with a lost agent's users). The profile scales as a whole, which for
    /// the starts still to come is the same as scaling it from now on.
    /// Closed model: nothing (moved vusers carry their ranks).
    pub fn add_rate_share(&mut self, extra: f64) {
        if !self.open || !extra.is_finite() || extra <= 0.0 {
            return;
        }
        if self.rate_share > 0.0 {
            self.profile = self
                .profile
                .scaled((self.rate_share + extra) / self.rate_share);
        }
        self.rate_share += extra;
    }

    /// From `at` on, follow `stages` (cluster-wide); `end` can only move
    /// earlier, never past what `Start` said.
    pub fn apply(&mut self, at: Duration, stages: &[Stage], end: Option<Duration>) {
        let mine: Vec<Stage> = if self.open {
            stages
                .iter()
                .map(|s| Stage {
                    duration: s.duration,
                    target: s.target * self.rate_share,
                })
                .collect()
        } else {
            stages.to_vec()
        };
        self.profile.amend(at, &mine);
        if let Some(end) = end {
            self.end = self.end.min(end.max(at));
        }
    }
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
    fn load_updates_scale_the_rate_and_only_shorten_the_run() {
        let stage = |secs, target| Stage {
            duration: Duration::from_secs(secs),
            target,
        };
        let open = LoadModel::Open { rate_per_sec: 2.5 };
        let mut s = LoadState::new(open, &[], 0.25, Duration::from_secs(60));
        assert_eq!(s.profile.value_at(Duration::from_secs(3)), 2.5);
        s.apply(Duration::from_secs(10), &[stage(0, 40.0)], None);
        assert_eq!(s.profile.value_at(Duration::from_secs(9)), 2.5);
        assert_eq!(
            s.profile.value_at(Duration::from_secs(11)),
            10.0,
            "a quarter of 40/s"
        );
        s.apply(Duration::from_secs(20), &[], Some(Duration::from_secs(90)));
        assert_eq!(
            s.end,
            Duration::from_secs(60),
            "never later than Start said"
        );
        s.apply(Duration::from_secs(20), &[], Some(Duration::from_secs(25)));
        assert_eq!(s.end, Duration::from_secs(25));

        let closed = LoadModel::Closed {
            think_time: Duration::ZERO,
        };
        let staged = LoadState::new(closed, &[stage(4, 4.0)], 0.5, Duration::from_secs(4));
        assert_eq!(
            staged.profile.value_at(Duration::from_secs(2)),
            2.0,
            "users are not scaled"
        );
        let mut all = LoadState::new(closed, &[], 0.5, Duration::from_secs(9));
        assert!(all.profile.is_active(999, Duration::ZERO));
        all.apply(Duration::from_secs(1), &[stage(0, 3.0)], None);
        assert!(all.profile.is_active(2, Duration::from_secs(2)));
        assert!(!all.profile.is_active(3, Duration::from_secs(2)));
    }

    #[test]
    fn a_moved_rate_share_raises_the_rate_and_later_updates_scale_by_it() {
        let stage = |secs, target| Stage {
            duration: Duration::from_secs(secs),
            target,
        };
        // A quarter of 10/s, then half of a lost agent's quarter moves here.
        let open = LoadModel::Open { rate_per_sec: 2.5 };
        let mut s = LoadState::new(open, &[], 0.25, Duration::from_secs(60));
        s.add_rate_share(0.125);
        assert_eq!(s.profile.value_at(Duration::from_secs(5)), 3.75);
        s.apply(Duration::from_secs(10), &[stage(0, 40.0)], None);
        assert_eq!(s.profile.value_at(Duration::from_secs(11)), 15.0);
        for bad in [0.0, -1.0, f64::NAN] {
            s.add_rate_share(bad);
            assert_eq!(s.profile.value_at(Duration::from_secs(11)), 15.0);
        }

        let closed = LoadModel::Closed {
            think_time: Duration::ZERO,
        };
        let mut c = LoadState::new(closed, &[stage(4, 4.0)], 0.5, Duration::from_secs(4));
        c.add_rate_share(0.5);
        assert_eq!(
            c.profile.value_at(Duration::from_secs(2)),
            2.0,
            "users are not scaled: moved vusers keep their ranks"
        );
    }

    #[test]
    fn cpu_time_is_readable() {
        let t = cpu_seconds();
        assert!(t >= 0.0);
    }
}
