//! OAuth endpoint discovery from an MCP URL: the server's 401
//! `WWW-Authenticate` → RFC 9728 protected-resource metadata → RFC 8414
//! authorization-server metadata (or OIDC discovery).

use serde::Deserialize;

use super::LoginError;

/// What a login needs to know about the authorization server.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoints {
    pub issuer: String,
    pub authorization_endpoint: url::Url,
    pub token_endpoint: url::Url,
    pub registration_endpoint: Option<url::Url>,
    /// How clients may authenticate at the token endpoint (RFC 8414's default when the
    /// metadata says nothing: `client_secret_basic`).
    pub token_endpoint_auth_methods: Vec<String>,
    /// Whether the AS takes URL client ids (Client ID Metadata Documents).
    pub client_id_metadata_document_supported: bool,
    /// Scopes the protected resource supports (to request by default).
    pub scopes_supported: Vec<String>,
    /// The resource identifier (RFC 8707) to request tokens for.
    pub resource: String,
}

#[derive(Deserialize)]
struct ResourceMetadata {
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

#[derive(Deserialize)]
struct ServerMetadata {
    #[serde(default)]
    issuer: Option<String>,
    authorization_endpoint: url::Url,
    token_endpoint: url::Url,
    #[serde(default)]
    registration_endpoint: Option<url::Url>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    client_id_metadata_document_supported: bool,
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcp-swarm-controller","version":"0"}}}"#;

pub async fn discover(http: &reqwest::Client, mcp_url: &url::Url) -> Result<Endpoints, LoginError> {
    let disc = |message: String| LoginError::Discovery {
        url: mcp_url.to_string(),
        message,
    };
    let resp = http
        .post(mcp_url.clone())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .send()
        .await
        .map_err(|e| disc(format!("cannot reach the MCP server: {}", error_chain(&e))))?;
    let status = resp.status();
    let header_url = resp
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| auth_param(v, "resource_metadata"));
    if status != reqwest::StatusCode::UNAUTHORIZED {
        return Err(disc(format!(
            "an unauthenticated initialize got HTTP {status}, not 401: is this an OAuth-protected MCP endpoint?"
        )));
    }
    let candidates: Vec<url::Url> = match header_url {
        Some(u) => vec![
            mcp_url
                .join(&u)
                .map_err(|e| disc(format!("bad resource_metadata URL {u:?}: {e}")))?,
        ],
        None => well_known(mcp_url, "oauth-protected-resource", true),
    };
    let mut last = String::from("no candidate URL");
    let mut prm: Option<ResourceMetadata> = None;
    for url in candidates {
        match get_json::<ResourceMetadata>(http, &url).await {
            Ok(m) => {
                prm = Some(m);
                break;
            }
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    let prm =
        prm.ok_or_else(|| disc(format!("no protected-resource metadata (RFC 9728): {last}")))?;
    let issuer =
        prm.authorization_servers.first().cloned().ok_or_else(|| {
            disc("protected-resource metadata lists no authorization_servers".into())
        })?;
    let issuer_url = url::Url::parse(&issuer)
        .map_err(|e| disc(format!("bad authorization server {issuer:?}: {e}")))?;
    let mut candidates = well_known(&issuer_url, "oauth-authorization-server", true);
    candidates.extend(well_known(&issuer_url, "openid-configuration", false));
    let mut asm: Option<ServerMetadata> = None;
    for url in candidates {
        match get_json::<ServerMetadata>(http, &url).await {
            Ok(m) => {
                asm = Some(m);
                break;
            }
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    let asm = asm.ok_or_else(|| {
        disc(format!(
            "no authorization server metadata for {issuer} (RFC 8414 / OIDC): {last}"
        ))
    })?;
    if let Some(meta_issuer) = &asm.issuer
        && meta_issuer.trim_end_matches('/') != issuer.trim_end_matches('/')
    {
        tracing::warn!(%issuer, metadata_issuer = %meta_issuer, "authorization server metadata names another issuer");
    }
    Ok(Endpoints {
        issuer: asm.issuer.unwrap_or(issuer),
        authorization_endpoint: asm.authorization_endpoint,
        token_endpoint: asm.token_endpoint,
        registration_endpoint: asm.registration_endpoint,
        token_endpoint_auth_methods: asm
            .token_endpoint_auth_methods_supported
            .unwrap_or_else(|| vec!["client_secret_basic".to_owned()]),
        client_id_metadata_document_supported: asm.client_id_metadata_document_supported,
        scopes_supported: prm.scopes_supported,
        resource: prm.resource.unwrap_or_else(|| mcp_url.to_string()),
    })
}

async fn get_json<T: for<'de> Deserialize<'de>>(
    http: &reqwest::Client,
    url: &url::Url,
) -> Result<T, String> {
    let resp = http
        .get(url.clone())
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    resp.json::<T>().await.map_err(|e| error_chain(&e))
}

/// Well-known URLs for `base`: RFC 8414 path insertion
/// (`/.well-known/{name}/path`), then (if `root_too` or OIDC) the appended
/// form and the root.
fn well_known(base: &url::Url, name: &str, insert_first: bool) -> Vec<url::Url> {
    let path = base.path().trim_end_matches('/');
    let mut out = Vec::new();
    let mut push = |p: String| {
        let mut u = base.clone();
        u.set_path(&p);
        u.set_query(None);
        u.set_fragment(None);
        if !out.contains(&u) {
            out.push(u);
        }
    };
    if insert_first {
        push(format!("/.well-known/{name}{path}"));
        push(format!("{path}/.well-known/{name}"));
    } else {
        push(format!("{path}/.well-known/{name}"));
        push(format!("/.well-known/{name}{path}"));
    }
    push(format!("/.well-known/{name}"));
    out
}

/// The value of `param` in a `WWW-Authenticate: Bearer k="v", …` header.
pub fn auth_param(header: &str, param: &str) -> Option<String> {
    let lower = header.to_ascii_lowercase();
    let needle = format!("{}=", param.to_ascii_lowercase());
    let mut from = 0;
    while let Some(i) = lower[from..].find(&needle).map(|i| from + i) {
        let boundary = i == 0 || matches!(lower.as_bytes()[i - 1], b' ' | b',' | b'\t');
        let rest = &header[i + needle.len()..];
        if boundary {
            return Some(if let Some(q) = rest.strip_prefix('"') {
                let end = q.find('"').unwrap_or(q.len());
                q[..end].to_owned()
            } else {
                let end = rest.find([',', ' ']).unwrap_or(rest.len());
                rest[..end].to_owned()
            });
        }
        from = i + needle.len();
    }
    None
}

/// An error and its causes on one line (reqwest hides the useful part in sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_www_authenticate() {
        let h = r#"Bearer error="invalid_token", resource_metadata="http://h/.well-known/oauth-protected-resource/mcp""#;
        assert_eq!(
            auth_param(h, "resource_metadata").as_deref(),
            Some("http://h/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(auth_param(h, "error").as_deref(), Some("invalid_token"));
        assert_eq!(
            auth_param("Bearer realm=x, scope=a", "scope").as_deref(),
            Some("a")
        );
        assert_eq!(
            auth_param("Bearer xresource_metadata=\"a\"", "resource_metadata"),
            None
        );
    }

    #[test]
    fn well_known_urls() {
        let u = url::Url::parse("http://h:1/tenant").unwrap();
        let got: Vec<String> = well_known(&u, "oauth-authorization-server", true)
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "http://h:1/.well-known/oauth-authorization-server/tenant",
                "http://h:1/tenant/.well-known/oauth-authorization-server",
                "http://h:1/.well-known/oauth-authorization-server",
            ]
        );
        let u = url::Url::parse("http://h:1").unwrap();
        assert_eq!(well_known(&u, "openid-configuration", false).len(), 1);
    }
}
