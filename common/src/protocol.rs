//! The protocol's domain types that the controller and the agent share, each
//! with its one conversion to and from the generated proto types: the load
//! model and its stages, a running run's load update, the load generator's
//! own figures and the MCP counters.

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
}

impl GeneratorStats {
    pub fn to_proto(&self) -> proto::GeneratorStats {
        proto::GeneratorStats {
            cpu_seconds: self.cpu_seconds,
            late_starts: self.late_starts,
            max_lateness_us: self.max_lateness_us,
            active_vusers: u32::try_from(self.active_vusers).unwrap_or(u32::MAX),
        }
    }

    /// A missing message is all zeros.
    pub fn from_proto(g: Option<&proto::GeneratorStats>) -> Self {
        g.map(|g| GeneratorStats {
            cpu_seconds: g.cpu_seconds,
            late_starts: g.late_starts,
            max_lateness_us: g.max_lateness_us,
            active_vusers: u64::from(g.active_vusers),
        })
        .unwrap_or_default()
    }
}

/// MCP-level counters an agent keeps beside its series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct McpStats {
    pub session_reinitializations: u64,
    /// 401/403 answers the agent got from the MCP server.
    pub auth_failures: u64,
    /// Token refreshes the agent asked the controller for.
    pub refresh_requests: u64,
}

impl McpStats {
    pub fn to_proto(&self) -> proto::McpStats {
        proto::McpStats {
            session_reinitializations: self.session_reinitializations,
            auth_failures: self.auth_failures,
            refresh_requests: self.refresh_requests,
        }
    }

    /// A missing message is all zeros.
    pub fn from_proto(m: Option<&proto::McpStats>) -> Self {
        m.map(|m| McpStats {
            session_reinitializations: m.session_reinitializations,
            auth_failures: m.auth_failures,
            refresh_requests: m.refresh_requests,
        })
        .unwrap_or_default()
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
        };
        assert_eq!(GeneratorStats::from_proto(Some(&g.to_proto())), g);
        let m = McpStats {
            session_reinitializations: 1,
            auth_failures: 2,
            refresh_requests: 3,
        };
        assert_eq!(McpStats::from_proto(Some(&m.to_proto())), m);
        assert_eq!(McpStats::from_proto(None), McpStats::default());
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
