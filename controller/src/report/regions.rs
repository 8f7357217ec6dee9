//! Per-region statistics (`agent --region`): each region's agents' series,
//! merged per region by the run, as workflow, step and tool figures, so the
//! latency the load saw can be compared by where it came from.

use std::collections::BTreeMap;
use std::time::Duration;

use common::region::Region;
use common::report::{LatencyStats, RegionReport, RegionSeriesReport, round6, success_rate};
use common::series::{SeriesKind, SeriesStats, slot};

use super::input::RegionSeries;

/// `None` when every agent is in the default region.
pub fn regions_report(
    regions: &BTreeMap<Region, RegionSeries>,
    duration: Duration,
) -> Option<BTreeMap<String, RegionReport>> {
    if regions.keys().all(|r| r.as_str() == Region::DEFAULT) {
        return None;
    }
    let secs = duration.as_secs_f64();
    Some(
        regions
            .iter()
            .map(|(region, r)| (region.to_string(), region_report(r, secs)))
            .collect(),
    )
}

fn region_report(r: &RegionSeries, secs: f64) -> RegionReport {
    let mut workflows = BTreeMap::new();
    let mut steps = BTreeMap::new();
    let mut tools: BTreeMap<String, SeriesStats> = BTreeMap::new();
    let mut all_calls = SeriesStats::default();
    for (key, stats) in &r.series.series {
        match key.kind {
            SeriesKind::Workflow => {
                workflows.insert(key.workflow.clone(), series_report(stats));
            }
            SeriesKind::Step => {
                steps.insert(
                    format!("{}/{}", key.workflow, key.step),
                    series_report(stats),
                );
            }
            SeriesKind::Operation => {
                slot(&mut tools, key.operation.as_str()).merge(stats);
                all_calls.merge(stats);
            }
            _ => {}
        }
    }
    let throughput = if secs > 0.0 {
        all_calls.total() as f64 / secs
    } else {
        0.0
    };
    RegionReport {
        agents: r.agents.clone(),
        users: r.n_users as u64,
        total_operations: all_calls.total(),
        failed_operations: all_calls.failed,
        success_rate: success_rate(all_calls.ok, all_calls.ok + all_calls.failed),
        throughput_per_sec: round6(throughput),
        latency: LatencyStats::from_histogram(&all_calls.histogram),
        workflows,
        steps,
        tools: tools
            .iter()
            .map(|(tool, s)| (tool.clone(), series_report(s)))
            .collect(),
    }
}

/// The console's REGIONS table: a line per region, then each tool's p50
/// per region (the figure distance moves).
pub fn write_console(
    out: &mut String,
    regions: &BTreeMap<String, RegionReport>,
) -> std::fmt::Result {
    use std::fmt::Write as _;
    writeln!(
        out,
        "{:<20} {:>6} {:>6} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "REGION", "AGENTS", "USERS", "OPS", "FAILED", "OPS/s", "p50", "p95"
    )?;
    for (name, r) in regions {
        writeln!(
            out,
            "{:<20} {:>6} {:>6} {:>10} {:>8} {:>9.2} {:>8.4}s {:>8.4}s",
            name,
            r.agents.len(),
            r.users,
            r.total_operations,
            r.failed_operations,
            r.throughput_per_sec,
            r.latency.median,
            r.latency.p95
        )?;
    }
    let tools: std::collections::BTreeSet<&String> =
        regions.values().flat_map(|r| r.tools.keys()).collect();
    for tool in tools {
        write!(out, "  {tool:<28} p50")?;
        for (name, r) in regions {
            if let Some(t) = r.tools.get(tool) {
                write!(out, "  {name} {:.4}s", t.latency.median)?;
            }
        }
        writeln!(out)?;
    }
    Ok(())
}

fn series_report(s: &SeriesStats) -> RegionSeriesReport {
    RegionSeriesReport {
        count: s.total(),
        success_rate: success_rate(s.ok, s.ok + s.failed),
        latency: LatencyStats::from_histogram(&s.histogram),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::series::{SeriesKey, SeriesSet};

    fn region(ms: u64, n: u64) -> RegionSeries {
        let mut series = SeriesSet::default();
        for _ in 0..n {
            series
                .entry(SeriesKey::operation("wf", "tool"))
                .record_ok(Duration::from_millis(ms));
            series
                .entry(SeriesKey::workflow("wf"))
                .record_ok(Duration::from_millis(ms * 2));
        }
        RegionSeries {
            agents: vec!["a".into()],
            n_users: 2,
            series,
        }
    }

    #[test]
    fn regions_report_their_own_latency() {
        let regions: BTreeMap<Region, RegionSeries> = [
            (Region::parse("near").unwrap(), region(2, 10)),
            (Region::parse("far").unwrap(), region(42, 20)),
        ]
        .into_iter()
        .collect();
        let r = regions_report(&regions, Duration::from_secs(10)).unwrap();
        // Exact histograms: within their 3 significant digits.
        let close = |x: f64, want: f64| (x - want).abs() <= want * 1e-3;
        assert!(close(r["near"].tools["tool"].latency.median, 0.002));
        assert!(close(r["far"].tools["tool"].latency.median, 0.042));
        assert_eq!(r["far"].workflows["wf"].count, 20);
        assert_eq!(r["far"].throughput_per_sec, 2.0);
        assert_eq!(r["far"].success_rate, 100.0);
        let only_default: BTreeMap<Region, RegionSeries> =
            [(Region::default(), region(1, 1))].into_iter().collect();
        assert!(regions_report(&only_default, Duration::from_secs(1)).is_none());
    }
}
