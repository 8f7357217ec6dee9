//! What the agents speak to the MCP server: `--mcp-version` and `--elicitation`,
//! as flags and file keys, and the protocol choices they stand for.

use clap::ValueEnum;
use common::protocol::{ElicitationAnswer, McpVersion, McpVersionChoice};
use serde::Deserialize;

/// `--elicitation`: the agents' answer to a server's `elicitation/create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ElicitationArg {
    /// `{"action": "decline"}`.
    #[default]
    Decline,
    /// `{"action": "cancel"}`.
    Cancel,
    /// `{"action": "accept", "content": {}}`.
    AcceptEmpty,
}

impl ElicitationArg {
    pub fn answer(self) -> ElicitationAnswer {
        match self {
            ElicitationArg::Decline => ElicitationAnswer::Decline,
            ElicitationArg::Cancel => ElicitationAnswer::Cancel,
            ElicitationArg::AcceptEmpty => ElicitationAnswer::AcceptEmpty,
        }
    }
}

/// `--mcp-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
pub enum McpVersionArg {
    /// The newest both sides speak: 2026-07-28 when the server's server/discover lists it,
    /// else initialize.
    #[default]
    #[value(name = "auto")]
    #[serde(rename = "auto")]
    Auto,
    #[value(name = "2025-06-18")]
    #[serde(rename = "2025-06-18")]
    V2025_06_18,
    #[value(name = "2025-11-25")]
    #[serde(rename = "2025-11-25")]
    V2025_11_25,
    /// No initialize, no session: version and client info in each request's _meta.
    #[value(name = "2026-07-28")]
    #[serde(rename = "2026-07-28")]
    V2026_07_28,
}

impl McpVersionArg {
    pub fn choice(self) -> McpVersionChoice {
        match self {
            McpVersionArg::Auto => McpVersionChoice::Auto,
            McpVersionArg::V2025_06_18 => McpVersionChoice::Fixed(McpVersion::V2025_06_18),
            McpVersionArg::V2025_11_25 => McpVersionChoice::Fixed(McpVersion::V2025_11_25),
            McpVersionArg::V2026_07_28 => McpVersionChoice::Fixed(McpVersion::V2026_07_28),
        }
    }
}
