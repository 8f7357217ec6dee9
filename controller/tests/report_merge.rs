//! Splitting samples across agents changes nothing: the report reads
//! percentiles from the merged HdrHistograms, so k agents holding parts give
//! the same workflow figures as one agent holding everything.

use std::time::Duration;

use common::series::{SeriesKey, SeriesSet};
use controller::report::{AgentResult, ReportInput, build_report};
use proptest::prelude::*;

const WORKFLOWS: [&str; 3] = ["note_share", "collaborative_edit", "file_share"];

fn agent(i: usize, series: SeriesSet) -> AgentResult {
    AgentResult {
        id: format!("agent-{i}").into(),
        name: format!("agent-{i}"),
        n_users: 1,
        lost: false,
        final_received: true,
        series,
        generator: Default::default(),
        mcp: Default::default(),
        intervals_received: 0,
    }
}

fn input(agents: Vec<SeriesSet>) -> ReportInput {
    let mut input = ReportInput::default();
    input.run.duration = Duration::from_secs(30);
    input.agents = agents
        .into_iter()
        .enumerate()
        .map(|(i, s)| agent(i, s))
        .collect();
    input
}

fn record(set: &mut SeriesSet, (workflow, us, ok): (usize, u64, bool)) {
    let key = SeriesKey::workflow(WORKFLOWS[workflow]);
    let latency = Duration::from_micros(us);
    if ok {
        set.entry(key).record_ok(latency);
    } else {
        set.entry(key)
            .record_failure(latency, common::ErrorKind::Timeout);
    }
    set.entry(SeriesKey::operation(WORKFLOWS[workflow], "u", "tool"))
        .record_ok(latency);
}

proptest! {
    // Each case builds two full reports; 64 cases keep the debug run short.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn k_agents_report_like_one(
        samples in proptest::collection::vec((0usize..3, 1u64..30_000_000, any::<bool>()), 1..300),
        k in 1usize..8,
        seed in any::<u64>(),
    ) {
        let mut one = SeriesSet::default();
        let mut parts = vec![SeriesSet::default(); k];
        for (i, s) in samples.iter().enumerate() {
            record(&mut one, *s);
            // A deterministic but uneven split, some agents possibly empty.
            let target = (seed.wrapping_add(i as u64 * 2_654_435_761) % k as u64) as usize;
            record(&mut parts[target], *s);
        }
        let whole = build_report(&input(vec![one]));
        let split = build_report(&input(parts));
        prop_assert_eq!(&split.workflows, &whole.workflows);
        prop_assert_eq!(&split.summary, &whole.summary);
        prop_assert_eq!(&split.users, &whole.users);
        prop_assert_eq!(&split.histograms, &whole.histograms);
    }
}
