//! The synthetic workload: what a simulated agent "measures" without calling
//! anything. A workflow of the assigned scenario is played on paper — each
//! step's calls get a latency drawn from a log-normal around a per-tool
//! base, a few fail — and its samples go into the agent's own `Recorder`
//! exactly as `agent::steps` and `agent::runner` would put them: a step
//! sample per step, an operation sample per call (with its user), a
//! workflow sample, failure messages once per key.

use std::time::Duration;

use agent::pacing::{Picker, partners};
use agent::recorder::{Recorder, Sample};
use common::ErrorKind;
use common::ids::UserName;
use common::scenario::{Scenario, Workflow};
use common::series::SeriesKey;
use rand::Rng;

/// Median latency of the fastest and the slowest tool.
const FASTEST_TOOL: Duration = Duration::from_millis(3);
const SLOWEST_TOOL: Duration = Duration::from_millis(40);
/// Spread of a call's latency around its tool's median (σ of ln).
const SIGMA: f64 = 0.5;
/// One call in this many is a slow outlier, ×5: the tail a real target has.
const OUTLIER_EVERY: u32 = 100;
/// Workflows played to estimate the mean workflow latency (closed-model rate).
const ESTIMATE_SAMPLES: u32 = 500;
/// The kinds a simulated failure takes, in turn.
const FAILURE_KINDS: [ErrorKind; 3] = [ErrorKind::Tool, ErrorKind::Http5xx, ErrorKind::Timeout];

/// How calls behave: the failure rate (0–1) of one call.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    pub failure_rate: f64,
}

/// The median latency of `tool`: fixed per name (FNV-1a), spread between
/// the fastest and slowest, so each tool's histogram has its own shape.
pub fn tool_median(tool: &str) -> Duration {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tool.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let span = SLOWEST_TOOL - FASTEST_TOOL;
    FASTEST_TOOL + span.mul_f64((h % 1000) as f64 / 1000.0)
}

/// One call's latency: log-normal around the tool's median (Box–Muller),
/// now and then an outlier.
fn call_latency(tool: &str, rng: &mut impl Rng) -> Duration {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let mut factor = (SIGMA * z).exp();
    if rng.random_ratio(1, OUTLIER_EVERY) {
        factor *= 5.0;
    }
    tool_median(tool).mul_f64(factor.clamp(0.05, 50.0))
}

/// One played workflow: its samples (steps, calls, the workflow itself) and
/// the failures to keep as messages.
pub struct Played {
    pub samples: Vec<Sample>,
    pub failures: Vec<(String, ErrorKind)>,
    pub latency: Duration,
}

/// Plays `workflow` with `group[me]` in role 0 and partners from the group
/// in the other roles (as `agent::runner` picks them).
pub fn play(
    workflow: &Workflow,
    group: &[UserName],
    me: usize,
    behaviour: Behaviour,
    rng: &mut impl Rng,
) -> Played {
    let others = partners(
        me,
        group.len(),
        workflow.n_roles().saturating_sub(1),
        rng.random_range(0..group.len().max(1)),
    );
    let seat_of = |role: usize| {
        let i = if role == 0 { me } else { others[role - 1] };
        i % group.len()
    };
    let mut samples = Vec::with_capacity(workflow.steps.len() * 2 + 1);
    let mut failures = Vec::new();
    let mut error: Option<ErrorKind> = None;
    let mut total = Duration::ZERO;
    for step in &workflow.steps {
        if error.is_some() && !step.always {
            continue;
        }
        let mut step_latency = Duration::ZERO;
        let mut step_error = None;
        for &role in &step.actors {
            let latency = call_latency(&step.tool, rng);
            let failed = rng.random_bool(behaviour.failure_rate.clamp(0.0, 1.0));
            let kind = failed.then(|| FAILURE_KINDS[rng.random_range(0..FAILURE_KINDS.len())]);
            samples.push(Sample {
                key: SeriesKey::operation(&workflow.name, &step.tool),
                user: Some(group[seat_of(role)].clone()),
                latency,
                corrected: None,
                error: kind,
                conflict: false,
            });
            step_error = step_error.or(kind);
            step_latency = if step.parallel {
                step_latency.max(latency)
            } else {
                step_latency + latency
            };
        }
        samples.push(Sample {
            key: SeriesKey::step(&workflow.name, &step.name),
            user: None,
            latency: step_latency,
            corrected: None,
            error: step_error,
            conflict: false,
        });
        if let Some(kind) = step_error {
            failures.push((step.name.clone(), kind));
            error = error.or(Some(kind));
        }
        total += step_latency;
    }
    samples.push(Sample {
        key: SeriesKey::workflow(&workflow.name),
        user: None,
        latency: total,
        corrected: None,
        error,
        conflict: false,
    });
    Played {
        samples,
        failures,
        latency: total,
    }
}

/// What an agent's users play: its groups and, per group, the workflows of
/// the mix that fit it.
pub struct Cast<'s> {
    groups: Vec<(Vec<UserName>, Picker<'s>)>,
    /// (group, position) of every user, to pick the initiator uniformly.
    seats: Vec<(usize, usize)>,
}

impl<'s> Cast<'s> {
    /// `None` when no workflow of the mix fits any group.
    pub fn new(
        scenario: &'s Scenario,
        mix: &[common::scenario::MixEntry],
        groups: Vec<Vec<UserName>>,
    ) -> Option<Cast<'s>> {
        let groups: Vec<_> = groups
            .into_iter()
            .filter_map(|g| Picker::new(scenario, mix, g.len()).map(|p| (g, p)))
            .collect();
        let seats = groups
            .iter()
            .enumerate()
            .flat_map(|(gi, (g, _))| (0..g.len()).map(move |i| (gi, i)))
            .collect::<Vec<_>>();
        (!seats.is_empty()).then_some(Cast { groups, seats })
    }

    pub fn n_users(&self) -> usize {
        self.seats.len()
    }

    /// Plays one workflow, initiated by a user drawn uniformly.
    pub fn play_one(&self, behaviour: Behaviour, rng: &mut impl Rng) -> (&'s Workflow, Played) {
        let (g, me) = self.seats[rng.random_range(0..self.seats.len())];
        let (group, picker) = &self.groups[g];
        let workflow = picker.pick(rng);
        (workflow, play(workflow, group, me, behaviour, rng))
    }

    /// The mean workflow latency, estimated by playing a few hundred.
    pub fn mean_latency(&self, behaviour: Behaviour, rng: &mut impl Rng) -> Duration {
        let sum: Duration = (0..ESTIMATE_SAMPLES)
            .map(|_| self.play_one(behaviour, rng).1.latency)
            .sum();
        sum / ESTIMATE_SAMPLES
    }
}

/// Records a played workflow into `recorder` (shard `task`).
pub fn record(recorder: &Recorder, task: usize, workflow: &Workflow, played: Played) {
    for (step, kind) in &played.failures {
        recorder.record_failure(
            &workflow.name,
            step,
            *kind,
            &format!("simulated {} failure", kind.as_str()),
        );
    }
    recorder.record(task, played.samples);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn a_played_workflow_has_every_series_a_real_one_has() {
        let scenario = Scenario::builtin();
        let mix = scenario.resolve_workload(None).unwrap().mix;
        let groups = vec![(0..4).map(|i| UserName::new(format!("u{i}"))).collect()];
        let cast = Cast::new(scenario, &mix, groups).unwrap();
        let known = scenario.series_keys();
        let mut rng = StdRng::seed_from_u64(7);
        let healthy = Behaviour { failure_rate: 0.0 };
        for _ in 0..200 {
            let (wf, played) = cast.play_one(healthy, &mut rng);
            let steps = played
                .samples
                .iter()
                .filter(|s| matches!(s.key.kind, common::series::SeriesKind::Step))
                .count();
            assert_eq!(steps, wf.steps.len(), "{}", wf.name);
            for s in &played.samples {
                assert!(
                    known.contains(&s.key),
                    "{:?} is not a series of the scenario",
                    s.key
                );
                assert!(s.error.is_none());
                let is_call = matches!(s.key.kind, common::series::SeriesKind::Operation);
                assert_eq!(s.user.is_some(), is_call, "{:?}", s.key);
            }
        }
        let mean = cast.mean_latency(healthy, &mut rng);
        assert!(
            mean > FASTEST_TOOL && mean < Duration::from_secs(5),
            "{mean:?}"
        );
    }

    #[test]
    fn a_failed_step_stops_the_workflow_and_names_its_kind() {
        let scenario = Scenario::builtin();
        let wf = scenario.workflow("baseline").unwrap();
        let group = vec![UserName::new("solo")];
        let mut rng = StdRng::seed_from_u64(1);
        let played = play(wf, &group, 0, Behaviour { failure_rate: 1.0 }, &mut rng);
        let always = wf.steps[1..].iter().filter(|s| s.always).count();
        assert_eq!(
            played.failures.len(),
            1 + always,
            "the first step and `always` steps run"
        );
        assert_eq!(played.failures[0].0, wf.steps[0].name);
        let last = played.samples.last().unwrap();
        assert_eq!(last.key, SeriesKey::workflow("baseline"));
        assert_eq!(last.error, Some(played.failures[0].1));
    }
}
