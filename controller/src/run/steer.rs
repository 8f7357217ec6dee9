//! Changing the load while a run goes (the capacity search): the `Steer`
//! that the collect loop asks on every tick for a load update to send to the
//! agents, and the `Probe` that sums the interval deltas of the window it is
//! measuring.

use std::collections::BTreeMap;
use std::time::SystemTime;

use common::ids::AgentId;
use common::protocol::LoadUpdate;
use common::series::SeriesSet;

use super::aggregate::Window;
use crate::messages::IntervalData;

/// Decides load updates from what the probe measured.
pub trait Steer: Send {
    /// Called a few times a second while agents run; `running` are the
    /// agents still running. A returned update goes to every one of them.
    fn tick(
        &mut self,
        now: SystemTime,
        probe: &mut Probe,
        running: &[AgentId],
    ) -> Option<LoadUpdate>;
}

/// Interval deltas of one window, summed (series only, no users), and how
/// far each agent's intervals have come.
#[derive(Debug, Default)]
pub struct Probe {
    window: Option<Window>,
    series: SeriesSet,
    reported_until: BTreeMap<AgentId, SystemTime>,
}

impl Probe {
    /// Starts measuring `window`, dropping what was summed before.
    pub fn measure(&mut self, window: Window) {
        self.window = Some(window);
        self.series = SeriesSet::default();
    }

    /// Adds an agent's interval if its middle falls in the window.
    pub fn add(&mut self, agent: &AgentId, data: &IntervalData) {
        let end = data.start + data.length;
        let until = self.reported_until.entry(agent.clone()).or_insert(end);
        *until = (*until).max(end);
        let Some(w) = self.window else { return };
        let middle = data.start + data.length / 2;
        if middle >= w.from && middle < w.until {
            for (key, stats) in &data.series.series {
                self.series.stats(key).merge(stats);
            }
        }
    }

    /// Whether every one of `agents` has sent its intervals up to `t`.
    pub fn reported(&self, agents: &[AgentId], t: SystemTime) -> bool {
        agents
            .iter()
            .all(|a| self.reported_until.get(a).is_some_and(|u| *u >= t))
    }

    /// What the window summed (moved out), and stops measuring.
    pub fn take(&mut self) -> SeriesSet {
        self.window = None;
        std::mem::take(&mut self.series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::series::SeriesKey;
    use std::time::Duration;

    fn interval(second: u64, ok: u64) -> IntervalData {
        let mut series = SeriesSet::default();
        for _ in 0..ok {
            series
                .entry(SeriesKey::workflow("wf"))
                .record_ok(Duration::from_millis(3));
        }
        IntervalData {
            seq: second,
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(second),
            length: Duration::from_secs(1),
            series,
            generator: Default::default(),
            failures: Default::default(),
        }
    }

    #[test]
    fn sums_only_the_window() {
        let (a, b) = (AgentId::new("a"), AgentId::new("b"));
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let mut probe = Probe::default();
        probe.add(&a, &interval(0, 9));
        probe.measure(Window {
            from: at(2),
            until: at(4),
        });
        for s in 1..5 {
            probe.add(&a, &interval(s, s));
        }
        probe.add(&b, &interval(2, 10));
        assert!(probe.reported(std::slice::from_ref(&a), at(4)));
        assert!(
            !probe.reported(&[a.clone(), b.clone()], at(4)),
            "b is behind"
        );
        let got = probe.take();
        assert_eq!(got.series[&SeriesKey::workflow("wf")].ok, 2 + 3 + 10);
        probe.add(&a, &interval(5, 1));
        assert!(probe.take().series.is_empty(), "no window, nothing summed");
    }
}
