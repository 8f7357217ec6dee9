//! Benchmark (not a test): the in-process mock target under K concurrent MCP sessions calling
//! `nc_notes_search_notes` / `nc_notes_get_note` for a fixed time; prints calls/s, p50 and p99.
//! `cargo bench -p mcp-swarm-mock --bench tool_calls [-- SESSIONS SECONDS]`

use std::time::{Duration, Instant};

use mock::MockConfig;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn args(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut cli = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let sessions: usize = cli.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let duration = Duration::from_secs(cli.next().and_then(|s| s.parse().ok()).unwrap_or(5));

    let users: Vec<(String, String)> = (0..sessions)
        .map(|i| (format!("bench_{i}"), format!("pw-{i}")))
        .collect();
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let target = mock::serve(
        listener,
        MockConfig {
            users: users.clone(),
            ..MockConfig::default()
        },
        shutdown.clone(),
    )
    .await?;
    let http = reqwest::Client::new();
    let registration: Value = http
        .post(format!("{}/register", target.issuer))
        .json(&json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "grant_types": ["password"], "token_endpoint_auth_method": "none"}))
        .send()
        .await?
        .json()
        .await?;
    let client_id = registration["client_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let mut tasks = Vec::new();
    let start_at = Instant::now() + Duration::from_secs(2);
    for (user, password) in users {
        let token: Value = http
            .post(format!("{}/token", target.issuer))
            .form(&[
                ("grant_type", "password"),
                ("client_id", &client_id),
                ("username", &user),
                ("password", &password),
            ])
            .send()
            .await?
            .json()
            .await?;
        let token = token["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let config = StreamableHttpClientTransportConfig::with_uri(target.mcp_url.clone())
            .auth_header(token);
        let client = ClientConfig::default()
            .serve(StreamableHttpClientTransport::with_client(
                reqwest::Client::new(),
                config,
            ))
            .await?;
        let note = client
            .call_tool(
                CallToolRequestParams::new("nc_notes_create_note").with_arguments(args(
                    json!({"title": "bench", "content": "some benchmark content", "category": "b"}),
                )),
            )
            .await?;
        let id = note
            .structured_content
            .as_ref()
            .and_then(|n| n["id"].as_u64())
            .unwrap_or(0);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start_at.into()).await;
            let end = start_at + duration;
            let mut latencies_us = Vec::new();
            let mut errors = 0u64;
            let mut i = 0u64;
            while Instant::now() < end {
                i += 1;
                let params = if i.is_multiple_of(2) {
                    CallToolRequestParams::new("nc_notes_search_notes")
                        .with_arguments(args(json!({"query": "bench"})))
                } else {
                    CallToolRequestParams::new("nc_notes_get_note")
                        .with_arguments(args(json!({"note_id": id})))
                };
                let started = Instant::now();
                match client.call_tool(params).await {
                    Ok(r) if r.is_error != Some(true) => {
                        latencies_us.push(started.elapsed().as_micros() as u64)
                    }
                    _ => errors += 1,
                }
            }
            let _ = client.cancel().await;
            (latencies_us, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await?;
        all.extend(latencies);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "tool_calls: {sessions} sessions, {:?}: {} calls, {:.0} calls/s, p50 {} us, p99 {} us, errors {errors}",
        duration,
        all.len(),
        all.len() as f64 / duration.as_secs_f64(),
        pct(0.50),
        pct(0.99),
    );
    shutdown.cancel();
    target.wait().await;
    Ok(())
}
