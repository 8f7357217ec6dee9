//! Splitting samples across agents changes nothing: the controller folds
//! every agent's (chunked) final report into one merged set and the report
//! reads percentiles from the merged HdrHistograms, so k agents holding parts
//! give the same figures as one agent holding everything.

use std::time::Duration;

use common::ids::{AgentId, UserName};
use common::series::{SeriesKey, SeriesSet};
use controller::messages::FinalData;
use controller::report::{AgentResult, ReportInput, build_report};
use controller::run::aggregate::Aggregate;
use proptest::prelude::*;

const WORKFLOWS: [&str; 3] = ["note_share", "collaborative_edit", "file_share"];

/// Each agent's set crosses the wire as a final report in two chunks (the
/// users split between them) and is folded as the controller folds it.
fn input(agents: Vec<SeriesSet>) -> ReportInput {
    let mut aggregate = Aggregate::default();
    for (i, set) in agents.iter().enumerate() {
        let id = AgentId::new(format!("agent-{i}"));
        let users = set.users_to_proto().unwrap();
        let (first, second) = users.split_at(users.len() / 2);
        let series = set.series_to_proto().unwrap();
        for (index, (series, users)) in [(&series[..], second), (&[][..], first)]
            .into_iter()
            .enumerate()
        {
            let chunk = FinalData {
                chunk_index: u32::try_from(index).unwrap(),
                chunk_count: 2,
                series: SeriesSet::from_proto(series.to_vec(), users.to_vec()).unwrap(),
                generator: Default::default(),
                mcp: Default::default(),
                interrupted: false,
                failures: Default::default(),
            };
            aggregate.final_chunk(&id, chunk);
        }
    }
    let (series, outcomes) = aggregate.finish();
    let mut input = ReportInput::default();
    input.run.duration = Duration::from_secs(30);
    input.series = series;
    input.agents = outcomes
        .into_iter()
        .map(|(id, outcome)| AgentResult {
            name: id.to_string(),
            id,
            n_users: 1,
            lost: false,
            final_received: outcome.head.is_some(),
            totals: outcome.totals,
            generator: Default::default(),
            mcp: Default::default(),
            intervals_received: 0,
        })
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
    set.entry(SeriesKey::operation(WORKFLOWS[workflow], "tool"))
        .record_ok(latency);
    let user = UserName::new(format!("u{}", us % 5));
    set.user(&user).record("tool", latency, None);
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
        prop_assert!(split.agents.iter().all(|a| a.final_received));
        let ops: u64 = split.agents.iter().map(|a| a.operations).sum();
        prop_assert_eq!(ops, whole.summary.total_operations);
    }
}
