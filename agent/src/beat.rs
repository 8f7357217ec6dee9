//! The link's own runtime: the gRPC connection and the heartbeats run on a
//! one-thread tokio runtime apart from the load, so an agent whose runtime
//! is saturated by vusers still beats (SPEC §5: heartbeats on their own
//! thread, so a busy runtime never fakes a loss).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio_util::sync::CancellationToken;

use crate::link::LinkSender;
use crate::messages::{AgentEvent, unix_ms};
use crate::runner::GeneratorCounters;

/// A runtime with one worker thread, shut down (without waiting) on drop.
pub struct LinkRuntime {
    runtime: Option<Runtime>,
}

impl LinkRuntime {
    pub fn start() -> std::io::Result<LinkRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("agent-link")
            .enable_all()
            .build()?;
        Ok(LinkRuntime {
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

impl Drop for LinkRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside another one would block (and panics):
        // its tasks are told to stop and the thread goes on its own.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Sends a heartbeat every `every` until `done` or the controller is gone.
pub async fn heartbeats(
    sender: LinkSender,
    every: Duration,
    generator: Arc<GeneratorCounters>,
    done: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let beat = AgentEvent::Heartbeat {
            sent_at_ms: unix_ms(),
            // The counter itself: `snapshot` would also read /proc for the CPU time.
            active_vusers: generator.active_vusers.load(Ordering::Relaxed),
        };
        if sender.send(beat).await.is_err() {
            return;
        }
    }
}
