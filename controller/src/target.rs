//! The target under test: an external MCP endpoint (`--url`) or the mock
//! target started in-process on loopback, with its admin API for the
//! `embedded` provider.

use std::time::Duration;

use anyhow::Context;
use common::Secret;
use tokio_util::sync::CancellationToken;

use crate::provision::random_secret;
use crate::settings::provider::{AdminCredentials, TargetConfig};

/// How long the embedded mock may take to drain on shutdown.
const MOCK_STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Target {
    pub mcp_url: url::Url,
    pub embedded: Option<EmbeddedTarget>,
}

/// The in-process mock target and how to administer it.
pub struct EmbeddedTarget {
    pub admin_url: url::Url,
    pub admin: AdminCredentials,
    mock: mock::MockTarget,
    shutdown: CancellationToken,
}

impl Target {
    pub async fn start(
        config: &TargetConfig,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Target> {
        match config {
            TargetConfig::External { mcp_url } => Ok(Target {
                mcp_url: mcp_url.clone(),
                embedded: None,
            }),
            TargetConfig::Embedded => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .context("binding the embedded mock target on 127.0.0.1")?;
                let admin_password: Secret = random_secret(32);
                let token = shutdown.child_token();
                let mock_config = mock::MockConfig {
                    admin_user: "admin".into(),
                    admin_password: admin_password.expose().to_owned(),
                    ..mock::MockConfig::default()
                };
                let mock = mock::serve(listener, mock_config, token.clone())
                    .await
                    .context("starting the embedded mock target")?;
                tracing::info!(mcp_url = %mock.mcp_url, "embedded mock target running");
                let mcp_url =
                    url::Url::parse(&mock.mcp_url).context("the mock target's MCP URL")?;
                let admin_url =
                    url::Url::parse(&mock.admin_url).context("the mock target's admin URL")?;
                Ok(Target {
                    mcp_url,
                    embedded: Some(EmbeddedTarget {
                        admin_url,
                        admin: AdminCredentials {
                            user: "admin".into(),
                            password: admin_password,
                        },
                        mock,
                        shutdown: token,
                    }),
                })
            }
        }
    }

    /// Stops the embedded mock (bounded); nothing to do for an external target.
    pub async fn stop(self) {
        if let Some(e) = self.embedded {
            e.shutdown.cancel();
            if tokio::time::timeout(MOCK_STOP_TIMEOUT, e.mock.wait())
                .await
                .is_err()
            {
                tracing::warn!("embedded mock target did not stop in time");
            }
        }
    }
}
