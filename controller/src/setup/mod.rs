//! The per-user setup between login and load: one MCP session per user
//! opened by the controller itself, to check the workload's tools against
//! what the server lists (a tool hidden for want of a scope stops the run
//! here, naming the scope, instead of failing thousands of calls) and to
//! run the scenario's `setup.provision` for each user that needs it
//! (bounded concurrency, bounded time, each timed and counted). A user who
//! cannot be provisioned stops the run before load, naming the user, the
//! step and the page.

mod login_flow;
mod mcp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::histogram::LatencyHistogram;
use common::ids::UserName;
use common::protocol::McpVersionChoice;
use common::scenario::{Provision, Scenario, Visit, Workload};
use futures::StreamExt;

use crate::login::TokenSet;
use crate::provision::TestUser;
use mcp::McpClient;

/// How long one request of the setup may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Users provisioned at once, at most (and at most `--login-concurrency`):
/// the Nextcloud MCP server keeps app passwords in SQLite, and 32 users
/// provisioned at once got "database is locked" there (BENCHMARKS.md).
const PROVISION_CONCURRENCY: usize = 8;

/// What the setup did, for the report's auth section.
#[derive(Clone, Debug, Default)]
pub struct SetupOutcome {
    /// Users provisioned now (tool, visit, poll), with the time each took.
    pub provisioned: u64,
    pub latency: LatencyHistogram,
    /// Users the server already had provisioned (kept users, a cached token).
    pub already: u64,
    /// Why provisioning did not run (`None` when it ran or is not declared).
    pub skipped: Option<String>,
}

/// The tools the workload's workflows call, each once.
fn workload_tools(scenario: &Scenario, workload: &Workload) -> Vec<String> {
    let mut tools: Vec<String> = Vec::new();
    for m in &workload.mix {
        if let Some(w) = scenario.workflow(&m.workflow) {
            for s in &w.steps {
                if !tools.contains(&s.tool) {
                    tools.push(s.tool.clone());
                }
            }
        }
    }
    tools
}

/// The scope to ask for when `--scope` is not given: `openid` and what the
/// workload's tools need (and the provisioning tools), when every one is a
/// Nextcloud tool whose scope we know; `None` (ask for the resource's
/// `scopes_supported`) otherwise. The Nextcloud MCP server hides a tool
/// whose scope is missing, and refuses scopes its client was not
/// registered with (e.g. `offline_access`), so asking for exactly these is
/// what works there.
pub fn default_scope(scenario: &Scenario, workload: &Workload) -> Option<String> {
    let mut tools = workload_tools(scenario, workload);
    if let Some(p) = scenario.provision() {
        tools.extend([p.check_tool.clone(), p.start_tool.clone()]);
    }
    let mut scopes = common::nextcloud::scopes_for(tools.iter().map(String::as_str))?;
    if !scopes.contains(&"openid") {
        scopes.insert(0, "openid");
    }
    Some(scopes.join(" "))
}

/// The `scope` claim of a JWT access token, if it is one (decoded only to
/// explain a missing tool, never trusted for anything).
fn token_scopes(token: &TokenSet) -> Option<String> {
    use base64::Engine;
    let payload = token.access.expose().split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["scope"].as_str().map(str::to_owned)
}

/// The error for tools the server does not list.
fn missing_tools_error(missing: &[String], token: &TokenSet, listed: usize) -> anyhow::Error {
    let mut by_scope: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut unknown = Vec::new();
    for tool in missing {
        match common::nextcloud::tool_scope(tool) {
            Some(scope) => by_scope.entry(scope).or_default().push(tool),
            None => unknown.push(tool.as_str()),
        }
    }
    let has = token_scopes(token)
        .map(|s| format!("the token's scopes are \"{s}\""))
        .unwrap_or_else(|| "the token is not a JWT, so its scopes are not known here".into());
    let mut parts: Vec<String> = by_scope
        .iter()
        .map(|(scope, tools)| {
            format!(
                "scope {scope} is missing, which {} need{}",
                tools.join(", "),
                if tools.len() == 1 { "s" } else { "" }
            )
        })
        .collect();
    if !unknown.is_empty() {
        parts.push(format!("the server has no tool {}", unknown.join(", ")));
    }
    anyhow::anyhow!(
        "the MCP server lists {listed} tools but not all that the workload calls: {}; {has}. \
         Ask for the scopes with --scope (or register the OAuth client with them), or pick a workload without those tools",
        parts.join("; ")
    )
}

/// Checks the workload's tools against the server's list and provisions
/// every user the scenario says needs it.
pub async fn run(
    scenario: &Scenario,
    workload: &Workload,
    mcp_url: &url::Url,
    users: &[TestUser],
    tokens: &BTreeMap<UserName, TokenSet>,
    concurrency: usize,
    version: McpVersionChoice,
) -> anyhow::Result<SetupOutcome> {
    let mut outcome = SetupOutcome::default();
    let Some((first, token)) = users
        .iter()
        .find_map(|u| tokens.get(&u.name).map(|t| (u, t)))
    else {
        return Ok(outcome);
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("the setup's HTTP client")?;
    let mut client = McpClient::connect(
        http.clone(),
        mcp_url.as_str(),
        token.access.clone(),
        REQUEST_TIMEOUT,
        version,
    )
    .await
    .with_context(|| {
        format!(
            "opening an MCP session for {} to check the server's tools",
            first.name
        )
    })?;
    let listed = client
        .tool_names()
        .await
        .with_context(|| format!("listing the server's tools as {}", first.name))?;
    client.close().await;
    let missing: Vec<String> = workload_tools(scenario, workload)
        .into_iter()
        .filter(|t| !listed.contains(t))
        .collect();
    if !missing.is_empty() {
        return Err(missing_tools_error(&missing, token, listed.len()));
    }
    let Some(provision) = scenario.provision() else {
        return Ok(outcome);
    };
    if !listed.contains(&provision.when_tool) {
        outcome.skipped = Some(format!(
            "the server does not list {}, so no user needs provisioning",
            provision.when_tool
        ));
        return Ok(outcome);
    }
    let provision = Arc::new(provision.clone());
    let started = Instant::now();
    let mut runs = futures::stream::iter(users.iter().filter_map(|u| {
        let token = tokens.get(&u.name)?.access.clone();
        let (http, provision, url) = (http.clone(), provision.clone(), mcp_url.clone());
        Some(async move {
            let t = Instant::now();
            let r = provision_user(&http, &provision, &url, u, token, version).await;
            (u.name.clone(), r, t.elapsed())
        })
    }))
    .buffer_unordered(concurrency.clamp(1, PROVISION_CONCURRENCY));
    while let Some((user, result, took)) = runs.next().await {
        match result {
            Ok(Provisioned::Already) => outcome.already += 1,
            Ok(Provisioned::Now) => {
                outcome.provisioned += 1;
                outcome.latency.record(took);
            }
            Err(e) => return Err(e.context(format!("provisioning user {user} (setup.provision)"))),
        }
    }
    tracing::info!(
        provisioned = outcome.provisioned,
        already = outcome.already,
        elapsed = ?started.elapsed(),
        "users provisioned"
    );
    Ok(outcome)
}

enum Provisioned {
    Already,
    Now,
}

/// One user's provisioning: check, start, visit, poll.
async fn provision_user(
    http: &reqwest::Client,
    p: &Provision,
    mcp_url: &url::Url,
    user: &TestUser,
    token: common::Secret,
    version: McpVersionChoice,
) -> anyhow::Result<Provisioned> {
    let mut c = McpClient::connect(
        http.clone(),
        mcp_url.as_str(),
        token,
        REQUEST_TIMEOUT,
        version,
    )
    .await
    .context("step `session`: opening an MCP session")?;
    let result = provision_steps(http, p, &mut c, user).await;
    c.close().await;
    result
}

async fn provision_steps(
    http: &reqwest::Client,
    p: &Provision,
    c: &mut McpClient,
    user: &TestUser,
) -> anyhow::Result<Provisioned> {
    let check = c
        .call(&p.check_tool, &p.check_args)
        .await
        .with_context(|| format!("step `check` ({})", p.check_tool))?;
    if !check.is_error && p.is_done(&check.json) {
        return Ok(Provisioned::Already);
    }
    let start = c
        .call(&p.start_tool, &p.start_args)
        .await
        .with_context(|| format!("step `start` ({})", p.start_tool))?;
    if start.is_error {
        bail!(
            "step `start` ({}): the tool answered an error: {}",
            p.start_tool,
            excerpt(&start.text)
        );
    }
    let Some(url) = p.url_in(&start.json) else {
        bail!(
            "step `start` ({}): no URL at `{}` in its result: {}",
            p.start_tool,
            p.url,
            excerpt(&start.json.to_string())
        );
    };
    match p.visit {
        Visit::NextcloudLoginFlow => {
            login_flow::grant(http, url, user.name.as_str(), &user.password)
                .await
                .context("step `visit` (nextcloud_login_flow)")?
        }
    }
    let deadline = Instant::now() + p.within;
    loop {
        let r = c
            .call(&p.check_tool, &p.check_args)
            .await
            .with_context(|| format!("step `poll` ({})", p.check_tool))?;
        if !r.is_error && p.is_done(&r.json) {
            return Ok(Provisioned::Now);
        }
        if Instant::now() + p.every > deadline {
            bail!(
                "step `poll` ({}): not done within {:?}; last answer: {}",
                p.check_tool,
                p.within,
                excerpt(&r.text)
            );
        }
        tokio::time::sleep(p.every).await;
    }
}

fn excerpt(text: &str) -> String {
    let cut: String = text.chars().take(300).collect();
    common::secret::redact_secrets(&cut)
}
