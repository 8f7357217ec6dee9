//! The HTML report as a person sees it: headless Chromium (Debian's, at
//! /usr/bin/chromium; CI installs it) renders the file to a screenshot that
//! must not be blank, and its DOM holds one chart per workflow with points.

mod report_support;

use std::path::Path;
use std::process::Command;

use controller::report::{build_report, render_html};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(args: &[&str], page: &Path) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| panic!("running {CHROMIUM}: {e} (install Debian's chromium)"))
}

/// Share of pixels that are not (nearly) white.
fn ink(png_path: &Path) -> (f64, u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let total = pixels.len() / channels;
    let inked = pixels
        .chunks(channels)
        .filter(|p| p.iter().take(3).any(|&c| c < 200))
        .count();
    (inked as f64 / total as f64, info.width, info.height)
}

#[test]
fn chromium_renders_a_chart_per_workflow() {
    let report = build_report(&report_support::realistic_input());
    let html = render_html(&report);
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains("<link"), "nothing fetched");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();

    let shot = dir.path().join("report.png");
    let out = chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400",
        ],
        &page,
    );
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (share, width, height) = ink(&shot);
    assert_eq!((width, height), (1200, 2400));
    assert!(
        share > 0.01,
        "the page looks blank: {share:.4} of pixels inked"
    );
    if let Ok(keep) = std::env::var("MCP_SWARM_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    let out = chromium(&["--dump-dom"], &page);
    let dom = String::from_utf8(out.stdout).unwrap();
    // Chromium serializes the DOM as HTML (not XML): read it as text.
    let workflows: Vec<&String> = report
        .timeseries
        .iter()
        .flat_map(|p| p.workflows.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(workflows.len() >= 2, "the fixture has workflows over time");
    for wf in &workflows {
        let marker = format!(r#"<figure class="workflow-chart" data-workflow="{wf}">"#);
        let start = dom
            .find(&marker)
            .unwrap_or_else(|| panic!("no chart of {wf} in the DOM"));
        let figure = &dom[start..start + dom[start..].find("</figure>").unwrap()];
        let points = figure.matches(r#"class="pt""#).count();
        assert!(points >= 3 * 10, "{wf}: {points} points");
        assert_eq!(
            figure.matches("<polyline").count(),
            4,
            "p50, p95, p99, executions"
        );
    }
    assert_eq!(
        dom.matches(r#"class="workflow-chart""#).count(),
        workflows.len(),
        "one chart per workflow"
    );
    assert!(dom.contains("Failures") && dom.contains("injected fault"));
    assert!(!dom.contains("eyJhbGc"), "a token in a message is redacted");
}
