//! Fault injection for the MCP endpoint: fixed latency, a rate of HTTP 503s on `tools/call`,
//! and a cap on live sessions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct Faults {
    pub latency: Duration,
    pub error_rate: f64,
    pub max_sessions: Option<usize>,
    injected: AtomicU64,
}

impl Faults {
    pub fn new(latency: Duration, error_rate: f64, max_sessions: Option<usize>) -> Self {
        Self {
            latency,
            error_rate,
            max_sessions,
            injected: AtomicU64::new(0),
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
}
