//! The real Nextcloud MCP server (`nextcloud-mcp-server`, pinned, from
//! PyPI: `scripts/nextcloud-mcp-server.sh install`) as a child process on
//! 127.0.0.1, in front of a mock target as its Nextcloud; and a small
//! MCP-over-HTTP client that speaks to it (and to the mock) as any
//! third-party client would, so nothing in these tests takes a shortcut.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::{Proc, block_on};

/// The version `scripts/nextcloud-mcp-server.sh` installs.
pub const VERSION: &str = "0.202.1";

/// The installed executable: `$MCP_SWARM_NEXTCLOUD_MCP_SERVER`, else the
/// script's default virtualenv. `None` (the caller skips, saying why)
/// unless `MCP_SWARM_REQUIRE_REAL_SERVER` is set, as CI sets it: there a
/// missing server fails the test instead of skipping it.
pub fn executable() -> Option<PathBuf> {
    let path = std::env::var_os("MCP_SWARM_NEXTCLOUD_MCP_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.venv-nextcloud-mcp/bin/nextcloud-mcp-server")
        });
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("MCP_SWARM_REQUIRE_REAL_SERVER").is_none(),
        "MCP_SWARM_REQUIRE_REAL_SERVER is set but {} does not exist: run scripts/nextcloud-mcp-server.sh install",
        path.display()
    );
    eprintln!(
        "skipped: the real nextcloud-mcp-server is not installed at {} (scripts/nextcloud-mcp-server.sh install)",
        path.display()
    );
    None
}

/// A fresh Fernet key (what `TOKEN_ENCRYPTION_KEY` holds): 32 random bytes,
/// URL-safe base64.
fn fernet_key() -> String {
    let mut bytes = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut bytes).unwrap();
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

/// A port free right now on 127.0.0.1 (the server takes a port number, not
/// a listener; a clash shows as a failed start).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A running real server; killed on drop with its token database.
pub struct RealServer {
    pub proc: Proc,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `{base}/mcp`.
    pub mcp_url: String,
    _dir: tempfile::TempDir,
}

impl RealServer {
    /// BasicAuth mode, one user: lists its tools with no Nextcloud at all.
    pub fn start_basic(exe: &std::path::Path, nextcloud: &str, user: &str, password: &str) -> Self {
        Self::start(exe, nextcloud, |cmd| {
            cmd.env("NEXTCLOUD_USERNAME", user)
                .env("NEXTCLOUD_PASSWORD", password)
                .arg("--no-oauth");
        })
    }

    /// Its default OAuth "login_flow" mode, `nextcloud` as its Nextcloud
    /// (OIDC discovery, DCR, Login Flow v2 app passwords).
    pub fn start_oauth(exe: &std::path::Path, nextcloud: &str) -> Self {
        Self::start(exe, nextcloud, |cmd| {
            cmd.arg("--oauth");
        })
    }

    fn start(exe: &std::path::Path, nextcloud: &str, mode: impl Fn(&mut Command)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(exe);
        cmd.args(["run", "--host", "127.0.0.1", "--port", &port.to_string()])
            .env_remove("NEXTCLOUD_USERNAME")
            .env_remove("NEXTCLOUD_PASSWORD")
            .env("NEXTCLOUD_HOST", nextcloud)
            .env("NEXTCLOUD_MCP_SERVER_URL", &base)
            .env("TOKEN_ENCRYPTION_KEY", fernet_key())
            .env("TOKEN_STORAGE_DB", dir.path().join("tokens.db"))
            .env("METRICS_ENABLED", "false")
            .current_dir(dir.path());
        mode(&mut cmd);
        let proc = Proc::spawn("nextcloud-mcp-server", cmd);
        let server = RealServer {
            proc,
            mcp_url: format!("{base}/mcp"),
            base,
            _dir: dir,
        };
        server.wait_live(Duration::from_secs(90));
        server
    }

    /// Until `/health/live` answers 200 (startup includes OIDC discovery and
    /// client registration in OAuth mode).
    fn wait_live(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = format!("{}/health/live", self.base);
        block_on(async {
            let client = reqwest::Client::new();
            loop {
                if let Ok(r) = client.get(&url).send().await
                    && r.status().is_success()
                {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "nextcloud-mcp-server did not come up at {url} in {timeout:?}; stderr:\n{}",
                    self.proc.stderr()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
}

/// An MCP session over Streamable HTTP (2025-06-18, as the Python SDK
/// serves it): initialize, then requests with the session id; answers in
/// JSON or in an SSE stream. Server-to-client requests are not expected in
/// these tests and fail the call.
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    session: Option<String>,
    next_id: u64,
    /// Methods of the requests the server sent us, in order.
    pub server_requests: Vec<String>,
}

/// A `tools/call` result as the wire carries it.
#[derive(Debug, Clone)]
pub struct CallResult {
    pub is_error: bool,
    pub text: String,
    pub structured: Option<Value>,
}

impl CallResult {
    /// Structured content, `{"result": "<json>"}` read as its JSON text,
    /// else the text as JSON: what a scenario's `$.` paths look at.
    pub fn json(&self) -> Value {
        if let Some(Value::Object(m)) = &self.structured
            && m.len() == 1
            && let Some(Value::String(t)) = m.get("result")
            && let Ok(v) = serde_json::from_str(t)
        {
            return v;
        }
        self.structured
            .clone()
            .or_else(|| serde_json::from_str(&self.text).ok())
            .unwrap_or(Value::Null)
    }
}

impl McpClient {
    pub async fn connect(url: &str, token: Option<&str>) -> Result<Self, String> {
        let mut c = McpClient {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            token: token.map(str::to_owned),
            session: None,
            next_id: 0,
            server_requests: Vec::new(),
        };
        c.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "mcp-swarm-tests", "version": "0" }
            }),
        )
        .await?;
        c.notify("notifications/initialized").await?;
        Ok(c)
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        req
    }

    async fn notify(&self, method: &str) -> Result<(), String> {
        let resp = self
            .post(&json!({ "jsonrpc": "2.0", "method": method }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!("{method}: HTTP {}", resp.status()))
        }
    }

    /// One JSON-RPC request; its `result`, or the error as text. An SSE
    /// answer is read as it arrives: a request the server sends meanwhile
    /// (`elicitation/create` for an unprovisioned user, `ping`) is answered
    /// as a client without those capabilities answers (`ping` → `{}`, any
    /// other method → "method not found"), so the call goes on.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let mut resp = self.post(&body).send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if let Some(s) = resp.headers().get("mcp-session-id") {
            self.session = Some(s.to_str().unwrap().to_owned());
        }
        let sse = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
        if !status.is_success() || !sse {
            let text = resp.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{method}: HTTP {status}: {text}"));
            }
            let answer: Value =
                serde_json::from_str(&text).map_err(|e| format!("{method}: {e}: {text}"))?;
            return Self::result_of(method, answer);
        }
        let mut buf = String::new();
        loop {
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(60), resp.chunk())
                .await
                .map_err(|_| format!("{method}: no answer within 60 s"))?
                .map_err(|e| format!("{method}: {e}"))?;
            let Some(chunk) = chunk else {
                return Err(format!(
                    "{method}: the stream ended without an answer: {buf}"
                ));
            };
            // sse-starlette ends lines with CRLF; events end at a blank line.
            buf.extend(
                String::from_utf8_lossy(&chunk)
                    .chars()
                    .filter(|c| *c != '\r'),
            );
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
                    return Self::result_of(method, message);
                }
                if let Some(m) = message["method"].as_str()
                    && message.get("id").is_some()
                {
                    let answer = if m == "ping" {
                        json!({ "jsonrpc": "2.0", "id": message["id"], "result": {} })
                    } else {
                        json!({ "jsonrpc": "2.0", "id": message["id"],
                                "error": { "code": -32601, "message": format!("method not found: {m}") } })
                    };
                    self.server_requests.push(m.to_owned());
                    self.post(&answer)
                        .send()
                        .await
                        .map_err(|e| format!("answering {m}: {e}"))?;
                }
            }
        }
    }

    fn result_of(method: &str, answer: Value) -> Result<Value, String> {
        if let Some(e) = answer.get("error") {
            return Err(format!("{method}: JSON-RPC error {e}"));
        }
        Ok(answer["result"].clone())
    }

    pub async fn list_tools(&mut self) -> Result<Vec<Value>, String> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let params = match &cursor {
                Some(c) => json!({ "cursor": c }),
                None => json!({}),
            };
            let page = self.request("tools/list", params).await?;
            tools.extend(page["tools"].as_array().cloned().unwrap_or_default());
            match page["nextCursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => return Ok(tools),
            }
        }
    }

    pub async fn call(&mut self, tool: &str, args: Value) -> Result<CallResult, String> {
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
        Ok(CallResult {
            is_error: r["isError"].as_bool().unwrap_or(false),
            text,
            structured: r.get("structuredContent").cloned().filter(|v| !v.is_null()),
        })
    }
}

/// A person's browser over plain HTTP: redirects followed by hand, cookies
/// kept per origin (the MCP server and Nextcloud are two origins), pages
/// read as Nextcloud serves them (no `<form>`: a request token in the head
/// and initial state in hidden inputs).
pub struct WebUser {
    http: reqwest::Client,
    jar: BTreeMap<String, BTreeMap<String, String>>,
}

/// One answer: status, absolute `Location` if any, body.
pub struct Page {
    pub status: u16,
    pub url: String,
    pub location: Option<String>,
    pub body: String,
}

fn origin(url: &str) -> String {
    let u = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    u.origin().ascii_serialization()
}

impl Default for WebUser {
    fn default() -> Self {
        WebUser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: BTreeMap::new(),
        }
    }
}

impl WebUser {
    async fn send(&mut self, url: &str, req: reqwest::RequestBuilder) -> Page {
        let o = origin(url);
        let cookies: Vec<String> = self
            .jar
            .get(&o)
            .map(|c| c.iter().map(|(k, v)| format!("{k}={v}")).collect())
            .unwrap_or_default();
        let resp = req
            .header("cookie", cookies.join("; "))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        for v in resp.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap_or("").split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                self.jar
                    .entry(o.clone())
                    .or_default()
                    .insert(k.trim().into(), v.trim().into());
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(|l| {
                url::Url::parse(url)
                    .and_then(|base| base.join(l))
                    .map(|u| u.to_string())
                    .unwrap_or_else(|_| l.to_owned())
            });
        Page {
            status,
            url: url.to_owned(),
            location,
            body: resp.text().await.unwrap_or_default(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let req = self.http.get(url);
        self.send(url, req).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(url).form(form);
        self.send(url, req).await
    }

    /// GETs `url` and follows redirects until an answer that is not one,
    /// or until a `Location` starts with `stop_at` (returned, not followed).
    pub async fn follow(&mut self, url: &str, stop_at: Option<&str>) -> Page {
        let mut url = url.to_owned();
        for _ in 0..20 {
            let page = self.get(&url).await;
            match &page.location {
                Some(next) if (300..400).contains(&page.status) => {
                    if stop_at.is_some_and(|s| next.starts_with(s)) {
                        return page;
                    }
                    url = next.clone();
                }
                _ => return page,
            }
        }
        panic!("more than 20 redirects from {url}");
    }

    /// On Nextcloud's login page (`page`), logs in as `user`; follows where
    /// the login sends us.
    pub async fn log_in(
        &mut self,
        page: &Page,
        user: &str,
        password: &str,
        stop_at: Option<&str>,
    ) -> Page {
        assert!(
            !page.body.contains("<form"),
            "Nextcloud's login page holds no form: {}",
            page.url
        );
        let token = request_token(&page.body);
        let redirect_url = query_param(&page.url, "redirect_url").unwrap_or_default();
        let login = format!("{}/index.php/login", origin(&page.url));
        let a = self
            .post(
                &login,
                &[
                    ("user", user),
                    ("password", password),
                    ("requesttoken", &token),
                    ("redirect_url", &redirect_url),
                    ("timezone", "UTC"),
                    ("timezone_offset", "0"),
                ],
            )
            .await;
        assert_eq!(a.status, 303, "login as {user}: {}", a.body);
        let next = a.location.expect("login redirects");
        assert!(!next.contains("direct=1"), "login as {user} was refused");
        self.follow(&next, stop_at).await
    }
}

pub fn request_token(html: &str) -> String {
    let start = html
        .find("data-requesttoken=\"")
        .unwrap_or_else(|| panic!("no request token in {html}"))
        + 19;
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// Nextcloud's initial state `app`/`key` (base64 JSON in a hidden input).
pub fn initial_state(html: &str, app: &str, key: &str) -> Value {
    let marker = format!("id=\"initial-state-{app}-{key}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no initial state {app}/{key} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&html[start..end])
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// PKCE verifier and S256 challenge.
pub fn pkce() -> (String, String) {
    use sha2::Digest;
    let mut bytes = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").unwrap();
    std::io::Read::read_exact(&mut f, &mut bytes).unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let verifier = b64.encode(bytes);
    let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// Gives the Nextcloud consent the oidc app asks for on `page` (its consent
/// page), then follows on until a redirect to `stop_at`.
pub async fn consent(web: &mut WebUser, page: &Page, stop_at: &str) -> Page {
    assert_eq!(page.status, 200, "consent page {}: {}", page.url, page.body);
    assert!(
        !page.body.contains("<form"),
        "the consent page holds no form"
    );
    let token = request_token(&page.body);
    let scopes = page
        .body
        .split("data-scopes=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_owned();
    let grant = format!("{}/index.php/apps/oidc/consent/grant", origin(&page.url));
    let a = web
        .post(&grant, &[("requesttoken", &token), ("scopes", &scopes)])
        .await;
    assert_eq!(a.status, 303, "consent: {}", a.body);
    web.follow(&a.location.unwrap(), Some(stop_at)).await
}

/// Opens a Login Flow v2 URL as `user`, logs in and grants access.
pub async fn grant_login_flow(login_url: &str, user: &str, password: &str) {
    let mut web = WebUser::default();
    let picker = web.follow(login_url, None).await;
    assert_eq!(picker.status, 200, "login flow picker: {}", picker.body);
    let auth = initial_state(&picker.body, "core", "loginFlowAuth");
    let grant_url = auth["loginRedirectUrl"].as_str().unwrap().to_owned();
    let login = web.follow(&grant_url, None).await;
    let grant = web.log_in(&login, user, password, None).await;
    assert_eq!(grant.status, 200, "grant page: {}", grant.body);
    let g = initial_state(&grant.body, "core", "loginFlowGrant");
    let token = request_token(&grant.body);
    let done = web
        .post(
            g["actionUrl"].as_str().unwrap(),
            &[
                ("stateToken", g["stateToken"].as_str().unwrap_or("")),
                ("requesttoken", &token),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "grant: {}", done.body);
}
