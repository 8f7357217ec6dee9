//! Browser login against the mock target in real headless Chromium: the login
//! form is typed into and submitted, consent is accepted, and the code comes
//! back on the local callback listener; the code then buys a working token.
//! Both the mock's plain HTML forms and Nextcloud's pages, whose fields script
//! renders after the page loads.
//!
//! Needs Debian's `chromium` at /usr/bin/chromium (CI installs it).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use common::Secret;
use controller::login::browser::{BrowserLogin, BrowserLoginError};
use controller::login::callback::CallbackServer;
use controller::settings::login::{BrowserOptions, LoginSelectors};
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

const CHROMIUM: &str = "/usr/bin/chromium";
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

struct Target {
    mock: mock::MockTarget,
    http: reqwest::Client,
    client_id: String,
    callback: CallbackServer,
    shutdown: CancellationToken,
}

async fn start_target(consent: bool) -> Target {
    start_target_with(mock::LoginPages::Forms, consent).await
}

/// The mock with `pages` for its login and consent (Nextcloud's always ask for consent).
async fn start_target_with(pages: mock::LoginPages, consent: bool) -> Target {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = mock::MockConfig {
        users: vec![
            ("alice".into(), "alice-pw".into()),
            ("bob".into(), "bob-pw".into()),
        ],
        consent,
        login_pages: pages,
        ..Default::default()
    };
    let mock = mock::serve(listener, config, shutdown.clone())
        .await
        .unwrap();
    let callback = CallbackServer::start(([127, 0, 0, 1], 0).into(), shutdown.clone())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let registered: serde_json::Value = http
        .post(format!("{}/register", mock.issuer))
        .json(&serde_json::json!({
            "client_name": "mcp-swarm browser test",
            "redirect_uris": [callback.redirect_uri()],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registered["client_id"].as_str().unwrap().to_owned();
    Target {
        mock,
        http,
        client_id,
        callback,
        shutdown,
    }
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

fn authorize_url(t: &Target, state: &str, pkce: &Pkce) -> String {
    let mut url = url::Url::parse(&format!("{}/authorize", t.mock.issuer)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &t.client_id)
        .append_pair("redirect_uri", &t.callback.redirect_uri())
        .append_pair("state", state)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &t.mock.mcp_url)
        .append_pair("scope", "openid profile offline_access notes.read");
    url.to_string()
}

fn options() -> BrowserOptions {
    BrowserOptions {
        executable: PathBuf::from(CHROMIUM),
        headed: false,
        concurrency: 2,
        selectors: LoginSelectors::default(),
        timeout: Duration::from_secs(30),
    }
}

async fn browser_login(
    t: &Target,
    browser: &BrowserLogin,
    user: &str,
    password: &str,
) -> Result<String, BrowserLoginError> {
    let state = uuid::Uuid::new_v4().to_string();
    let pkce = pkce();
    let redirect = t.callback.expect(&state);
    let params = browser
        .login(
            &authorize_url(t, &state, &pkce),
            user,
            &Secret::new(password),
            redirect,
        )
        .await?;
    assert_eq!(params.state.as_deref(), Some(state.as_str()));
    assert_eq!(
        params.iss.as_deref(),
        Some(t.mock.issuer.as_str()),
        "RFC 9207 iss"
    );
    let code = params.code.expect("a code on success");
    let token: serde_json::Value = t
        .http
        .post(format!("{}/token", t.mock.issuer))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("redirect_uri", &t.callback.redirect_uri()),
            ("client_id", &t.client_id),
            ("code_verifier", &pkce.verifier),
            ("resource", &t.mock.mcp_url),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Ok(token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("token response without access_token: {token}"))
        .to_owned())
}

async fn userinfo_name(t: &Target, token: &str) -> String {
    let info: serde_json::Value = t
        .http
        .get(format!("{}/userinfo", t.mock.issuer))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    info["preferred_username"]
        .as_str()
        .or(info["sub"].as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_two_users_in_through_the_form_with_consent() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let t = start_target(true).await;
        let browser = BrowserLogin::launch(options()).await.unwrap();
        // Two logins at once, each in its own browser context.
        let (alice, bob) = tokio::join!(
            browser_login(&t, &browser, "alice", "alice-pw"),
            browser_login(&t, &browser, "bob", "bob-pw"),
        );
        let (alice, bob) = (alice.unwrap(), bob.unwrap());
        assert_eq!(userinfo_name(&t, &alice).await, "alice");
        assert_eq!(userinfo_name(&t, &bob).await, "bob");
        browser.close().await;
        t.shutdown.cancel();
    })
    .await
    .expect("browser login test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_clear_error() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let t = start_target(false).await;
        let browser = BrowserLogin::launch(BrowserOptions {
            timeout: Duration::from_secs(10),
            ..options()
        })
        .await
        .unwrap();
        let err = browser_login(&t, &browser, "alice", "not-her-password")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("alice"), "{text}");
        assert!(
            !text.contains("not-her-password"),
            "password leaked: {text}"
        );
        browser.close().await;
        t.shutdown.cancel();
    })
    .await
    .expect("browser login test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_two_users_in_through_nextclouds_script_rendered_login_and_consent() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let t = start_target_with(mock::LoginPages::Nextcloud, false).await;
        let browser = BrowserLogin::launch(options()).await.unwrap();
        let (alice, bob) = tokio::join!(
            browser_login(&t, &browser, "alice", "alice-pw"),
            browser_login(&t, &browser, "bob", "bob-pw"),
        );
        let (alice, bob) = (alice.unwrap(), bob.unwrap());
        assert_eq!(userinfo_name(&t, &alice).await, "alice");
        assert_eq!(userinfo_name(&t, &bob).await, "bob");
        browser.close().await;
        t.shutdown.cancel();
    })
    .await
    .expect("browser login test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_on_nextclouds_login_page_is_a_clear_error() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let t = start_target_with(mock::LoginPages::Nextcloud, false).await;
        let browser = BrowserLogin::launch(BrowserOptions {
            timeout: Duration::from_secs(10),
            ..options()
        })
        .await
        .unwrap();
        let err = browser_login(&t, &browser, "alice", "not-her-password")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("alice"), "{text}");
        assert!(text.contains("login form came back"), "{text}");
        assert!(
            !text.contains("not-her-password"),
            "password leaked: {text}"
        );
        browser.close().await;
        t.shutdown.cancel();
    })
    .await
    .expect("browser login test timed out");
}

#[tokio::test]
async fn a_missing_browser_names_the_fix() {
    let err = match BrowserLogin::launch(BrowserOptions {
        executable: PathBuf::from("/nonexistent/chromium"),
        ..options()
    })
    .await
    {
        Ok(_) => panic!("launched a browser that does not exist"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("/nonexistent/chromium") && err.contains("--browser"),
        "{err}"
    );
}
