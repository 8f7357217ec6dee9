//! The protocol's domain types that the controller and the agent share, each
//! with its one conversion to and from the generated proto types: the load
//! model and its stages, a running run's load update, the MCP protocol version
//! to speak, the load generator's own figures and the MCP counters.

use std::time::Duration;

use crate::load::Stage;
use crate::proto;

/// Most stages one message may carry; more is a misbehaving peer.
pub const MAX_STAGES: usize = 1024;

/// A proto value that the domain cannot represent.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("open-model rate {0} is not a finite, non-negative number")]
    Rate(f64),
    #[error(
        "MCP protocol version {0:?} is not one this agent speaks (auto, 2025-06-18, 2025-11-25, 2026-07-28)"
    )]
    McpVersion(String),
    #[error("elicitation answer {0:?} is not one this agent knows (decline, cancel, accept-empty)")]
    Elicitation(String),
    #[error("stage target {0} is not a finite, non-negative number")]
    StageTarget(f64),
    #[error("{0} stages in one message (at most {MAX_STAGES})")]
    TooManyStages(usize),
}

pub fn stages_to_proto(stages: &[Stage]) -> Vec<proto::Stage> {
    stages
        .iter()
        .map(|s| proto::Stage {
            duration_ms: millis(s.duration),
            target: s.target,
        })
        .collect()
}

pub fn stages_from_proto(stages: &[proto::Stage]) -> Result<Vec<Stage>, ProtocolError> {
    if stages.len() > MAX_STAGES {
        return Err(ProtocolError::TooManyStages(stages.len()));
    }
    stages
        .iter()
        .map(|s| {
            if !(s.target.is_finite() && s.target >= 0.0) {
                return Err(ProtocolError::StageTarget(s.target));
            }
            Ok(Stage {
                duration: Duration::from_millis(s.duration_ms),
                target: s.target,
            })
        })
        .collect()
}

/// A change of a running run's load (controller → agent): from `at_ms`
/// (unix ms) follow `stages` (cluster-wide values) from the value there;
/// `end_at_ms` ends the run earlier.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadUpdate {
    pub at_ms: i64,
    pub stages: Vec<Stage>,
    pub end_at_ms: Option<i64>,
}

impl LoadUpdate {
    pub fn to_proto(&self) -> proto::LoadUpdate {
        proto::LoadUpdate {
            at_ms: self.at_ms,
            stages: stages_to_proto(&self.stages),
            end_at_ms: self.end_at_ms.unwrap_or(0),
        }
    }

    pub fn from_proto(u: &proto::LoadUpdate) -> Result<Self, ProtocolError> {
        Ok(LoadUpdate {
            at_ms: u.at_ms,
            stages: stages_from_proto(&u.stages)?,
            end_at_ms: (u.end_at_ms != 0).then_some(u.end_at_ms),
        })
    }
}

/// How load is generated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LoadModel {
    /// Every vuser loops with this pause between workflows.
    Closed { think_time: Duration },
    /// Workflow starts per second: across the cluster in the controller's
    /// configuration, this agent's share in an assignment.
    Open { rate_per_sec: f64 },
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl LoadModel {
    pub fn to_proto(&self) -> proto::LoadModel {
        use proto::load_model::Model;
        let model = match *self {
            LoadModel::Closed { think_time } => Model::Closed(proto::Closed {
                think_time_ms: millis(think_time),
            }),
            LoadModel::Open { rate_per_sec } => Model::Open(proto::Open { rate_per_sec }),
        };
        proto::LoadModel { model: Some(model) }
    }

    /// A missing model is the closed model without think time.
    pub fn from_proto(load: Option<&proto::LoadModel>) -> Result<Self, ProtocolError> {
        use proto::load_model::Model;
        Ok(match load.and_then(|l| l.model.as_ref()) {
            None => LoadModel::Closed {
                think_time: Duration::ZERO,
            },
            Some(Model::Closed(c)) => LoadModel::Closed {
                think_time: Duration::from_millis(c.think_time_ms),
            },
            Some(Model::Open(o)) => {
                if !(o.rate_per_sec.is_finite() && o.rate_per_sec >= 0.0) {
                    return Err(ProtocolError::Rate(o.rate_per_sec));
                }
                LoadModel::Open {
                    rate_per_sec: o.rate_per_sec,
                }
            }
        })
    }
}

/// How an agent's load generator itself fared, so a saturated agent is not
/// mistaken for a slow server.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GeneratorStats {
    /// Process CPU time used, in seconds.
    pub cpu_seconds: f64,
    /// Workflow starts that began later than intended (open model).
    pub late_starts: u64,
    pub max_lateness_us: u64,
    /// Closed model: looping vusers; open model: workflows in flight.
    pub active_vusers: u64,
    /// Open model: starts dropped at the in-flight bound (measured window).
    pub dropped_starts: u64,
    /// Open model: starts that fell due in the measured window, made or
    /// dropped: the offered load.
    pub offered_starts: u64,
}

impl GeneratorStats {
    pub fn to_proto(&self) -> proto::GeneratorStats {
        proto::GeneratorStats {
            cpu_seconds: self.cpu_seconds,
            late_starts: self.late_starts,
            max_lateness_us: self.max_lateness_us,
            active_vusers: u32::try_from(self.active_vusers).unwrap_or(u32::MAX),
            dropped_starts: self.dropped_starts,
            offered_starts: self.offered_starts,
        }
    }

    /// A missing message is all zeros.
    pub fn from_proto(g: Option<&proto::GeneratorStats>) -> Self {
        g.map(|g| GeneratorStats {
            cpu_seconds: g.cpu_seconds,
            late_starts: g.late_starts,
            max_lateness_us: g.max_lateness_us,
            active_vusers: u64::from(g.active_vusers),
            dropped_starts: g.dropped_starts,
            offered_starts: g.offered_starts,
        })
        .unwrap_or_default()
    }
}

/// MCP-level counters an agent keeps beside its series.
/// An MCP protocol revision the agent speaks, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum McpVersion {
    V2025_03_26,
    V2025_06_18,
    V2025_11_25,
    /// No initialize and no session: version and client info ride in each
    /// request's `_meta`, with `Mcp-Method`/`Mcp-Name` headers.
    V2026_07_28,
}

impl McpVersion {
    pub const ALL: [McpVersion; 4] = [
        McpVersion::V2025_03_26,
        McpVersion::V2025_06_18,
        McpVersion::V2025_11_25,
        McpVersion::V2026_07_28,
    ];
    /// The newest revision that still has an `initialize` handshake.
    pub const NEWEST_WITH_INITIALIZE: McpVersion = McpVersion::V2025_11_25;

    pub fn as_str(self) -> &'static str {
        match self {
            McpVersion::V2025_03_26 => "2025-03-26",
            McpVersion::V2025_06_18 => "2025-06-18",
            McpVersion::V2025_11_25 => "2025-11-25",
            McpVersion::V2026_07_28 => "2026-07-28",
        }
    }

    pub fn parse(s: &str) -> Option<McpVersion> {
        McpVersion::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a session starts with `initialize` (and keeps an `Mcp-Session-Id`).
    pub fn has_initialize(self) -> bool {
        self < McpVersion::V2026_07_28
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for McpVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--mcp-version`: one revision, or `auto`, the newest both sides speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum McpVersionChoice {
    #[default]
    Auto,
    Fixed(McpVersion),
}

impl McpVersionChoice {
    /// The proto form: `""` is auto.
    pub fn to_proto(self) -> String {
        match self {
            McpVersionChoice::Auto => String::new(),
            McpVersionChoice::Fixed(v) => v.as_str().to_owned(),
        }
    }

    pub fn from_proto(s: &str) -> Result<Self, ProtocolError> {
        match s {
            "" | "auto" => Ok(McpVersionChoice::Auto),
            s => McpVersion::parse(s)
                .map(McpVersionChoice::Fixed)
                .ok_or_else(|| ProtocolError::McpVersion(s.chars().take(40).collect())),
        }
    }
}

/// `--elicitation`: how agents answer a server's `elicitation/create`
/// (a server asking its user for input, e.g. the Nextcloud MCP server's
/// "open this login URL"). A load generator has no user to ask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ElicitationAnswer {
    /// `{"action": "decline"}`: the user said no.
    #[default]
    Decline,
    /// `{"action": "cancel"}`: the user dismissed it.
    Cancel,
    /// `{"action": "accept", "content": {}}`: accepted with no input.
    AcceptEmpty,
}

impl ElicitationAnswer {
    pub const NAMES: [&str; 3] = ["decline", "cancel", "accept-empty"];

    pub fn as_str(self) -> &'static str {
        match self {
            ElicitationAnswer::Decline => "decline",
            ElicitationAnswer::Cancel => "cancel",
            ElicitationAnswer::AcceptEmpty => "accept-empty",
        }
    }

    /// The proto form is the name; `""` is the default.
    pub fn from_proto(s: &str) -> Result<Self, ProtocolError> {
        match s {
            "" | "decline" => Ok(ElicitationAnswer::Decline),
            "cancel" => Ok(ElicitationAnswer::Cancel),
            "accept-empty" => Ok(ElicitationAnswer::AcceptEmpty),
            other => Err(ProtocolError::Elicitation(other.chars().take(40).collect())),
        }
    }
}

/// The requests a server may send its client, as agents count them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServerRequest {
    Ping,
    Elicitation,
    Sampling,
    Roots,
    /// Any other method (answered "method not found").
    Other,
}

impl ServerRequest {
    pub const ALL: [ServerRequest; 5] = [
        ServerRequest::Ping,
        ServerRequest::Elicitation,
        ServerRequest::Sampling,
        ServerRequest::Roots,
        ServerRequest::Other,
    ];

    pub fn of(method: &str) -> ServerRequest {
        match method {
            "ping" => ServerRequest::Ping,
            "elicitation/create" => ServerRequest::Elicitation,
            "sampling/createMessage" => ServerRequest::Sampling,
            "roots/list" => ServerRequest::Roots,
            _ => ServerRequest::Other,
        }
    }

    /// The method name (`other` for the rest): the report's key.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerRequest::Ping => "ping",
            ServerRequest::Elicitation => "elicitation/create",
            ServerRequest::Sampling => "sampling/createMessage",
            ServerRequest::Roots => "roots/list",
            ServerRequest::Other => "other",
        }
    }

    pub fn parse(name: &str) -> Option<ServerRequest> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct McpStats {
    pub session_reinitializations: u64,
    /// 401/403 answers the agent got from the MCP server.
    pub auth_failures: u64,
    /// Token refreshes the agent asked the controller for.
    pub refresh_requests: u64,
    /// Sessions opened, by the protocol version they settled on
    /// (indexed by `McpVersion`).
    pub sessions_by_version: [u64; McpVersion::ALL.len()],
    /// Requests the server sent us mid-call, by kind (indexed by
    /// `ServerRequest`), each answered.
    pub server_requests: [u64; ServerRequest::ALL.len()],
}

impl McpStats {
    pub fn to_proto(&self) -> proto::McpStats {
        proto::McpStats {
            session_reinitializations: self.session_reinitializations,
            auth_failures: self.auth_failures,
            refresh_requests: self.refresh_requests,
            sessions_by_protocol_version: McpVersion::ALL
                .into_iter()
                .filter(|v| self.sessions_by_version[v.index()] > 0)
                .map(|v| (v.as_str().to_owned(), self.sessions_by_version[v.index()]))
                .collect(),
            server_requests: ServerRequest::ALL
                .into_iter()
                .filter(|r| self.server_requests[r.index()] > 0)
                .map(|r| (r.as_str().to_owned(), self.server_requests[r.index()]))
                .collect(),
        }
    }

    /// A missing message is all zeros; versions we do not know are left out.
    pub fn from_proto(m: Option<&proto::McpStats>) -> Self {
        m.map(|m| {
            let mut sessions_by_version = [0; McpVersion::ALL.len()];
            for (k, n) in &m.sessions_by_protocol_version {
                if let Some(v) = McpVersion::parse(k) {
                    sessions_by_version[v.index()] = *n;
                }
            }
            let mut server_requests = [0; ServerRequest::ALL.len()];
            for (k, n) in &m.server_requests {
                if let Some(r) = ServerRequest::parse(k) {
                    server_requests[r.index()] = *n;
                }
            }
            McpStats {
                session_reinitializations: m.session_reinitializations,
                auth_failures: m.auth_failures,
                refresh_requests: m.refresh_requests,
                sessions_by_version,
                server_requests,
            }
        })
        .unwrap_or_default()
    }

    /// Sessions that settled on `version`.
    pub fn sessions(&self, version: McpVersion) -> u64 {
        self.sessions_by_version[version.index()]
    }

    /// Counts one session opened with `version`.
    pub fn count_session(&mut self, version: McpVersion) {
        self.sessions_by_version[version.index()] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for load in [
            LoadModel::Closed {
                think_time: Duration::from_millis(1500),
            },
            LoadModel::Open { rate_per_sec: 12.5 },
        ] {
            assert_eq!(LoadModel::from_proto(Some(&load.to_proto())).unwrap(), load);
        }
        let g = GeneratorStats {
            cpu_seconds: 1.5,
            late_starts: 3,
            max_lateness_us: 900,
            active_vusers: 10,
            dropped_starts: 7,
            offered_starts: 40,
        };
        assert_eq!(GeneratorStats::from_proto(Some(&g.to_proto())), g);
        let mut m = McpStats {
            session_reinitializations: 1,
            auth_failures: 2,
            refresh_requests: 3,
            ..McpStats::default()
        };
        m.count_session(McpVersion::V2026_07_28);
        m.count_session(McpVersion::V2025_06_18);
        m.count_session(McpVersion::V2026_07_28);
        assert_eq!(m.sessions(McpVersion::V2026_07_28), 2);
        assert_eq!(McpStats::from_proto(Some(&m.to_proto())), m);
        assert_eq!(McpStats::from_proto(None), McpStats::default());
        for choice in [
            McpVersionChoice::Auto,
            McpVersionChoice::Fixed(McpVersion::V2026_07_28),
            McpVersionChoice::Fixed(McpVersion::V2025_06_18),
        ] {
            assert_eq!(
                McpVersionChoice::from_proto(&choice.to_proto()).unwrap(),
                choice
            );
        }
        assert!(McpVersionChoice::from_proto("2099-01-01").is_err());
        assert!(McpVersion::V2025_11_25.has_initialize());
        assert!(!McpVersion::V2026_07_28.has_initialize());
        let u = LoadUpdate {
            at_ms: 1_000,
            stages: vec![Stage {
                duration: Duration::from_secs(2),
                target: 7.5,
            }],
            end_at_ms: Some(9_000),
        };
        assert_eq!(LoadUpdate::from_proto(&u.to_proto()).unwrap(), u);
    }

    #[test]
    fn bad_stages_are_refused() {
        let bad = proto::Stage {
            duration_ms: 1,
            target: f64::NAN,
        };
        assert!(stages_from_proto(&[bad]).is_err());
        let many = vec![proto::Stage::default(); MAX_STAGES + 1];
        assert!(stages_from_proto(&many).is_err());
    }

    #[test]
    fn bad_rates_are_refused() {
        for rate in [f64::NAN, -1.0, f64::INFINITY] {
            let p = LoadModel::Open { rate_per_sec: rate }.to_proto();
            assert!(LoadModel::from_proto(Some(&p)).is_err(), "{rate}");
        }
        assert_eq!(
            LoadModel::from_proto(None).unwrap(),
            LoadModel::Closed {
                think_time: Duration::ZERO
            }
        );
    }
}
