//! Runs every built-in workflow as two users against the real mock target,
//! through the agent's session and step layers, in every MCP protocol
//! version: 2026-07-28 without a session id on the wire, `auto` settling on
//! the newest version the mock offers.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agent::session::{McpCounters, McpSession, SessionContext, UserToken};
use agent::steps::run_workflow;
use common::Secret;
use common::protocol::{McpVersion, McpVersionChoice};
use common::scenario::Scenario;
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn open(
    target: &support::Target,
    users: &[&str],
    version: McpVersionChoice,
) -> (
    Vec<Arc<McpSession>>,
    Arc<McpCounters>,
    mpsc::Receiver<common::ids::UserName>,
) {
    let (refresh, refresh_rx) = mpsc::channel(16);
    let counters = Arc::new(McpCounters::default());
    let ctx = Arc::new(SessionContext {
        http: agent::session::http_client().unwrap(),
        mcp_url: target.mock.mcp_url.clone(),
        headers: HashMap::new(),
        counters: counters.clone(),
        refresh,
        version,
        elicitation: Default::default(),
    });
    let mut sessions = Vec::new();
    for user in users {
        let token = UserToken::new((*user).into(), Secret::new(target.token(user).await));
        let (session, latency) = McpSession::open(&ctx, token, TIMEOUT).await.unwrap();
        assert!(latency < TIMEOUT);
        sessions.push(Arc::new(session));
    }
    (sessions, counters, refresh_rx)
}

/// Every built-in workflow twice over `sessions`; each must succeed.
async fn run_every_workflow(sessions: &[Arc<McpSession>]) {
    for wf in Scenario::builtin().workflows() {
        for iteration in 0..2 {
            let samples = std::sync::Mutex::new(Vec::new());
            let outcome = tokio::time::timeout(
                Duration::from_secs(30),
                run_workflow(
                    wf,
                    &sessions[..wf.n_roles()],
                    format!("{}-{iteration}", wf.name),
                    iteration,
                    TIMEOUT,
                    &|s| samples.lock().unwrap().push(s),
                ),
            )
            .await
            .expect("workflow finished in time");
            assert_eq!(outcome.error, None, "{}: {:?}", wf.name, outcome.failure);
            let samples = samples.into_inner().unwrap();
            let n_calls: usize = wf.steps.iter().map(|s| s.actors.len()).sum();
            let ops: Vec<_> = samples
                .iter()
                .filter(|s| s.key.kind == common::series::SeriesKind::Operation)
                .collect();
            // Every call once, plus each lost race's retry and its re-read.
            let conflicts = ops.iter().filter(|s| s.conflict).count();
            let retried = wf.steps.iter().any(|s| s.retry.is_some());
            assert!(
                ops.len() >= n_calls && ops.len() <= n_calls + 2 * conflicts,
                "{}: {} calls for {n_calls} steps' calls and {conflicts} conflicts",
                wf.name,
                ops.len()
            );
            assert!(retried || conflicts == 0, "{}", wf.name);
            let steps = samples
                .iter()
                .filter(|s| s.key.kind == common::series::SeriesKind::Step)
                .count();
            assert_eq!(steps, wf.steps.len(), "{}", wf.name);
        }
    }
}

/// (versions the mock serves, `--mcp-version`, the version settled on).
#[tokio::test]
async fn every_builtin_workflow_succeeds_in_every_protocol_version() {
    use McpVersion::*;
    let cases: [(&[&str], McpVersionChoice, McpVersion); 5] = [
        (&[], McpVersionChoice::Fixed(V2025_06_18), V2025_06_18),
        (&[], McpVersionChoice::Fixed(V2025_11_25), V2025_11_25),
        (&[], McpVersionChoice::Fixed(V2026_07_28), V2026_07_28),
        (&[], McpVersionChoice::Auto, V2026_07_28),
        (
            &["2025-06-18", "2025-11-25"],
            McpVersionChoice::Auto,
            V2025_11_25,
        ),
    ];
    for (served, choice, expected) in cases {
        let config = mock::MockConfig {
            mcp_versions: served.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        };
        let target = support::start_target(&["alice", "bob", "carol", "dave"], config).await;
        let (sessions, counters, _refresh) =
            open(&target, &["alice", "bob", "carol", "dave"], choice).await;
        for s in &sessions {
            assert_eq!(
                s.protocol_version(),
                expected,
                "{choice:?} against {served:?}"
            );
        }
        run_every_workflow(&sessions).await;
        let stats = counters.snapshot();
        assert_eq!(stats.auth_failures, 0);
        assert_eq!(stats.sessions(expected), 4, "{stats:?}");
        for s in sessions {
            Arc::try_unwrap(s).unwrap().close().await;
        }
        let wire = target.mock.wire_stats();
        assert!(wire.mcp_requests > 20, "{wire:?}");
        let with_version = wire
            .mcp_requests_by_protocol_version
            .get(expected.as_str())
            .copied()
            .unwrap_or(0);
        if expected.has_initialize() {
            assert!(
                wire.mcp_requests_with_session_id > 20,
                "{choice:?}: {wire:?}"
            );
        } else {
            assert_eq!(wire.mcp_requests_with_session_id, 0, "{choice:?}: {wire:?}");
            // Every request named the version: discover and tool calls alike.
            assert_eq!(with_version, wire.mcp_requests, "{wire:?}");
        }
        assert!(with_version > 20, "{choice:?}: {wire:?}");
    }
}

#[tokio::test]
async fn a_pinned_version_the_server_does_not_speak_fails_with_the_reason() {
    let config = mock::MockConfig {
        mcp_versions: vec!["2025-11-25".into()],
        ..Default::default()
    };
    let target = support::start_target(&["alice"], config).await;
    let (refresh, _rx) = mpsc::channel(16);
    for (pinned, needle) in [
        (McpVersion::V2026_07_28, "server/discover"),
        (McpVersion::V2025_06_18, "--mcp-version 2025-06-18"),
    ] {
        let ctx = Arc::new(SessionContext {
            http: agent::session::http_client().unwrap(),
            mcp_url: target.mock.mcp_url.clone(),
            headers: HashMap::new(),
            counters: Arc::default(),
            refresh: refresh.clone(),
            version: McpVersionChoice::Fixed(pinned),
            elicitation: Default::default(),
        });
        let token = UserToken::new("alice".into(), Secret::new(target.token("alice").await));
        let err = McpSession::open(&ctx, token, TIMEOUT).await.unwrap_err();
        assert!(err.message.contains(needle), "{pinned}: {err}");
    }
}

#[tokio::test]
async fn a_bad_token_is_an_auth_failure_not_a_crash() {
    let target = support::start_target(&["carol"], mock::MockConfig::default()).await;
    let (refresh, mut refresh_rx) = mpsc::channel(16);
    let counters = Arc::new(McpCounters::default());
    let ctx = Arc::new(SessionContext {
        http: agent::session::http_client().unwrap(),
        mcp_url: target.mock.mcp_url.clone(),
        headers: HashMap::new(),
        counters: counters.clone(),
        refresh,
        version: Default::default(),
        elicitation: Default::default(),
    });
    let token = UserToken::new("carol".into(), Secret::new("not-a-token"));
    // Answer the refresh request with a real token, as the controller would.
    let good = target.token("carol").await;
    let answering = token.clone();
    tokio::spawn(async move {
        if let Some(user) = refresh_rx.recv().await {
            assert_eq!(user.as_str(), "carol");
            answering.set(Secret::new(good));
        }
    });
    let (session, _) = McpSession::open(&ctx, token, TIMEOUT)
        .await
        .expect("refresh then retry succeeds");
    let out = session
        .call(
            "nc_notes_search_notes",
            serde_json::json!({"query": "x"}),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert!(!out.is_error, "{}", out.text);
    let stats = counters.snapshot();
    assert_eq!(stats.refresh_requests, 1);
    assert!(stats.auth_failures >= 1);
}
