//! Fault injection for the MCP endpoint: fixed latency, a rate of HTTP 503s on `tools/call`,
//! a cap on live sessions, and a cap on requests worked on at once (a saturating server).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

pub struct Faults {
    pub latency: Duration,
    pub error_rate: f64,
    pub max_sessions: Option<usize>,
    injected: AtomicU64,
    /// Requests worked on at once; `None` = no limit.
    workers: Option<Semaphore>,
}

impl Faults {
    pub fn new(latency: Duration, error_rate: f64, max_sessions: Option<usize>) -> Self {
        Self {
            latency,
            error_rate,
            max_sessions,
            injected: AtomicU64::new(0),
            workers: None,
        }
    }

    pub fn with_max_concurrency(mut self, max: Option<usize>) -> Self {
        self.workers = max.map(|n| Semaphore::new(n.max(1)));
        self
    }

    /// Waits for a free worker (at once without a limit); the request is
    /// worked on (its latency slept) while the permit is held.
    pub async fn worker(&self) -> Option<SemaphorePermit<'_>> {
        match &self.workers {
            Some(w) => w.acquire().await.ok(),
            None => None,
        }
    }

    /// Decides whether this `tools/call` fails, and counts it if so.
    pub fn should_fail(&self) -> bool {
        if self.error_rate <= 0.0 || !rand::random_bool(self.error_rate.min(1.0)) {
            return false;
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub fn injected_errors(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_rate_extremes() {
        let check = |rate: f64, expected: u64| {
            let f = Faults::new(Duration::ZERO, rate, None);
            for _ in 0..100 {
                f.should_fail();
            }
            assert_eq!(f.injected_errors(), expected, "rate {rate}");
        };
        check(0.0, 0);
        check(1.0, 100);
    }

    #[tokio::test]
    async fn requests_beyond_the_workers_queue() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;
        let f = Arc::new(
            Faults::new(Duration::from_millis(20), 0.0, None).with_max_concurrency(Some(2)),
        );
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let (f, now, most) = (f.clone(), now.clone(), most.clone());
                tokio::spawn(async move {
                    let _w = f.worker().await;
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(f.latency).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert!(
            Faults::new(Duration::ZERO, 0.0, None)
                .worker()
                .await
                .is_none()
        );
    }
}
