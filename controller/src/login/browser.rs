//! `--login browser`: logs users in through the IdP's own login page in
//! headless Chromium (driven over CDP by chromiumoxide), one isolated browser
//! context per login in one shared browser, at most `concurrency` at once.
//!
//! The page is filled as a person would: the user and password fields are
//! typed into, the submit button is clicked, a consent page is accepted if the
//! IdP shows one. The authorization code arrives on the local callback
//! listener (`login::callback`), never through the browser's own state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chromiumoxide::Page;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use common::Secret;
use futures::StreamExt;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

use super::callback::CallbackParams;
use crate::settings::login::{BrowserOptions, LoginSelectors};

/// How often a page is polled for the next element to act on.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Finds and clicks a consent button by its label when no selector is given.
const CONSENT_BY_LABEL_JS: &str = r#"(() => {
  const re = /^\s*(allow|authorize|authorise|grant access|grant|accept|approve|continue)\b/i;
  for (const el of document.querySelectorAll('button, input[type=submit]')) {
    const label = (el.innerText || el.value || '').trim();
    if (re.test(label)) { el.click(); return true; }
  }
  return false;
})()"#;

#[derive(Debug, thiserror::Error)]
pub enum BrowserLoginError {
    #[error(
        "could not start the browser {path}: {reason}; install Debian's chromium (apt-get install chromium) or point --browser at a Chromium binary"
    )]
    Launch { path: PathBuf, reason: String },
    #[error("browser login of {user} failed: {what}")]
    Page { user: String, what: String },
    #[error(
        "browser login of {user} did not reach the redirect within {timeout:?} (last page: {url}); check the credentials and the login selectors"
    )]
    Timeout {
        user: String,
        timeout: Duration,
        url: String,
    },
    #[error("the authorization server refused the login of {user}: {error}")]
    Refused { user: String, error: String },
}

/// One browser process shared by every login of a run.
pub struct BrowserLogin {
    browser: Browser,
    handler: JoinHandle<()>,
    permits: Semaphore,
    options: BrowserOptions,
    // Deleted when the login pool is dropped; one profile per browser.
    _profile: tempfile::TempDir,
}

impl BrowserLogin {
    pub async fn launch(options: BrowserOptions) -> Result<Self, BrowserLoginError> {
        let launch_err = |reason: String| BrowserLoginError::Launch {
            path: options.executable.clone(),
            reason,
        };
        if !options.executable.exists() {
            return Err(launch_err("no such file".into()));
        }
        let profile = tempfile::Builder::new()
            .prefix("mcp-swarm-browser-")
            .tempdir()
            .map_err(|e| launch_err(format!("cannot create a profile directory: {e}")))?;
        let config = browser_config(&options, profile.path()).map_err(launch_err)?;
        let (browser, mut events) = Browser::launch(config)
            .await
            .map_err(|e| launch_err(e.to_string()))?;
        // The handler must be polled for the browser to make progress.
        let handler = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                if let Err(e) = event {
                    tracing::debug!(error = %e, "browser connection event");
                }
            }
        });
        Ok(Self {
            browser,
            handler,
            permits: Semaphore::new(options.concurrency.max(1)),
            options,
            _profile: profile,
        })
    }

    /// Opens `authorize_url` in a fresh browser context, logs in as `user`,
    /// accepts consent if asked, and waits for the redirect on `redirect`.
    pub async fn login(
        &self,
        authorize_url: &str,
        user: &str,
        password: &Secret,
        redirect: oneshot::Receiver<CallbackParams>,
    ) -> Result<CallbackParams, BrowserLoginError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| page_err(user, "the browser is shutting down"))?;
        let context = self
            .browser
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .map_err(|e| page_err(user, format!("cannot create a browser context: {e}")))?;
        let outcome = self
            .login_in_context(&context, authorize_url, user, password, redirect)
            .await;
        if let Err(e) = self.browser.dispose_browser_context(context).await {
            tracing::debug!(error = %e, "disposing a browser context");
        }
        outcome
    }

    async fn login_in_context(
        &self,
        context: &chromiumoxide::cdp::browser_protocol::browser::BrowserContextId,
        authorize_url: &str,
        user: &str,
        password: &Secret,
        mut redirect: oneshot::Receiver<CallbackParams>,
    ) -> Result<CallbackParams, BrowserLoginError> {
        let target = CreateTargetParams::builder()
            .url(authorize_url)
            .browser_context_id(context.clone())
            .build()
            .map_err(|e| page_err(user, e))?;
        let page = self
            .browser
            .new_page(target)
            .await
            .map_err(|e| page_err(user, format!("cannot open the authorization page: {e}")))?;
        let timeout = self.options.timeout;
        let drive = drive_login(&page, &self.options.selectors, user, password);
        let result = tokio::time::timeout(timeout, async {
            tokio::select! {
                params = &mut redirect => params.map_err(|_| page_err(user, "the callback listener stopped")),
                driven = drive => match driven {
                    // The form is done; the redirect is on its way.
                    Ok(()) => (&mut redirect).await.map_err(|_| page_err(user, "the callback listener stopped")),
                    Err(e) => Err(e),
                },
            }
        })
        .await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(BrowserLoginError::Timeout {
                user: user.to_owned(),
                timeout,
                url: page
                    .url()
                    .await
                    .ok()
                    .flatten()
                    .map(|u| strip_query(&u))
                    .unwrap_or_default(),
            }),
        };
        if let Err(e) = page.close().await {
            tracing::debug!(error = %e, "closing a login page");
        }
        let params = result?;
        if let Some(error) = &params.error {
            let description = params.error_description.as_deref().unwrap_or("");
            return Err(BrowserLoginError::Refused {
                user: user.to_owned(),
                error: format!("{error} {description}").trim().to_owned(),
            });
        }
        Ok(params)
    }

    /// Closes the browser and waits for it to exit.
    pub async fn close(mut self) {
        if let Err(e) = self.browser.close().await {
            tracing::debug!(error = %e, "closing the browser");
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.browser.wait()).await;
        self.handler.abort();
    }
}

fn browser_config(options: &BrowserOptions, profile: &Path) -> Result<BrowserConfig, String> {
    let mut builder = BrowserConfig::builder()
        .chrome_executable(&options.executable)
        .user_data_dir(profile)
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(30))
        // Without these, Chromium reaches for Google's services at start and
        // on a closed network its connections are refused many at a time.
        .args([
            "disable-gpu",
            "disable-quic",
            "no-first-run",
            "disable-background-networking",
            "disable-component-update",
            "disable-sync",
            "disable-dev-shm-usage",
        ]);
    builder = if options.headed {
        builder.with_head()
    } else {
        builder.new_headless_mode()
    };
    if running_as_root() {
        // Chromium refuses to run as root with its sandbox on.
        builder = builder.no_sandbox();
    }
    builder.build()
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

/// Fills and submits the login form, then accepts consent if it is shown.
/// Returns once there is nothing left to click; the caller waits for the
/// redirect.
async fn drive_login(
    page: &Page,
    selectors: &LoginSelectors,
    user: &str,
    password: &Secret,
) -> Result<(), BrowserLoginError> {
    let user_field = wait_for(page, &selectors.user).await;
    user_field
        .click()
        .await
        .map_err(|e| page_err(user, format!("cannot focus {}: {e}", selectors.user)))?;
    user_field
        .type_str(user)
        .await
        .map_err(|e| page_err(user, format!("cannot type into {}: {e}", selectors.user)))?;
    let password_field = wait_for(page, &selectors.password).await;
    password_field
        .click()
        .await
        .map_err(|e| page_err(user, format!("cannot focus {}: {e}", selectors.password)))?;
    password_field
        .type_str(password.expose())
        .await
        .map_err(|e| {
            page_err(
                user,
                format!("cannot type into {}: {e}", selectors.password),
            )
        })?;
    let login_url = page.url().await.ok().flatten();
    wait_for(page, &selectors.submit)
        .await
        .click()
        .await
        .map_err(|e| page_err(user, format!("cannot click {}: {e}", selectors.submit)))?;

    // After the submit: a consent page, the login form again (wrong
    // password), or the redirect (which the caller's select! catches).
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        let url = page.url().await.ok().flatten();
        if url == login_url && page.find_element(&selectors.password).await.is_ok() {
            // Still on the form: a slow submit, or a refused password shown
            // again with an error. Wait; the timeout names the page.
            continue;
        }
        if page.find_element(&selectors.password).await.is_ok() {
            return Err(page_err(
                user,
                "the login form came back after submitting: wrong password, or the user does not exist on the IdP",
            ));
        }
        let clicked = match &selectors.consent {
            Some(sel) => match page.find_element(sel).await {
                Ok(button) => button.click().await.is_ok(),
                Err(_) => false,
            },
            None => page
                .evaluate(CONSENT_BY_LABEL_JS)
                .await
                .ok()
                .and_then(|r| r.into_value::<bool>().ok())
                .unwrap_or(false),
        };
        if clicked {
            return Ok(());
        }
    }
}

/// Polls until `selector` matches; the caller's timeout bounds the wait.
async fn wait_for(page: &Page, selector: &str) -> chromiumoxide::Element {
    loop {
        if let Ok(element) = page.find_element(selector).await {
            return element;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A page URL without its query string, which may carry a code or state.
fn strip_query(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or("").to_owned()
}

fn page_err(user: &str, what: impl ToString) -> BrowserLoginError {
    BrowserLoginError::Page {
        user: user.to_owned(),
        what: what.to_string(),
    }
}
