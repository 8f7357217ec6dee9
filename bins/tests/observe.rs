//! `--http` during a real run: `/health`, `/metrics` (parsed as a Prometheus
//! exposition) and `/api/v1/status` on the controller, and `/health` and
//! `/metrics` on an agent started by hand.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// The `addr` of the first "serving /health and /metrics" log line.
fn http_url(proc: &Proc) -> String {
    let line = proc.wait_for_line("serving /health and /metrics", Duration::from_secs(30));
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no addr= in {line:?}"));
    format!("http://{}", addr.trim_matches('"'))
}

fn get(url: &str) -> (u16, String) {
    block_on(async {
        let resp = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let code = resp.status().as_u16();
        (code, resp.text().await.unwrap())
    })
}

/// The value of the sample `name{labels…}` where every given label matches.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("a valid exposition");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn health_metrics_and_status_answer_during_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let secret = "observe-test-secret";
    let mut cmd = controller(&[
        "start",
        "--no-spawn",
        "--agents",
        "1",
        "--users",
        "4",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--duration",
        "6s",
        "--warmup",
        "500ms",
        "--agent-timeout",
        "30s",
        "-o",
        out.to_str().unwrap(),
    ]);
    cmd.env("MCP_SWARM_CLUSTER_SECRET", secret);
    let mut c = Proc::spawn("controller", cmd);
    let api = http_url(&c);
    let grpc = listening_url(&c);

    let mut agent_cmd = agent(&grpc, "observed", secret);
    agent_cmd.args(["--http", "127.0.0.1:0", "--region", "west"]);
    let mut a = Proc::spawn("agent", agent_cmd);
    let agent_api = http_url(&a);

    c.wait_for_line("run started", Duration::from_secs(60));
    // Wait for the first interval of the measurement window to be counted.
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (code, text) = get(&format!("{api}/metrics"));
        assert_eq!(code, 200);
        let measured = text.contains("mcp_swarm_workflow_executions_total{");
        if measured || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");
    assert_eq!(
        sample(&metrics, "mcp_swarm_agents", &[("state", "running")]),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "mcp_swarm_ready", &[]), Some(1.0));
    let executions: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("mcp_swarm_workflow_executions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(executions > 0.0, "no workflow executions yet:\n{metrics}");
    assert!(
        metrics.contains("mcp_swarm_workflow_duration_seconds_bucket{"),
        "{metrics}"
    );
    // The same by the agent's region: its tool calls, and latency buckets.
    let region_calls = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("mcp_swarm_region_tool_calls_total{region=\"west\","))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        region_calls(&metrics) > 0.0,
        "no calls in region west:\n{metrics}"
    );
    assert!(
        metrics.contains(
            "mcp_swarm_region_workflow_duration_seconds_bucket{le=\"+Inf\",region=\"west\","
        ),
        "{metrics}"
    );

    let (code, health) = get(&format!("{api}/health"));
    assert_eq!(code, 200, "{health}");
    let refused = block_on(async {
        reqwest::Client::new()
            .post(format!("{api}/api/v1/control"))
            .bearer_auth("anything")
            .json(&serde_json::json!({"stop": true}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(refused, 403, "a read-only dashboard refuses control");
    let (code, status) = get(&format!("{api}/api/v1/status"));
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        ["warmup", "measuring"].contains(&status["phase"].as_str().unwrap()),
        "{status}"
    );
    assert_eq!(status["agents"][0]["name"], "observed", "{status}");
    assert_eq!(status["agents"][0]["state"], "running", "{status}");
    assert!(status["totals"]["step_executions"].as_u64().unwrap() > 0);

    let (code, _) = get(&format!("{agent_api}/health"));
    assert_eq!(code, 200);
    let (code, agent_metrics) = get(&format!("{agent_api}/metrics"));
    assert_eq!(code, 200);
    assert!(
        sample(&agent_metrics, "mcp_swarm_active_users", &[]).is_some(),
        "{agent_metrics}"
    );
    assert!(
        !agent_metrics.contains("mcp_swarm_agents"),
        "agents by state are the controller's"
    );
    assert!(
        region_calls(&agent_metrics) > 0.0,
        "the agent counts its calls in its region:\n{agent_metrics}"
    );
    assert_dashboard_queries_scraped(&metrics, &agent_metrics);

    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    assert!(a.wait(Duration::from_secs(20)).success());
    // Off a terminal the live view is one plain line per interval, whose
    // rate counts the measurement window only.
    assert!(
        c.stderr().contains(" measuring] "),
        "no live line:\n{}",
        c.stderr()
    );
}

/// The Grafana dashboard (`deploy/grafana/dashboards/mcp-swarm.json`): every
/// metric its queries name is a family the controller's or the agent's live
/// `/metrics` declares, so no panel stays empty for a misspelt name.
fn assert_dashboard_queries_scraped(controller: &str, agent: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/grafana/dashboards/mcp-swarm.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["query"]["query"].as_str() {
            exprs.push(q.to_owned());
        }
    }
    assert!(exprs.len() >= 15, "{} queries", exprs.len());
    let declared = |scrape: &str, family: &str| {
        scrape.lines().any(|l| {
            l.strip_prefix("# TYPE ")
                .is_some_and(|rest| rest.split(' ').next() == Some(family))
        })
    };
    let mut checked = 0;
    for expr in &exprs {
        for (i, _) in expr.match_indices("mcp_swarm_") {
            let name: String = expr[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            assert!(
                declared(controller, family) || declared(agent, family),
                "the dashboard queries {name} (family {family}), which no live /metrics declares: {expr}"
            );
            checked += 1;
        }
    }
    assert!(checked >= exprs.len(), "every query names a metric");
}

/// A free port on 127.0.0.1 for a program that cannot report the port it
/// bound (Prometheus): bound, read and released.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's `prometheus` scrapes a controller every second during a run (and
/// the `--http-linger` after it); a PromQL query over what it stored gives
/// the run's count of tool calls, as the report has it.
#[test]
fn a_real_prometheus_scrapes_a_run_and_counts_its_calls() {
    let Some(prometheus) = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
    else {
        assert!(
            std::env::var_os("MCP_SWARM_REQUIRE_PROMETHEUS").is_none(),
            "prometheus not found: apt-get install prometheus"
        );
        eprintln!("skipped: no prometheus (apt-get install prometheus)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut c = Proc::spawn(
        "controller",
        controller(&[
            "start",
            "--agents",
            "1",
            "--users",
            "2",
            "--workload",
            "baseline",
            "--duration",
            "5s",
            "--warmup",
            "0s",
            "--http",
            "127.0.0.1:0",
            "--http-linger",
            "4s",
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]),
    );
    let api = http_url(&c);
    let target = api.trim_start_matches("http://");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mcp-swarm\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut prom_cmd = std::process::Command::new(prometheus);
    prom_cmd.args([
        &format!("--config.file={}", config.display()),
        &format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
        &format!("--web.listen-address=127.0.0.1:{port}"),
    ]);
    let mut p = Proc::spawn("prometheus", prom_cmd);
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    let report = read_report(&out);
    let calls = report["summary"]["total_operations"].as_u64().unwrap();
    assert!(calls > 0, "{}", report["summary"]);

    let query = "sum(max_over_time(mcp_swarm_step_executions_total{job=\"mcp-swarm\"}[10m]))";
    let url = format!("http://127.0.0.1:{port}/api/v1/query");
    let deadline = Instant::now() + Duration::from_secs(20);
    let stored = loop {
        let answer: Option<f64> = block_on(async {
            let resp = reqwest::Client::new()
                .get(&url)
                .query(&[("query", query)])
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()?;
            let body: serde_json::Value = resp.json().await.ok()?;
            body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
        });
        if let Some(v) = answer {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never answered {query}\n{}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // Baseline steps are one tool call each, with no retries.
    assert_eq!(stored as u64, calls, "prometheus {stored}, report {calls}");
    p.kill();
}

/// Headless Chromium (Debian's) on the live dashboard of a 3-agent run: the
/// charts' points grow between two looks 3 s apart, and an agent killed
/// mid-run shows as lost, its users as moved (an event), in the page.
#[test]
fn the_live_dashboard_follows_a_run_and_shows_a_lost_agent() {
    use chromiumoxide::browser::{Browser, BrowserConfig};
    use chromiumoxide::page::ScreenshotParams;
    use futures::StreamExt;

    let chromium = std::path::Path::new("/usr/bin/chromium");
    assert!(chromium.exists(), "install Debian's chromium");
    let secret = "dashboard-test-secret";
    let dir = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("MCP_SWARM_SCREENSHOT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().to_owned());
    let out = dir.path().join("run.json");
    let mut cmd = controller(&[
        "start",
        "--no-spawn",
        "--agents",
        "3",
        "--users",
        "6",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--think-time",
        "100ms",
        "--duration",
        "14s",
        "--warmup",
        "1s",
        "--agent-timeout",
        "60s",
        "--on-agent-loss",
        "reassign",
        "--http-control",
        "-o",
        out.to_str().unwrap(),
    ]);
    let control_token = "dashboard-control-token-0123456789";
    cmd.env("MCP_SWARM_CLUSTER_SECRET", secret)
        .env("MCP_SWARM_HTTP_CONTROL_TOKEN", control_token);
    let mut c = Proc::spawn("controller", cmd);
    let api = http_url(&c);
    let grpc = listening_url(&c);
    let mut agents: Vec<Proc> = (0..3)
        .map(|i| {
            Proc::spawn(
                &format!("agent-{i}"),
                agent(&grpc, &format!("remote-{i}"), secret),
            )
        })
        .collect();
    c.wait_for_line("run started", Duration::from_secs(60));

    let profile = tempfile::tempdir().unwrap();
    let (points, lost, moved) = block_on(async {
        let config = BrowserConfig::builder()
            .chrome_executable(chromium)
            .user_data_dir(profile.path())
            .new_headless_mode()
            .no_sandbox()
            .window_size(1200, 1600)
            .args(["disable-gpu", "no-first-run", "disable-dev-shm-usage"])
            .build()
            .unwrap();
        let (mut browser, mut events) = Browser::launch(config).await.unwrap();
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        let page = browser.new_page(format!("{api}/")).await.unwrap();
        let count = |js: &'static str| {
            let page = page.clone();
            async move {
                page.evaluate(js)
                    .await
                    .unwrap()
                    .into_value::<u64>()
                    .unwrap_or(0)
            }
        };
        let shot = |name: &'static str| {
            let page = page.clone();
            let path = shots.join(name);
            async move {
                let png = page
                    .screenshot(ScreenshotParams::builder().full_page(true).build())
                    .await
                    .unwrap();
                std::fs::write(path, png).unwrap();
            }
        };
        const POINTS: &str = "(() => { const p = document.querySelector('#c-rate polyline'); return p ? p.points.numberOfItems : 0; })()";
        tokio::time::sleep(Duration::from_secs(3)).await;
        let first = count(POINTS).await;
        shot("dashboard-1.png").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let second = count(POINTS).await;
        shot("dashboard-2.png").await;
        agents[1].kill();
        // The loss and the move reach the page within the controller's
        // silence bound plus a poll.
        let mut lost = 0;
        let mut moved = 0;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            lost = count("document.querySelectorAll('#t-agents td.lost').length").await;
            moved = count("[...document.querySelectorAll('#t-events td')].filter(td => td.textContent.includes('moved users')).length").await;
            if lost > 0 && moved > 0 {
                break;
            }
        }
        shot("dashboard-3.png").await;
        // Steering: without the token refused, with it the active users
        // follow within the next seconds.
        let post = |token: Option<&'static str>, body: serde_json::Value| {
            let url = format!("{api}/api/v1/control");
            async move {
                let mut req = reqwest::Client::new().post(url).json(&body);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let resp = req.send().await.unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            }
        };
        let (code, text) = post(None, serde_json::json!({"users": 2})).await;
        assert_eq!(code, 401, "{text}");
        let (code, text) = post(Some(control_token), serde_json::json!({"rate": 5})).await;
        assert_eq!(code, 409, "a closed run has no rate: {text}");
        let (code, text) = post(Some(control_token), serde_json::json!({"users": 2})).await;
        assert_eq!(code, 200, "{text}");
        let mut active = 0;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            active = count(
                "parseInt(document.querySelector('#cards .card:nth-child(3) .v').textContent, 10)",
            )
            .await;
            if active == 2 {
                break;
            }
        }
        assert_eq!(
            active, 2,
            "the active users did not follow the control request"
        );
        shot("dashboard-4.png").await;
        browser.close().await.ok();
        handler.abort();
        ((first, second), lost, moved)
    });
    assert!(points.0 >= 2, "no chart after 3 s: {points:?}");
    assert!(
        points.1 >= points.0 + 2,
        "the chart did not grow in 3 s: {points:?}"
    );
    assert_eq!(lost, 1, "the killed agent is not shown lost");
    assert!(moved >= 1, "no event for the moved users");
    let status = c.wait(RUN_TIMEOUT);
    drop(agents);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    // The change is in the report's timeline: the last seconds' target.
    let report = read_report(&out);
    let points = report["timeseries"].as_array().unwrap();
    let last = points.iter().rfind(|p| p["drain"] != true).unwrap();
    assert_eq!(last["target"], 2.0, "{points:?}");
    assert_eq!(points[0]["target"], 6.0, "{points:?}");
}
