//! Load over time (pure): `--stages` (`30s:10,60s:50,30s:0` users, or
//! `10s:5/s,…` rates), the piecewise-linear `Profile` they make, and the
//! arithmetic both ends share: a profile's value at an instant, when a
//! closed-model vuser of a given rank is active, and when the open model's
//! next start is due.
//!
//! Times are offsets from the run's start (warmup included). A profile
//! starts at 0 and holds its last value after its last point; a stage ramps
//! linearly from the previous value to its target over its duration (a 0 s
//! stage is a jump).

use std::fmt;
use std::time::Duration;

/// Slack when a float value is compared with a whole number of users, so
/// `4.0` computed as `3.9999999` still counts 4 users.
const EPSILON: f64 = 1e-6;
/// Crossings are reported this much after the exact instant, so that the
/// value there is already past the threshold despite rounding.
const NUDGE: Duration = Duration::from_micros(100);

/// One stage: ramp linearly to `target` over `duration`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// What the stages' targets count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageUnit {
    /// Active users (closed model): `30s:10`.
    Users,
    /// Workflow starts per second (open model): `30s:10/s`.
    Rate,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StagesError {
    #[error("--stages is empty: give DURATION:TARGET stages, e.g. 30s:10,60s:50,30s:0")]
    Empty,
    #[error(
        "--stages stage {stage:?}: {reason} (a stage is DURATION:USERS or DURATION:RATE/s, e.g. 30s:10 or 30s:20/s)"
    )]
    Stage { stage: String, reason: String },
    #[error(
        "--stages mixes users (30s:10) and rates (30s:10/s): use one kind, users for the closed model, rates for the open one"
    )]
    MixedUnits,
    #[error("--stages last no time at all: give at least one stage a duration")]
    NoTime,
}

/// Parses `30s:10,60s:50,30s:0` (users) or `30s:5/s,60s:20/s` (rates).
pub fn parse_stages(text: &str) -> Result<(Vec<Stage>, StageUnit), StagesError> {
    let mut stages = Vec::new();
    let mut unit = None;
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let err = |reason: &str| StagesError::Stage {
            stage: part.to_owned(),
            reason: reason.to_owned(),
        };
        let (duration, target) = part
            .split_once(':')
            .ok_or_else(|| err("no `:` between the duration and the target"))?;
        let duration =
            crate::duration::parse_duration(duration).map_err(|e| StagesError::Stage {
                stage: part.to_owned(),
                reason: e.to_string(),
            })?;
        let target = target.trim();
        let (number, this_unit) = match target.strip_suffix("/s") {
            Some(rate) => (rate.trim(), StageUnit::Rate),
            None => (target, StageUnit::Users),
        };
        let value: f64 = number
            .parse()
            .map_err(|_| err("the target is not a number"))?;
        if !(value.is_finite() && value >= 0.0) {
            return Err(err("the target must be a non-negative number"));
        }
        if this_unit == StageUnit::Users && value.fract() != 0.0 {
            return Err(err(
                "a number of users must be whole (or write a rate as 2.5/s)",
            ));
        }
        if unit.is_some_and(|u| u != this_unit) {
            return Err(StagesError::MixedUnits);
        }
        unit = Some(this_unit);
        stages.push(Stage {
            duration,
            target: value,
        });
    }
    let unit = unit.ok_or(StagesError::Empty)?;
    if total_duration(&stages).is_zero() {
        return Err(StagesError::NoTime);
    }
    Ok((stages, unit))
}

/// How long the stages last together.
pub fn total_duration(stages: &[Stage]) -> Duration {
    stages.iter().map(|s| s.duration).sum()
}

/// The highest target of the stages (0 for none).
pub fn peak(stages: &[Stage]) -> f64 {
    stages.iter().map(|s| s.target).fold(0.0, f64::max)
}

/// Writes stages back in the form they are typed in.
pub struct StagesText<'a>(pub &'a [Stage], pub StageUnit);

impl fmt::Display for StagesText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(
                f,
                "{}:{}{}",
                crate::duration::format_duration(s.duration).replace(' ', ""),
                s.target,
                if self.1 == StageUnit::Rate { "/s" } else { "" }
            )?;
        }
        Ok(())
    }
}

/// How many users are active at a (closed-model) profile value.
pub fn active_users(value: f64) -> u64 {
    if value.is_nan() || value <= 0.0 {
        return 0;
    }
    if value >= u64::MAX as f64 {
        return u64::MAX;
    }
    (value + EPSILON).floor() as u64
}

/// The value at which the vuser of activation rank `rank` becomes active
/// (ranks count from 0: rank 0 is the first user a ramp starts).
/// The value at `t` on the line from `(t0, v0)` to `(t1, v1)`; a level
/// line (infinite ones included: "everyone") keeps its value.
fn lerp(t0: f64, v0: f64, t1: f64, v1: f64, t: f64) -> f64 {
    if v0 == v1 {
        v0
    } else {
        v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    }
}

fn rank_threshold(rank: u32) -> f64 {
    f64::from(rank) + 1.0 - EPSILON
}

/// A load level over time: points `(t, value)` joined by straight lines,
/// sorted by `t`, the first at 0; two points at one time make a jump.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    points: Vec<(f64, f64)>,
}

impl Profile {
    /// The same value all along.
    pub fn constant(value: f64) -> Profile {
        Profile {
            points: vec![(0.0, value)],
        }
    }

    /// From `start` at time 0 through the stages, then the last target on.
    pub fn from_stages(start: f64, stages: &[Stage]) -> Profile {
        let mut p = Profile::constant(start);
        p.push_stages(0.0, stages);
        p
    }

    fn push_stages(&mut self, from: f64, stages: &[Stage]) {
        let mut t = from;
        for s in stages {
            t += s.duration.as_secs_f64();
            self.points.push((t, s.target));
        }
    }

    /// From `at` on, follow `stages` from the value the profile has there;
    /// what came before `at` is kept.
    pub fn amend(&mut self, at: Duration, stages: &[Stage]) {
        let at = at.as_secs_f64();
        let here = self.value_at_secs(at);
        let value = match here {
            // "Everyone" (a closed run without stages) has no level to ramp
            // from: start at the first target.
            v if !v.is_finite() => stages.first().map_or(0.0, |s| s.target),
            v => v,
        };
        self.points.retain(|&(t, _)| t < at);
        if !here.is_finite() {
            // Everyone until `at`, then a jump: no ramp down from infinity
            // (whose every value before `at` would be NaN).
            self.points.push((at, here));
        }
        self.points.push((at, value));
        self.push_stages(at, stages);
    }

    /// Every value multiplied by `factor` (an agent's share of the rate).
    pub fn scaled(&self, factor: f64) -> Profile {
        Profile {
            points: self.points.iter().map(|&(t, v)| (t, v * factor)).collect(),
        }
    }

    /// When the last change ends.
    pub fn end(&self) -> Duration {
        self.points
            .last()
            .map_or(Duration::ZERO, |&(t, _)| Duration::from_secs_f64(t))
    }

    pub fn value_at(&self, t: Duration) -> f64 {
        self.value_at_secs(t.as_secs_f64())
    }

    fn value_at_secs(&self, t: f64) -> f64 {
        // The last point at or before `t` (after a jump: the value after it).
        let i = self.points.partition_point(|&(pt, _)| pt <= t);
        match (i.checked_sub(1).map(|j| self.points[j]), self.points.get(i)) {
            (None, Some(&(_, v))) => v,
            (Some((_, v)), None) => v,
            (Some((t0, v0)), Some(&(t1, v1))) => lerp(t0, v0, t1, v1, t),
            (None, None) => 0.0,
        }
    }

    /// The linear pieces from `from` on: `(start, end, value at start, value
    /// at end)`, the last one open-ended (`end` infinite, value constant).
    fn pieces(&self, from: f64) -> impl Iterator<Item = (f64, f64, f64, f64)> + '_ {
        let windows = self.points.windows(2).filter_map(move |w| {
            let ((t0, _), (t1, v1)) = (w[0], w[1]);
            if t1 <= from || t1 <= t0 {
                return None;
            }
            let s = t0.max(from);
            Some((s, t1, self.value_at_secs_right(s, w), v1))
        });
        let (last_t, last_v) = self.points.last().copied().unwrap_or((0.0, 0.0));
        windows.chain(std::iter::once((
            last_t.max(from),
            f64::INFINITY,
            last_v,
            last_v,
        )))
    }

    /// The value at `s` on the segment `w` (not the one after a jump at `s`).
    fn value_at_secs_right(&self, s: f64, w: &[(f64, f64)]) -> f64 {
        let ((t0, v0), (t1, v1)) = (w[0], w[1]);
        lerp(t0, v0, t1, v1, s)
    }

    /// The earliest instant from `from` on at which the value is at least
    /// `threshold`; `None` when it never is again.
    pub fn next_at_least(&self, threshold: f64, from: Duration) -> Option<Duration> {
        self.next_crossing(from, |v| v >= threshold, threshold)
    }

    /// The earliest instant from `from` on at which the value is below
    /// `threshold`; `None` when it never is again.
    pub fn next_below(&self, threshold: f64, from: Duration) -> Option<Duration> {
        self.next_crossing(from, |v| v < threshold, threshold)
    }

    fn next_crossing(
        &self,
        from: Duration,
        holds: impl Fn(f64) -> bool,
        threshold: f64,
    ) -> Option<Duration> {
        let f = from.as_secs_f64();
        if holds(self.value_at_secs(f)) {
            return Some(from);
        }
        for (s, e, vs, ve) in self.pieces(f) {
            if holds(vs) {
                // Inside the piece, but not past where it stops holding: a
                // jump onto the threshold that ramps straight away from it
                // holds for an instant only, at `s`.
                let until = if !e.is_finite() || holds(ve) {
                    e
                } else {
                    (s + (e - s) * (threshold - vs) / (ve - vs)).clamp(s, e)
                };
                return Some(secs(s + NUDGE.as_secs_f64().min((until - s) / 2.0)));
            }
            if e.is_finite() && holds(ve) {
                let x = (s + (e - s) * (threshold - vs) / (ve - vs)).clamp(s, e);
                // Past the crossing, but not into whatever follows `e`.
                return Some(secs(x + NUDGE.as_secs_f64().min((e - x) / 2.0)));
            }
            // A jump at `e` shows as the next piece's start value.
        }
        None
    }

    /// Whether the vuser of activation `rank` is active at `t`.
    pub fn is_active(&self, rank: u32, t: Duration) -> bool {
        self.value_at(t) >= rank_threshold(rank)
    }

    /// When the vuser of `rank` next becomes active (now if it is).
    pub fn next_active(&self, rank: u32, from: Duration) -> Option<Duration> {
        self.next_at_least(rank_threshold(rank), from)
    }

    /// When the vuser of `rank` next becomes inactive (now if it is not).
    pub fn next_inactive(&self, rank: u32, from: Duration) -> Option<Duration> {
        self.next_below(rank_threshold(rank), from)
    }

    /// The area under the profile between `a` and `b` (starts due, for a rate).
    pub fn integral(&self, a: Duration, b: Duration) -> f64 {
        let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
        if b <= a {
            return 0.0;
        }
        let mut sum = 0.0;
        for (s, e, vs, ve) in self.pieces(a) {
            if s >= b {
                break;
            }
            let end = e.min(b);
            let v_end = if e.is_finite() {
                vs + (ve - vs) * (end - s) / (e - s)
            } else {
                vs
            };
            sum += (end - s) * (vs + v_end) / 2.0;
        }
        sum
    }

    /// The instant from `from` on by which the area under the profile has
    /// grown by `amount`: for a rate, when the next start is due after one
    /// at `from` (`amount` 1). `None` when the rate stays 0 for good.
    pub fn time_after(&self, from: Duration, amount: f64) -> Option<Duration> {
        let mut left = amount;
        for (s, e, vs, ve) in self.pieces(from.as_secs_f64()) {
            let (vs, ve) = (vs.max(0.0), ve.max(0.0));
            if !e.is_finite() {
                return (vs > 0.0).then(|| secs(s + left / vs));
            }
            let area = (e - s) * (vs + ve) / 2.0;
            if area >= left && area > 0.0 {
                // v(x) = vs + k x; vs x + k x²/2 = left, in the form that
                // stays exact when k is near 0 and for either sign of k.
                let k = (ve - vs) / (e - s);
                let root = (vs * vs + 2.0 * k * left).max(0.0).sqrt();
                let x = if vs + root > 0.0 {
                    2.0 * left / (vs + root)
                } else {
                    e - s
                };
                return Some(secs((s + x).min(e)));
            }
            left -= area;
        }
        None
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_closed_run_without_stages_set_to_a_level_keeps_the_lowest_ranks_running() {
        // Everyone, then 2 active users from 8 s on (a control request).
        let mut p = Profile::constant(f64::INFINITY);
        let at = Duration::from_secs(8);
        p.amend(
            at,
            &[Stage {
                duration: Duration::ZERO,
                target: 2.0,
            }],
        );
        let before = Duration::from_millis(7_800);
        let after = Duration::from_secs(9);
        assert_eq!(
            p.value_at(before),
            f64::INFINITY,
            "no NaN before the change"
        );
        assert_eq!(p.value_at(after), 2.0);
        for rank in 0..6 {
            assert!(
                p.is_active(rank, before),
                "rank {rank} runs until the change"
            );
            assert_eq!(p.is_active(rank, after), rank < 2, "rank {rank} after it");
        }
        // Ranks 0 and 1 never stop; the others stop at the change.
        assert_eq!(p.next_inactive(0, before), None);
        assert_eq!(p.next_inactive(1, before), None);
        let stop = p.next_inactive(4, before).expect("rank 4 stops");
        assert!(
            stop >= at && stop <= at + Duration::from_millis(1),
            "{stop:?}"
        );
        assert_eq!(p.next_active(0, after), Some(after));
        assert_eq!(p.next_active(4, after), None);
    }
    use super::*;
    use proptest::prelude::*;

    fn s(secs: u64, target: f64) -> Stage {
        Stage {
            duration: Duration::from_secs(secs),
            target,
        }
    }

    fn check(text: &str, expected: Result<(Vec<Stage>, StageUnit), ()>) {
        assert_eq!(parse_stages(text).map_err(|_| ()), expected, "{text}");
    }

    #[test]
    fn parses_stages() {
        check(
            "10s:4,10s:8,10s:0",
            Ok((vec![s(10, 4.0), s(10, 8.0), s(10, 0.0)], StageUnit::Users)),
        );
        check(
            "1m:5/s, 30:2.5/s",
            Ok((vec![s(60, 5.0), s(30, 2.5)], StageUnit::Rate)),
        );
        check(
            "0s:3,5s:3",
            Ok((vec![s(0, 3.0), s(5, 3.0)], StageUnit::Users)),
        );
        check("", Err(()));
        check("10s", Err(()));
        check("10s:x", Err(()));
        check("10s:-1", Err(()));
        check("10s:2.5", Err(()));
        check("10s:2,10s:3/s", Err(()));
        check("0s:4", Err(()));
        check("3x:4", Err(()));
    }

    #[test]
    fn errors_name_the_stage_and_the_form() {
        let e = parse_stages("10s:4,10q:8").unwrap_err().to_string();
        assert!(
            e.contains("\"10q:8\"") && e.contains("DURATION:USERS"),
            "{e}"
        );
        let e = parse_stages("10s:4,10s:8/s").unwrap_err().to_string();
        assert!(e.contains("mixes"), "{e}");
    }

    #[test]
    fn text_round_trips() {
        let (stages, unit) = parse_stages("10s:4,1m:8,500ms:0").unwrap();
        let text = StagesText(&stages, unit).to_string();
        assert_eq!(text, "10s:4,1m:8,500ms:0");
        assert_eq!(parse_stages(&text).unwrap(), (stages, unit));
        let (stages, unit) = parse_stages("10s:2.5/s").unwrap();
        assert_eq!(StagesText(&stages, unit).to_string(), "10s:2.5/s");
    }

    #[test]
    fn values_follow_the_ramp() {
        let p = Profile::from_stages(0.0, &[s(10, 4.0), s(10, 8.0), s(0, 2.0), s(10, 0.0)]);
        let at = |t: f64| p.value_at(Duration::from_secs_f64(t));
        assert_eq!(at(0.0), 0.0);
        assert_eq!(at(5.0), 2.0);
        assert_eq!(at(10.0), 4.0);
        assert_eq!(at(15.0), 6.0);
        assert_eq!(at(20.0), 2.0, "after the jump");
        assert_eq!(at(25.0), 1.0);
        assert_eq!(at(100.0), 0.0);
        assert_eq!(p.end(), Duration::from_secs(30));
        assert_eq!(active_users(3.9999999), 4);
        assert_eq!(active_users(3.5), 3);
        assert_eq!(active_users(-1.0), 0);
        assert_eq!(active_users(f64::INFINITY), u64::MAX);
    }

    #[test]
    fn ranks_start_and_stop_with_the_ramp() {
        // 0 → 4 users over 4 s, hold, then down to 0 over 4 s.
        let p = Profile::from_stages(0.0, &[s(4, 4.0), s(2, 4.0), s(4, 0.0)]);
        let secs = |d: Option<Duration>| d.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0);
        assert_eq!(secs(p.next_active(0, Duration::ZERO)), Some(1.0));
        assert_eq!(secs(p.next_active(3, Duration::ZERO)), Some(4.0));
        assert_eq!(p.next_active(4, Duration::ZERO), None, "rank 4 never runs");
        // Rank 3 stops first on the way down, rank 0 last.
        assert_eq!(secs(p.next_inactive(3, Duration::from_secs(5))), Some(6.0));
        assert_eq!(secs(p.next_inactive(0, Duration::from_secs(5))), Some(9.0));
        assert!(p.is_active(0, Duration::from_secs(5)));
        assert!(!p.is_active(0, Duration::from_secs(10)));
        // Constant "everyone": always active, never inactive.
        let all = Profile::constant(f64::INFINITY);
        assert!(all.is_active(10_000, Duration::ZERO));
        assert_eq!(all.next_inactive(10_000, Duration::ZERO), None);
    }

    #[test]
    fn starts_are_due_as_the_rate_says() {
        let flat = Profile::constant(4.0);
        assert_eq!(
            flat.time_after(Duration::from_secs(1), 1.0),
            Some(Duration::from_millis(1250))
        );
        assert_eq!(Profile::constant(0.0).time_after(Duration::ZERO, 1.0), None);
        // 0 → 2/s over 2 s: 1 start by t = sqrt(2), then 2/s.
        let ramp = Profile::from_stages(0.0, &[s(2, 2.0)]);
        let t = ramp.time_after(Duration::ZERO, 1.0).unwrap().as_secs_f64();
        assert!((t - 2f64.sqrt()).abs() < 1e-9, "{t}");
        let t = ramp.time_after(Duration::from_secs(2), 1.0).unwrap();
        assert_eq!(t, Duration::from_millis(2500));
        // Amended: from 1 s on the rate jumps to 10/s.
        let mut p = Profile::constant(1.0);
        p.amend(Duration::from_secs(1), &[s(0, 10.0)]);
        assert_eq!(p.value_at(Duration::from_millis(500)), 1.0);
        assert_eq!(p.value_at(Duration::from_secs(2)), 10.0);
        let t = p.time_after(Duration::from_millis(500), 1.0).unwrap();
        assert!((t.as_secs_f64() - 1.05).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn a_jump_onto_a_rank_that_ramps_away_at_once_is_active_for_an_instant() {
        // 23 s at 0, a jump to 14, then down to 0 over 1 s: the vuser of
        // rank 13 (active from 14 on) is active at 23 s only (found by the
        // property below).
        let p = Profile::from_stages(0.0, &[s(10, 0.0), s(13, 0.0), s(0, 14.0), s(1, 0.0)]);
        let t = p.next_active(13, Duration::ZERO).unwrap();
        assert!(p.is_active(13, t), "{t:?}");
        assert!(
            (Duration::from_secs(23)..Duration::from_micros(23_000_001)).contains(&t),
            "{t:?}"
        );
        let off = p.next_inactive(13, t).unwrap();
        assert!(!p.is_active(13, off), "{off:?}");
        // A rank the ramp passes through is active for a while.
        let t = p.next_active(6, Duration::ZERO).unwrap();
        assert!(p.is_active(6, t) && t > Duration::from_secs(23), "{t:?}");
    }

    proptest! {
        #[test]
        fn time_after_is_the_inverse_of_the_integral(
            targets in proptest::collection::vec((0u64..20, 0.0f64..50.0), 1..6),
            from in 0.0f64..60.0,
            amount in 0.01f64..30.0,
        ) {
            let stages: Vec<Stage> = targets.iter().map(|&(d, t)| s(d, t)).collect();
            let p = Profile::from_stages(0.0, &stages);
            let from = Duration::from_secs_f64(from);
            if let Some(t) = p.time_after(from, amount) {
                let area = p.integral(from, t);
                prop_assert!((area - amount).abs() < 1e-6 * amount.max(1.0), "{area} vs {amount}");
            } else {
                // Only when the rate is 0 for good.
                prop_assert_eq!(p.value_at(p.end() + Duration::from_secs(1)), 0.0);
            }
        }

        #[test]
        fn crossings_are_where_the_value_changes_side(
            targets in proptest::collection::vec((0u64..20, 0u32..20), 1..6),
            rank in 0u32..20,
            from in 0.0f64..60.0,
        ) {
            let stages: Vec<Stage> = targets.iter().map(|&(d, t)| s(d, f64::from(t))).collect();
            let p = Profile::from_stages(0.0, &stages);
            let from = Duration::from_secs_f64(from);
            if let Some(t) = p.next_active(rank, from) {
                prop_assert!(p.is_active(rank, t), "active at {t:?}");
                // Not active a bit before it (unless already active at `from`).
                if t > from + Duration::from_millis(2) {
                    prop_assert!(!p.is_active(rank, t - Duration::from_millis(2)));
                }
            }
            if let Some(t) = p.next_inactive(rank, from) {
                prop_assert!(!p.is_active(rank, t), "inactive at {t:?}");
            }
        }
    }
}
