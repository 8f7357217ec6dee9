//! The controller's own small MCP client, for the per-user setup before
//! the load (the agents hold the load's sessions; the controller never
//! depends on the agent crate). It speaks what the run's `--mcp-version`
//! asks, as the agents do: 2026-07-28 (no session: `server/discover`, then
//! `_meta` and `Mcp-Method`/`Mcp-Name` on every request) where asked or, on
//! `auto`, where the server offers it; else `initialize` and a session
//! (2025-11-25 on `auto`). Then `tools/list`,
//! `tools/call`, answers in JSON or SSE read within a bound, and requests
//! the server sends mid-call answered (`ping` → `{}`; `elicitation/create`
//! → accept, since the controller is about to open the URL it offers;
//! anything else → "method not found"), so a call never waits on us.

use std::time::Duration;

use common::Secret;
use common::protocol::{McpVersion, McpVersionChoice};
use serde_json::{Value, json};

/// The largest answer read.
const MAX_BODY: usize = 4 << 20;
const STATELESS: &str = "2026-07-28";

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("{method}: {message}")]
    Call { method: String, message: String },
}

fn fail(method: &str, message: impl Into<String>) -> McpError {
    McpError::Call {
        method: method.to_owned(),
        message: message.into(),
    }
}

/// A tool call's result: error flag, text, structured content (with the
/// Python SDK's `{"result": "<json>"}` read as its text).
#[derive(Debug, Clone)]
pub struct ToolResult {
    pub is_error: bool,
    pub text: String,
    pub json: Value,
}

pub struct McpClient {
    http: reqwest::Client,
    url: String,
    token: Secret,
    session: Option<String>,
    next_id: u64,
    timeout: Duration,
    /// The protocol version settled on.
    version: &'static str,
}

/// The per-request `_meta` of 2026-07-28.
fn stateless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientInfo": { "name": "mcp-swarm-controller", "version": env!("CARGO_PKG_VERSION") },
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

impl McpClient {
    pub async fn connect(
        http: reqwest::Client,
        url: &str,
        token: Secret,
        timeout: Duration,
        choice: McpVersionChoice,
    ) -> Result<Self, McpError> {
        let mut c = McpClient {
            http,
            url: url.to_owned(),
            token,
            session: None,
            next_id: 0,
            timeout,
            version: STATELESS,
        };
        let initialize_with = match choice {
            McpVersionChoice::Fixed(v) if v != McpVersion::V2026_07_28 => v.as_str(),
            _ => match c.request("server/discover", json!({})).await {
                Ok(found)
                    if found["supportedVersions"]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|v| v == STATELESS)) =>
                {
                    return Ok(c);
                }
                _ if choice == McpVersionChoice::Auto => McpVersion::V2025_11_25.as_str(),
                Ok(_) => {
                    return Err(fail(
                        "server/discover",
                        "--mcp-version 2026-07-28: the server does not list 2026-07-28 among its supportedVersions",
                    ));
                }
                Err(e) => return Err(e),
            },
        };
        c.version = initialize_with;
        c.request(
            "initialize",
            json!({
                "protocolVersion": initialize_with,
                "capabilities": {},
                "clientInfo": { "name": "mcp-swarm-controller", "version": env!("CARGO_PKG_VERSION") }
            }),
        )
        .await?;
        c.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await
            .map_err(|e| fail("notifications/initialized", e))?;
        Ok(c)
    }

    fn stateless(&self) -> bool {
        self.version == STATELESS
    }

    async fn send(&self, body: &Value) -> Result<reqwest::Response, String> {
        let mut req = self
            .http
            .post(&self.url)
            .timeout(self.timeout)
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(self.token.expose());
        // `initialize` itself goes without a version header.
        if body["method"] != "initialize" {
            req = req.header("mcp-protocol-version", self.version);
        }
        if self.stateless()
            && let Some(method) = body["method"].as_str()
        {
            req = req.header("mcp-method", method);
            if let Some(name) = body["params"]["name"].as_str()
                && let Ok(v) = reqwest::header::HeaderValue::from_str(name)
            {
                req = req.header("mcp-name", v);
            }
        }
        let mut req = req.json(body);
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        Ok(resp)
    }

    /// One request; its `result`.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, McpError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut params = params;
        if self.stateless()
            && let Value::Object(map) = &mut params
        {
            map.insert("_meta".into(), stateless_meta());
        }
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let mut resp = self.send(&body).await.map_err(|e| fail(method, e))?;
        let status = resp.status();
        if let Some(s) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            self.session = Some(s.to_owned());
        }
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let excerpt: String = text.chars().take(300).collect();
            return Err(fail(method, format!("HTTP {status}: {excerpt}")));
        }
        let mut buf = String::new();
        loop {
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| fail(method, e.without_url().to_string()))?;
            let Some(chunk) = chunk else { break };
            if buf.len() + chunk.len() > MAX_BODY {
                return Err(fail(method, format!("answer larger than {MAX_BODY} bytes")));
            }
            buf.extend(
                String::from_utf8_lossy(&chunk)
                    .chars()
                    .filter(|c| *c != '\r'),
            );
            if !sse {
                continue;
            }
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                    .collect();
                let Ok(message) = serde_json::from_str::<Value>(&data) else {
                    continue;
                };
                if message["id"] == json!(id) && message.get("method").is_none() {
                    return result_of(method, message);
                }
                if let (Some(m), Some(rid)) = (message["method"].as_str(), message.get("id")) {
                    self.answer(rid, m).await;
                }
            }
        }
        if sse {
            return Err(fail(method, "the event stream ended without an answer"));
        }
        let message: Value = serde_json::from_str(&buf)
            .map_err(|e| fail(method, format!("the answer is not JSON: {e}")))?;
        result_of(method, message)
    }

    async fn answer(&self, id: &Value, method: &str) {
        let answer = match method {
            "ping" => json!({ "jsonrpc": "2.0", "id": id, "result": {} }),
            "elicitation/create" => json!({ "jsonrpc": "2.0", "id": id,
                "result": { "action": "accept", "content": {} } }),
            other => json!({ "jsonrpc": "2.0", "id": id,
                "error": { "code": -32601, "message": format!("Method not found: {other}") } }),
        };
        if let Err(e) = self.send(&answer).await {
            tracing::debug!(method, error = %e, "could not answer the server's request");
        }
    }

    /// Every tool name the server lists (all pages, at most 50).
    pub async fn tool_names(&mut self) -> Result<Vec<String>, McpError> {
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let page = self.request("tools/list", params).await?;
            if let Some(tools) = page["tools"].as_array() {
                names.extend(
                    tools
                        .iter()
                        .filter_map(|t| t["name"].as_str().map(str::to_owned)),
                );
            }
            match page["nextCursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => break,
            }
        }
        Ok(names)
    }

    pub async fn call(&mut self, tool: &str, args: &Value) -> Result<ToolResult, McpError> {
        let r = self
            .request("tools/call", json!({ "name": tool, "arguments": args }))
            .await?;
        let text = r["content"]
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| b["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        let structured = r.get("structuredContent").filter(|v| !v.is_null()).cloned();
        let json = common::scenario::ToolOutput::new(false, text.clone(), structured).json;
        Ok(ToolResult {
            is_error: r["isError"].as_bool().unwrap_or(false),
            text,
            json,
        })
    }

    /// Ends the session (DELETE), best effort.
    pub async fn close(self) {
        if let Some(s) = &self.session {
            let _ = self
                .http
                .delete(&self.url)
                .timeout(self.timeout)
                .bearer_auth(self.token.expose())
                .header("mcp-session-id", s)
                .send()
                .await;
        }
    }
}

fn result_of(method: &str, message: Value) -> Result<Value, McpError> {
    if let Some(e) = message.get("error") {
        let text = e["message"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect::<String>();
        return Err(fail(
            method,
            format!("JSON-RPC error {}: {text}", e["code"]),
        ));
    }
    Ok(message["result"].clone())
}
