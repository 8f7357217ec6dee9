//! Conversions between the generated protocol types and the agent's domain
//! messages. With `link`, the only place that touches `common::proto`.

use std::time::Duration;

use anyhow::Context as _;
use common::Secret;
use common::histogram::HistogramError;
use common::ids::UserName;
use common::limits;
use common::proto;
use common::scenario::MixEntry;

use crate::messages::{
    AgentEvent, AssignmentChunk, ControllerEvent, LoadModel, LoadUpdate, McpVersionChoice,
    RunSettings, StartPlan, VuserSpec,
};

/// `None` for a message with no body (from a newer controller): ignored.
pub fn controller_event(msg: proto::ControllerMessage) -> anyhow::Result<Option<ControllerEvent>> {
    use proto::controller_message::Body;
    Ok(match msg.body {
        None => None,
        Some(Body::Assignment(a)) => Some(ControllerEvent::Assignment(assignment(a)?)),
        Some(Body::AddGroups(g)) => {
            let a = g.assignment.context("moved groups carry no assignment")?;
            Some(ControllerEvent::AddGroups(assignment(a)?))
        }
        Some(Body::Start(s)) => Some(ControllerEvent::Start(StartPlan {
            start_at_ms: s.start_at_ms,
            warmup: Duration::from_millis(s.warmup_ms),
            duration: Duration::from_millis(s.duration_ms),
        })),
        Some(Body::TokenUpdate(t)) => Some(ControllerEvent::TokenUpdate {
            user: UserName::new(t.user_name),
            token: Secret::new(t.access_token),
        }),
        Some(Body::Stop(s)) => Some(ControllerEvent::Stop { reason: s.reason }),
        Some(Body::LoadUpdate(u)) => Some(ControllerEvent::LoadUpdate(LoadUpdate::from_proto(&u)?)),
        // Liveness only: the link's reader stamps it and goes on.
        Some(Body::Keepalive(_)) => None,
    })
}

fn assignment(a: proto::Assignment) -> anyhow::Result<AssignmentChunk> {
    let settings = match a.settings {
        Some(s) => Some(settings(s)?),
        None if a.chunk_index == 0 => {
            anyhow::bail!("assignment {} chunk 0 carries no settings", a.assignment_id)
        }
        None => None,
    };
    Ok(AssignmentChunk {
        id: a.assignment_id,
        index: a.chunk_index,
        count: a.chunk_count.max(1),
        settings,
        groups: a
            .groups
            .into_iter()
            .map(|g| {
                let users = g
                    .users
                    .into_iter()
                    .map(|u| VuserSpec {
                        name: UserName::new(u.name),
                        token: Secret::new(u.access_token),
                        rank: u.activation_rank,
                    })
                    .collect();
                (g.group_index, users)
            })
            .collect(),
    })
}

fn settings(s: proto::RunSettings) -> anyhow::Result<RunSettings> {
    let load = LoadModel::from_proto(s.load.as_ref())?;
    anyhow::ensure!(!s.mcp_url.is_empty(), "run settings carry no MCP URL");
    let mut headers: Vec<(String, String)> = s.headers.into_iter().collect();
    headers.sort();
    Ok(RunSettings {
        mcp_url: s.mcp_url,
        scenario_source: s.scenario_source,
        scenario_digest: s.scenario_digest,
        mix: s
            .mix
            .into_iter()
            .map(|m| MixEntry {
                workflow: m.workflow,
                weight: m.weight,
            })
            .collect(),
        load,
        request_timeout: Duration::from_millis(s.request_timeout_ms),
        headers,
        stages: common::protocol::stages_from_proto(&s.stages)?,
        rate_share: if s.rate_share.is_finite() && s.rate_share >= 0.0 {
            s.rate_share
        } else {
            anyhow::bail!("run settings carry rate share {}", s.rate_share)
        },
        mcp_version: McpVersionChoice::from_proto(&s.mcp_version)?,
        elicitation: common::protocol::ElicitationAnswer::from_proto(&s.elicitation)?,
        max_in_flight: match s.max_in_flight {
            0 => crate::messages::MAX_IN_FLIGHT,
            n => usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(common::limits::MAX_IN_FLIGHT_PER_AGENT),
        },
    })
}

/// Most bytes of users one `FinalReport` chunk carries, well under the
/// controller's decoding limit, so any user count reaches it.
pub const FINAL_CHUNK_BYTES: usize = 1024 * 1024;

/// The wire messages for one event: one, except for a final report, which is
/// split into chunks of at most `FINAL_CHUNK_BYTES` of users.
pub fn agent_messages(event: AgentEvent) -> Result<Vec<proto::AgentMessage>, HistogramError> {
    use proto::agent_message::Body;
    let body = match event {
        AgentEvent::Ready {
            assignment_id,
            sessions_open,
            sessions_failed,
            failure_samples,
        } => Body::Ready(proto::Ready {
            assignment_id,
            sessions_open,
            sessions_failed,
            // Within what the controller accepts (`common::limits`).
            failure_samples: failure_samples
                .iter()
                .take(limits::MAX_FAILURE_SAMPLES)
                .map(|m| limits::truncate(m, limits::MAX_FAILURE_MESSAGE_BYTES))
                .collect(),
        }),
        AgentEvent::Heartbeat {
            sent_at_ms,
            active_vusers,
        } => Body::Heartbeat(proto::Heartbeat {
            sent_at_ms,
            active_vusers,
        }),
        AgentEvent::Interval {
            seq,
            interval_start_ms,
            interval,
            series,
            generator: g,
            failures,
        } => Body::Interval(proto::IntervalReport {
            seq,
            interval_start_ms,
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            series: series.series_to_proto()?,
            generator: Some(g.to_proto()),
            users: series.users_to_proto()?,
            failures: common::failures::samples_to_proto(&failures),
        }),
        AgentEvent::Final {
            series,
            generator: g,
            mcp,
            interrupted,
            failures,
        } => {
            let head = proto::FinalReport {
                series: series.series_to_proto()?,
                generator: Some(g.to_proto()),
                mcp: Some(mcp.to_proto()),
                interrupted,
                failures: common::failures::samples_to_proto(&failures),
                ..Default::default()
            };
            let chunks = final_chunks(head, series.users_to_proto()?, FINAL_CHUNK_BYTES);
            return Ok(chunks
                .into_iter()
                .map(|c| proto::AgentMessage {
                    body: Some(Body::FinalReport(c)),
                })
                .collect());
        }
        AgentEvent::GroupsAdded {
            assignment_id,
            sessions_open,
            sessions_failed,
            failure_samples,
            started_at_ms,
        } => Body::GroupsAdded(proto::GroupsAdded {
            assignment_id,
            sessions_open,
            sessions_failed,
            failure_samples,
            started_at_ms,
        }),
        AgentEvent::RefreshRequest { user } => Body::RefreshRequest(proto::RefreshRequest {
            user_name: user.as_str().to_owned(),
        }),
        AgentEvent::Failure { message } => Body::Failure(proto::AgentFailure {
            message: limits::truncate(&message, limits::MAX_FAILURE_MESSAGE_BYTES),
        }),
    };
    Ok(vec![proto::AgentMessage { body: Some(body) }])
}

/// Splits a final report: `head` (series, counters) and the first users go
/// in chunk 0, the other users in as many chunks as `budget` bytes need.
fn final_chunks(
    head: proto::FinalReport,
    users: Vec<proto::UserSeries>,
    budget: usize,
) -> Vec<proto::FinalReport> {
    use prost::Message as _;
    let first = head.encoded_len();
    let mut parts = common::chunk::pack(users, first, budget, |u| u.encoded_len() + 8).into_iter();
    let mut chunks = vec![proto::FinalReport {
        users: parts.next().unwrap_or_default(),
        ..head
    }];
    chunks.extend(parts.map(|users| proto::FinalReport {
        users,
        ..Default::default()
    }));
    let count = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
    for (i, c) in chunks.iter_mut().enumerate() {
        c.chunk_index = u32::try_from(i).unwrap_or(u32::MAX);
        c.chunk_count = count;
    }
    chunks
}

/// The register request for this agent.
pub fn register_request(
    name: &str,
    capacity: u32,
    region: Option<&common::region::Region>,
    digest: &str,
) -> proto::RegisterRequest {
    proto::RegisterRequest {
        region: region.map(|r| r.as_str().to_owned()).unwrap_or_default(),
        protocol_version: common::PROTOCOL_VERSION,
        agent_name: name.to_owned(),
        capacity,
        scenario_digest: digest.to_owned(),
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// Context for a malformed message, without echoing it (it may hold tokens).
pub fn context_of(event: &proto::ControllerMessage) -> &'static str {
    use proto::controller_message::Body;
    match event.body {
        Some(Body::Assignment(_)) => "assignment",
        Some(Body::AddGroups(_)) => "moved groups",
        Some(Body::Start(_)) => "start",
        Some(Body::TokenUpdate(_)) => "token update",
        Some(Body::Stop(_)) => "stop",
        Some(Body::LoadUpdate(_)) => "load update",
        Some(Body::Keepalive(_)) => "keepalive",
        None => "empty message",
    }
}

/// Wraps `controller_event` with the message kind as context.
pub fn decode(msg: proto::ControllerMessage) -> anyhow::Result<Option<ControllerEvent>> {
    let what = context_of(&msg);
    controller_event(msg).with_context(|| format!("malformed {what} from the controller"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn user(i: usize) -> proto::UserSeries {
        proto::UserSeries {
            user: format!("loadtest_user_{i}"),
            ok: 3,
            histogram: vec![7; 40],
            ..Default::default()
        }
    }

    #[test]
    fn final_reports_are_chunked_under_the_budget() {
        let head = proto::FinalReport {
            interrupted: true,
            ..Default::default()
        };
        let users: Vec<_> = (0..5000).map(user).collect();
        let chunks = final_chunks(head, users, 16 * 1024);
        assert!(chunks.len() > 10, "{}", chunks.len());
        let n: usize = chunks.iter().map(|c| c.users.len()).sum();
        assert_eq!(n, 5000, "every user in exactly one chunk");
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.chunk_index as usize, i);
            assert_eq!(c.chunk_count as usize, chunks.len());
            assert!(c.encoded_len() <= 16 * 1024, "{}", c.encoded_len());
        }
        assert!(chunks[0].interrupted);
        let single = final_chunks(proto::FinalReport::default(), Vec::new(), 16 * 1024);
        assert_eq!((single.len(), single[0].chunk_count), (1, 1));
    }
}
