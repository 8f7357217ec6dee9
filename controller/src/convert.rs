//! Conversions between the generated proto types and `messages`; with
//! `service`, the only code that touches `common::proto`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::failures::FailureBook;
use common::ids::UserName;
use common::limits::{self, BoundError};
use common::proto;
use common::series::{SeriesSet, WireError};

use crate::messages::{
    Assignment, FinalData, FromAgent, GroupsAddedReport, IntervalData, ReadyReport, RunSettings,
    ToAgent, VuserGroup,
};
use crate::report::{GeneratorStats, McpStats};

/// Keep each assignment message under this (the default gRPC limit is 4 MiB).
pub const CHUNK_BYTES: usize = 1024 * 1024;

pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// One domain message as one or more proto messages (assignments are chunked).
pub fn to_proto(msg: &ToAgent) -> Vec<proto::ControllerMessage> {
    use proto::controller_message::Body;
    let wrap = |body| proto::ControllerMessage { body: Some(body) };
    match msg {
        ToAgent::Assignment(a) => chunk_assignment(a, CHUNK_BYTES)
            .into_iter()
            .map(|c| wrap(Body::Assignment(c)))
            .collect(),
        ToAgent::AddGroups(a) => chunk_assignment(a, CHUNK_BYTES)
            .into_iter()
            .map(|c| {
                wrap(Body::AddGroups(proto::AddGroups {
                    assignment: Some(c),
                }))
            })
            .collect(),
        ToAgent::Start(s) => vec![wrap(Body::Start(proto::Start {
            start_at_ms: unix_ms(s.start_at),
            warmup_ms: millis(s.warmup),
            duration_ms: millis(s.duration),
        }))],
        ToAgent::TokenUpdate(t) => vec![wrap(Body::TokenUpdate(proto::TokenUpdate {
            user_name: t.user.to_string(),
            access_token: t.access_token.expose().to_owned(),
            expires_at_ms: t.expires_at_ms,
        }))],
        ToAgent::Stop { reason } => vec![wrap(Body::Stop(proto::Stop {
            reason: reason.clone(),
        }))],
        ToAgent::LoadUpdate(u) => vec![wrap(Body::LoadUpdate(u.to_proto()))],
    }
}

/// The controller's keepalive, stamped now.
pub fn keepalive() -> proto::ControllerMessage {
    proto::ControllerMessage {
        body: Some(proto::controller_message::Body::Keepalive(
            proto::Keepalive {
                sent_at_ms: unix_ms(SystemTime::now()),
            },
        )),
    }
}

fn settings_to_proto(s: &RunSettings) -> proto::RunSettings {
    proto::RunSettings {
        mcp_url: s.mcp_url.clone(),
        scenario_source: s.scenario_source.clone(),
        scenario_digest: s.scenario_digest.clone(),
        mix: s
            .mix
            .iter()
            .map(|(workflow, weight)| proto::MixEntry {
                workflow: workflow.clone(),
                weight: *weight,
            })
            .collect(),
        load: Some(s.load.to_proto()),
        request_timeout_ms: millis(s.request_timeout),
        headers: Default::default(),
        mcp_version: s.mcp_version.to_proto(),
        elicitation: s.elicitation.as_str().to_owned(),
        max_in_flight: s.max_in_flight,
        stages: common::protocol::stages_to_proto(&s.stages),
        rate_share: s.rate_share,
    }
}

fn group_to_proto(g: &VuserGroup) -> proto::VuserGroup {
    proto::VuserGroup {
        group_index: g.index,
        users: g
            .users
            .iter()
            .map(|u| proto::VuserSpec {
                user_index: u.index,
                name: u.name.to_string(),
                access_token: u.access_token.expose().to_owned(),
                expires_at_ms: u.expires_at_ms,
                activation_rank: u.rank,
            })
            .collect(),
    }
}

/// Splits an assignment into chunks of whole groups, each under about
/// `limit` bytes; settings travel in chunk 0 only.
pub fn chunk_assignment(a: &Assignment, limit: usize) -> Vec<proto::Assignment> {
    let settings = settings_to_proto(&a.settings);
    let settings_size = a.settings.scenario_source.len() + 1024;
    let group_size = |g: &VuserGroup| {
        g.users
            .iter()
            .map(|u| u.name.as_str().len() + u.access_token.expose().len() + 32)
            .sum::<usize>()
            + 16
    };
    let chunks = common::chunk::pack(&a.groups, settings_size, limit, |g| group_size(g));
    let count = chunks.len() as u32;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, groups)| proto::Assignment {
            assignment_id: a.id.clone(),
            chunk_index: i as u32,
            chunk_count: count,
            settings: (i == 0).then(|| settings.clone()),
            groups: groups.into_iter().map(group_to_proto).collect(),
        })
        .collect()
}

/// Failure texts of a `Ready` or an `AgentFailure` within `limits`.
fn check_failures<'a>(texts: impl IntoIterator<Item = &'a String>) -> Result<(), BoundError> {
    for text in texts {
        limits::check_len("failure message", text, limits::MAX_FAILURE_MESSAGE_BYTES)?;
    }
    Ok(())
}

/// `None` for an empty message (from a newer agent with an unknown body).
/// A message past a bound of `common::limits` is refused whole.
pub fn from_proto(msg: proto::AgentMessage) -> Result<Option<FromAgent>, WireError> {
    use proto::agent_message::Body;
    let Some(body) = msg.body else {
        return Ok(None);
    };
    match &body {
        Body::Ready(r) => {
            limits::check_count(
                "failure samples in Ready",
                r.failure_samples.len(),
                limits::MAX_FAILURE_SAMPLES,
            )?;
            check_failures(&r.failure_samples)?;
        }
        Body::GroupsAdded(g) => {
            limits::check_len("assignment id", &g.assignment_id, limits::MAX_NAME_BYTES)?;
            limits::check_count(
                "failure samples in GroupsAdded",
                g.failure_samples.len(),
                limits::MAX_FAILURE_SAMPLES,
            )?;
            check_failures(&g.failure_samples)?;
        }
        Body::Failure(f) => check_failures([&f.message])?,
        Body::RefreshRequest(r) => {
            limits::check_len("user name", &r.user_name, limits::MAX_NAME_BYTES)?;
        }
        Body::FinalReport(f) => {
            limits::check_count(
                "final report chunks",
                f.chunk_count as usize,
                limits::MAX_CHUNKS as usize,
            )?;
        }
        Body::Heartbeat(_) | Body::Interval(_) => {}
    }
    Ok(Some(match body {
        Body::Ready(r) => FromAgent::Ready(ReadyReport {
            assignment_id: r.assignment_id,
            sessions_open: r.sessions_open,
            sessions_failed: r.sessions_failed,
            failure_samples: r.failure_samples,
        }),
        Body::Heartbeat(h) => FromAgent::Heartbeat {
            active_vusers: h.active_vusers,
        },
        Body::Interval(i) => FromAgent::Interval(IntervalData {
            seq: i.seq,
            start: from_unix_ms(i.interval_start_ms),
            length: Duration::from_millis(i.interval_ms),
            series: SeriesSet::from_proto(i.series, i.users)?,
            generator: GeneratorStats::from_proto(i.generator.as_ref()),
            failures: failure_book(&i.failures),
        }),
        Body::FinalReport(f) => FromAgent::Final(Box::new(FinalData {
            chunk_index: f.chunk_index,
            chunk_count: f.chunk_count.max(1),
            series: SeriesSet::from_proto(f.series, f.users)?,
            generator: GeneratorStats::from_proto(f.generator.as_ref()),
            mcp: McpStats::from_proto(f.mcp.as_ref()),
            interrupted: f.interrupted,
            failures: failure_book(&f.failures),
        })),
        Body::RefreshRequest(r) => FromAgent::RefreshRequest {
            user: UserName::new(r.user_name),
        },
        Body::Failure(f) => FromAgent::Failure { message: f.message },
        Body::GroupsAdded(g) => FromAgent::GroupsAdded(GroupsAddedReport {
            assignment_id: g.assignment_id,
            sessions_open: g.sessions_open,
            sessions_failed: g.sessions_failed,
            failure_samples: g.failure_samples,
            started_at: from_unix_ms(g.started_at_ms),
        }),
    }))
}

/// Failure samples from the wire, bounded and cleaned (`FailureBook::merge_proto`).
fn failure_book(samples: &[proto::FailureSample]) -> FailureBook {
    let mut book = FailureBook::default();
    book.merge_proto(samples);
    book
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::VuserSpec;
    use common::Secret;
    use common::protocol::LoadModel;

    fn assignment(n_groups: u32) -> Assignment {
        Assignment {
            id: "a1".into(),
            settings: RunSettings {
                mcp_url: "http://x/mcp".into(),
                scenario_source: "s".into(),
                scenario_digest: "d".into(),
                mix: vec![("baseline".into(), 1)],
                load: LoadModel::Closed {
                    think_time: Duration::ZERO,
                },
                request_timeout: Duration::from_secs(30),
                mcp_version: Default::default(),
                elicitation: Default::default(),
                max_in_flight: 0,
                stages: vec![],
                rate_share: 1.0,
            },
            groups: (0..n_groups)
                .map(|g| VuserGroup {
                    index: g,
                    users: (0..2)
                        .map(|u| VuserSpec {
                            index: g * 2 + u,
                            name: UserName::new(format!("u{g}_{u}")),
                            access_token: Secret::new("t".repeat(900)),
                            expires_at_ms: 0,
                            rank: g * 2 + u,
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn chunks_keep_groups_whole_and_settings_first() {
        let a = assignment(2000);
        let chunks = chunk_assignment(&a, CHUNK_BYTES);
        assert!(chunks.len() > 1);
        assert!(chunks[0].settings.is_some());
        assert!(chunks[1..].iter().all(|c| c.settings.is_none()));
        assert!(
            chunks
                .iter()
                .all(|c| c.chunk_count as usize == chunks.len())
        );
        let total: usize = chunks.iter().map(|c| c.groups.len()).sum();
        assert_eq!(total, 2000);
        for c in &chunks {
            let size: usize = c
                .groups
                .iter()
                .flat_map(|g| &g.users)
                .map(|u| u.access_token.len() + u.name.len())
                .sum();
            assert!(size < CHUNK_BYTES, "{size}");
        }
        assert_eq!(chunk_assignment(&assignment(0), CHUNK_BYTES).len(), 1);
    }
}
