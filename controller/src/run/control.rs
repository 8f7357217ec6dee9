//! Steering by hand (`--http-control`): the requests `POST /api/v1/control`
//! takes become load updates for the running agents — the closed model's
//! active users, the open model's rate — or a clean stop (the run's own
//! cancellation, as Ctrl-C). Each change is answered, marked on the live
//! charts and kept for the report's timeline.

use std::time::{Duration, SystemTime};

use common::ids::AgentId;
use common::load::Stage;
use common::protocol::{LoadModel, LoadUpdate};
use observe::control::{Change, Request};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::steer::{Probe, Steer};
use crate::convert::unix_ms;

/// How far ahead a change takes effect, so every agent has it in time.
const LEAD: Duration = Duration::from_millis(200);
/// Requests waiting for the run at most (more are refused as busy).
pub const QUEUE: usize = 8;

/// One change made by hand: when it takes effect and the new level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadChange {
    pub at: SystemTime,
    pub value: f64,
}

pub struct Manual {
    requests: mpsc::Receiver<Request>,
    model: LoadModel,
    n_users: u64,
    stop: CancellationToken,
    live: observe::Live,
    /// Every change made, in order.
    pub changes: Vec<LoadChange>,
}

impl Manual {
    pub fn new(
        requests: mpsc::Receiver<Request>,
        model: LoadModel,
        n_users: u64,
        stop: CancellationToken,
        live: observe::Live,
    ) -> Manual {
        Manual {
            requests,
            model,
            n_users,
            stop,
            live,
            changes: Vec::new(),
        }
    }

    /// What `change` does to the run: the new level, or why it is refused.
    fn level(&self, change: Change) -> Result<f64, String> {
        match (change, self.model) {
            (Change::Users(n), LoadModel::Closed { .. }) if n <= self.n_users => Ok(n as f64),
            (Change::Users(n), LoadModel::Closed { .. }) => Err(format!(
                "the run has {} users: at most that many can be active (asked {n})",
                self.n_users
            )),
            (Change::Users(_), LoadModel::Open { .. }) => {
                Err("this run is open-model: change its rate ({\"rate\": R})".to_owned())
            }
            (Change::Rate(r), LoadModel::Open { .. }) => Ok(r),
            (Change::Rate(_), LoadModel::Closed { .. }) => {
                Err("this run is closed-model: change its active users ({\"users\": N})".to_owned())
            }
            (Change::Stop, _) => Ok(0.0),
        }
    }
}

impl Steer for Manual {
    fn tick(
        &mut self,
        now: SystemTime,
        _probe: &mut Probe,
        running: &[AgentId],
    ) -> Option<LoadUpdate> {
        let Request { change, answer } = self.requests.try_recv().ok()?;
        if change == Change::Stop {
            tracing::warn!(
                "stop asked through the control API: stopping agents and collecting their final reports"
            );
            self.live
                .update(|f| f.event(now, "stop asked (control API)".to_owned()));
            self.stop.cancel();
            let _ = answer.send(Ok("stopping: agents flush their final reports".to_owned()));
            return None;
        }
        if running.is_empty() {
            let _ = answer.send(Err("no agent is running now".to_owned()));
            return None;
        }
        let value = match self.level(change) {
            Ok(v) => v,
            Err(why) => {
                let _ = answer.send(Err(why));
                return None;
            }
        };
        let at = now + LEAD;
        let what = match change {
            Change::Users(n) => format!("active users set to {n} (control API)"),
            Change::Rate(r) => format!("rate set to {r}/s (control API)"),
            // Answered above.
            Change::Stop => return None,
        };
        tracing::info!("{what}");
        self.live.update(|f| f.event(now, what.clone()));
        self.changes.push(LoadChange { at, value });
        let _ = answer.send(Ok(what));
        Some(LoadUpdate {
            at_ms: unix_ms(at),
            stages: vec![Stage {
                duration: Duration::ZERO,
                target: value,
            }],
            end_at_ms: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn manual(model: LoadModel) -> (Manual, mpsc::Sender<Request>, CancellationToken) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = CancellationToken::new();
        (
            Manual::new(rx, model, 10, stop.clone(), observe::Live::new()),
            tx,
            stop,
        )
    }

    fn ask(
        tx: &mpsc::Sender<Request>,
        change: Change,
    ) -> oneshot::Receiver<Result<String, String>> {
        let (answer, answered) = oneshot::channel();
        tx.try_send(Request { change, answer }).unwrap();
        answered
    }

    #[test]
    fn changes_fit_the_model_and_become_load_updates() {
        let closed = LoadModel::Closed {
            think_time: Duration::ZERO,
        };
        let (mut m, tx, stop) = manual(closed);
        let running = [AgentId::new("a")];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut probe = Probe::default();

        let mut answer = ask(&tx, Change::Users(4));
        let update = m.tick(now, &mut probe, &running).expect("an update");
        assert_eq!(update.stages[0].target, 4.0);
        assert_eq!(update.at_ms, unix_ms(now + LEAD));
        assert!(answer.try_recv().unwrap().unwrap().contains("set to 4"));
        assert_eq!(
            m.changes,
            vec![LoadChange {
                at: now + LEAD,
                value: 4.0
            }]
        );

        let mut answer = ask(&tx, Change::Users(11));
        assert!(m.tick(now, &mut probe, &running).is_none());
        assert!(answer.try_recv().unwrap().unwrap_err().contains("at most"));
        let mut answer = ask(&tx, Change::Rate(3.0));
        assert!(m.tick(now, &mut probe, &running).is_none());
        assert!(
            answer
                .try_recv()
                .unwrap()
                .unwrap_err()
                .contains("closed-model")
        );
        assert!(m.tick(now, &mut probe, &running).is_none(), "nothing asked");

        let mut answer = ask(&tx, Change::Stop);
        assert!(m.tick(now, &mut probe, &running).is_none());
        assert!(stop.is_cancelled());
        assert!(answer.try_recv().unwrap().is_ok());
        assert_eq!(m.changes.len(), 1);
    }
}
