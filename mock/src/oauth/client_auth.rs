//! Client authentication at the token, introspection and revocation endpoints: the methods
//! (`client_secret_basic`, `client_secret_post`, `none`), which of them this server accepts
//! (`--token-auth-methods`), and the `Authorization: Basic` decoding they share with the admin API.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use axum::http::HeaderMap;

use super::OAuthError;
use super::store::Client;
use crate::App;
use crate::http::basic_credentials;

/// How a client proves who it is at the token endpoint (RFC 6749 §2.3, RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenAuthMethod {
    /// A public client: `client_id` in the form, no secret.
    None,
    /// `Authorization: Basic` with the form-urlencoded id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl TokenAuthMethod {
    pub const ALL: [TokenAuthMethod; 3] = [
        TokenAuthMethod::None,
        TokenAuthMethod::ClientSecretBasic,
        TokenAuthMethod::ClientSecretPost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::None => "none",
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn has_secret(self) -> bool {
        self != TokenAuthMethod::None
    }
}

impl fmt::Display for TokenAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenAuthMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TokenAuthMethod::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!("unknown token endpoint auth method {s:?}: use none, client_secret_basic or client_secret_post")
            })
    }
}

/// The accepted methods as metadata lists them.
pub fn method_names(methods: &[TokenAuthMethod]) -> Vec<&'static str> {
    methods.iter().map(|m| m.as_str()).collect()
}

/// Authenticates the client of a token, introspection or revocation request with the method
/// it used, which must be one this server accepts.
pub fn authenticate_client(
    app: &App,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Client, OAuthError> {
    let (id, secret, method) = match basic_credentials(headers) {
        Some((id, secret)) => (id, Some(secret), TokenAuthMethod::ClientSecretBasic),
        None => match form.get("client_id") {
            Some(id) => match form.get("client_secret") {
                Some(secret) => (
                    id.clone(),
                    Some(secret.clone()),
                    TokenAuthMethod::ClientSecretPost,
                ),
                None => (id.clone(), None, TokenAuthMethod::None),
            },
            None => {
                return Err(OAuthError::new(
                    "invalid_client",
                    "client authentication required",
                ));
            }
        },
    };
    let client = app
        .auth()
        .clients
        .get(&id)
        .cloned()
        .ok_or_else(|| OAuthError::new("invalid_client", "unknown client"))?;
    if !app.token_auth_methods.contains(&method) {
        return Err(OAuthError::new(
            "invalid_client",
            format!(
                "client authentication by {method} is not accepted here (token_endpoint_auth_methods_supported: {})",
                method_names(&app.token_auth_methods).join(", ")
            ),
        ));
    }
    match (&client.secret, secret) {
        (None, _) => Ok(client),
        (Some(expected), Some(given)) if expected.matches(&given) => Ok(client),
        (Some(_), Some(_)) => Err(OAuthError::new("invalid_client", "wrong client secret")),
        (Some(_), None) => Err(OAuthError::new("invalid_client", "client secret required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for m in TokenAuthMethod::ALL {
            assert_eq!(m.as_str().parse::<TokenAuthMethod>(), Ok(m));
        }
        assert!("private_key_jwt".parse::<TokenAuthMethod>().is_err());
    }
}
