//! Where the MCP server under test is (`--url` or the embedded mock) and
//! where its users come from (`--provider`); admin credentials from env only.

use std::path::PathBuf;

use clap::ValueEnum;
use common::Secret;
use serde::Deserialize;

pub const NEXTCLOUD_ADMIN_USER_ENV: &str = "NEXTCLOUD_ADMIN_USER";
pub const NEXTCLOUD_ADMIN_PASSWORD_ENV: &str = "NEXTCLOUD_ADMIN_PASSWORD";

/// Where the MCP server under test is.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetConfig {
    /// Start the mock target in-process on loopback.
    Embedded,
    External {
        mcp_url: url::Url,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// The in-process mock target's admin API (default without --url).
    Embedded,
    /// Nextcloud's OCS provisioning API at --nextcloud-url (default with --url).
    Nextcloud,
    /// Existing users from --users-file (CSV username,password).
    Static,
}

/// Where users come from; admin credentials only from env.
#[derive(Debug, Clone)]
pub enum ProviderConfig {
    Embedded,
    Nextcloud {
        base_url: url::Url,
        admin: AdminCredentials,
    },
    Static {
        users_file: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct AdminCredentials {
    pub user: String,
    pub password: Secret,
}
