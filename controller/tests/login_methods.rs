//! The login methods without a browser, against the in-process mock target:
//! client credentials (DCR of a confidential client), a tokens file
//! (pre-acquired tokens, refreshed with the client they were issued to), and
//! the mock acting as IdPs we did not write do: only `client_secret_post`, a
//! single "Continue" consent button, Client ID Metadata Documents; and direct
//! login through Nextcloud's script-rendered login and consent pages as well as
//! through plain HTML forms.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::Secret;
use common::ids::UserName;
use controller::login::{Authenticator, LoginError};
use controller::provision::TestUser;
use controller::settings::login::{
    BrowserOptions, FormFields, LoginConfig, LoginMethod, LoginSelectors,
};
use tokio_util::sync::CancellationToken;

struct Target {
    mock: mock::MockTarget,
    _shutdown: tokio_util::sync::DropGuard,
}

async fn start_target() -> Target {
    start_target_with(mock::MockConfig::default()).await
}

async fn start_target_with(config: mock::MockConfig) -> Target {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = mock::MockConfig {
        users: vec![("alice".into(), "alice-pw".into())],
        ..config
    };
    let mock = mock::serve(listener, config, shutdown.clone())
        .await
        .unwrap();
    Target {
        mock,
        _shutdown: shutdown.drop_guard(),
    }
}

fn login_config(method: LoginMethod) -> LoginConfig {
    LoginConfig {
        method,
        client_id: None,
        client_secret: None,
        client_metadata_url: None,
        scope: None,
        concurrency: 4,
        form: FormFields {
            user: "user".into(),
            password: "password".into(),
            consent: None,
        },
        browser: BrowserOptions {
            executable: PathBuf::from("/usr/bin/chromium"),
            headed: false,
            concurrency: 1,
            selectors: LoginSelectors::default(),
            timeout: Duration::from_secs(30),
        },
        tokens_file: None,
        callback_listen: ([127, 0, 0, 1], 0).into(),
        token_cache: None,
    }
}

fn alice() -> TestUser {
    let mut u = TestUser::generate("unused", 1);
    u.name = UserName::new("alice");
    u.password = Secret::new("alice-pw");
    u
}

/// Whether the MCP endpoint accepts `token` (an `initialize` gets 200).
async fn mcp_accepts(mcp_url: &str, token: &Secret) -> bool {
    let resp = reqwest::Client::new()
        .post(mcp_url)
        .bearer_auth(token.expose())
        .header("Accept", "application/json, text/event-stream")
        .json(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "test", "version": "0"}}
        }))
        .send()
        .await
        .unwrap();
    resp.status().is_success()
}

#[tokio::test]
async fn client_credentials_registers_a_confidential_client() {
    let t = start_target().await;
    let mcp_url: url::Url = t.mock.mcp_url.parse().unwrap();
    let auth = Authenticator::setup(
        &login_config(LoginMethod::ClientCredentials),
        &mcp_url,
        None,
    )
    .await
    .unwrap();
    let tokens = auth.login(&alice()).await.unwrap();
    assert!(tokens.expires_at.is_some() && tokens.lifetime.is_some());
    assert!(mcp_accepts(&t.mock.mcp_url, &tokens.access).await);
    // No refresh token in this grant: a refresh is a new grant.
    let again = auth.refresh(&alice(), Some(&tokens)).await.unwrap();
    assert_ne!(again.access.expose(), tokens.access.expose());
}

#[tokio::test]
async fn tokens_file_tokens_are_used_and_refreshed() {
    let t = start_target().await;
    let mcp_url: url::Url = t.mock.mcp_url.parse().unwrap();
    // Tokens acquired elsewhere: here, a password grant of a DCR client.
    let issuer = Authenticator::setup(&login_config(LoginMethod::Password), &mcp_url, None)
        .await
        .unwrap();
    let issued = issuer.login(&alice()).await.unwrap();
    let expires_at = issued
        .expires_at
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    std::fs::write(
        &file,
        serde_json::json!({"alice": {
            "access_token": issued.access.expose(),
            "refresh_token": issued.refresh.as_ref().unwrap().expose(),
            "expires_at": expires_at,
        }})
        .to_string(),
    )
    .unwrap();

    let mut config = login_config(LoginMethod::TokensFile);
    config.tokens_file = Some(file.clone());
    config.client_id = Some(issuer.client_id().to_owned());
    let auth = Authenticator::setup(&config, &mcp_url, None).await.unwrap();
    let tokens = auth.login(&alice()).await.unwrap();
    assert_eq!(tokens.access.expose(), issued.access.expose());
    let refreshed = auth.refresh(&alice(), Some(&tokens)).await.unwrap();
    assert_ne!(refreshed.access.expose(), tokens.access.expose());
    assert!(mcp_accepts(&t.mock.mcp_url, &refreshed.access).await);

    // A user the file does not list is named.
    let mut bob = alice();
    bob.name = UserName::new("bob");
    let err = auth.login(&bob).await.unwrap_err();
    assert!(matches!(err, LoginError::TokensFile { .. }), "{err}");
    assert!(err.to_string().contains("bob"), "{err}");

    // Without --client-id nothing can refresh, and the error says what to pass.
    config.client_id = None;
    let auth = Authenticator::setup(&config, &mcp_url, None).await.unwrap();
    let err = auth.refresh(&alice(), Some(&tokens)).await.unwrap_err();
    assert!(err.to_string().contains("--client-id"), "{err}");
    assert!(
        !err.to_string().contains(tokens.access.expose()),
        "token leaked: {err}"
    );
}

/// An AS like many hosted IdPs: secrets only in the form body, and a consent
/// page with one unnamed "Continue" button.
fn post_only_continue() -> mock::MockConfig {
    mock::MockConfig {
        login_pages: mock::LoginPages::Forms,
        token_auth_methods: vec![mock::TokenAuthMethod::ClientSecretPost],
        consent_label: Some("Continue".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn direct_and_client_credentials_against_a_post_only_as_with_a_continue_button() {
    let t = start_target_with(post_only_continue()).await;
    let mcp_url: url::Url = t.mock.mcp_url.parse().unwrap();
    for method in [LoginMethod::Direct, LoginMethod::ClientCredentials] {
        let auth = Authenticator::setup(&login_config(method), &mcp_url, None)
            .await
            .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        let tokens = auth
            .login(&alice())
            .await
            .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        assert!(
            mcp_accepts(&t.mock.mcp_url, &tokens.access).await,
            "{method:?}"
        );
        let refreshed = auth.refresh(&alice(), Some(&tokens)).await.unwrap();
        assert!(
            mcp_accepts(&t.mock.mcp_url, &refreshed.access).await,
            "{method:?}"
        );
    }
}

#[tokio::test]
async fn a_given_client_id_and_secret_use_client_secret_post_where_it_is_all_the_as_takes() {
    let t = start_target_with(post_only_continue()).await;
    let mcp_url: url::Url = t.mock.mcp_url.parse().unwrap();
    let registered: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/register", t.mock.issuer))
        .json(&serde_json::json!({
            "redirect_uris": [controller::login::REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_method": "client_secret_post",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut config = login_config(LoginMethod::Direct);
    config.client_id = Some(registered["client_id"].as_str().unwrap().to_owned());
    config.client_secret = Some(Secret::new(registered["client_secret"].as_str().unwrap()));
    for method in [LoginMethod::Direct, LoginMethod::ClientCredentials] {
        config.method = method;
        let auth = Authenticator::setup(&config, &mcp_url, None).await.unwrap();
        let tokens = auth
            .login(&alice())
            .await
            .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        assert!(
            mcp_accepts(&t.mock.mcp_url, &tokens.access).await,
            "{method:?}"
        );
    }

    // The same secret by HTTP Basic is refused, so the choice above mattered.
    let resp = reqwest::Client::new()
        .post(format!("{}/token", t.mock.issuer))
        .basic_auth(
            registered["client_id"].as_str().unwrap(),
            registered["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn direct_login_errors_name_the_page_and_what_was_looked_for() {
    // A consent page whose only button reads like a refusal.
    let t = start_target_with(mock::MockConfig {
        login_pages: mock::LoginPages::Forms,
        consent_label: Some("No thanks".into()),
        ..Default::default()
    })
    .await;
    let mcp_url: url::Url = t.mock.mcp_url.parse().unwrap();
    let auth = Authenticator::setup(&login_config(LoginMethod::Direct), &mcp_url, None)
        .await
        .unwrap();
    let err = auth.login(&alice()).await.unwrap_err().to_string();
    for needle in [
        "/login",
        "Authorize access",
        "\"No thanks\"",
        "--login-consent-selector",
        "after the credentials were posted",
    ] {
        assert!(err.contains(needle), "{needle:?} not in: {err}");
    }
    assert!(!err.contains("alice-pw"), "password leaked: {err}");

    // The selector is honoured: it presses that button, whatever it says.
    let mut config = login_config(LoginMethod::Direct);
    config.form.consent = Some(
        controller::settings::selector::ConsentSelector::parse("form#consent button").unwrap(),
    );
    let auth = Authenticator::setup(&config, &mcp_url, None).await.unwrap();
    let tokens = auth.login(&alice()).await.unwrap();
    assert!(mcp_accepts(&t.mock.mcp_url, &tokens.access).await);

    // A selector matching nothing is named in the error.
    config.form.consent =
        Some(controller::settings::selector::ConsentSelector::parse("#approve-button").unwrap());
    let auth = Authenticator::setup(&config, &mcp_url, None).await.unwrap();
    let err = auth.login(&alice()).await.unwrap_err().to_string();
    assert!(err.contains("#approve-button"), "{err}");
}

fn nextcloud_pages() -> mock::MockConfig {
    mock::MockConfig {
        login_pages: mock::LoginPages::Nextcloud,
        ..Default::default()
    }
}

#[tokio::test]
async fn direct_login_speaks_nextclouds_login_and_consent_pages_which_hold_no_form() {
    let t = start_target_with(nextcloud_pages()).await;
    let mcp_url: url::Url = t.mock.mcp_url.parse().unwrap();
    let auth = Authenticator::setup(&login_config(LoginMethod::Direct), &mcp_url, None)
        .await
        .unwrap();
    // The pages really are script-rendered: no form for the form path to post.
    let page = reqwest::get(format!("{}/index.php/login", t.mock.issuer))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-requesttoken") && !page.contains("<form"));

    let tokens = auth.login(&alice()).await.unwrap();
    assert!(mcp_accepts(&t.mock.mcp_url, &tokens.access).await);
    let refreshed = auth.refresh(&alice(), Some(&tokens)).await.unwrap();
    assert!(mcp_accepts(&t.mock.mcp_url, &refreshed.access).await);
    // A second login has a fresh session: login page again, consent remembered.
    let again = auth.login(&alice()).await.unwrap();
    assert_ne!(again.access.expose(), tokens.access.expose());
    assert!(mcp_accepts(&t.mock.mcp_url, &again.access).await);
}

#[tokio::test]
async fn a_wrong_password_on_nextclouds_login_page_names_the_page_and_the_user() {
    let t = start_target_with(nextcloud_pages()).await;
    let mcp_url: url::Url = t.mock.mcp_url.parse().unwrap();
    let auth = Authenticator::setup(&login_config(LoginMethod::Direct), &mcp_url, None)
        .await
        .unwrap();
    let mut wrong = alice();
    wrong.password = Secret::new("not-alices-pw");
    let err = auth.login(&wrong).await.unwrap_err();
    let text = err.to_string();
    let expected = format!(
        "Nextcloud login at {}/index.php/login refused the password for user alice",
        t.mock.issuer
    );
    assert!(text.contains(&expected), "{expected:?} not in: {text}");
    assert!(text.contains("Wrong login or password."), "{text}");
    assert!(!text.contains("not-alices-pw"), "password leaked: {text}");
    assert!(
        !format!("{err:?}").contains("not-alices-pw"),
        "password leaked: {err:?}"
    );
}

#[tokio::test]
async fn direct_login_still_posts_the_html_forms_of_idps_that_serve_forms() {
    let t = start_target_with(mock::MockConfig {
        login_pages: mock::LoginPages::Forms,
        consent: true,
        ..Default::default()
    })
    .await;
    let mcp_url: url::Url = t.mock.mcp_url.parse().unwrap();
    let auth = Authenticator::setup(&login_config(LoginMethod::Direct), &mcp_url, None)
        .await
        .unwrap();
    let tokens = auth.login(&alice()).await.unwrap();
    assert!(mcp_accepts(&t.mock.mcp_url, &tokens.access).await);

    let mut wrong = alice();
    wrong.password = Secret::new("not-alices-pw");
    let err = auth.login(&wrong).await.unwrap_err().to_string();
    assert!(err.contains("showed its login form again"), "{err}");
    assert!(!err.contains("not-alices-pw"), "password leaked: {err}");
}

/// Serves one Client ID Metadata Document on 127.0.0.1:0; returns its URL.
async fn serve_client_metadata(
    shutdown: CancellationToken,
    redirect_uri: &str,
    tamper: impl FnOnce(&mut serde_json::Value),
) -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: url::Url = format!(
        "http://{}/mcp-swarm/client.json",
        listener.local_addr().unwrap()
    )
    .parse()
    .unwrap();
    let mut doc = serde_json::json!({
        "client_id": url.as_str(),
        "client_name": "mcp-swarm test",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    tamper(&mut doc);
    let app = axum::Router::new().route(
        "/mcp-swarm/client.json",
        axum::routing::get(move || async move { axum::Json(doc) }),
    );
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .unwrap();
    });
    url
}

#[tokio::test]
async fn client_metadata_document_as_client_id() {
    let t = start_target_with(mock::MockConfig {
        login_pages: mock::LoginPages::Forms,
        client_metadata_documents: true,
        consent_label: Some("Continue".into()),
        ..Default::default()
    })
    .await;
    let mcp_url: url::Url = t.mock.mcp_url.parse().unwrap();
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let doc_url =
        serve_client_metadata(shutdown.clone(), controller::login::REDIRECT_URI, |_| {}).await;
    let mut config = login_config(LoginMethod::Direct);
    config.client_metadata_url = Some(doc_url.clone());
    let auth = Authenticator::setup(&config, &mcp_url, None).await.unwrap();
    assert_eq!(auth.client_id(), doc_url.as_str());
    let tokens = auth.login(&alice()).await.unwrap();
    assert!(mcp_accepts(&t.mock.mcp_url, &tokens.access).await);
    let refreshed = auth.refresh(&alice(), Some(&tokens)).await.unwrap();
    assert!(mcp_accepts(&t.mock.mcp_url, &refreshed.access).await);

    // A document naming another client id is refused before any login, with the reason.
    let other = serve_client_metadata(shutdown.clone(), controller::login::REDIRECT_URI, |d| {
        d["client_id"] = "https://elsewhere.example/client.json".into()
    })
    .await;
    config.client_metadata_url = Some(other);
    let err = Authenticator::setup(&config, &mcp_url, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("client_id"), "{err}");

    // The mock checks the document too: one without our redirect URI gets no code.
    let wrong_redirect =
        serve_client_metadata(shutdown.clone(), "http://127.0.0.1:9/elsewhere", |_| {}).await;
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/authorize", t.mock.issuer))
        .query(&[
            ("response_type", "code"),
            ("client_id", wrong_redirect.as_str()),
            ("redirect_uri", controller::login::REDIRECT_URI),
            ("code_challenge", &"a".repeat(43)),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("redirect_uri"));
}
