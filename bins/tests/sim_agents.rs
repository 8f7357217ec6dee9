//! The simulated agents of `bench/controller.sh` (`simagent`) keep speaking
//! the protocol as real agents do: four of them against a `--no-spawn`
//! controller for a few seconds; every agent's final report arrives, every
//! user has operations, no series is refused, and the timeline adds up to
//! the totals.

mod support;

use clap::Parser as _;
use support::{Proc, RUN_TIMEOUT, assert_healthy_report, controller, listening_url, read_report};
use tokio_util::sync::CancellationToken;

#[test]
fn simulated_agents_report_like_real_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let secret = "sim-agents-test-secret";
    let mut cmd = controller(&[
        "start",
        "--no-spawn",
        "--agents",
        "4",
        "--listen",
        "127.0.0.1:0",
        "--users",
        "8",
        "--think-time",
        "200ms",
        "--duration",
        "3s",
        "--warmup",
        "500ms",
        "--agent-timeout",
        "30s",
        "-o",
        out.to_str().unwrap(),
    ]);
    cmd.env("MCP_SWARM_CLUSTER_SECRET", secret);
    let mut c = Proc::spawn("controller", cmd);
    let url = listening_url(&c);
    let cli = simagent::Cli::parse_from([
        "sim-agents",
        "--controller",
        &url,
        "--agents",
        "4",
        "--failure-rate",
        "0",
    ]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let summary = runtime
        .block_on(async {
            tokio::time::timeout(
                RUN_TIMEOUT,
                simagent::run(
                    &cli,
                    simagent::Secret::new(secret),
                    CancellationToken::new(),
                ),
            )
            .await
        })
        .expect("the simulated agents finish within the bound")
        .unwrap();
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    assert_eq!((summary.failed_agents, summary.final_reports), (0, 4));
    assert!(summary.intervals >= 4, "{summary:?}");

    let report = read_report(&out);
    assert_healthy_report(&report, 8, 4);
    for a in report["agents"].as_array().unwrap() {
        assert!(a["intervals_received"].as_u64().unwrap() > 0, "{a}");
    }
    assert!(
        !c.stderr().contains("refused"),
        "the controller refused something:\n{}",
        c.stderr()
    );
    let timeline: u64 = report["timeseries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["operations"].as_u64().unwrap())
        .sum();
    assert_eq!(
        timeline,
        report["summary"]["total_operations"].as_u64().unwrap(),
        "the timeline adds up to the totals"
    );
}
