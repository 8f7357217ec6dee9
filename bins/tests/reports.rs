//! Reports end to end (issue 10): the failures a target sent, in the console
//! and the JSON; the HTML report of a 3-agent run as headless Chromium
//! (Debian's, at /usr/bin/chromium; CI installs it) renders it; JUnit;
//! `controller compare` of a fast and a slow target; a run where every call
//! fails; the console of a 2,000-user run.

mod support;

use std::path::Path;
use std::process::{Command, ExitStatus};

use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// `controller start` against `mock` with `args`, to the end; the exit
/// status, stdout and stderr.
fn run(mock: &MockTarget, prefix: &str, dir: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let cmd = mock.controller_start(prefix, &dir.join("state"), args);
    let mut c = Proc::spawn("controller", cmd);
    let status = c.wait(RUN_TIMEOUT);
    (status, c.stdout(), c.stderr())
}

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

/// Share of pixels that are not (nearly) white, and the image's size.
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

/// The `<testcase>` names of a JUnit file, and those with a `<failure>`.
fn junit_cases(xml: &str) -> (Vec<String>, Vec<String>) {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("JUnit XML: {e}\n{xml}"));
    let root = doc.root_element();
    assert!(
        matches!(root.tag_name().name(), "testsuites" | "testsuite"),
        "root <{}>",
        root.tag_name().name()
    );
    let mut all = Vec::new();
    let mut failed = Vec::new();
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let name = case.attribute("name").expect("testcase name").to_owned();
        assert!(case.attribute("classname").is_some(), "testcase classname");
        if case.children().any(|c| c.has_tag_name("failure")) {
            failed.push(name.clone());
        }
        all.push(name);
    }
    (all, failed)
}

/// A mock failing 5% of tool calls, 3 spawned agents: the FAILURES table
/// shows the mock's message, the JSON holds it (and no secret), the HTML
/// report renders with a chart per workflow, the JUnit file parses.
#[test]
fn a_failing_target_s_messages_reach_the_console_json_html_and_junit() {
    let mock = MockTarget::start_with(&["--error-rate", "0.05"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let html = dir.path().join("run.html");
    let junit = dir.path().join("junit.xml");
    let (status, stdout, stderr) = run(
        &mock,
        "rep",
        dir.path(),
        &[
            "--provider",
            "nextcloud",
            "--agents",
            "3",
            "--users",
            "6",
            "--duration",
            "4s",
            "--warmup",
            "0s",
            "--think-time",
            "20ms",
            "--threshold",
            "error_rate<50%",
            "--threshold",
            "error_rate<0.001%",
            "-o",
            out.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    // The second threshold fails: exit 3, the reports written all the same.
    assert_eq!(status.code(), Some(3), "stderr:\n{stderr}");

    let failures = stdout
        .find("FAILURES")
        .unwrap_or_else(|| panic!("no FAILURES table:\n{stdout}"));
    assert!(
        stdout[failures..].contains("injected fault"),
        "the mock's message is not in the table:\n{stdout}"
    );

    let report = read_report(&out);
    let errors = report["errors"].as_array().expect("errors");
    assert!(!errors.is_empty());
    let injected = errors
        .iter()
        .find(|e| {
            e["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m.as_str().unwrap().contains("injected fault"))
        })
        .unwrap_or_else(|| panic!("no error carries the mock's message: {errors:?}"));
    assert_eq!(injected["kind"], "http_5xx");
    assert!(injected["count"].as_u64().unwrap() > 0);
    let text = std::fs::read_to_string(&out).unwrap();
    for secret in [mock.admin_password.as_str(), "eyJhbGc"] {
        for (what, s) in [("report", &text), ("stdout", &stdout), ("stderr", &stderr)] {
            assert!(!s.contains(secret), "{secret:?} in the {what}");
        }
    }

    let (cases, failed) = junit_cases(&std::fs::read_to_string(&junit).unwrap());
    assert_eq!(cases.len(), 2, "{cases:?}");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("0.001"), "{failed:?}");

    // The HTML report as a person sees it.
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("<script"), "no script");
    assert!(!page.contains("<link"), "nothing fetched");
    let shot = dir.path().join("run.png");
    let rendered = chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2400",
        ],
        &html,
    );
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&rendered.stderr)
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
    let dom = String::from_utf8(chromium(&["--dump-dom"], &html).stdout).unwrap();
    let workflows: Vec<&String> = report["workflows"].as_object().unwrap().keys().collect();
    assert!(workflows.len() >= 2, "{workflows:?}");
    for wf in &workflows {
        let marker = format!(r#"<figure class="workflow-chart" data-workflow="{wf}">"#);
        let start = dom
            .find(&marker)
            .unwrap_or_else(|| panic!("no chart of {wf} in the DOM"));
        let figure = &dom[start..start + dom[start..].find("</figure>").unwrap()];
        assert!(
            figure.matches(r#"class="pt""#).count() >= 3,
            "{wf}: no points"
        );
    }
    assert_eq!(
        dom.matches(r#"class="workflow-chart""#).count(),
        workflows.len(),
        "one chart per workflow"
    );
    for agent in ["agent-0", "agent-1", "agent-2"] {
        assert!(dom.contains(agent), "{agent} not in the per-agent table");
    }
    assert!(
        dom.contains("injected fault"),
        "the failures are in the page"
    );
    for secret in [mock.admin_password.as_str(), "eyJhbGc"] {
        assert!(!page.contains(secret), "{secret:?} in the HTML report");
    }
}

/// Every tool call fails: exit 1, naming the most frequent error.
#[test]
fn a_run_in_which_nothing_succeeds_exits_1_naming_the_error() {
    let mock = MockTarget::start_with(&["--error-rate", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let (status, _stdout, stderr) = run(
        &mock,
        "none",
        dir.path(),
        &[
            "--agents",
            "1",
            "--users",
            "2",
            "--duration",
            "2s",
            "--warmup",
            "0s",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("no workflow succeeded") && stderr.contains("injected fault"),
        "stderr:\n{stderr}"
    );
    let summary = &read_report(&out)["summary"];
    assert!(summary["total_operations"].as_u64().unwrap() > 0);
    assert_eq!(summary["failed_operations"], summary["total_operations"]);
}

/// Two runs, one against a target 30 ms slower: `compare` exits 3 and names
/// the workflows that regressed; a run compared with itself exits 0.
#[test]
fn compare_finds_a_slower_target_and_not_a_run_against_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut reports = Vec::new();
    for (name, latency) in [("base", "0ms"), ("slow", "30ms")] {
        let mock = MockTarget::start_with(&["--latency", latency]);
        let out = dir.path().join(format!("{name}.json"));
        let (status, _, stderr) = run(
            &mock,
            name,
            &dir.path().join(name),
            &[
                "--agents",
                "1",
                "--users",
                "4",
                "--duration",
                "3s",
                "--warmup",
                "0s",
                "--think-time",
                "10ms",
                "-o",
                out.to_str().unwrap(),
            ],
        );
        assert!(status.success(), "{name}: exit {status}\n{stderr}");
        reports.push(out);
    }
    let compare = |base: &Path, new: &Path, junit: &Path| {
        let mut c = Proc::spawn(
            "compare",
            controller(&[
                "compare",
                base.to_str().unwrap(),
                new.to_str().unwrap(),
                "--tolerance",
                "10%",
                "--junit",
                junit.to_str().unwrap(),
            ]),
        );
        let status = c.wait(RUN_TIMEOUT);
        (status, c.stdout(), c.stderr())
    };

    let junit = dir.path().join("compare.xml");
    let (status, stdout, stderr) = compare(&reports[0], &reports[1], &junit);
    assert_eq!(
        status.code(),
        Some(3),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let base = read_report(&reports[0]);
    let regressed: Vec<&String> = base["workflows"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|wf| {
            stdout
                .lines()
                .any(|l| l.contains(wf.as_str()) && l.contains("REGRESSED"))
        })
        .collect();
    assert!(
        !regressed.is_empty(),
        "no workflow marked as regressed:\n{stdout}"
    );
    let (cases, failed) = junit_cases(&std::fs::read_to_string(&junit).unwrap());
    assert!(
        !failed.is_empty() && failed.len() < cases.len(),
        "{failed:?} of {cases:?}"
    );

    let (status, stdout, stderr) = compare(&reports[0], &reports[0], &junit);
    assert!(status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let (_, failed) = junit_cases(&std::fs::read_to_string(&junit).unwrap());
    assert!(failed.is_empty(), "{failed:?}");
}

/// 2,000 users: the console lists none of them one by one and fits on two
/// screens of 50 lines; the JSON keeps every user.
#[test]
fn the_console_of_a_2000_user_run_fits_on_two_screens() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut c = Proc::spawn(
        "controller",
        controller(&[
            "start",
            "--agents",
            "2",
            "--users",
            "2000",
            "--duration",
            "3s",
            "--warmup",
            "0s",
            "--think-time",
            "1s",
            "-o",
            out.to_str().unwrap(),
        ]),
    );
    let status = c.wait(RUN_TIMEOUT);
    let stdout = c.stdout();
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let lines = stdout.lines().count();
    assert!(lines <= 100, "{lines} lines:\n{stdout}");
    assert!(stdout.contains("2000 users"), "{stdout}");
    assert!(stdout.contains("Slowest 10 users"), "{stdout}");
    let report = read_report(&out);
    assert_eq!(report["users"].as_object().unwrap().len(), 2000);
}

/// Three runs of one kind recorded in the run history (one breaking its
/// threshold): `controller history` lists them newest first with their
/// verdicts, and `compare --baseline last-passing` picks the newest run that
/// passed — not the failing one, not the run itself.
#[test]
fn the_history_lists_runs_and_compare_finds_the_last_passing_one() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockTarget::start();
    let mut outs = Vec::new();
    for (name, threshold) in [
        ("first", "error_rate<100%"),
        ("failing", "p95<1ms"),
        ("newest", "error_rate<100%"),
    ] {
        let out = dir.path().join(format!("{name}.json"));
        let mut cmd = mock.controller_start(
            name,
            &dir.path().join("state"),
            &[
                "--agents",
                "1",
                "--users",
                "2",
                "--duration",
                "2s",
                "--warmup",
                "0s",
                "--think-time",
                "50ms",
                "--threshold",
                threshold,
                "-o",
                out.to_str().unwrap(),
                "--html",
                out.with_extension("html").to_str().unwrap(),
            ],
        );
        cmd.env_remove("MCP_SWARM_NO_HISTORY");
        let mut c = Proc::spawn("controller", cmd);
        let status = c.wait(RUN_TIMEOUT);
        let stderr = c.stderr();
        let expected = if name == "failing" { Some(3) } else { Some(0) };
        assert_eq!(status.code(), expected, "{name}: {stderr}");
        assert!(
            stderr.contains("run recorded in the history"),
            "{name}: {stderr}"
        );
        outs.push(out);
    }
    // The HTML report shows the runs of its kind so far as a trend.
    let html = |i: usize| std::fs::read_to_string(outs[i].with_extension("html")).unwrap();
    assert!(!html(0).contains("<h2>Trend</h2>"), "one run is no trend");
    let newest = html(2);
    assert!(newest.contains("The last 3 runs of this kind"), "{newest}");
    assert_eq!(newest.matches("class=\"trend-chart\"").count(), 2);
    let state = dir.path().join("state");
    let mut h = Proc::spawn(
        "history",
        controller(&["history", "--state-dir", state.to_str().unwrap()]),
    );
    assert!(h.wait(RUN_TIMEOUT).success(), "{}", h.stderr());
    let listing = h.stdout();
    let rows: Vec<&str> = listing.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{listing}");
    assert!(
        rows[0].trim_start().starts_with('3'),
        "newest first: {listing}"
    );
    assert!(
        rows[1].contains("FAIL") && rows[0].contains("PASS"),
        "{listing}"
    );
    assert!(rows.iter().all(|r| r.contains("kept up")), "{listing}");

    let mut c = Proc::spawn(
        "compare",
        controller(&[
            "compare",
            "--baseline",
            "last-passing",
            outs[2].to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--tolerance",
            "1000%",
        ]),
    );
    let status = c.wait(RUN_TIMEOUT);
    // Two short runs may differ past any tolerance (exit 3): what matters
    // here is which run the comparison took as its base.
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "{status}\n{}\n{}",
        c.stdout(),
        c.stderr()
    );
    assert!(
        c.stdout().contains("run #1 of"),
        "the first run is the baseline:\n{}",
        c.stdout()
    );

    // A history with no passing run of the kind says so.
    let other = dir.path().join("empty.sqlite3");
    let mut c = Proc::spawn(
        "compare",
        controller(&[
            "compare",
            "--baseline",
            "last-passing",
            outs[2].to_str().unwrap(),
            "--history",
            other.to_str().unwrap(),
        ]),
    );
    assert!(!c.wait(RUN_TIMEOUT).success());
    assert!(
        c.stderr().contains("no run of the same kind"),
        "{}",
        c.stderr()
    );
}
