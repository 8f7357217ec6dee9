//! `/metrics`: the live figures in the Prometheus text exposition, encoded by
//! `prometheus-client` from a snapshot at each scrape. Latency histograms are
//! read off the run's HdrHistograms at fixed bucket bounds, so they agree with
//! the report's percentiles instead of being a second measurement.

use std::collections::BTreeMap;

use common::histogram::LatencyHistogram;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::live::Figures;
use crate::region::{RegionFigures, Tally};

/// Upper bounds of the latency buckets, in seconds (`+Inf` is added).
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Agent states listed even when no agent is in them, so a dashboard's
/// series do not come and go.
const AGENT_STATES: [&str; 5] = ["attached", "ready", "running", "done", "lost"];

/// The exposition of `figures` (`agents` true on the controller).
pub fn encode(figures: Figures, agents: bool) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot { figures, agents }));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Snapshot {
    figures: Figures,
    agents: bool,
}

impl prometheus_client::collector::Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = &self.figures;
        let mut m = encoder.encode_descriptor(
            "mcp_swarm_step_executions",
            "Workflow steps executed, by workflow and step (warmup included)",
            None,
            MetricType::Counter,
        )?;
        for ((workflow, step), counts) in &f.steps {
            let labels = [("workflow", workflow.as_str()), ("step", step.as_str())];
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&counts.operations, None)?;
        }

        let mut m = encoder.encode_descriptor(
            "mcp_swarm_step_errors",
            "Failed workflow steps, by workflow, step and error kind",
            None,
            MetricType::Counter,
        )?;
        for ((workflow, step), counts) in &f.steps {
            for (kind, n) in &counts.errors {
                let labels = [
                    ("workflow", workflow.as_str()),
                    ("step", step.as_str()),
                    ("kind", kind.as_str()),
                ];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }

        let mut m = encoder.encode_descriptor(
            "mcp_swarm_workflow_executions",
            "Workflow executions, by workflow",
            None,
            MetricType::Counter,
        )?;
        for (workflow, wf) in &f.workflows {
            m.encode_family(&[("workflow", workflow.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&wf.counts.operations, None)?;
        }

        let mut m = encoder.encode_descriptor(
            "mcp_swarm_workflow_duration",
            "Latency of whole workflow executions, by workflow",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (workflow, wf) in &f.workflows {
            histogram(&mut m, &[("workflow", workflow.as_str())], &wf.latency)?;
        }

        self.encode_regions(&mut encoder)?;

        gauge(
            &mut encoder,
            "mcp_swarm_active_users",
            "Virtual users running now",
            f.active_users as i64,
        )?;
        counter(
            &mut encoder,
            "mcp_swarm_token_refreshes",
            "Access tokens refreshed during the run",
            f.token_refreshes,
        )?;
        for (name, help, n) in [
            (
                "mcp_swarm_offered_starts",
                "Open model: workflow starts due in the measured window, made or dropped (the offered load)",
                f.starts.offered,
            ),
            (
                "mcp_swarm_dropped_starts",
                "Open model: starts dropped at the in-flight bound (--max-in-flight)",
                f.starts.dropped,
            ),
            (
                "mcp_swarm_late_starts",
                "Open model: starts made later than intended (the generator's lateness)",
                f.starts.late,
            ),
        ] {
            counter(&mut encoder, name, help, n)?;
        }
        let lag = f.interval_lag.as_secs_f64();
        encoder
            .encode_descriptor(
                "mcp_swarm_interval_lag",
                "How late the newest interval report was, after its interval ended",
                Some(&Unit::Seconds),
                MetricType::Gauge,
            )?
            .encode_gauge(&lag)?;
        gauge(
            &mut encoder,
            "mcp_swarm_ready",
            "1 once the process can do its work (what /health answers)",
            i64::from(f.ready),
        )?;
        if self.agents {
            let mut m = encoder.encode_descriptor(
                "mcp_swarm_agents",
                "Agents by state",
                None,
                MetricType::Gauge,
            )?;
            for state in AGENT_STATES {
                let n = f.agents_in(state) as i64;
                m.encode_family(&[("state", state)])?.encode_gauge(&n)?;
            }
        }
        Ok(())
    }
}

impl Snapshot {
    /// The per-region families: each region's workflows and tools.
    fn encode_regions(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let regions = &self.figures.regions;
        let mut m = encoder.encode_descriptor(
            "mcp_swarm_region_workflow_executions",
            "Workflow executions, by the region of the agent that ran them and workflow",
            None,
            MetricType::Counter,
        )?;
        for (region, workflow, t) in rows(regions, |r| &r.workflows) {
            m.encode_family(&[("region", region), ("workflow", workflow)])?
                .encode_counter::<NoLabelSet, _, u64>(&t.counts.operations, None)?;
        }
        let mut m = encoder.encode_descriptor(
            "mcp_swarm_region_workflow_duration",
            "Latency of whole workflow executions, by region and workflow",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (region, workflow, t) in rows(regions, |r| &r.workflows) {
            histogram(
                &mut m,
                &[("region", region), ("workflow", workflow)],
                &t.latency,
            )?;
        }
        let mut m = encoder.encode_descriptor(
            "mcp_swarm_region_tool_calls",
            "MCP tools/call requests, by region and tool",
            None,
            MetricType::Counter,
        )?;
        for (region, tool, t) in rows(regions, |r| &r.tools) {
            m.encode_family(&[("region", region), ("tool", tool)])?
                .encode_counter::<NoLabelSet, _, u64>(&t.counts.operations, None)?;
        }
        let mut m = encoder.encode_descriptor(
            "mcp_swarm_region_tool_errors",
            "Failed MCP tools/call requests, by region, tool and error kind",
            None,
            MetricType::Counter,
        )?;
        for (region, tool, t) in rows(regions, |r| &r.tools) {
            for (kind, n) in &t.counts.errors {
                let labels = [("region", region), ("tool", tool), ("kind", kind.as_str())];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        let mut m = encoder.encode_descriptor(
            "mcp_swarm_region_tool_duration",
            "Latency of MCP tools/call requests, by region and tool",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (region, tool, t) in rows(regions, |r| &r.tools) {
            histogram(&mut m, &[("region", region), ("tool", tool)], &t.latency)?;
        }
        Ok(())
    }
}

/// `(region, name, tally)` of every workflow or tool (`of`) of every region,
/// in order.
fn rows<'a>(
    regions: &'a BTreeMap<String, RegionFigures>,
    of: fn(&RegionFigures) -> &BTreeMap<String, Tally>,
) -> impl Iterator<Item = (&'a str, &'a str, &'a Tally)> + 'a {
    regions.iter().flat_map(move |(region, r)| {
        of(r)
            .iter()
            .map(move |(name, t)| (region.as_str(), name.as_str(), t))
    })
}

/// One histogram sample set of family `m`, counted off the HdrHistogram `h`
/// at `LATENCY_BUCKETS_SECONDS`.
fn histogram(
    m: &mut MetricEncoder,
    labels: &[(&str, &str)],
    h: &LatencyHistogram,
) -> Result<(), std::fmt::Error> {
    let mut below = 0;
    let mut buckets = Vec::with_capacity(LATENCY_BUCKETS_SECONDS.len() + 1);
    for bound in LATENCY_BUCKETS_SECONDS {
        let upto = h.count_at_most_us((bound * 1e6) as u64);
        buckets.push((bound, upto.saturating_sub(below)));
        below = upto.max(below);
    }
    buckets.push((f64::MAX, h.len().saturating_sub(below)));
    let sum = h.mean_us() * h.len() as f64 / 1e6;
    m.encode_family(&labels)?
        .encode_histogram::<NoLabelSet>(sum, h.len(), &buckets, None)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use common::error_kind::ErrorKind;
    use common::series::{SeriesKey, SeriesSet};

    use super::*;

    #[test]
    fn the_exposition_holds_every_family_with_consistent_buckets() {
        let mut delta = SeriesSet::default();
        for ms in [2, 20, 200] {
            delta
                .entry(SeriesKey::workflow("share"))
                .record_ok(Duration::from_millis(ms));
        }
        delta
            .entry(SeriesKey::step("share", "create"))
            .record_failure(Duration::from_millis(1), ErrorKind::Http5xx);
        let mut f = Figures::default();
        delta
            .entry(SeriesKey::operation("share", "nc_share_create"))
            .record_failure(Duration::from_millis(1), ErrorKind::Http5xx);
        f.add("eu", &delta, true);
        f.active_users = 7;
        f.agents.push(crate::AgentView {
            name: "agent-0".into(),
            state: "running",
            n_users: 7,
            ..Default::default()
        });
        let text = encode(f, true);
        for line in [
            "mcp_swarm_step_executions_total{workflow=\"share\",step=\"create\"} 1",
            "mcp_swarm_step_errors_total{workflow=\"share\",step=\"create\",kind=\"http_5xx\"} 1",
            "mcp_swarm_workflow_executions_total{workflow=\"share\"} 3",
            "mcp_swarm_workflow_duration_seconds_count{workflow=\"share\"} 3",
            "mcp_swarm_workflow_duration_seconds_bucket{le=\"0.0025\",workflow=\"share\"} 1",
            "mcp_swarm_workflow_duration_seconds_bucket{le=\"0.025\",workflow=\"share\"} 2",
            "mcp_swarm_workflow_duration_seconds_bucket{le=\"+Inf\",workflow=\"share\"} 3",
            "mcp_swarm_region_workflow_executions_total{region=\"eu\",workflow=\"share\"} 3",
            "mcp_swarm_region_workflow_duration_seconds_bucket{le=\"0.025\",region=\"eu\",workflow=\"share\"} 2",
            "mcp_swarm_region_tool_calls_total{region=\"eu\",tool=\"nc_share_create\"} 1",
            "mcp_swarm_region_tool_errors_total{region=\"eu\",tool=\"nc_share_create\",kind=\"http_5xx\"} 1",
            "mcp_swarm_region_tool_duration_seconds_count{region=\"eu\",tool=\"nc_share_create\"} 1",
            "mcp_swarm_active_users 7",
            "mcp_swarm_agents{state=\"running\"} 1",
            "mcp_swarm_agents{state=\"lost\"} 0",
            "# EOF",
        ] {
            assert!(text.contains(line), "no {line:?} in:\n{text}");
        }
    }
}
