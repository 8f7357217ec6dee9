//! The run's report: built from what agents measured (`build`), printed in
//! the framework's console layout (`console`), written as JSON, as HTML
//! (`html`, charts by `chart`) and as JUnit (`junit`), and compared with
//! another run's (`compare`).

pub mod build;
pub mod chart;
pub mod compare;
pub mod console;
pub mod html;
pub mod input;
pub mod junit;
pub mod regions;
pub mod tenants;
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

/// Writes the report as pretty JSON, atomically: a temporary file beside the
/// target, synced, then renamed over it, so a reader never sees half a report.
pub fn write_json(report: &Report, path: &Path) -> anyhow::Result<()> {
    let text = report.to_json_pretty().context("serializing the report")?;
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
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
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
