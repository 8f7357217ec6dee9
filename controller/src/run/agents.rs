//! Each agent as the run sees it: its phase (one `match (from, to)` for
//! every change), its users, its outbound queue and when it was last heard.

use std::time::Instant;

use anyhow::bail;
use common::ids::UserName;
use tokio::sync::mpsc;

use crate::messages::{ReadyReport, ToAgent};
use crate::report::GeneratorStats;

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
    pub last_seen: Instant,
    pub users: Vec<UserName>,
    pub ready: Option<ReadyReport>,
    pub intervals_received: u64,
    pub generator: GeneratorStats,
}

impl AgentState {
    pub fn new(name: String, outbound: mpsc::Sender<ToAgent>) -> AgentState {
        AgentState {
            name,
            phase: Phase::Attached,
            outbound: Some(outbound),
            last_seen: Instant::now(),
            users: Vec::new(),
            ready: None,
            intervals_received: 0,
            generator: GeneratorStats::default(),
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

    /// Queues `msg` for the agent.
    pub async fn send(&self, msg: ToAgent) -> anyhow::Result<()> {
        match &self.outbound {
            Some(tx) => tx
                .send(msg)
                .await
                .map_err(|_| anyhow::anyhow!("agent {} is gone", self.name)),
            None => bail!("agent {} is not attached", self.name),
        }
    }

    /// Ends the agent's stream (it sees the end and exits).
    pub fn close(&mut self) {
        self.outbound = None;
    }
}
