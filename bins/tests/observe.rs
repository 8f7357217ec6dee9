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
    agent_cmd.args(["--http", "127.0.0.1:0"]);
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

    let (code, health) = get(&format!("{api}/health"));
    assert_eq!(code, 200, "{health}");
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
