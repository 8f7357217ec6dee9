//! Each region's agents' series, merged per region as the agents' results
//! come in (the same final reports, or interval sums for an agent that sent
//! none, that go into the run's merged set). Per region only the series are
//! kept, never users (a count of them): regions × series.

use std::collections::BTreeMap;

use common::ids::AgentId;
use common::region::Region;
use common::series::{SeriesSet, slot};

use crate::report::RegionSeries;

#[derive(Debug, Default)]
pub struct RegionFold {
    /// Each attached agent's region.
    of: BTreeMap<AgentId, Region>,
    regions: BTreeMap<Region, RegionSeries>,
}

impl RegionFold {
    /// `agent` (shown as `name`) is in `region`.
    pub fn place(&mut self, agent: &AgentId, name: &str, region: Region) {
        self.regions
            .entry(region.clone())
            .or_default()
            .agents
            .push(name.to_owned());
        self.of.insert(agent.clone(), region);
    }

    /// Adds what `agent` measured to its region (its series and its number
    /// of users; not the users themselves).
    pub fn absorb(&mut self, agent: &AgentId, set: &SeriesSet) {
        let Some(region) = self.of.get(agent) else {
            return;
        };
        let into = self.regions.entry(region.clone()).or_default();
        into.n_users += set.users.len();
        for (key, stats) in &set.series {
            slot(&mut into.series.series, key).merge(stats);
        }
    }

    /// Every region's series (moved out: call once).
    pub fn take(&mut self) -> BTreeMap<Region, RegionSeries> {
        std::mem::take(&mut self.regions)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use common::ids::UserName;
    use common::series::SeriesKey;

    use super::*;

    #[test]
    fn agents_fold_into_their_regions() {
        let mut fold = RegionFold::default();
        let (a, b, c) = (AgentId::new("a"), AgentId::new("b"), AgentId::new("c"));
        fold.place(&a, "agent-a", Region::parse("eu").unwrap());
        fold.place(&b, "agent-b", Region::parse("eu").unwrap());
        fold.place(&c, "agent-c", Region::parse("us").unwrap());
        let mut set = SeriesSet::default();
        set.entry(SeriesKey::operation("wf", "tool"))
            .record_ok(Duration::from_millis(3));
        set.user(&UserName::new("u1"))
            .record("tool", Duration::from_millis(3), None);
        fold.absorb(&a, &set);
        fold.absorb(&b, &set);
        fold.absorb(&c, &set);
        fold.absorb(&AgentId::new("unknown"), &set);
        let regions = fold.take();
        let eu = &regions[&Region::parse("eu").unwrap()];
        assert_eq!(eu.agents, ["agent-a", "agent-b"]);
        assert_eq!(eu.n_users, 2);
        assert_eq!(eu.series.series[&SeriesKey::operation("wf", "tool")].ok, 2);
        assert!(eu.series.users.is_empty(), "no users per region");
        assert_eq!(regions[&Region::parse("us").unwrap()].n_users, 1);
    }
}
