//! The OAuth 2.1 authorization server: routes, discovery metadata, JWKS, dynamic client
//! registration and the shared error type; client authentication is in `client_auth`, Client
//! ID Metadata Documents in `cimd`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::{App, SCOPES, Secret};

mod authorize;
mod cimd;
pub mod client_auth;
pub mod jwt;
mod nextcloud;
pub mod store;
pub mod token;

use crate::http::{no_store, random_token};
use client_auth::method_names;
pub use client_auth::{TokenAuthMethod, authenticate_client};
use store::Client;

pub const GRANT_TYPES: [&str; 4] = [
    "authorization_code",
    "refresh_token",
    "password",
    "client_credentials",
];

/// Where Nextcloud's oidc app (H2CK/oidc, appinfo/routes.php) serves its endpoints.
pub const OIDC_APP: &str = "/index.php/apps/oidc";

pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/index.php/.well-known/openid-configuration", get(metadata))
        .route(&format!("{OIDC_APP}/openid-configuration"), get(metadata))
        .route("/login", post(authorize::login))
        .route("/consent", post(authorize::consent))
        .route(&format!("{OIDC_APP}/consent"), get(nextcloud::show))
        .route(&format!("{OIDC_APP}/consent/grant"), post(nextcloud::grant))
        .route(&format!("{OIDC_APP}/consent/deny"), post(nextcloud::deny));
    // The app's real paths, and the mock's short ones kept as aliases for tests and clients
    // that name them. `/authorize` also takes the Forms login POST.
    for base in [OIDC_APP, ""] {
        router = router
            .route(&format!("{base}/jwks"), get(jwks))
            .route(&format!("{base}/register"), post(register))
            .route(
                &format!("{base}/authorize"),
                get(authorize::authorize).post(authorize::login),
            )
            .route(&format!("{base}/token"), post(token::token))
            .route(&format!("{base}/introspect"), post(token::introspect))
            .route(&format!("{base}/revoke"), post(token::revoke))
            .route(
                &format!("{base}/userinfo"),
                get(token::userinfo).post(token::userinfo),
            );
    }
    router.with_state(app)
}

/// How long fetching one client metadata document may take.
pub fn cimd_fetch_timeout() -> std::time::Duration {
    cimd::FETCH_TIMEOUT
}

/// An RFC 6749 error response: JSON `{error, error_description}`, never cached.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            error,
            description: description.into(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        let mut response = (self.status, no_store(), axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mock-target\""),
            );
        }
        response
    }
}

/// Checks `requested` (space-separated) against what the client may get; `None` = all of it.
pub fn resolve_scope(requested: Option<&str>, allowed: &str) -> Result<String, OAuthError> {
    let Some(requested) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(allowed.to_owned());
    };
    for scope in requested.split_whitespace() {
        if !allowed.split_whitespace().any(|a| a == scope) {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("scope {scope} is not allowed"),
            ));
        }
    }
    Ok(requested.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// RFC 8707: a `resource`, if given, must be an absolute URL without a fragment. Any resource
/// is accepted, as Nextcloud's oidc app does: the real nextcloud-mcp-server in front of the
/// mock asks for its own URL (`{its URL}/mcp`), which then lands in the token's `aud`.
pub fn check_resource(_app: &App, resource: Option<&str>) -> Result<(), OAuthError> {
    match resource {
        Some(r) if url::Url::parse(r).map_or(true, |u| u.fragment().is_some()) => {
            Err(OAuthError::new(
                "invalid_target",
                format!("resource {r} is not an absolute URL"),
            ))
        }
        _ => Ok(()),
    }
}

async fn metadata(State(app): State<Arc<App>>) -> impl IntoResponse {
    let i = &app.issuer;
    let o = format!("{i}{OIDC_APP}");
    let methods = method_names(&app.token_auth_methods);
    // The endpoints at the oidc app's paths, as Nextcloud's DiscoveryGenerator names them
    // (the revocation endpoint is the mock's own: the app has none).
    let mut metadata = json!({
        "issuer": i,
        "authorization_endpoint": format!("{o}/authorize"),
        "token_endpoint": format!("{o}/token"),
        "registration_endpoint": format!("{o}/register"),
        "introspection_endpoint": format!("{o}/introspect"),
        "revocation_endpoint": format!("{i}/revoke"),
        "jwks_uri": format!("{o}/jwks"),
        "userinfo_endpoint": format!("{o}/userinfo"),
        "end_session_endpoint": format!("{o}/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GRANT_TYPES,
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "scopes_supported": SCOPES,
        "authorization_response_iss_parameter_supported": true,
        "id_token_signing_alg_values_supported": ["RS256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "azp", "nonce",
            "preferred_username", "scope", "jti", "client_id", "name", "email"],
        "subject_types_supported": ["public"],
    });
    if app.client_metadata_documents {
        metadata["client_id_metadata_document_supported"] = json!(true);
    }
    axum::Json(metadata)
}

async fn jwks(State(app): State<Arc<App>>) -> impl IntoResponse {
    axum::Json(app.keys.jwks())
}

fn registration_error(error: &'static str, description: impl Into<String>) -> Response {
    let body = json!({ "error": error, "error_description": description.into() });
    (StatusCode::BAD_REQUEST, no_store(), axum::Json(body)).into_response()
}

/// A registered scope: Nextcloud's character set (`[a-zA-Z0-9 _:./-]`), at most 512 bytes,
/// normalized to single spaces.
fn registered_scope(scope: &str) -> Result<String, String> {
    let scope = scope.trim();
    if scope.len() > 512 {
        return Err("scope is longer than 512 characters".into());
    }
    if let Some(bad) = scope
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || " _:./-".contains(*c)))
    {
        return Err(format!(
            "scope contains {bad:?}: allowed are letters, digits, spaces, _ : . / -"
        ));
    }
    Ok(scope.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn valid_redirect_uri(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| u.fragment().is_none())
}

/// RFC 7591 dynamic client registration.
async fn register(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let Ok(meta) = serde_json::from_slice::<Value>(&body) else {
        return registration_error("invalid_client_metadata", "body must be a JSON object");
    };
    let strings = |key: &str| -> Option<Vec<String>> {
        meta.get(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let Some(redirect_uris) = strings("redirect_uris").filter(|r| !r.is_empty()) else {
        return registration_error(
            "invalid_redirect_uri",
            "redirect_uris must be a non-empty array of strings",
        );
    };
    if let Some(bad) = redirect_uris.iter().find(|u| !valid_redirect_uri(u)) {
        return registration_error(
            "invalid_redirect_uri",
            format!("invalid redirect URI {bad}"),
        );
    }
    let grant_types = match meta.get("grant_types") {
        None => vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
        Some(_) => match strings("grant_types") {
            Some(g) if !g.is_empty() => g,
            _ => {
                return registration_error(
                    "invalid_client_metadata",
                    "grant_types must be an array of strings",
                );
            }
        },
    };
    if let Some(bad) = grant_types
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return registration_error(
            "invalid_client_metadata",
            format!("unsupported grant type {bad}"),
        );
    }
    if let Some(types) = meta.get("response_types")
        && strings("response_types").is_none_or(|r| r.iter().any(|t| t != "code"))
    {
        return registration_error(
            "invalid_client_metadata",
            format!("unsupported response_types {types}"),
        );
    }
    // RFC 7591 §2: the default is client_secret_basic, or here the first method accepted.
    let accepted = &app.token_auth_methods;
    let auth_method = match meta.get("token_endpoint_auth_method") {
        None if accepted.contains(&TokenAuthMethod::ClientSecretBasic) => {
            TokenAuthMethod::ClientSecretBasic
        }
        None => accepted[0],
        Some(Value::String(m)) => match m.parse::<TokenAuthMethod>() {
            Ok(m) if accepted.contains(&m) => m,
            _ => {
                return registration_error(
                    "invalid_client_metadata",
                    format!(
                        "unsupported token_endpoint_auth_method {m}: this server supports {}",
                        method_names(accepted).join(", ")
                    ),
                );
            }
        },
        Some(m) => {
            return registration_error(
                "invalid_client_metadata",
                format!("token_endpoint_auth_method must be a string, got {m}"),
            );
        }
    };
    // Any scope a client names, as Nextcloud's oidc app takes it (DynamicRegistrationController:
    // the characters of RFC 6749 scope tokens it allows, 512 at most): the real
    // nextcloud-mcp-server registers its own scopes (notes.read, files.write, …).
    let scope = match meta.get("scope") {
        None => SCOPES.join(" "),
        Some(Value::String(s)) => match registered_scope(s) {
            Ok(s) => s,
            Err(e) => return registration_error("invalid_scope", e),
        },
        Some(_) => return registration_error("invalid_client_metadata", "scope must be a string"),
    };
    if let Some(resource) = meta.get("resource_url")
        && resource
            .as_str()
            .is_none_or(|r| r.len() > 512 || url::Url::parse(r).is_err())
    {
        return registration_error(
            "invalid_resource_url",
            "resource_url must be a URL of at most 512 characters (RFC 9728)",
        );
    }
    let name = meta
        .get("client_name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let secret = auth_method
        .has_secret()
        .then(|| Secret::new(random_token()));
    if let (Some(log), Some(secret)) = (&app.secret_log, &secret) {
        log.record(crate::issued::SecretKind::ClientSecret, secret.expose());
    }
    let client = Client {
        id: uuid::Uuid::new_v4().to_string(),
        secret: secret.clone(),
        redirect_uris,
        grant_types,
        auth_method,
        name,
        scope,
        issued_at: crate::state::now_secs(),
    };
    let mut out = meta.as_object().cloned().unwrap_or_default();
    out.insert("client_id".into(), json!(client.id));
    out.insert("client_id_issued_at".into(), json!(client.issued_at));
    out.insert("redirect_uris".into(), json!(client.redirect_uris));
    out.insert("grant_types".into(), json!(client.grant_types));
    out.insert("response_types".into(), json!(["code"]));
    out.insert(
        "token_endpoint_auth_method".into(),
        json!(client.auth_method.as_str()),
    );
    out.insert("scope".into(), json!(client.scope));
    if let Some(secret) = &secret {
        out.insert("client_secret".into(), json!(secret.expose()));
        out.insert("client_secret_expires_at".into(), json!(0));
    }
    tracing::debug!(client_id = %client.id, public = client.is_public(), "registered client");
    app.auth().clients.insert(client.id.clone(), client);
    (
        StatusCode::CREATED,
        no_store(),
        axum::Json(Value::Object(out)),
    )
        .into_response()
}
