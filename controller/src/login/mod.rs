//! Getting tokens for test users: discovery, the login methods, and refresh;
//! the OAuth client itself (DCR, `--client-id`, metadata document) is `client`.

pub mod browser;
pub mod cache;
pub mod callback;
pub mod client;
pub(crate) mod cookies;
pub mod direct;
pub mod discovery;
pub mod form;
pub(crate) mod nextcloud;
pub mod tokens_file;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::ids::UserName;
use common::{LatencyHistogram, Secret};
use futures::StreamExt;
use serde::Deserialize;

use crate::provision::TestUser;
use crate::settings::login::{CLIENT_SECRET_ENV, FormFields, LoginConfig, LoginMethod};
pub use client::{OAuthClient, TokenAuthMethod, check_client_metadata_url};
pub use discovery::Endpoints;

/// Where the IdP sends the browser back; direct login reads the code from
/// the `Location` header and never connects here.
pub const REDIRECT_URI: &str = "http://127.0.0.1:53682/callback";

const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("OAuth discovery from {url}: {message}")]
    Discovery { url: String, message: String },
    #[error("dynamic client registration at {url}: {message}")]
    Registration { url: String, message: String },
    #[error("login of {user}: {stage} failed: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    OAuth {
        user: String,
        stage: &'static str,
        /// The OAuth error code (`invalid_grant`, `access_denied`) or what went wrong.
        error: String,
        description: Option<String>,
    },
    #[error("login of {user}: {message}")]
    Flow { user: String, message: String },
    #[error(transparent)]
    Browser(#[from] browser::BrowserLoginError),
    #[error("--tokens-file {path}: {message}")]
    TokensFile { path: String, message: String },
}

/// A user's tokens; `Debug` redacts them.
#[derive(Clone)]
pub struct TokenSet {
    pub access: Secret,
    pub refresh: Option<Secret>,
    pub expires_at: Option<SystemTime>,
    /// `expires_in` as issued, which sets how early it is refreshed.
    pub lifetime: Option<Duration>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access", &self.access)
            .field("has_refresh", &self.refresh.is_some())
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl TokenSet {
    /// Unix ms of expiry; 0 = unknown (as the protocol has it).
    pub fn expires_at_ms(&self) -> i64 {
        self.expires_at
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct OAuthErrorBody {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// How this run's users get their tokens, with what each way needs.
enum Flow {
    Direct,
    Password,
    ClientCredentials,
    /// One browser for the run, and the listener its redirects come to.
    Browser {
        browser: tokio::sync::RwLock<Option<Box<browser::BrowserLogin>>>,
        callback: callback::CallbackServer,
        _stop_callback: tokio_util::sync::DropGuard,
    },
    TokensFile {
        path: String,
        tokens: BTreeMap<UserName, TokenSet>,
    },
}

/// The least time before expiry a refresh starts (unless that is more than
/// half the token's lifetime).
pub const MIN_MARGIN: Duration = Duration::from_secs(30);

/// How long before expiry a token of this lifetime is refreshed (by the
/// token keeper, and before a cached token is reused).
pub fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 10).max(MIN_MARGIN).min(lifetime / 2)
}

/// Logs users in and refreshes their tokens against one authorization server.
pub struct Authenticator {
    http: reqwest::Client,
    pub endpoints: Endpoints,
    /// `None` only for `--login tokens-file` without `--client-id`: such
    /// tokens cannot be refreshed.
    client: Option<OAuthClient>,
    method: LoginMethod,
    scope: Option<String>,
    form: FormFields,
    flow: Flow,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("endpoints", &self.endpoints)
            .field("client", &self.client)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// Outcome of logging in every user.
pub struct LoginOutcome {
    pub tokens: BTreeMap<UserName, TokenSet>,
    pub latency: LatencyHistogram,
    pub failures: Vec<LoginError>,
    /// `--token-cache`: users whose tokens came from the cache (reused or
    /// refreshed), not from a login.
    pub from_cache: u64,
}

impl Authenticator {
    /// Discovers the endpoints, registers a client (unless `--client-id`,
    /// a metadata document, or a client `cached` for this issuer) and
    /// readies the login method (the browser, the tokens file).
    pub async fn setup(
        config: &LoginConfig,
        mcp_url: &url::Url,
        cached: Option<&cache::Cached>,
    ) -> Result<Authenticator, LoginError> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LoginError::Discovery {
                url: mcp_url.to_string(),
                message: discovery::error_chain(&e),
            })?;
        // The tokens file is read first: a bad file is refused before any
        // request is made.
        let file_tokens = match (config.method, &config.tokens_file) {
            (LoginMethod::TokensFile, Some(path)) => Some(tokens_file::load(path)?),
            (LoginMethod::TokensFile, None) => {
                return Err(LoginError::TokensFile {
                    path: String::new(),
                    message: "--login tokens-file needs --tokens-file FILE".into(),
                });
            }
            _ => None,
        };
        let endpoints = discovery::discover(&http, mcp_url).await?;
        let scope = config.scope.clone().or_else(|| {
            (!endpoints.scopes_supported.is_empty()).then(|| endpoints.scopes_supported.join(" "))
        });
        let stop_callback = tokio_util::sync::CancellationToken::new();
        let callback = match config.method {
            LoginMethod::Browser => Some(
                callback::CallbackServer::start(config.callback_listen, stop_callback.clone())
                    .await
                    .map_err(|e| LoginError::Flow {
                        user: String::new(),
                        message: format!(
                            "cannot start the OAuth callback listener on --callback-listen {}: {e}",
                            config.callback_listen
                        ),
                    })?,
            ),
            _ => None,
        };
        let redirect_uri = callback
            .as_ref()
            .map_or_else(|| REDIRECT_URI.to_owned(), |c| c.redirect_uri());
        let client = match (
            &config.client_id,
            &config.client_metadata_url,
            config.method,
        ) {
            (Some(id), _, _) => Some(OAuthClient::given(
                id,
                config.client_secret.clone(),
                &endpoints,
            )?),
            (None, Some(url), _) => {
                Some(client::metadata_document_client(&http, url, &endpoints, &redirect_uri).await?)
            }
            (None, None, LoginMethod::TokensFile) => None,
            (None, None, method) => match cached
                .filter(|c| c.issuer == endpoints.issuer)
                .and_then(|c| c.client.clone())
            {
                Some(c) => {
                    tracing::info!(client_id = %c.client_id, "OAuth client from the token cache: not registering another");
                    Some(c)
                }
                None => Some(
                    client::register_client(
                        &http,
                        &endpoints,
                        method,
                        scope.as_deref(),
                        &redirect_uri,
                    )
                    .await?,
                ),
            },
        };
        if config.method == LoginMethod::ClientCredentials
            && client.as_ref().is_some_and(|c| c.client_secret.is_none())
        {
            return Err(LoginError::Registration {
                url: endpoints.issuer.clone(),
                message: format!(
                    "--login client-credentials needs a confidential client: the client has no secret (set {})",
                    CLIENT_SECRET_ENV
                ),
            });
        }
        let flow = match (config.method, callback, file_tokens) {
            (LoginMethod::Browser, Some(callback), _) => {
                let browser = browser::BrowserLogin::launch(config.browser.clone()).await?;
                Flow::Browser {
                    browser: tokio::sync::RwLock::new(Some(Box::new(browser))),
                    callback,
                    _stop_callback: stop_callback.drop_guard(),
                }
            }
            (LoginMethod::TokensFile, _, Some(tokens)) => Flow::TokensFile {
                path: config
                    .tokens_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                tokens,
            },
            (LoginMethod::Password, ..) => Flow::Password,
            (LoginMethod::ClientCredentials, ..) => Flow::ClientCredentials,
            _ => Flow::Direct,
        };
        match &client {
            Some(c) => {
                tracing::info!(issuer = %endpoints.issuer, client_id = %c.client_id, auth_method = %c.auth_method, "OAuth client ready")
            }
            None => tracing::info!(
                issuer = %endpoints.issuer,
                "no OAuth client (--login tokens-file without --client-id): tokens will not be refreshed"
            ),
        }
        Ok(Authenticator {
            http,
            endpoints,
            client,
            method: config.method,
            scope,
            form: config.form.clone(),
            flow,
        })
    }

    pub fn method(&self) -> LoginMethod {
        self.method
    }

    /// Closes the browser, if this run has one. Logins after this fail.
    pub async fn close(&self) {
        if let Flow::Browser { browser, .. } = &self.flow
            && let Some(b) = browser.write().await.take()
        {
            b.close().await;
        }
    }

    /// Logs one user in with the configured method.
    pub async fn login(&self, user: &TestUser) -> Result<TokenSet, LoginError> {
        match &self.flow {
            Flow::Direct => direct::login(self, user).await,
            Flow::Password => self.password_grant(user).await,
            Flow::ClientCredentials => self.client_credentials_grant(user).await,
            Flow::Browser {
                browser, callback, ..
            } => {
                let browser = browser.read().await;
                let browser = browser.as_ref().ok_or_else(|| LoginError::Flow {
                    user: user.name.to_string(),
                    message: "the browser is already closed".into(),
                })?;
                self.browser_login(browser, callback, user).await
            }
            Flow::TokensFile { path, tokens } => {
                tokens
                    .get(&user.name)
                    .cloned()
                    .ok_or_else(|| LoginError::TokensFile {
                        path: path.clone(),
                        message: format!("no tokens for user {}: add them to the file", user.name),
                    })
            }
        }
    }

    /// Authorization code + PKCE through the IdP's pages in Chromium; the
    /// code comes back to the local callback listener.
    async fn browser_login(
        &self,
        browser: &browser::BrowserLogin,
        callback: &callback::CallbackServer,
        user: &TestUser,
    ) -> Result<TokenSet, LoginError> {
        let name = user.name.to_string();
        let request = direct::AuthorizeRequest::new(self, &callback.redirect_uri());
        let state = request.state.expose();
        let redirect = callback.expect(state);
        let params = browser
            .login(request.url.as_str(), &name, &user.password, redirect)
            .await;
        callback.forget(state);
        let params = params?;
        let get = |k: &str| match k {
            "code" => params.code.as_ref().map(|c| c.expose().to_owned()),
            "state" => params.state.clone(),
            "iss" => params.iss.clone(),
            "error" => params.error.clone(),
            "error_description" => params.error_description.clone(),
            _ => None,
        };
        let code = direct::check_callback(get, state, &self.endpoints.issuer, &name)?;
        request.exchange(self, &name, &code).await
    }

    /// Logs every user in, `concurrency` at once, timing each login.
    pub async fn login_all(
        self: &Arc<Self>,
        users: &[TestUser],
        concurrency: usize,
    ) -> LoginOutcome {
        let results: Vec<_> = futures::stream::iter(users)
            .map(|u| async move {
                let started = Instant::now();
                let r = self.login(u).await;
                (u.name.clone(), started.elapsed(), r)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut outcome = LoginOutcome {
            tokens: BTreeMap::new(),
            latency: LatencyHistogram::new(),
            failures: Vec::new(),
            from_cache: 0,
        };
        for (name, elapsed, r) in results {
            match r {
                Ok(t) => {
                    outcome.latency.record(elapsed);
                    outcome.tokens.insert(name, t);
                }
                Err(e) => outcome.failures.push(e),
            }
        }
        outcome
    }

    /// The refresh grant for `user` with `refresh`, no login after a refusal.
    pub async fn refresh_grant(
        &self,
        user: &TestUser,
        refresh: &Secret,
    ) -> Result<TokenSet, LoginError> {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.expose().to_owned()),
            ("resource", self.endpoints.resource.clone()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.clone()));
        }
        let mut t = self
            .token_request(user.name.as_str(), "refresh", form)
            .await?;
        if t.refresh.is_none() {
            t.refresh = Some(refresh.clone());
        }
        Ok(t)
    }

    /// A fresh token for `user`: the refresh grant if there is a refresh
    /// token, else (or when it is refused) a new login.
    pub async fn refresh(
        &self,
        user: &TestUser,
        current: Option<&TokenSet>,
    ) -> Result<TokenSet, LoginError> {
        if let Some(refresh) = current.and_then(|t| t.refresh.as_ref()) {
            match self.refresh_grant(user, refresh).await {
                Ok(t) => return Ok(t),
                Err(e) if matches!(self.flow, Flow::TokensFile { .. }) => return Err(e),
                Err(e) => {
                    tracing::debug!(user = %user.name, error = %e, "refresh refused; logging in again")
                }
            }
        }
        if let Flow::TokensFile { path, .. } = &self.flow {
            return Err(LoginError::TokensFile {
                path: path.clone(),
                message: format!(
                    "the token of {} cannot be renewed: the file gives it no refresh token",
                    user.name
                ),
            });
        }
        self.login(user).await
    }

    async fn client_credentials_grant(&self, user: &TestUser) -> Result<TokenSet, LoginError> {
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("resource", self.endpoints.resource.clone()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.clone()));
        }
        self.token_request(user.name.as_str(), "client credentials grant", form)
            .await
    }

    async fn password_grant(&self, user: &TestUser) -> Result<TokenSet, LoginError> {
        let mut form = vec![
            ("grant_type", "password".to_owned()),
            ("username", user.name.to_string()),
            ("password", user.password.expose().to_owned()),
            ("resource", self.endpoints.resource.clone()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.clone()));
        }
        self.token_request(user.name.as_str(), "password grant", form)
            .await
    }

    /// POSTs to the token endpoint with client authentication.
    pub(crate) async fn token_request(
        &self,
        user: &str,
        stage: &'static str,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<TokenSet, LoginError> {
        let client = self.client.as_ref().ok_or_else(|| LoginError::Flow {
            user: user.to_owned(),
            message: format!(
                "{stage}: no OAuth client to call the token endpoint with; pass --client-id (the client the tokens were issued to)"
            ),
        })?;
        let req = client.authenticate(
            self.http.post(self.endpoints.token_endpoint.clone()),
            &mut form,
        );
        let resp = req
            .header("Accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| LoginError::Flow {
                user: user.to_owned(),
                message: format!("{stage}: {}", discovery::error_chain(&e)),
            })?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let (error, description) = match serde_json::from_str::<OAuthErrorBody>(&body) {
                Ok(b) => (b.error, b.error_description),
                Err(_) => (format!("HTTP {status}"), None),
            };
            return Err(LoginError::OAuth {
                user: user.to_owned(),
                stage,
                error,
                description,
            });
        }
        let t: TokenResponse = serde_json::from_str(&body).map_err(|e| LoginError::Flow {
            user: user.to_owned(),
            message: format!("{stage}: the token endpoint's answer is not a token response: {e}"),
        })?;
        Ok(TokenSet {
            access: Secret::new(t.access_token),
            refresh: t.refresh_token.map(Secret::new),
            expires_at: t
                .expires_in
                .map(|s| SystemTime::now() + Duration::from_secs(s)),
            lifetime: t.expires_in.map(Duration::from_secs),
        })
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The client id to put in an authorization request (DCR or
    /// `--client-id`; empty only for tokens-file runs, which never ask).
    /// The OAuth client the tokens are issued to, if there is one.
    pub fn client(&self) -> Option<&OAuthClient> {
        self.client.as_ref()
    }

    pub fn client_id(&self) -> &str {
        self.client.as_ref().map_or("", |c| c.client_id.as_str())
    }

    pub(crate) fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    pub(crate) fn form_fields(&self) -> &FormFields {
        &self.form
    }
}
