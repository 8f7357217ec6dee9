//! How a process logs: `--verbose` and `--log-format`.

use clap::ValueEnum;
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Logging settings after merging the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogConfig {
    pub verbose: bool,
    pub format: LogFormat,
}
