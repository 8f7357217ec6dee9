//! The login methods without a browser, against the in-process mock target:
//! client credentials (DCR of a confidential client) and a tokens file
//! (pre-acquired tokens, refreshed with the client they were issued to).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::Secret;
use common::ids::UserName;
use controller::cli::LoginMethod;
use controller::config::{FormFields, LoginConfig};
use controller::login::browser::{BrowserOptions, LoginSelectors};
use controller::login::{Authenticator, LoginError};
use controller::provision::TestUser;
use tokio_util::sync::CancellationToken;

struct Target {
    mock: mock::MockTarget,
    _shutdown: tokio_util::sync::DropGuard,
}

async fn start_target() -> Target {
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = mock::MockConfig {
        users: vec![("alice".into(), "alice-pw".into())],
        ..Default::default()
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
        scope: None,
        concurrency: 4,
        form: FormFields {
            user: "user".into(),
            password: "password".into(),
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
    let auth = Authenticator::setup(&login_config(LoginMethod::ClientCredentials), &mcp_url)
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
    let issuer = Authenticator::setup(&login_config(LoginMethod::Password), &mcp_url)
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
    let auth = Authenticator::setup(&config, &mcp_url).await.unwrap();
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
    let auth = Authenticator::setup(&config, &mcp_url).await.unwrap();
    let err = auth.refresh(&alice(), Some(&tokens)).await.unwrap_err();
    assert!(err.to_string().contains("--client-id"), "{err}");
    assert!(
        !err.to_string().contains(tokens.access.expose()),
        "token leaked: {err}"
    );
}
