//! Each agent as the run sees it: its phase (one `match (from, to)` for
//! every change), its groups and load share, and its outbound queue, on
//! which every send is bounded by `SEND_TIMEOUT`.

use std::time::Duration;

use anyhow::bail;
use common::ids::UserName;
use tokio::sync::mpsc;

use super::reassign::GroupUsers;
use crate::messages::{ReadyReport, ToAgent};
use crate::report::GeneratorStats;

/// Longest wait for room in an agent's outbound queue: a stuck agent must
/// not hold up the run loop (liveness declares it lost soon after).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Attached,
    Assigned,
    Ready,
    Running,
    /// Its `FinalReport` arrived.
    Finished,
    Lost,
}

pub struct AgentState {
    pub name: String,
    pub phase: Phase,
    outbound: Option<mpsc::Sender<ToAgent>>,
    pub users: Vec<UserName>,
    /// Its groups (what moves if it is lost), without tokens.
    pub groups: Vec<GroupUsers>,
    /// Open model: its fraction of the cluster's rate, moved groups' included.
    pub rate_share: f64,
    pub ready: Option<ReadyReport>,
    pub intervals_received: u64,
    pub generator: GeneratorStats,
    /// A chunk of its final report arrived: it has finished its load and
    /// is sending the report (a `Stop` would tell it nothing).
    pub final_begun: bool,
}

impl AgentState {
    pub fn new(name: String, outbound: mpsc::Sender<ToAgent>) -> AgentState {
        AgentState {
            name,
            phase: Phase::Attached,
            outbound: Some(outbound),
            users: Vec::new(),
            groups: Vec::new(),
            rate_share: 0.0,
            ready: None,
            intervals_received: 0,
            generator: GeneratorStats::default(),
            final_begun: false,
        }
    }

    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Finished | Phase::Lost)
    }

    /// The one place phases change; returns whether the change was allowed.
    pub fn transition(&mut self, to: Phase) -> bool {
        use Phase::*;
        let ok = match (self.phase, to) {
            (Attached, Assigned) | (Assigned, Ready) | (Ready, Running) => true,
            (Attached | Assigned | Ready | Running, Finished) => true,
            (from, Lost) => from != Finished && from != Lost,
            _ => false,
        };
        if ok {
            self.phase = to;
            if matches!(to, Finished | Lost) {
                // Dropping the sender ends the stream once the agent is done.
                self.outbound = None;
            }
        }
        ok
    }

    /// Queues `msg` for the agent, waiting at most `SEND_TIMEOUT`.
    pub async fn send(&self, msg: ToAgent) -> anyhow::Result<()> {
        let Some(tx) = &self.outbound else {
            bail!("agent {} is not attached", self.name)
        };
        match tokio::time::timeout(SEND_TIMEOUT, tx.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => bail!("agent {} is gone", self.name),
            Err(_) => bail!(
                "agent {} took no message for {} s (stuck?)",
                self.name,
                SEND_TIMEOUT.as_secs()
            ),
        }
    }

    /// Ends the agent's stream (it sees the end and exits).
    pub fn close(&mut self) {
        self.outbound = None;
    }
}
