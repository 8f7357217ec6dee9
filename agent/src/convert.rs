//! Conversions between the generated protocol types and the agent's domain
//! messages. With `link`, the only place that touches `common::proto`.

use std::time::Duration;

use anyhow::Context as _;
use common::Secret;
use common::histogram::HistogramError;
use common::ids::UserName;
use common::proto;
use common::scenario::MixEntry;

use crate::messages::{
    AgentEvent, AssignmentChunk, ControllerEvent, GeneratorStats, LoadModel, RunSettings,
    StartPlan, VuserSpec,
};

/// `None` for a message with no body (from a newer controller): ignored.
pub fn controller_event(msg: proto::ControllerMessage) -> anyhow::Result<Option<ControllerEvent>> {
    use proto::controller_message::Body;
    Ok(match msg.body {
        None => None,
        Some(Body::Assignment(a)) => Some(ControllerEvent::Assignment(assignment(a)?)),
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
                    })
                    .collect();
                (g.group_index, users)
            })
            .collect(),
    })
}

fn settings(s: proto::RunSettings) -> anyhow::Result<RunSettings> {
    use proto::load_model::Model;
    let load = match s.load.and_then(|l| l.model) {
        None => LoadModel::Closed {
            think_time: Duration::ZERO,
        },
        Some(Model::Closed(c)) => LoadModel::Closed {
            think_time: Duration::from_millis(c.think_time_ms),
        },
        Some(Model::Open(o)) => {
            anyhow::ensure!(
                o.rate_per_sec.is_finite() && o.rate_per_sec >= 0.0,
                "open-model rate {} is not a non-negative number",
                o.rate_per_sec
            );
            LoadModel::Open {
                rate_per_sec: o.rate_per_sec,
            }
        }
    };
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
    })
}

fn generator(g: &GeneratorStats) -> proto::GeneratorStats {
    proto::GeneratorStats {
        cpu_seconds: g.cpu_seconds,
        late_starts: g.late_starts,
        max_lateness_us: g.max_lateness_us,
        active_vusers: g.active_vusers,
    }
}

pub fn agent_message(event: AgentEvent) -> Result<proto::AgentMessage, HistogramError> {
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
            failure_samples,
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
        } => Body::Interval(proto::IntervalReport {
            seq,
            interval_start_ms,
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            series: series.to_proto()?,
            generator: Some(generator(&g)),
        }),
        AgentEvent::Final {
            series,
            generator: g,
            mcp,
            interrupted,
        } => Body::FinalReport(proto::FinalReport {
            series: series.to_proto()?,
            generator: Some(generator(&g)),
            mcp: Some(proto::McpStats {
                session_reinitializations: mcp.session_reinitializations,
                auth_failures: mcp.auth_failures,
                refresh_requests: mcp.refresh_requests,
            }),
            interrupted,
        }),
        AgentEvent::RefreshRequest { user } => Body::RefreshRequest(proto::RefreshRequest {
            user_name: user.as_str().to_owned(),
        }),
        AgentEvent::Failure { message } => Body::Failure(proto::AgentFailure { message }),
    };
    Ok(proto::AgentMessage { body: Some(body) })
}

/// The register request for this agent.
pub fn register_request(name: &str, capacity: u32, digest: &str) -> proto::RegisterRequest {
    proto::RegisterRequest {
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
        Some(Body::Start(_)) => "start",
        Some(Body::TokenUpdate(_)) => "token update",
        Some(Body::Stop(_)) => "stop",
        None => "empty message",
    }
}

/// Wraps `controller_event` with the message kind as context.
pub fn decode(msg: proto::ControllerMessage) -> anyhow::Result<Option<ControllerEvent>> {
    let what = context_of(&msg);
    controller_event(msg).with_context(|| format!("malformed {what} from the controller"))
}
