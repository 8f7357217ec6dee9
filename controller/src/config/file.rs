//! The `--config` file: TOML whose keys are the long flag names with `_` for
//! `-`, durations as `"30s"` or a number of seconds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::settings::agents::OnAgentLoss;
use crate::settings::log::LogFormat;
use crate::settings::login::LoginMethod;
use crate::settings::mcp::{ElicitationArg, McpVersionArg};
use crate::settings::provider::ProviderKind;

/// Keys of a `--config` TOML file: the long flag names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) users: Option<u32>,
    pub(super) duration: Option<DurationValue>,
    pub(super) warmup: Option<DurationValue>,
    pub(super) url: Option<url::Url>,
    pub(super) output: Option<PathBuf>,
    pub(super) html: Option<PathBuf>,
    pub(super) report_users_inline: Option<usize>,
    pub(super) junit: Option<PathBuf>,
    pub(super) workload: Option<String>,
    pub(super) user_prefix: Option<String>,
    pub(super) cleanup: Option<bool>,
    pub(super) agents: Option<u32>,
    pub(super) no_spawn: Option<bool>,
    pub(super) listen: Option<SocketAddr>,
    pub(super) http: Option<SocketAddr>,
    pub(super) http_linger: Option<DurationValue>,
    pub(super) agent_bin: Option<PathBuf>,
    pub(super) agent_regions: Option<String>,
    pub(super) agent_timeout: Option<DurationValue>,
    pub(super) scenario: Option<PathBuf>,
    pub(super) think_time: Option<DurationValue>,
    pub(super) rate: Option<f64>,
    pub(super) max_in_flight: Option<u64>,
    pub(super) stages: Option<String>,
    pub(super) tenants: Option<u32>,
    #[serde(default, alias = "threshold")]
    pub(super) thresholds: Vec<String>,
    pub(super) login: Option<LoginMethod>,
    pub(super) provider: Option<ProviderKind>,
    pub(super) nextcloud_url: Option<url::Url>,
    pub(super) users_file: Option<PathBuf>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) client_id: Option<String>,
    pub(super) client_metadata_url: Option<url::Url>,
    pub(super) scope: Option<String>,
    pub(super) login_concurrency: Option<u32>,
    pub(super) login_user_field: Option<String>,
    pub(super) login_password_field: Option<String>,
    pub(super) browser: Option<PathBuf>,
    pub(super) headed: Option<bool>,
    pub(super) login_user_selector: Option<String>,
    pub(super) login_password_selector: Option<String>,
    pub(super) login_submit_selector: Option<String>,
    pub(super) login_consent_selector: Option<String>,
    pub(super) login_timeout: Option<DurationValue>,
    pub(super) tokens_file: Option<PathBuf>,
    pub(super) token_cache: Option<bool>,
    pub(super) callback_listen: Option<SocketAddr>,
    pub(super) request_timeout: Option<DurationValue>,
    pub(super) mcp_version: Option<McpVersionArg>,
    pub(super) elicitation: Option<ElicitationArg>,
    pub(super) on_agent_loss: Option<OnAgentLoss>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) tls_client_ca: Option<PathBuf>,
    pub(super) verbose: Option<bool>,
    pub(super) log_format: Option<LogFormat>,
}

/// A duration in TOML: `"30s"` or a number of seconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum DurationValue {
    Seconds(f64),
    Text(String),
}

impl DurationValue {
    pub(super) fn resolve(&self, key: &str, file: &Path) -> anyhow::Result<Duration> {
        match self {
            DurationValue::Seconds(s) => Duration::try_from_secs_f64(*s).with_context(|| {
                format!("{key} in {}: not a valid number of seconds", file.display())
            }),
            DurationValue::Text(t) => common::duration::parse_duration(t)
                .with_context(|| format!("{key} in {}", file.display())),
        }
    }
}

pub(super) fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("--config {}", path.display()))
}
