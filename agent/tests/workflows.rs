//! Runs every built-in workflow once as two users against the real mock
//! target, through the agent's session and step layers.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agent::session::{McpCounters, McpSession, SessionContext, UserToken};
use agent::steps::run_workflow;
use common::Secret;
use common::scenario::Scenario;
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(10);

async fn open(
    target: &support::Target,
    users: &[&str],
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

#[tokio::test]
async fn every_builtin_workflow_succeeds_against_the_mock() {
    let target = support::start_target(&["alice", "bob"], mock::MockConfig::default()).await;
    let (sessions, counters, _refresh) = open(&target, &["alice", "bob"]).await;
    for wf in Scenario::builtin().workflows() {
        for iteration in 0..2 {
            let outcome = tokio::time::timeout(
                Duration::from_secs(30),
                run_workflow(
                    wf,
                    &sessions[..wf.n_roles()],
                    format!("{}-{iteration}", wf.name),
                    iteration,
                    TIMEOUT,
                ),
            )
            .await
            .expect("workflow finished in time");
            assert_eq!(outcome.error, None, "{}: {:?}", wf.name, outcome.failure);
            let n_calls: usize = wf.steps.iter().map(|s| s.actors.len()).sum();
            let ops = outcome
                .samples
                .iter()
                .filter(|s| s.key.kind == common::series::SeriesKind::Operation)
                .count();
            assert_eq!(ops, n_calls, "{}", wf.name);
        }
    }
    assert_eq!(counters.snapshot().auth_failures, 0);
    for s in sessions {
        Arc::try_unwrap(s).unwrap().close().await;
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
