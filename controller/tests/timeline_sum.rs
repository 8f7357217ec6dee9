//! The timeline adds up to the summary: each agent's interval deltas (the
//! measured window, then the drain, the last one partial) are folded as the
//! controller folds them, with the final report (their sum) from some agents
//! and none from others; the per-second points then sum to the summary's
//! count, the window's points to its throughput times the duration, and the
//! drain's points to its drain count.

use std::time::{Duration, SystemTime};

use common::ids::AgentId;
use common::series::{SeriesKey, SeriesSet};
use controller::messages::{FinalData, IntervalData};
use controller::report::{AgentResult, ReportInput, build_report};
use controller::run::aggregate::{Aggregate, Window};
use proptest::prelude::*;

const WORKFLOWS: [&str; 2] = ["note_share", "file_share"];

/// One agent's second: calls (ok, failed) of each workflow that completed in it.
type Second = Vec<(usize, u8, u8)>;

fn delta(second: &Second) -> SeriesSet {
    let mut set = SeriesSet::default();
    for (w, ok, failed) in second {
        let name = WORKFLOWS[*w];
        for i in 0..*ok {
            let latency = Duration::from_micros(500 + u64::from(i) * 37);
            set.entry(SeriesKey::operation(name, "tool"))
                .record_ok(latency);
            set.entry(SeriesKey::workflow(name)).record_ok(latency);
        }
        for _ in 0..*failed {
            set.entry(SeriesKey::operation(name, "tool"))
                .record_failure(Duration::from_millis(3), common::ErrorKind::Timeout);
        }
    }
    set
}

fn seconds() -> impl Strategy<Value = Vec<Second>> {
    prop::collection::vec(
        prop::collection::vec((0..WORKFLOWS.len(), 0u8..20, 0u8..3), 0..3),
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_timeline_sums_to_the_summary(
        agents in prop::collection::vec((seconds(), any::<bool>(), 0u64..900), 1..4),
        window_secs in 1u64..8,
    ) {
        let from = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let window = Window { from, until: from + Duration::from_secs(window_secs) };
        let mut aggregate = Aggregate::default();
        for (i, (secs, sends_final, last_ms)) in agents.iter().enumerate() {
            let id = AgentId::new(format!("agent-{i}"));
            let mut all = SeriesSet::default();
            for (seq, second) in secs.iter().enumerate() {
                let set = delta(second);
                all.merge(&set);
                // The last delta covers only part of its second, as the
                // agent's flush after its drain does.
                let length = if seq + 1 == secs.len() {
                    Duration::from_millis(1 + last_ms)
                } else {
                    Duration::from_secs(1)
                };
                let data = IntervalData {
                    seq: seq as u64,
                    start: from + Duration::from_secs(seq as u64),
                    length,
                    series: set,
                    generator: Default::default(),
                    failures: Default::default(),
                };
                aggregate.interval(&id, data, window);
            }
            if *sends_final {
                let series = all.series_to_proto().unwrap();
                let users = all.users_to_proto().unwrap();
                aggregate.final_chunk(&id, FinalData {
                    chunk_index: 0,
                    chunk_count: 1,
                    series: SeriesSet::from_proto(series, users).unwrap(),
                    generator: Default::default(),
                    mcp: Default::default(),
                    interrupted: false,
                    failures: Default::default(),
                });
            }
        }
        let intervals = aggregate.take_intervals();
        let drain = aggregate.take_drain();
        let (series, outcomes) = aggregate.finish();
        let mut input = ReportInput::default();
        input.run.duration = Duration::from_secs(window_secs);
        input.run.load_model = "open, 10/s".to_owned();
        input.series = series;
        input.intervals = intervals;
        input.drain = drain;
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
        let report = build_report(&input);
        let s = &report.summary;
        let timeline: u64 = report.timeseries.iter().map(|p| p.operations).sum();
        let in_window: u64 = report.timeseries.iter().filter(|p| !p.drain).map(|p| p.operations).sum();
        let in_drain: u64 = report.timeseries.iter().filter(|p| p.drain).map(|p| p.operations).sum();
        prop_assert_eq!(timeline, s.total_operations);
        prop_assert_eq!(in_drain, s.drain_operations);
        let achieved = in_window as f64 / window_secs as f64;
        prop_assert!((s.throughput_per_sec - achieved).abs() < 1e-5,
            "throughput {} vs {} completed in the window", s.throughput_per_sec, achieved);
        // Every point of the window lies before its end, every drain point after.
        for p in &report.timeseries {
            prop_assert_eq!(p.drain, p.t > window_secs as f64, "point at {}", p.t);
        }
    }
}
