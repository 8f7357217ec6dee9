//! Simulated agents for measuring the controller (`bench/controller.sh`):
//! one process opens N agent links to a controller and, from the
//! controller's side of the wire, behaves as N real agents would — register,
//! attach, heartbeats, `Ready`, per-second interval deltas, a chunked final
//! report — with synthetic measurements of the assigned scenario instead of
//! calls to a target. It reuses the agent library (`link`, `beat`,
//! `prepare`, `recorder`, `convert`), so what crosses the wire is built by
//! the same code as in a real agent. Not shipped: the binary is for benches
//! and tests.
//!
//! Code map: `sim` is one simulated agent (protocol and timing), `load` the
//! synthetic workload (which workflows, what latencies, which failures).

pub mod load;
pub mod sim;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agent::link::LinkConfig;
pub use common::Secret;
use common::scenario::Scenario;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::load::Behaviour;
use crate::sim::{Counters, Shared};

/// Command line of `sim-agents`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "sim-agents",
    version,
    about = "Simulated mcp-swarm agents: N links to one controller reporting synthetic measurements of the assigned scenario (for benchmarking the controller; they never call the target)",
    after_help = "The cluster secret comes from the MCP_SWARM_CLUSTER_SECRET environment variable.\nPrints one JSON line with totals on stdout at the end."
)]
pub struct Cli {
    /// gRPC address of the controller, e.g. http://127.0.0.1:7000.
    #[arg(long)]
    pub controller: String,
    /// Number of simulated agents (one gRPC connection each).
    #[arg(long, default_value_t = 8)]
    pub agents: usize,
    /// Agent names are NAME-0, NAME-1, …
    #[arg(long, default_value = "sim")]
    pub name: String,
    /// Fraction of tool calls that fail (0–1).
    #[arg(long, default_value_t = 0.002)]
    pub failure_rate: f64,
    /// Multiplies the workflow rate the assignment's load model gives.
    #[arg(long, default_value_t = 1.0)]
    pub rate_scale: f64,
    /// How long each agent keeps trying to reach the controller.
    #[arg(long, default_value = "60s", value_parser = common::duration::parse_duration)]
    pub connect_timeout: Duration,
    /// Compress messages to the controller with gzip.
    #[arg(long)]
    pub grpc_gzip: bool,
    /// Worker threads of the runtime [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// What the run did, printed as the summary line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub agents: usize,
    pub failed_agents: usize,
    pub workflows: u64,
    pub samples: u64,
    pub intervals: u64,
    pub final_reports: u64,
}

impl Summary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "agents": self.agents,
            "failed_agents": self.failed_agents,
            "workflows": self.workflows,
            "samples": self.samples,
            "intervals": self.intervals,
            "final_reports": self.final_reports,
        })
    }
}

/// Runs `cli.agents` simulated agents until each has sent its final report
/// (or failed); `shutdown` ends them early, reports marked interrupted.
pub async fn run(
    cli: &Cli,
    secret: Secret,
    shutdown: CancellationToken,
) -> anyhow::Result<Summary> {
    anyhow::ensure!(cli.agents > 0, "--agents must be at least 1");
    anyhow::ensure!(
        (0.0..=1.0).contains(&cli.failure_rate),
        "--failure-rate must be between 0 and 1, got {}",
        cli.failure_rate
    );
    anyhow::ensure!(
        cli.rate_scale.is_finite() && cli.rate_scale >= 0.0,
        "--rate-scale must be a finite number ≥ 0, got {}",
        cli.rate_scale
    );
    let link_runtime = agent::beat::LinkRuntime::start()
        .map_err(|e| anyhow::anyhow!("could not start the link runtime: {e}"))?;
    let shared = Arc::new(Shared {
        link_runtime: link_runtime.handle(),
        link: LinkConfig {
            controller: cli.controller.clone(),
            agent_name: cli.name.clone(),
            capacity: 0,
            connect_timeout: cli.connect_timeout,
            secret,
            scenario_digest: Scenario::builtin().digest().to_owned(),
            gzip: cli.grpc_gzip,
            tls: None,
            region: None,
        },
        behaviour: Behaviour {
            failure_rate: cli.failure_rate,
        },
        rate_scale: cli.rate_scale,
        counters: Counters::default(),
    });
    let mut agents = JoinSet::new();
    for index in 0..cli.agents {
        agents.spawn(sim::run(index, shared.clone(), shutdown.clone()));
    }
    tracing::info!(n_agents = cli.agents, controller = %cli.controller, "simulated agents started");
    let mut failed = 0;
    while let Some(joined) = agents.join_next().await {
        let outcome = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = outcome {
            failed += 1;
            tracing::error!("{e:#}");
        }
    }
    let c = &shared.counters;
    let summary = Summary {
        agents: cli.agents,
        failed_agents: failed,
        workflows: c.workflows.load(Ordering::Relaxed),
        samples: c.samples.load(Ordering::Relaxed),
        intervals: c.intervals.load(Ordering::Relaxed),
        final_reports: c.final_reports.load(Ordering::Relaxed),
    };
    tracing::info!(?summary, "simulated agents done");
    drop(link_runtime);
    Ok(summary)
}
