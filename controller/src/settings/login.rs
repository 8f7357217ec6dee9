//! How users get their tokens: `--login` and what each method needs (the
//! OAuth client, the login form's fields, the browser, the token cache's key).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::ValueEnum;
use common::Secret;
use serde::Deserialize;

use super::selector::ConsentSelector;

pub const CLIENT_SECRET_ENV: &str = "MCP_SWARM_CLIENT_SECRET";
pub const TOKEN_CACHE_KEY_ENV: &str = "MCP_SWARM_TOKEN_CACHE_KEY";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoginMethod {
    /// Headless Chromium fills the IdP's login form.
    Browser,
    /// Authorization code + PKCE over plain HTTP, posting the login form.
    Direct,
    /// Resource-owner password grant.
    Password,
    /// Client-credentials grant: every user acts as the OAuth client itself.
    ClientCredentials,
    /// Pre-acquired tokens per user.
    TokensFile,
}

#[derive(Debug, Clone)]
pub struct LoginConfig {
    pub method: LoginMethod,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// `--client-metadata-url`: the client id is this URL, whose document the AS fetches.
    pub client_metadata_url: Option<url::Url>,
    pub scope: Option<String>,
    pub concurrency: usize,
    pub form: FormFields,
    /// For `--login browser`.
    pub browser: BrowserOptions,
    /// For `--login tokens-file`.
    pub tokens_file: Option<PathBuf>,
    /// Where `--login browser` listens for the redirect.
    pub callback_listen: SocketAddr,
    /// `--token-cache`: the key its file is sealed under.
    pub token_cache: Option<CacheKey>,
}

/// What `--login direct` looks for on the IdP's pages: the login form's
/// field names and, if given, the consent button's selector.
#[derive(Debug, Clone)]
pub struct FormFields {
    pub user: String,
    pub password: String,
    pub consent: Option<ConsentSelector>,
}

/// CSS selectors for the IdP's pages. The defaults fit the mock target and
/// Nextcloud's login page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginSelectors {
    pub user: String,
    pub password: String,
    pub submit: String,
    /// The consent button; `None` finds a button labelled Allow, Authorize,
    /// Grant access, Accept or Approve.
    pub consent: Option<String>,
}

impl Default for LoginSelectors {
    fn default() -> Self {
        Self {
            user: "input[name=user]".into(),
            password: "input[name=password]".into(),
            submit: "button[type=submit]".into(),
            consent: None,
        }
    }
}

/// `--login browser`'s browser.
#[derive(Clone, Debug)]
pub struct BrowserOptions {
    pub executable: PathBuf,
    /// Show the browser window (`--headed`).
    pub headed: bool,
    /// Most logins in flight at once (`--login-concurrency`).
    pub concurrency: usize,
    pub selectors: LoginSelectors,
    /// Longest one login may take, from opening the page to the redirect.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheKeyError {
    #[error(
        "--token-cache needs a key: set {TOKEN_CACHE_KEY_ENV} to 32 random bytes in base64 (e.g. `export {TOKEN_CACHE_KEY_ENV}=$(openssl rand -base64 32)`)"
    )]
    NoKey,
    #[error(
        "{TOKEN_CACHE_KEY_ENV} must be 32 bytes in base64 or 64 hex digits ({0}); make one with `openssl rand -base64 32`"
    )]
    BadKey(String),
}

/// The token cache's key; `Debug` never shows it.
#[derive(Clone)]
pub struct CacheKey(pub(crate) [u8; 32]);

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CacheKey(<redacted>)")
    }
}

impl CacheKey {
    /// 32 bytes as standard base64 or as 64 hex digits.
    pub fn parse(text: &str) -> Result<CacheKey, CacheKeyError> {
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| CacheKeyError::BadKey(e.to_string()))?
        } else {
            BASE64
                .decode(text)
                .map_err(|e| CacheKeyError::BadKey(format!("not base64: {e}")))?
        };
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| CacheKeyError::BadKey(format!("{} bytes", b.len())))?;
        Ok(CacheKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_base64_or_hex_and_clear_errors_otherwise() {
        let b64 = BASE64.encode([3u8; 32]);
        assert_eq!(CacheKey::parse(&b64).unwrap().0, [3u8; 32]);
        assert_eq!(CacheKey::parse(&"ab".repeat(32)).unwrap().0, [0xab; 32]);
        let short = CacheKey::parse(&BASE64.encode([1u8; 16])).unwrap_err();
        assert!(short.to_string().contains("16 bytes"), "{short}");
        let junk = CacheKey::parse("not a key!").unwrap_err();
        assert!(junk.to_string().contains(TOKEN_CACHE_KEY_ENV), "{junk}");
        assert!(!format!("{:?}", CacheKey([9; 32])).contains('9'));
    }
}
