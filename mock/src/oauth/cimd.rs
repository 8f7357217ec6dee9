//! Client ID Metadata Documents (`--client-metadata-documents`): a client id that is an https
//! URL names a JSON document this server fetches to learn the client, as the MCP authorization
//! spec (2025-11-25) and draft-ietf-oauth-client-id-metadata-document describe. The document's
//! `client_id` must be its own URL; it may not use a shared secret; it is cached for a minute.

use std::time::Duration;

use serde_json::Value;

use super::store::Client;
use super::{GRANT_TYPES, TokenAuthMethod, resolve_scope, valid_redirect_uri};
use crate::state::now_secs;
use crate::{App, SCOPES};

/// Largest document accepted; the draft suggests servers bound it, 5 KiB is the common choice.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// How long one fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A fetched document is used for this long before it is fetched again.
const CACHE_TTL_SECS: u64 = 60;

/// Whether `client_id` is a URL (and so, with documents enabled, names a metadata document).
pub fn is_url_client_id(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

/// The client a document URL names: from the cache while fresh, else fetched and checked.
pub async fn resolve(app: &App, client_id: &str) -> Result<Client, String> {
    if let Some(c) = app.auth().clients.get(client_id)
        && now_secs().saturating_sub(c.issued_at) < CACHE_TTL_SECS
    {
        return Ok(c.clone());
    }
    let url = check_url(client_id)?;
    let document = fetch(&app.http, &url).await?;
    let client = parse_document(client_id, &document)?;
    tracing::debug!(client_id, "fetched client metadata document");
    app.auth().clients.insert(client.id.clone(), client.clone());
    Ok(client)
}

/// https with a path, no fragment or credentials; plain http only on loopback (for tests).
fn check_url(client_id: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(client_id)
        .map_err(|e| format!("client_id {client_id} is not a valid URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(format!(
            "client_id {client_id}: a metadata document URL must use https"
        ));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(format!(
            "client_id {client_id}: a metadata document URL must have a path"
        ));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "client_id {client_id}: a metadata document URL may not have a fragment or credentials"
        ));
    }
    Ok(url)
}

/// GETs the document, refusing redirects (the client) and bodies past `MAX_DOCUMENT_BYTES`.
async fn fetch(http: &reqwest::Client, url: &url::Url) -> Result<Value, String> {
    let mut response = http
        .get(url.clone())
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("cannot fetch the client metadata document {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "the client metadata document {url} answered HTTP {}",
            response.status()
        ));
    }
    let too_big =
        || format!("the client metadata document {url} is larger than {MAX_DOCUMENT_BYTES} bytes");
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the client metadata document {url}: {e}"))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| format!("the client metadata document {url} is not JSON: {e}"))
}

/// Checks a document against the URL it came from and makes it a (public) client.
fn parse_document(client_id: &str, doc: &Value) -> Result<Client, String> {
    let bad = |what: String| format!("client metadata document {client_id}: {what}");
    let doc = doc
        .as_object()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    if doc.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err(bad(
            "its client_id is not the URL it was fetched from".into()
        ));
    }
    let strings = |key: &str| -> Option<Vec<String>> {
        doc.get(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let redirect_uris = strings("redirect_uris")
        .filter(|r| !r.is_empty() && r.iter().all(|u| valid_redirect_uri(u)))
        .ok_or_else(|| bad("redirect_uris must be a non-empty array of URLs".into()))?;
    match doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
    {
        None | Some("none") => {}
        Some(m) => {
            return Err(bad(format!(
                "token_endpoint_auth_method {m} is not supported here: a document client is public (none)"
            )));
        }
    }
    let grant_types = match doc.get("grant_types") {
        None => vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
        Some(_) => strings("grant_types")
            .filter(|g| {
                g.iter()
                    .all(|g| g != "client_credentials" && GRANT_TYPES.contains(&g.as_str()))
            })
            .ok_or_else(|| {
                bad(
                    "grant_types must be an array of authorization_code, refresh_token or password"
                        .into(),
                )
            })?,
    };
    let all = SCOPES.join(" ");
    let scope = match doc.get("scope").and_then(Value::as_str) {
        Some(s) => resolve_scope(Some(s), &all).map_err(|e| bad(e.description))?,
        None => all,
    };
    Ok(Client {
        id: client_id.to_owned(),
        secret: None,
        redirect_uris,
        grant_types,
        auth_method: TokenAuthMethod::None,
        name: doc
            .get("client_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        scope,
        issued_at: now_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls() {
        let check = |id: &str, ok: bool| assert_eq!(check_url(id).is_ok(), ok, "{id}");
        check("https://app.example/client.json", true);
        check("http://127.0.0.1:9/client.json", true);
        check("http://app.example/client.json", false);
        check("https://app.example/", false);
        check("https://app.example/c.json#x", false);
        check("https://u:p@app.example/c.json", false);
    }

    #[test]
    fn documents() {
        let id = "https://app.example/c.json";
        let ok =
            json!({"client_id": id, "client_name": "x", "redirect_uris": ["http://127.0.0.1/cb"]});
        let client = parse_document(id, &ok).unwrap();
        assert!(client.is_public());
        assert!(client.allows_grant("authorization_code"));
        let with = |k: &str, v: Value| {
            let mut d = ok.clone();
            d[k] = v;
            parse_document(id, &d)
        };
        assert!(with("client_id", json!("https://other.example/c.json")).is_err());
        assert!(with("redirect_uris", json!([])).is_err());
        assert!(with("token_endpoint_auth_method", json!("client_secret_post")).is_err());
        assert!(with("grant_types", json!(["client_credentials"])).is_err());
        assert!(parse_document(id, &json!([1])).is_err());
    }
}
