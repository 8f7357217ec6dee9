//! What the MCP endpoint saw on the wire, for tests that check a client's behaviour
//! (`GET /mock/stats`, `MockTarget::wire_stats`): requests, how many carried an
//! `Mcp-Session-Id`, and how many named each `MCP-Protocol-Version`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;

use crate::lock;

/// Distinct protocol-version header values kept; others are counted as `other`.
const MAX_VERSIONS: usize = 16;

#[derive(Default)]
pub struct WireStats {
    requests: AtomicU64,
    with_session_id: AtomicU64,
    by_version: Mutex<BTreeMap<String, u64>>,
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

    pub fn snapshot(&self) -> WireStatsSnapshot {
        WireStatsSnapshot {
            mcp_requests: self.requests.load(Ordering::Relaxed),
            mcp_requests_with_session_id: self.with_session_id.load(Ordering::Relaxed),
            mcp_requests_by_protocol_version: lock(&self.by_version).clone(),
        }
    }
}
