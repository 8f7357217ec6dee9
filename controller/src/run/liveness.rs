//! Liveness apart from the run loop: the gRPC service runs on a runtime of
//! its own, where arrival times are stamped as messages come in, and a
//! watchdog thread reads those stamps, so neither a busy run loop nor a busy
//! runtime can make a live agent look lost or hide a silent one, in any
//! phase (SPEC §5).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;

use crate::registry::{Registry, Silent};

/// An agent silent this long is lost: heartbeats come every second, so a
/// silent agent is declared lost within 5 s of its last one.
pub const AGENT_LOST_AFTER: Duration = Duration::from_secs(4);
/// How often the watchdog looks.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// The watchdog thread; it stops when this is dropped.
pub struct Watchdog {
    stop: Arc<AtomicBool>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the watchdog over `registry`'s attached agents.
pub fn watch(
    registry: Arc<Registry>,
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
                for silent in registry.newly_silent(lost_after) {
                    if tx.send(silent).is_err() {
                        return;
                    }
                }
            }
        })?;
    Ok((Watchdog { stop }, rx))
}

/// A runtime with one worker thread for the gRPC service, shut down
/// (without waiting) on drop.
pub struct ServiceRuntime {
    runtime: Option<Runtime>,
}

impl ServiceRuntime {
    pub fn start() -> std::io::Result<ServiceRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
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
