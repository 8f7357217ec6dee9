//! Test harness: a mock target on 127.0.0.1:0, an HTTP client that does not follow redirects,
//! OAuth helpers (DCR, browser-like login, token requests) and an rmcp client factory.

#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use mock::{MockConfig, MockTarget};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Every wait in the tests is bounded by this.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP_TIMEOUT, fut)
        .await
        .expect("step timed out")
}

/// A running mock; stops it on drop.
pub struct Harness {
    pub target: MockTarget,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn users() -> Vec<(String, String)> {
    vec![
        ("alice".into(), "alice-pw".into()),
        ("bob".into(), "bob-pw".into()),
    ]
}

pub async fn start(config: MockConfig) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let shutdown = CancellationToken::new();
    let target = mock::serve(listener, config, shutdown.clone())
        .await
        .expect("serve");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(STEP_TIMEOUT)
        .build()
        .expect("http client");
    Harness {
        target,
        http,
        shutdown,
    }
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// `name="…" value="…"` pairs of the hidden inputs of an HTML page, plus the form action.
pub fn hidden_fields(html: &str) -> (String, HashMap<String, String>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(
            tag[start..end]
                .replace("&amp;", "&")
                .replace("&quot;", "\""),
        )
    };
    let action = html
        .split("<form")
        .nth(1)
        .and_then(|f| attr(&f[..f.find('>').unwrap_or(f.len())], "action"))
        .unwrap_or_default();
    let mut fields = HashMap::new();
    for tag in html.split("<input").skip(1) {
        let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
        if tag.contains("type=\"hidden\"")
            && let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value"))
        {
            fields.insert(n, v);
        }
    }
    (action, fields)
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.target.issuer)
    }

    /// Registers a public client with the given grant types; returns its client_id.
    pub async fn register_public(&self, grant_types: &[&str]) -> String {
        let response = within(
            self.http
                .post(self.url("/register"))
                .json(&json!({
                    "redirect_uris": [REDIRECT_URI],
                    "client_name": "test client",
                    "grant_types": grant_types,
                    "token_endpoint_auth_method": "none",
                }))
                .send(),
        )
        .await
        .expect("register");
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("json");
        body["client_id"].as_str().expect("client_id").to_owned()
    }

    pub async fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let response = within(self.http.post(self.url("/token")).form(form).send())
            .await
            .expect("token");
        let status = response.status().as_u16();
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap_or("")),
            Some("no-store")
        );
        (status, response.json().await.expect("json"))
    }

    pub async fn password_token(&self, client_id: &str, user: &str, password: &str) -> Value {
        let (status, body) = self
            .token_request(&[
                ("grant_type", "password"),
                ("client_id", client_id),
                ("username", user),
                ("password", password),
            ])
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A GET of the authorize endpoint; returns (status, Location, body).
    pub async fn authorize(&self, params: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let response = within(self.http.get(self.url("/authorize")).query(params).send())
            .await
            .expect("authorize");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, location, response.text().await.unwrap_or_default())
    }

    /// Submits the page's form with its hidden fields plus `extra`.
    pub async fn submit(
        &self,
        html: &str,
        extra: &[(&str, &str)],
    ) -> (u16, Option<String>, String) {
        let (action, mut fields) = hidden_fields(html);
        for (k, v) in extra {
            fields.insert((*k).to_owned(), (*v).to_owned());
        }
        let response = within(self.http.post(self.url(&action)).form(&fields).send())
            .await
            .expect("submit");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, location, response.text().await.unwrap_or_default())
    }

    /// The full browser-like code flow for `user`; returns the code from the redirect.
    pub async fn login_code(
        &self,
        client_id: &str,
        user: &str,
        password: &str,
        pkce: &Pkce,
    ) -> String {
        let (status, _, html) = self
            .authorize(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT_URI),
                ("state", "st-1"),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
                ("resource", &self.target.mcp_url),
                ("scope", "openid offline_access notes.read notes.write files.read files.write sharing.write"),
            ])
            .await;
        assert_eq!(status, 200, "{html}");
        assert!(
            html.contains("name=\"user\"")
                && html.contains("<button type=\"submit\">Log in</button>")
        );
        let (mut status, mut location, mut html) = self
            .submit(&html, &[("user", user), ("password", password)])
            .await;
        if html.contains("name=\"decision\"") {
            assert_eq!(status, 200);
            (status, location, html) = self.submit(&html, &[("decision", "allow")]).await;
        }
        assert_eq!(status, 302, "{html}");
        let location = url::Url::parse(&location.expect("location")).expect("url");
        let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(q.get("state").map(String::as_str), Some("st-1"));
        assert_eq!(q.get("iss"), Some(&self.target.issuer));
        q.get("code").expect("code").clone()
    }

    pub async fn exchange(&self, client_id: &str, code: &str, verifier: &str) -> (u16, Value) {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", REDIRECT_URI),
            ("resource", &self.target.mcp_url),
        ])
        .await
    }

    /// A raw MCP initialize with `token`; returns the HTTP status and WWW-Authenticate.
    pub async fn raw_initialize(&self, token: Option<&str>) -> (u16, Option<String>) {
        let mut request = self
            .http
            .post(&self.target.mcp_url)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                "protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = within(request.send()).await.expect("initialize");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (response.status().as_u16(), challenge)
    }

    pub async fn mcp(&self, token: &str) -> RunningService<RoleClient, ClientConfig> {
        let pooled = reqwest::Client::builder()
            .timeout(STEP_TIMEOUT)
            .build()
            .expect("client");
        let config = StreamableHttpClientTransportConfig::with_uri(self.target.mcp_url.clone())
            .auth_header(token);
        let transport = StreamableHttpClientTransport::with_client(pooled, config);
        within(ClientConfig::default().serve(transport))
            .await
            .expect("mcp connect")
    }
}

pub async fn call(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &str,
    args: Value,
) -> CallToolResult {
    let args = args.as_object().cloned().expect("object args");
    within(client.call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(args)))
        .await
        .expect("call_tool")
}

/// The structured result of a successful call.
pub async fn ok(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &str,
    args: Value,
) -> Value {
    let result = call(client, tool, args).await;
    assert_ne!(
        result.is_error,
        Some(true),
        "{tool} failed: {:?}",
        result.content
    );
    result.structured_content.expect("structured content")
}

/// The first text block of a call's result.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// The JSON a `-> str` tool (the real server's `nc_share_*`) returns: its text block, which
/// `structuredContent` repeats as `{"result": "<text>"}`.
pub async fn ok_text(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &str,
    args: Value,
) -> Value {
    let result = call(client, tool, args).await;
    assert_ne!(
        result.is_error,
        Some(true),
        "{tool} failed: {:?}",
        result.content
    );
    let text = text_of(&result);
    assert_eq!(
        result.structured_content,
        Some(json!({ "result": text })),
        "{tool}: structuredContent wraps the text"
    );
    serde_json::from_str(&text).expect("JSON text")
}

/// The error text of a failed call.
pub async fn fails(
    client: &RunningService<RoleClient, ClientConfig>,
    tool: &str,
    args: Value,
) -> String {
    let result = call(client, tool, args).await;
    assert_eq!(
        result.is_error,
        Some(true),
        "{tool} should fail: {:?}",
        result.structured_content
    );
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}
