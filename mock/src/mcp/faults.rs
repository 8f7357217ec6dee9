//! Fault injection for the MCP endpoint: fixed latency, and on `tools/call`
//! a rate of HTTP 503s, of connections reset mid-answer and of requests
//! stalled past any sane timeout; plus a cap on live sessions and a cap on
//! requests worked on at once (a saturating server). Each fault is counted,
//! so tests compare what the client saw with what was injected.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a stalled request hangs before the mock gives up on it (the
/// client's request timeout is meant to fire long before).
pub const STALL_FOR: Duration = Duration::from_secs(600);

/// What happens to one `tools/call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503 with `Retry-After`.
    Error,
    /// The answer starts and the connection then breaks.
    Reset,
    /// No answer for `STALL_FOR`.
    Stall,
}

/// The rates of each fault on `tools/call`, each 0..=1.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultRates {
    pub error: f64,
    pub reset: f64,
    pub stall: f64,
}

pub struct Faults {
    pub latency: Duration,
    pub rates: FaultRates,
    pub max_sessions: Option<usize>,
    errors: AtomicU64,
    resets: AtomicU64,
    stalls: AtomicU64,
    /// Requests worked on at once; `None` = no limit.
    workers: Option<Semaphore>,
}

/// How many of each fault were injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Injected {
    pub errors: u64,
    pub resets: u64,
    pub stalls: u64,
}

impl Faults {
    pub fn new(latency: Duration, rates: FaultRates, max_sessions: Option<usize>) -> Self {
        Self {
            latency,
            rates,
            max_sessions,
            errors: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
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

    /// Decides the fault (if any) of this `tools/call`, and counts it. The
    /// rates are tried in turn, so each applies to what the others left.
    pub fn pick(&self) -> Option<Fault> {
        let hit = |rate: f64| rate > 0.0 && rand::random_bool(rate.min(1.0));
        let (fault, counter) = if hit(self.rates.error) {
            (Fault::Error, &self.errors)
        } else if hit(self.rates.reset) {
            (Fault::Reset, &self.resets)
        } else if hit(self.rates.stall) {
            (Fault::Stall, &self.stalls)
        } else {
            return None;
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(fault)
    }

    pub fn injected_errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn injected(&self) -> Injected {
        Injected {
            errors: self.errors.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
            stalls: self.stalls.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extremes_pick_and_count_each_kind() {
        let check = |rates: FaultRates, expected: Injected| {
            let f = Faults::new(Duration::ZERO, rates, None);
            for _ in 0..100 {
                f.pick();
            }
            assert_eq!(f.injected(), expected, "{rates:?}");
        };
        let none = FaultRates::default();
        check(none, Injected::default());
        let all = |errors, resets, stalls| Injected {
            errors,
            resets,
            stalls,
        };
        check(FaultRates { error: 1.0, ..none }, all(100, 0, 0));
        check(FaultRates { reset: 1.0, ..none }, all(0, 100, 0));
        check(FaultRates { stall: 1.0, ..none }, all(0, 0, 100));
        // Errors are tried first: with every rate at 1 only errors happen.
        check(
            FaultRates {
                error: 1.0,
                reset: 1.0,
                stall: 1.0,
            },
            all(100, 0, 0),
        );
    }

    #[tokio::test]
    async fn requests_beyond_the_workers_queue() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;
        let none = FaultRates::default();
        let f = Arc::new(
            Faults::new(Duration::from_millis(20), none, None).with_max_concurrency(Some(2)),
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
            Faults::new(Duration::ZERO, none, None)
                .worker()
                .await
                .is_none()
        );
    }
}
