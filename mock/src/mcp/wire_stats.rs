//! What the MCP endpoint saw on the wire, for tests that check a client's behaviour
//! (`GET /mock/stats`, `MockTarget::wire_stats`): requests, how many carried an
//! `Mcp-Session-Id`, how many named each `MCP-Protocol-Version`, and the
//! tool calls it served in each tenth of a second (the served rate a load
//! test's timeline is checked against).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;

use crate::lock;

/// Distinct protocol-version header values kept; others are counted as `other`.
const MAX_VERSIONS: usize = 16;
/// Width of a served-calls bucket.
pub const SERVED_BUCKET_MS: u64 = 100;
/// Buckets kept (the last ten minutes); older ones are forgotten.
const MAX_SERVED_BUCKETS: usize = 6_000;

#[derive(Default)]
pub struct WireStats {
    requests: AtomicU64,
    with_session_id: AtomicU64,
    by_version: Mutex<BTreeMap<String, u64>>,
    /// (bucket start in unix ms, tool calls answered in it), oldest first.
    served: Mutex<VecDeque<(u64, u64)>>,
}

/// A copy of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WireStatsSnapshot {
    /// Authorized requests to the MCP endpoint.
    pub mcp_requests: u64,
    /// Of those, requests with an `Mcp-Session-Id` header.
    pub mcp_requests_with_session_id: u64,
    /// Requests by `MCP-Protocol-Version` header (`none` without one).
    pub mcp_requests_by_protocol_version: BTreeMap<String, u64>,
    /// `tools/call` requests answered, by `served_bucket_ms`-wide bucket:
    /// `[bucket start in unix ms, calls]`, oldest first, empty buckets left
    /// out, the last ten minutes.
    pub tool_calls_served: Vec<[u64; 2]>,
    pub served_bucket_ms: u64,
}

impl WireStats {
    pub fn count(&self, headers: &HeaderMap) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if headers.contains_key("mcp-session-id") {
            self.with_session_id.fetch_add(1, Ordering::Relaxed);
        }
        let version = headers
            .get("mcp-protocol-version")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_else(|| "none".to_owned());
        let mut by_version = lock(&self.by_version);
        let key = if by_version.contains_key(&version) || by_version.len() < MAX_VERSIONS {
            version
        } else {
            "other".to_owned()
        };
        *by_version.entry(key).or_default() += 1;
    }

    /// A `tools/call` answered now.
    pub fn served(&self) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let bucket = now_ms - now_ms % SERVED_BUCKET_MS;
        let mut served = lock(&self.served);
        match served.back_mut() {
            Some((start, n)) if *start == bucket => *n += 1,
            // A clock stepping back lands in the latest bucket.
            Some((start, n)) if *start > bucket => *n += 1,
            _ => {
                if served.len() >= MAX_SERVED_BUCKETS {
                    served.pop_front();
                }
                served.push_back((bucket, 1));
            }
        }
    }

    pub fn snapshot(&self) -> WireStatsSnapshot {
        WireStatsSnapshot {
            mcp_requests: self.requests.load(Ordering::Relaxed),
            mcp_requests_with_session_id: self.with_session_id.load(Ordering::Relaxed),
            mcp_requests_by_protocol_version: lock(&self.by_version).clone(),
            tool_calls_served: lock(&self.served).iter().map(|(s, n)| [*s, *n]).collect(),
            served_bucket_ms: SERVED_BUCKET_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_calls_land_in_tenth_of_a_second_buckets_bounded_in_number() {
        let stats = WireStats::default();
        for _ in 0..3 {
            stats.served();
        }
        let snap = stats.snapshot();
        let total: u64 = snap.tool_calls_served.iter().map(|b| b[1]).sum();
        assert_eq!(total, 3);
        assert!(
            snap.tool_calls_served
                .iter()
                .all(|b| b[0] % SERVED_BUCKET_MS == 0)
        );
        {
            let mut served = lock(&stats.served);
            served.clear();
            served.extend((0..MAX_SERVED_BUCKETS as u64).map(|i| (i * SERVED_BUCKET_MS, 1)));
        }
        stats.served();
        let snap = stats.snapshot();
        assert_eq!(snap.tool_calls_served.len(), MAX_SERVED_BUCKETS);
        assert_eq!(
            snap.tool_calls_served[0][0], SERVED_BUCKET_MS,
            "the oldest bucket went"
        );
    }
}
