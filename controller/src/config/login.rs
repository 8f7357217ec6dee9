//! The login settings of a run: the method, the OAuth client, the login
//! form's fields and selectors, the browser, the token cache's key.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use common::Secret;

use super::file::{DurationValue, FileConfig};
use super::{DEFAULT_BROWSER, DEFAULT_LOGIN_TIMEOUT, Env};
use crate::cli::StartArgs;
use crate::settings::login::{
    BrowserOptions, CLIENT_SECRET_ENV, CacheKey, CacheKeyError, FormFields, LoginConfig,
    LoginMethod, LoginSelectors, TOKEN_CACHE_KEY_ENV,
};
use crate::settings::selector::ConsentSelector;

/// Flags and env over the file over the defaults; checks what a login
/// method needs (a tokens file, a browser, one client id).
pub(super) fn resolve(
    args: &StartArgs,
    file: &FileConfig,
    file_path: &Path,
    env: &dyn Env,
) -> anyhow::Result<LoginConfig> {
    let file_duration =
        |v: &Option<DurationValue>, key: &str| -> anyhow::Result<Option<Duration>> {
            v.as_ref().map(|d| d.resolve(key, file_path)).transpose()
        };
    let method = args.login.or(file.login).unwrap_or(LoginMethod::Direct);
    let consent_selector = args
        .login_consent_selector
        .clone()
        .or(file.login_consent_selector.clone());
    let form = FormFields {
        user: args
            .login_user_field
            .clone()
            .or(file.login_user_field.clone())
            .unwrap_or_else(|| "user".into()),
        password: args
            .login_password_field
            .clone()
            .or(file.login_password_field.clone())
            .unwrap_or_else(|| "password".into()),
        consent: consent_selector
            .as_deref()
            .map(ConsentSelector::parse)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    let concurrency = args
        .login_concurrency
        .or(file.login_concurrency)
        .unwrap_or(32)
        .max(1) as usize;
    let default_selectors = LoginSelectors::default();
    let browser = BrowserOptions {
        executable: args
            .browser
            .clone()
            .or(file.browser.clone())
            .unwrap_or_else(|| DEFAULT_BROWSER.into()),
        headed: args.headed || file.headed.unwrap_or(false),
        concurrency,
        selectors: LoginSelectors {
            user: args
                .login_user_selector
                .clone()
                .or(file.login_user_selector.clone())
                .unwrap_or_else(|| format!("input[name={}]", form.user)),
            password: args
                .login_password_selector
                .clone()
                .or(file.login_password_selector.clone())
                .unwrap_or_else(|| format!("input[name={}]", form.password)),
            submit: args
                .login_submit_selector
                .clone()
                .or(file.login_submit_selector.clone())
                .unwrap_or(default_selectors.submit),
            consent: consent_selector,
        },
        timeout: args
            .login_timeout
            .or(file_duration(&file.login_timeout, "login_timeout")?)
            .unwrap_or(DEFAULT_LOGIN_TIMEOUT),
    };
    let tokens_file = args.tokens_file.clone().or(file.tokens_file.clone());
    match method {
        LoginMethod::TokensFile if tokens_file.is_none() => {
            bail!(
                "--login tokens-file needs --tokens-file FILE (JSON: {{\"USER\": {{\"access_token\": …}}}})"
            )
        }
        LoginMethod::Browser if !browser.executable.is_file() => bail!(
            "--login browser: no browser at {}: install Debian's chromium (apt-get install chromium) or pass --browser PATH",
            browser.executable.display()
        ),
        _ => {}
    }
    let client_id = args.client_id.clone().or(file.client_id.clone());
    let client_metadata_url = args
        .client_metadata_url
        .clone()
        .or(file.client_metadata_url.clone());
    if let Some(u) = &client_metadata_url {
        if client_id.is_some() {
            bail!(
                "--client-metadata-url and --client-id both name the OAuth client: pass one (the metadata URL is the client id)"
            );
        }
        crate::login::check_client_metadata_url(u).map_err(anyhow::Error::msg)?;
    }
    Ok(LoginConfig {
        method,
        client_id,
        client_metadata_url,
        client_secret: env.var(CLIENT_SECRET_ENV).map(Secret::new),
        scope: args.scope.clone().or(file.scope.clone()),
        concurrency,
        form,
        browser,
        tokens_file,
        callback_listen: args
            .callback_listen
            .or(file.callback_listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        token_cache: if args.token_cache || file.token_cache == Some(true) {
            let key = env
                .var(TOKEN_CACHE_KEY_ENV)
                .filter(|k| !k.trim().is_empty())
                .ok_or(CacheKeyError::NoKey)?;
            Some(CacheKey::parse(key.trim())?)
        } else {
            None
        },
    })
}
