//! A realistic, deterministic `ReportInput` for the report tests: three
//! agents (one lost, without a final report), two workflows with steps, a
//! baseline workflow, an idle user, failures of several kinds, intervals.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use common::ErrorKind;
use common::LatencyHistogram;
use common::failures::FailureBook;
use common::ids::UserName;
use common::series::{SeriesKey, SeriesKind, SeriesSet};
use controller::report::{
    AgentResult, AgentTotals, AuthInput, GeneratorStats, IntervalPoint, McpStats, ReportInput,
    RunInfo,
};
use controller::thresholds::Threshold;

/// Deterministic pseudo-random numbers (a 64-bit LCG), so snapshots are
/// stable without a dependency.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A latency in `lo..hi` µs.
    pub fn latency(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_micros(lo + self.next() % (hi - lo))
    }

    /// True once in `n` draws.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

pub const NOTE_SHARE: [(&str, &str, usize); 4] = [
    ("create_note", "nc_notes_create_note", 0),
    ("share_note", "nc_share_create", 0),
    ("list_shared_with_me", "nc_share_list", 1),
    ("read_shared_note", "nc_notes_get_note", 1),
];

pub const COLLABORATIVE_EDIT: [(&str, &str, usize); 3] = [
    ("create_note", "nc_notes_create_note", 0),
    ("append_content", "nc_notes_append_content", 1),
    ("verify", "nc_notes_get_note", 0),
];

pub const BASELINE: [(&str, &str, usize); 2] = [
    ("search", "nc_notes_search_notes", 0),
    ("list_directory", "nc_webdav_list_directory", 0),
];

const FAILURE_KINDS: [ErrorKind; 4] = [
    ErrorKind::Tool,
    ErrorKind::Http5xx,
    ErrorKind::JsonRpc,
    ErrorKind::Timeout,
];

/// Records one execution of `workflow` by `users` into `set`: every step
/// (and its tool call) and the whole workflow, failing at a random step now
/// and then.
pub fn record_workflow(
    set: &mut SeriesSet,
    rng: &mut Lcg,
    workflow: &str,
    steps: &[(&str, &str, usize)],
    users: &[&str],
) {
    let mut total = Duration::ZERO;
    let mut failure = None;
    for (step, tool, role) in steps {
        let user = users[role % users.len()];
        let latency = rng.latency(5_000, 250_000);
        total += latency;
        if rng.one_in(25) {
            let kind = FAILURE_KINDS[(rng.next() % 4) as usize];
            set.entry(SeriesKey::step(workflow, step))
                .record_failure(latency, kind);
            set.entry(SeriesKey::operation(workflow, tool))
                .record_failure(latency, kind);
            set.user(&UserName::new(user))
                .record(tool, latency, Some(kind));
            failure = Some(kind);
            break;
        }
        set.entry(SeriesKey::step(workflow, step))
            .record_ok(latency);
        set.entry(SeriesKey::operation(workflow, tool))
            .record_ok(latency);
        set.user(&UserName::new(user)).record(tool, latency, None);
    }
    let key = SeriesKey::workflow(workflow);
    match failure {
        Some(kind) => set.entry(key).record_failure(total, kind),
        None => set.entry(key).record_ok(total),
    }
}

/// One agent's series over `seconds` seconds, split into per-second deltas.
fn agent_run(rng: &mut Lcg, users: &[&str], seconds: u64) -> Vec<SeriesSet> {
    let mut deltas = Vec::new();
    for _ in 0..seconds {
        let mut set = SeriesSet::default();
        for _ in 0..3 {
            record_workflow(&mut set, rng, "note_share", &NOTE_SHARE, users);
        }
        record_workflow(
            &mut set,
            rng,
            "collaborative_edit",
            &COLLABORATIVE_EDIT,
            users,
        );
        for user in users {
            record_workflow(&mut set, rng, "baseline", &BASELINE, &[user]);
        }
        deltas.push(set);
    }
    deltas
}

fn sum(sets: &[SeriesSet]) -> SeriesSet {
    let mut total = SeriesSet::default();
    for s in sets {
        total.merge(s);
    }
    total
}

pub fn users() -> Vec<String> {
    (1..=7).map(|n| format!("loadtest_user_{n}")).collect()
}

pub const THRESHOLDS: [&str; 6] = [
    "note_share.p95<500ms",
    "error_rate<1%",
    "workflow_success>90%",
    "p99<2s",
    "throughput>50",
    "unknown_workflow.p95<1s",
];

/// The realistic input: 3 agents over 10 s; agent 3 is lost after 6 s and
/// never sent its final report.
pub fn realistic_input() -> ReportInput {
    let mut rng = Lcg::new(42);
    let seconds = 10;
    let groups: [&[&str]; 3] = [
        &["loadtest_user_1", "loadtest_user_2"],
        &["loadtest_user_3", "loadtest_user_4"],
        &["loadtest_user_5", "loadtest_user_6"],
    ];
    let mut agents = Vec::new();
    let mut series = SeriesSet::default();
    let mut intervals: Vec<IntervalPoint> = (1..=seconds)
        .map(|s| IntervalPoint {
            at: Duration::from_secs(s),
            ..Default::default()
        })
        .collect();
    for (i, users) in groups.iter().enumerate() {
        let lost = i == 2;
        let ran = if lost { 6 } else { seconds };
        let mut deltas = agent_run(&mut rng, users, ran);
        for _ in users.iter() {
            // Session openings belong to the series too.
            let init = rng.latency(2_000, 20_000);
            deltas[0].entry(SeriesKey::mcp_initialize()).record_ok(init);
        }
        for (point, delta) in intervals.iter_mut().zip(&deltas) {
            point.add(delta);
        }
        let agent_series = sum(&deltas);
        series.merge(&agent_series);
        agents.push(AgentResult {
            id: format!("agent-{}", i + 1).into(),
            name: format!("agent-{}", i + 1),
            n_users: users.len(),
            lost,
            final_received: !lost,
            totals: AgentTotals::of(&agent_series),
            generator: GeneratorStats {
                cpu_seconds: 1.25 + i as f64,
                late_starts: i as u64,
                max_lateness_us: 1_500 * i as u64,
                active_vusers: users.len() as u64,
                dropped_starts: 0,
                offered_starts: 0,
            },
            mcp: {
                let mut mcp = McpStats {
                    session_reinitializations: i as u64,
                    auth_failures: u64::from(i == 1),
                    refresh_requests: u64::from(i == 1),
                    ..McpStats::default()
                };
                for _ in 0..users.len() {
                    mcp.count_session(common::protocol::McpVersion::V2026_07_28);
                }
                mcp
            },
            intervals_received: ran,
        });
    }
    let mut login_latency = LatencyHistogram::new();
    for _ in 0..7 {
        login_latency.record(rng.latency(80_000, 400_000));
    }
    let started_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let mut step_order = BTreeMap::new();
    step_order.insert(
        "note_share".to_owned(),
        NOTE_SHARE.iter().map(|s| s.0.to_owned()).collect(),
    );
    step_order.insert(
        "collaborative_edit".to_owned(),
        COLLABORATIVE_EDIT.iter().map(|s| s.0.to_owned()).collect(),
    );
    step_order.insert(
        "baseline".to_owned(),
        BASELINE.iter().map(|s| s.0.to_owned()).collect(),
    );
    let series_for_failures = series.clone();
    ReportInput {
        run: RunInfo {
            target: "http://127.0.0.1:41234/mcp".to_owned(),
            workload: "mixed".to_owned(),
            load_model: "closed, think time 0s".to_owned(),
            n_users: 7,
            n_agents: 3,
            started_at,
            ended_at: started_at + Duration::from_millis(15_250),
            warmup: Duration::from_secs(5),
            duration: Duration::from_secs(seconds),
            interrupted: false,
            embedded_target: false,
            login_method: "direct".to_owned(),
        },
        series,
        agents,
        intervals,
        drain: BTreeMap::new(),
        regions: BTreeMap::new(),
        auth: AuthInput {
            login_method: "direct".to_owned(),
            login_latency,
            logins_ok: 7,
            logins_failed: 0,
            tokens_from_cache: 0,
            refreshes: 2,
            refresh_failures: 0,
            auth_failures: 0,
            ..AuthInput::default()
        },
        users: users(),
        baseline_workflows: vec!["baseline".to_owned()],
        step_order,
        thresholds: THRESHOLDS
            .iter()
            .map(|t| Threshold::parse(t).expect("fixture thresholds parse"))
            .collect(),
        tenants: Default::default(),
        failures: failures_of(&series_for_failures),
        agent_losses: Vec::new(),
    }
}

/// Messages as agents would send them for every failed step of `series`
/// (through the wire form, so the controller's cleaning applies), one of
/// them echoing a token the report must not show.
pub fn failures_of(series: &SeriesSet) -> FailureBook {
    let mut wire = Vec::new();
    for (key, stats) in series.iter_kind(SeriesKind::Step) {
        for kind in stats.errors.keys() {
            let messages: &[&str] = match kind {
                ErrorKind::Tool => &[
                    "tool error: Note 41 not found",
                    "tool error: permission denied",
                ],
                ErrorKind::Http5xx => &[
                    "HTTP 503 Service Unavailable: injected fault",
                    "HTTP 500: {\"error\":\"boom\",\"access_token\":\"eyJhbGc.eyJzdWI.c2ln\"}",
                ],
                ErrorKind::JsonRpc => &["JSON-RPC error -32602: unknown argument `etag`"],
                _ => &["no answer within 30s"],
            };
            for m in messages {
                wire.push(common::proto::FailureSample {
                    workflow: key.workflow.clone(),
                    step: key.step.clone(),
                    kind: kind.to_proto() as i32,
                    message: (*m).to_owned(),
                });
            }
        }
    }
    let mut book = FailureBook::default();
    for chunk in wire.chunks(16) {
        book.merge_proto(chunk);
    }
    book
}
