//! The OAuth client a run logs users in with — registered by DCR (RFC 7591), given by
//! `--client-id`, or a Client ID Metadata Document URL (`--client-metadata-url`) — and how it
//! authenticates at the token endpoint, chosen from what the authorization server lists in
//! `token_endpoint_auth_methods_supported`.

use std::fmt;

use common::Secret;
use serde::Deserialize;

use super::discovery::{self, Endpoints};
use super::{LoginError, OAuthErrorBody};
use crate::settings::login::LoginMethod;

/// How the client proves who it is at the token endpoint (RFC 6749 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAuthMethod {
    /// A public client: `client_id` in the form, no secret.
    None,
    /// `Authorization: Basic` with the form-urlencoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form.
    ClientSecretPost,
}

impl TokenAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::None => "none",
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<TokenAuthMethod> {
        [
            TokenAuthMethod::None,
            TokenAuthMethod::ClientSecretBasic,
            TokenAuthMethod::ClientSecretPost,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

impl fmt::Display for TokenAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The method for a client with (`confidential`) or without a secret, from the methods the
/// server lists: `none` for a public client, else `client_secret_basic` (which RFC 6749
/// servers must support) when listed, else `client_secret_post`. `None` when the server
/// lists neither secret method for a confidential client.
pub fn choose_auth_method(supported: &[String], confidential: bool) -> Option<TokenAuthMethod> {
    if !confidential {
        return Some(TokenAuthMethod::None);
    }
    let listed = |m: TokenAuthMethod| supported.iter().any(|s| s == m.as_str());
    [
        TokenAuthMethod::ClientSecretBasic,
        TokenAuthMethod::ClientSecretPost,
    ]
    .into_iter()
    .find(|m| listed(*m))
}

/// The OAuth client the controller logs users in with.
#[derive(Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub auth_method: TokenAuthMethod,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("auth_method", &self.auth_method)
            .finish()
    }
}

impl OAuthClient {
    /// Adds this client's authentication to a token-endpoint request whose form is `form`.
    pub fn authenticate(
        &self,
        req: reqwest::RequestBuilder,
        form: &mut Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        match (self.auth_method, &self.client_secret) {
            (TokenAuthMethod::ClientSecretBasic, Some(secret)) => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                req.basic_auth(enc(&self.client_id), Some(enc(secret.expose())))
            }
            (TokenAuthMethod::ClientSecretPost, Some(secret)) => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret.expose().to_owned()));
                req
            }
            _ => {
                form.push(("client_id", self.client_id.clone()));
                req
            }
        }
    }

    /// `--client-id` (and `MCP_SWARM_CLIENT_SECRET`): a client registered in advance.
    pub fn given(
        client_id: &str,
        secret: Option<Secret>,
        endpoints: &Endpoints,
    ) -> Result<OAuthClient, LoginError> {
        let auth_method = choose_auth_method(
            &endpoints.token_endpoint_auth_methods,
            secret.is_some(),
        )
        .ok_or_else(|| LoginError::Registration {
            url: endpoints.issuer.clone(),
            message: format!(
                "the client has a secret but the authorization server lists neither client_secret_basic nor client_secret_post (token_endpoint_auth_methods_supported: {})",
                endpoints.token_endpoint_auth_methods.join(", ")
            ),
        })?;
        Ok(OAuthClient {
            client_id: client_id.to_owned(),
            client_secret: secret,
            auth_method,
        })
    }
}

/// `--client-metadata-url` as the MCP authorization spec asks: https with a path (plain http
/// only on a loopback host, for local tests), no fragment or credentials.
pub fn check_client_metadata_url(url: &url::Url) -> Result<(), String> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    let flag = "--client-metadata-url";
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(format!(
            "{flag} {url}: a Client ID Metadata Document must be served over https"
        ));
    }
    if url.path() == "/" {
        return Err(format!(
            "{flag} {url}: the URL needs a path (e.g. https://example.com/mcp-swarm/client.json)"
        ));
    }
    if url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{flag} {url}: no fragment or credentials in a client id URL"
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct MetadataDocument {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

/// The client named by a Client ID Metadata Document URL. The document is fetched once here
/// so that a wrong one is refused with a reason before any user logs in: its `client_id`
/// must be its own URL and its `redirect_uris` must include this run's.
pub async fn metadata_document_client(
    http: &reqwest::Client,
    url: &url::Url,
    endpoints: &Endpoints,
    redirect_uri: &str,
) -> Result<OAuthClient, LoginError> {
    let err = |message: String| LoginError::Registration {
        url: url.to_string(),
        message,
    };
    if !endpoints.client_id_metadata_document_supported {
        tracing::warn!(
            issuer = %endpoints.issuer,
            "the authorization server does not advertise client_id_metadata_document_supported; trying --client-metadata-url anyway"
        );
    }
    let resp = http
        .get(url.clone())
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| {
            err(format!(
                "cannot fetch the document: {}",
                discovery::error_chain(&e)
            ))
        })?;
    if !resp.status().is_success() {
        return Err(err(format!(
            "fetching the document got HTTP {}",
            resp.status()
        )));
    }
    let doc: MetadataDocument = resp
        .json()
        .await
        .map_err(|e| err(format!("the document is not client metadata JSON: {e}")))?;
    if doc.client_id.as_deref() != Some(url.as_str()) {
        return Err(err(format!(
            "the document's client_id is {:?}, not its own URL",
            doc.client_id.unwrap_or_default()
        )));
    }
    let ours = url::Url::parse(redirect_uri).ok();
    let listed = doc.redirect_uris.iter().any(|r| {
        r == redirect_uri
            || url::Url::parse(r)
                .ok()
                .zip(ours.clone())
                .is_some_and(|(mut a, mut b)| {
                    // A loopback redirect may use any port (RFC 8252 §7.3).
                    let _ = (a.set_port(None), b.set_port(None));
                    a == b && matches!(a.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
                })
    });
    if !listed {
        return Err(err(format!(
            "the document's redirect_uris ({}) do not include this run's {redirect_uri}",
            doc.redirect_uris.join(", ")
        )));
    }
    Ok(OAuthClient {
        client_id: url.to_string(),
        client_secret: None,
        auth_method: TokenAuthMethod::None,
    })
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// RFC 7591 registration of one client for the whole run: public where the login method
/// allows it and the server accepts `none`, else confidential with a secret method the
/// server lists.
pub async fn register_client(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    method: LoginMethod,
    scope: Option<&str>,
    redirect_uri: &str,
) -> Result<OAuthClient, LoginError> {
    let url = endpoints.registration_endpoint.clone().ok_or_else(|| LoginError::Registration {
        url: endpoints.issuer.clone(),
        message: "the authorization server offers no registration_endpoint: pass --client-id (and MCP_SWARM_CLIENT_SECRET if confidential) or --client-metadata-url".into(),
    })?;
    let err = |message: String| LoginError::Registration {
        url: url.to_string(),
        message,
    };
    let supported = &endpoints.token_endpoint_auth_methods;
    let mut grant_types = vec!["authorization_code", "refresh_token"];
    let public_ok = supported.iter().any(|m| m == "none");
    let confidential = match method {
        LoginMethod::Password => {
            grant_types.push("password");
            !public_ok
        }
        LoginMethod::ClientCredentials => {
            grant_types = vec!["client_credentials"];
            true
        }
        _ => !public_ok,
    };
    let auth_method = choose_auth_method(supported, confidential).ok_or_else(|| {
        err(format!(
            "the authorization server lists no client authentication this run can use (token_endpoint_auth_methods_supported: {}; mcp-swarm speaks none, client_secret_basic and client_secret_post)",
            supported.join(", ")
        ))
    })?;
    let mut body = serde_json::json!({
        "client_name": "mcp-swarm",
        "redirect_uris": [redirect_uri],
        "grant_types": grant_types,
        "response_types": ["code"],
        "token_endpoint_auth_method": auth_method.as_str(),
    });
    if let Some(scope) = scope {
        body["scope"] = scope.into();
    }
    let resp = http
        .post(url.clone())
        .json(&body)
        .send()
        .await
        .map_err(|e| err(discovery::error_chain(&e)))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        let detail = serde_json::from_str::<OAuthErrorBody>(&text)
            .map(|b| {
                format!(
                    "{}{}",
                    b.error,
                    b.error_description
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_else(|_| format!("HTTP {status}"));
        return Err(err(format!(
            "{detail} (asked for token_endpoint_auth_method {auth_method})"
        )));
    }
    let r: RegistrationResponse =
        serde_json::from_str(&text).map_err(|e| err(format!("unexpected answer: {e}")))?;
    // The server's answer is what it will hold the client to.
    let granted = match r.token_endpoint_auth_method.as_deref() {
        Some(m) => TokenAuthMethod::parse(m).ok_or_else(|| {
            err(format!(
                "the server registered the client for token_endpoint_auth_method {m}, which mcp-swarm does not speak"
            ))
        })?,
        None => auth_method,
    };
    let client_secret = r.client_secret.map(Secret::new);
    if granted != TokenAuthMethod::None && client_secret.is_none() {
        return Err(err(format!(
            "the server registered a {granted} client but returned no client_secret"
        )));
    }
    Ok(OAuthClient {
        client_id: r.client_id,
        client_secret,
        auth_method: granted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_method_choice() {
        let check = |supported: &[&str], confidential: bool, expected: Option<TokenAuthMethod>| {
            let supported: Vec<String> = supported.iter().map(|s| s.to_string()).collect();
            assert_eq!(
                choose_auth_method(&supported, confidential),
                expected,
                "{supported:?} confidential={confidential}"
            );
        };
        use TokenAuthMethod::*;
        check(&["none", "client_secret_basic"], false, Some(None));
        check(&["client_secret_post"], true, Some(ClientSecretPost));
        check(
            &["client_secret_post", "client_secret_basic"],
            true,
            Some(ClientSecretBasic),
        );
        check(&["private_key_jwt"], true, Option::None);
        check(&["none"], true, Option::None);
    }

    #[test]
    fn metadata_urls() {
        let check = |u: &str, ok: bool| {
            let url = url::Url::parse(u).unwrap();
            assert_eq!(check_client_metadata_url(&url).is_ok(), ok, "{u}");
        };
        check("https://example.com/client.json", true);
        check("http://127.0.0.1:8000/client.json", true);
        check("http://example.com/client.json", false);
        check("https://example.com/", false);
        check("https://example.com/c.json#f", false);
    }
}
