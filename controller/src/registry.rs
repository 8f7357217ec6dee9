//! The agents of a run: who registered and whether their stream is attached.
//! Registration is refused once the run has all the agents it asked for.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use common::ids::AgentId;
use common::region::Region;

/// An agent the watchdog found silent (reported once per agent).
#[derive(Debug, Clone)]
pub struct Silent {
    pub agent: AgentId,
    /// When its last message arrived.
    pub last_heard: SystemTime,
    pub silent_for: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Registered,
    Attached,
    Detached,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("the run already has its {0} agents")]
    Full(usize),
    #[error("unknown agent id {0}: call Register first")]
    Unknown(AgentId),
    #[error("agent {0} is already attached (or was detached): register again")]
    NotAttachable(AgentId),
}

#[derive(Debug)]
struct Entry {
    name: String,
    region: Region,
    slot: Slot,
    /// When the last message from the agent arrived (stamped by the
    /// service on arrival, so a busy run loop cannot make an agent look lost).
    last_heard: Instant,
    /// Whether the watchdog still looks at it (not once it finished or was lost).
    watched: bool,
}

pub struct Registry {
    capacity: usize,
    inner: Mutex<BTreeMap<AgentId, Entry>>,
}

impl Registry {
    pub fn new(capacity: usize) -> Registry {
        Registry {
            capacity,
            inner: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<AgentId, Entry>> {
        // A panic while holding this lock leaves a consistent map: keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, name: &str, region: Region) -> Result<AgentId, RegistryError> {
        let mut agents = self.lock();
        if agents.len() >= self.capacity {
            return Err(RegistryError::Full(self.capacity));
        }
        let id = AgentId::new(format!("{}-{}", agents.len() + 1, sanitize(name)));
        agents.insert(
            id.clone(),
            Entry {
                name: name.to_owned(),
                region,
                slot: Slot::Registered,
                last_heard: Instant::now(),
                watched: true,
            },
        );
        Ok(id)
    }

    /// Marks the agent attached; returns its name.
    pub fn attach(&self, id: &AgentId) -> Result<String, RegistryError> {
        let mut agents = self.lock();
        let entry = agents
            .get_mut(id)
            .ok_or_else(|| RegistryError::Unknown(id.clone()))?;
        match entry.slot {
            Slot::Registered => {
                entry.slot = Slot::Attached;
                entry.last_heard = Instant::now();
                Ok(entry.name.clone())
            }
            Slot::Attached | Slot::Detached => Err(RegistryError::NotAttachable(id.clone())),
        }
    }

    /// The region the agent gave at `Register`.
    pub fn region(&self, id: &AgentId) -> Option<Region> {
        self.lock().get(id).map(|e| e.region.clone())
    }

    pub fn detach(&self, id: &AgentId) {
        if let Some(e) = self.lock().get_mut(id) {
            e.slot = Slot::Detached;
        }
    }

    /// Notes that a message from the agent just arrived.
    pub fn touch(&self, id: &AgentId) {
        if let Some(e) = self.lock().get_mut(id) {
            e.last_heard = Instant::now();
        }
    }

    pub fn last_heard(&self, id: &AgentId) -> Option<Instant> {
        self.lock().get(id).map(|e| e.last_heard)
    }

    /// When the last message from the agent arrived, on the wall clock.
    pub fn last_heard_at(&self, id: &AgentId) -> Option<SystemTime> {
        self.last_heard(id).map(|h| SystemTime::now() - h.elapsed())
    }

    /// The watchdog stops looking at the agent (finished or lost).
    pub fn retire(&self, id: &AgentId) {
        if let Some(e) = self.lock().get_mut(id) {
            e.watched = false;
        }
    }

    /// Attached agents silent for longer than `after`, each reported once
    /// (it is retired as it is reported).
    pub fn newly_silent(&self, after: Duration, hearing_since: Instant) -> Vec<Silent> {
        let mut agents = self.lock();
        let mut out = Vec::new();
        for (id, e) in agents.iter_mut() {
            let silent_for = e.last_heard.elapsed();
            // Only the silence the controller could have heard counts.
            let counted = silent_for.min(hearing_since.elapsed());
            if e.watched && e.slot == Slot::Attached && counted > after {
                e.watched = false;
                out.push(Silent {
                    agent: id.clone(),
                    last_heard: SystemTime::now() - silent_for,
                    silent_for,
                });
            }
        }
        out
    }

    pub fn slot(&self, id: &AgentId) -> Option<Slot> {
        self.lock().get(id).map(|e| e.slot)
    }

    pub fn n_registered(&self) -> usize {
        self.lock().len()
    }
}

fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    if s.is_empty() { "agent".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_capacity_and_double_attach() {
        let r = Registry::new(2);
        let a = r.register("agent-0", Region::default()).unwrap();
        let b = r.register("agent 1!", Region::default()).unwrap();
        assert_eq!(b.as_str(), "2-agent1");
        assert_eq!(
            r.register("x", Region::default()),
            Err(RegistryError::Full(2))
        );
        assert_eq!(r.attach(&a).unwrap(), "agent-0");
        assert!(matches!(r.attach(&a), Err(RegistryError::NotAttachable(_))));
        assert!(matches!(
            r.attach(&AgentId::from("nope")),
            Err(RegistryError::Unknown(_))
        ));
        r.detach(&b);
        assert_eq!(r.slot(&b), Some(Slot::Detached));
    }

    #[test]
    fn a_silent_attached_agent_is_reported_once() {
        let hearing_since = Instant::now();
        let r = Registry::new(3);
        let a = r.register("a", Region::default()).unwrap();
        let b = r.register("b", Region::default()).unwrap();
        let c = r.register("c", Region::default()).unwrap();
        r.attach(&a).unwrap();
        r.attach(&b).unwrap();
        r.attach(&c).unwrap();
        r.retire(&c);
        std::thread::sleep(Duration::from_millis(30));
        r.touch(&b);
        // A controller that only just began to hear blames no one.
        assert!(
            r.newly_silent(Duration::from_millis(20), Instant::now())
                .is_empty()
        );
        let silent = r.newly_silent(Duration::from_millis(20), hearing_since);
        let ids: Vec<&AgentId> = silent.iter().map(|s| &s.agent).collect();
        assert_eq!(ids, vec![&a], "b was heard, c is retired");
        assert!(silent[0].silent_for >= Duration::from_millis(30));
        assert!(
            r.newly_silent(Duration::from_millis(20), hearing_since)
                .is_empty(),
            "once"
        );
    }
}
