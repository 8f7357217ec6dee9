//! The run's report: built from what agents measured (`build`), printed in
//! the framework's console layout (`console`), written as JSON, as HTML
//! (`html`, charts by `chart`) and as JUnit (`junit`), and compared with
//! another run's (`compare`); `users` picks the users worth a look and
//! writes every user of a big run to a CSV file beside the JSON.

pub mod build;
pub mod chart;
pub mod compare;
pub mod console;
pub mod html;
pub mod input;
pub mod junit;
pub mod regions;
pub mod tenants;
pub mod users;
pub mod verdict;

use std::path::Path;

use anyhow::Context as _;

pub use build::build_report;
pub use common::report::Report;
pub use console::render_console;
pub use html::render_html;
pub use input::{
    AgentLoss, AgentResult, AgentTotals, AuthInput, GeneratorStats, IntervalPoint,
    IntervalWorkflow, McpStats, RegionSeries, ReportInput, RunInfo, UserMove,
};

/// Why the run counts as failed when no workflow (baseline ones included)
/// succeeded: the most frequent error and its first message.
pub fn nothing_succeeded(report: &Report) -> Option<String> {
    let succeeded: u64 = report
        .workflows
        .values()
        .map(|w| w.successful_executions)
        .sum::<u64>()
        + report.baseline.successful_operations;
    if succeeded > 0 {
        return None;
    }
    let Some(top) = report.errors.first() else {
        return Some("no workflow succeeded, and no step failed: nothing ran".to_owned());
    };
    let sample = match top.messages.first() {
        Some(m) => format!(": {m}"),
        None => String::new(),
    };
    Some(format!(
        "no workflow succeeded; the most frequent error was {} at {}/{} ({} times){sample}",
        top.kind, top.workflow, top.step, top.count
    ))
}

/// Writes the report as JSON, atomically: pretty, except that each user
/// takes one line. A run with more than `users_inline` users writes every
/// user to a CSV file beside it (`users::csv_path`, written first, so the
/// report never points to a missing file) and lists only the users worth a
/// look, with `users_detail` saying where the rest are.
pub fn write_json(report: &Report, path: &Path, users_inline: usize) -> anyhow::Result<()> {
    let mut shell = report.clone();
    let mut users = std::mem::take(&mut shell.users);
    if let Some((listed, detail)) =
        users::split(&users, report.summary.duration, path, users_inline)?
    {
        users = listed;
        shell.users_detail = Some(detail);
    }
    let text = to_json_text(&shell, &users).context("serializing the report")?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// `shell` (whose `users` is empty) as pretty JSON with `users` spliced
/// in, one compact line per user: a 10,000-user report stays readable
/// line by line and a third smaller than fully pretty.
fn to_json_text(
    shell: &Report,
    users: &std::collections::BTreeMap<String, common::report::UserReport>,
) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(shell)?;
    // Top-level keys sit at an indent of two; nothing else can match.
    const EMPTY: &str = "\n  \"users\": {},\n";
    let Some(at) = text.find(EMPTY) else {
        return Ok(text);
    };
    if users.is_empty() {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len() + users.len() * 300);
    out.push_str(&text[..at]);
    out.push_str("\n  \"users\": {");
    for (i, (name, user)) in users.iter().enumerate() {
        out.push_str(if i == 0 { "\n    " } else { ",\n    " });
        out.push_str(&serde_json::to_string(name)?);
        out.push_str(": ");
        out.push_str(&serde_json::to_string(user)?);
    }
    out.push_str("\n  },\n");
    out.push_str(&text[at + EMPTY.len()..]);
    Ok(out)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced,
/// then renamed over it, so a reader never sees half a file.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("report path {} has no file name", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        use std::io::Write as _;
        let mut file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes the HTML report.
pub fn write_html(report: &Report, path: &Path) -> anyhow::Result<()> {
    write_html_with_trend(report, path, &[])
}

/// As `write_html`, with the trend of earlier runs of the same kind.
pub fn write_html_with_trend(
    report: &Report,
    path: &Path,
    trend: &[html::TrendPoint],
) -> anyhow::Result<()> {
    std::fs::write(path, html::render_html_with_trend(report, trend))
        .with_context(|| format!("writing the HTML report to {}", path.display()))
}

/// Writes the report's thresholds as JUnit XML.
pub fn write_junit(report: &Report, path: &Path) -> anyhow::Result<()> {
    let xml = junit::render(
        "mcp-swarm thresholds",
        &junit::timestamp(&report.run.started_at),
        report.run.duration_seconds,
        &junit::threshold_cases(report),
    );
    junit::write(path, &xml)
}

/// Reads a JSON report written by `write_json`.
pub fn read_json(path: &Path) -> anyhow::Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Report::from_json(&text).with_context(|| format!("reading report {}", path.display()))
}
