//! Liveness apart from the run loop: the gRPC service runs on a runtime of
//! its own, where arrival times are stamped as messages come in, and a
//! watchdog thread reads those stamps, so neither a busy run loop nor a busy
//! runtime can make a live agent look lost or hide a silent one, in any
//! phase (SPEC §5).
//!
//! A controller that cannot hear does not blame its agents: a task on the
//! service runtime ticks every 100 ms (the `Ear`), and silence is counted
//! only from the moment the runtime was last seen keeping up. A runtime
//! busy for seconds (encoding 100,000 users' assignments on a loaded
//! machine) or a controller that was itself stopped (SIGSTOP, a suspended
//! VM) resumes with its agents' heartbeats still queued on their sockets;
//! they are read before anyone is declared lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;

use crate::registry::{Registry, Silent};

/// An agent silent this long is lost: heartbeats come every second, so a
/// silent agent is declared lost within 5 s of its last one.
pub const AGENT_LOST_AFTER: Duration = Duration::from_secs(4);
/// How often the watchdog looks.
const CHECK_EVERY: Duration = Duration::from_millis(200);
/// How often the ear ticks, and how late a tick may be before the runtime
/// counts as having been behind (deaf) until it.
const TICK_EVERY: Duration = Duration::from_millis(100);
const DEAF_AFTER: Duration = Duration::from_millis(600);

/// When the service runtime was last seen running, and when it last came
/// back from being behind.
#[derive(Debug)]
pub struct Ear {
    state: Mutex<EarState>,
}

#[derive(Debug, Clone, Copy)]
struct EarState {
    last_tick: Instant,
    hearing_since: Instant,
}

impl Ear {
    pub fn new() -> Arc<Ear> {
        let now = Instant::now();
        Arc::new(Ear {
            state: Mutex::new(EarState {
                last_tick: now,
                hearing_since: now,
            }),
        })
    }

    fn read(&self) -> EarState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One tick of the runtime at `now`: a late one starts a new stretch
    /// of hearing. Returns how long the runtime was behind, if it was.
    fn tick(&self, now: Instant) -> Option<Duration> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let gap = now.saturating_duration_since(s.last_tick);
        s.last_tick = now;
        (gap > DEAF_AFTER).then(|| {
            s.hearing_since = now;
            gap
        })
    }

    /// Since when the controller has been able to hear, or `None` when it
    /// cannot now (its runtime is behind).
    fn hearing_since(&self, now: Instant) -> Option<Instant> {
        let s = self.read();
        (now.saturating_duration_since(s.last_tick) <= DEAF_AFTER).then_some(s.hearing_since)
    }

    /// Ticks on `runtime` until the process ends.
    pub fn listen(self: &Arc<Ear>, runtime: &Handle) {
        let ear = self.clone();
        runtime.spawn(async move {
            let mut every = tokio::time::interval(TICK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Some(gap) = ear.tick(Instant::now()) {
                    tracing::warn!(
                        behind = ?gap,
                        "the controller's gRPC runtime was behind (or the process was stopped); \
                         agents' silence in that time is not counted against them"
                    );
                }
            }
        });
    }
}

/// The watchdog thread; it stops when this is dropped.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the watchdog over `registry`'s attached agents, counting silence
/// only while `ear` hears.
pub fn watch(
    registry: Arc<Registry>,
    ear: Arc<Ear>,
    lost_after: Duration,
) -> std::io::Result<(Watchdog, mpsc::UnboundedReceiver<Silent>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::unbounded_channel();
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("agent-liveness".into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(CHECK_EVERY);
                let Some(since) = ear.hearing_since(Instant::now()) else {
                    continue;
                };
                for silent in registry.newly_silent(lost_after, since) {
                    if tx.send(silent).is_err() {
                        return;
                    }
                }
            }
        })?;
    Ok((Watchdog { stop }, rx))
}

/// A runtime with two worker threads for the gRPC service (one agent's
/// big message being encoded leaves a thread to hear the others), shut
/// down (without waiting) on drop.
pub struct ServiceRuntime {
    runtime: Option<Runtime>,
}

impl ServiceRuntime {
    pub fn start() -> std::io::Result<ServiceRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("controller-grpc")
            .enable_all()
            .build()?;
        Ok(ServiceRuntime {
            runtime: Some(runtime),
        })
    }

    pub fn handle(&self) -> Handle {
        match &self.runtime {
            Some(rt) => rt.handle().clone(),
            // Only `drop` takes the runtime out.
            None => Handle::current(),
        }
    }
}

impl Drop for ServiceRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside another one would block (and panics).
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_tick_restarts_the_hearing_and_a_stale_one_is_deafness() {
        let ear = Ear::new();
        let t0 = ear.read().last_tick;
        assert_eq!(ear.tick(t0 + TICK_EVERY), None);
        assert_eq!(ear.hearing_since(t0 + 2 * TICK_EVERY), Some(t0));
        // Nothing ticked for 5 s: deaf now, whatever the agents did.
        assert_eq!(ear.hearing_since(t0 + Duration::from_secs(5)), None);
        let back = t0 + Duration::from_secs(5);
        assert_eq!(ear.tick(back), Some(back - (t0 + TICK_EVERY)));
        assert_eq!(ear.hearing_since(back + TICK_EVERY), Some(back));
    }
}
