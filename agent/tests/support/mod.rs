//! Test support: a real mock target on loopback and tokens from its password grant.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub struct Target {
    pub mock: mock::MockTarget,
    pub client_id: String,
    pub shutdown: CancellationToken,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub const PASSWORD: &str = "pw-for-tests";

/// Starts the mock target with `users` (all with `PASSWORD`) and registers a public client.
pub async fn start_target(users: &[&str], config: mock::MockConfig) -> Target {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let config = mock::MockConfig {
        users: users
            .iter()
            .map(|u| ((*u).to_owned(), PASSWORD.to_owned()))
            .collect(),
        ..config
    };
    let mock = mock::serve(listener, config, shutdown.clone())
        .await
        .unwrap();
    let registered: Value = reqwest::Client::new()
        .post(format!("{}/register", mock.issuer))
        .json(&serde_json::json!({
            "client_name": "agent-tests",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["password", "refresh_token", "authorization_code"],
            "token_endpoint_auth_method": "none",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registered["client_id"]
        .as_str()
        .expect("client_id")
        .to_owned();
    Target {
        mock,
        client_id,
        shutdown,
    }
}

impl Target {
    /// An access token for `user` by the password grant.
    pub async fn token(&self, user: &str) -> String {
        let response: Value = reqwest::Client::new()
            .post(format!("{}/token", self.mock.issuer))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", PASSWORD),
                ("client_id", self.client_id.as_str()),
                ("resource", self.mock.mcp_url.as_str()),
            ])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {response}"))
            .to_owned()
    }
}
