//! The HTML report's Regions section (`agent --region`): one row per
//! region with its agents, users, throughput and latency, then each
//! workflow's and tool's p50 / p95 side by side per region, so the latency a
//! distant region's users saw stands next to the near one's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use common::report::{RegionReport, RegionSeriesReport};

use super::{escape, percentiles, seconds};

/// Nothing unless the agents named more than one region.
pub fn write_regions(
    out: &mut String,
    regions: Option<&BTreeMap<String, RegionReport>>,
) -> std::fmt::Result {
    let Some(regions) = regions.filter(|r| r.len() > 1) else {
        return Ok(());
    };
    writeln!(out, "<h2>Regions</h2>")?;
    writeln!(
        out,
        r#"<table><tr><th class="name">Region</th><th class="name">Agents</th><th>Users</th><th>Operations</th><th>Failed</th><th>Success</th><th>Ops/s</th><th class="name">Latency</th></tr>"#
    )?;
    for (name, r) in regions {
        writeln!(
            out,
            r#"<tr><td class="name">{}</td><td class="name">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{:.2}</td><td class="name">{}</td></tr>"#,
            escape(name),
            escape(&r.agents.join(", ")),
            r.users,
            r.total_operations,
            r.failed_operations,
            r.success_rate,
            r.throughput_per_sec,
            percentiles(&r.latency)
        )?;
    }
    writeln!(out, "</table>")?;
    side_by_side(out, "Workflow", regions, |r| &r.workflows)?;
    side_by_side(out, "Tool", regions, |r| &r.tools)
}

/// One row per workflow (or tool), one p50 / p95 cell per region.
fn side_by_side(
    out: &mut String,
    what: &str,
    regions: &BTreeMap<String, RegionReport>,
    of: impl Fn(&RegionReport) -> &BTreeMap<String, RegionSeriesReport>,
) -> std::fmt::Result {
    let names: BTreeSet<&String> = regions.values().flat_map(|r| of(r).keys()).collect();
    if names.is_empty() {
        return Ok(());
    }
    write!(out, r#"<table><tr><th class="name">{what}</th>"#)?;
    for region in regions.keys() {
        write!(out, "<th>{} p50 / p95</th>", escape(region))?;
    }
    writeln!(out, "</tr>")?;
    for name in names {
        write!(out, r#"<tr><td class="name">{}</td>"#, escape(name))?;
        for r in regions.values() {
            match of(r).get(name) {
                Some(s) if s.count > 0 => write!(
                    out,
                    "<td>{} / {}</td>",
                    seconds(s.latency.median),
                    seconds(s.latency.p95)
                )?,
                _ => write!(out, "<td>–</td>")?,
            }
        }
        writeln!(out, "</tr>")?;
    }
    writeln!(out, "</table>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::report::LatencyStats;

    fn region(agent: &str, p50: f64) -> RegionReport {
        let series = RegionSeriesReport {
            count: 5,
            success_rate: 100.0,
            latency: LatencyStats {
                median: p50,
                p95: p50 * 2.0,
                ..Default::default()
            },
        };
        RegionReport {
            agents: vec![agent.to_owned()],
            users: 4,
            total_operations: 5,
            failed_operations: 0,
            success_rate: 100.0,
            throughput_per_sec: 0.5,
            latency: series.latency,
            workflows: BTreeMap::from([("wf".to_owned(), series.clone())]),
            steps: BTreeMap::new(),
            tools: BTreeMap::from([("<tool>".to_owned(), series)]),
        }
    }

    #[test]
    fn two_regions_stand_side_by_side_and_one_shows_nothing() {
        let regions = BTreeMap::from([
            ("near".to_owned(), region("agent-1", 0.002)),
            ("far".to_owned(), region("agent-2", 0.042)),
        ]);
        let mut out = String::new();
        write_regions(&mut out, Some(&regions)).unwrap();
        assert!(out.contains("<h2>Regions</h2>"));
        assert!(
            out.contains("<th>far p50 / p95</th><th>near p50 / p95</th>"),
            "{out}"
        );
        assert!(
            out.contains("<td>42.00ms / 84.00ms</td><td>2.00ms / 4.00ms</td>"),
            "{out}"
        );
        assert!(out.contains("&lt;tool&gt;"), "names are escaped: {out}");

        let one = BTreeMap::from([("near".to_owned(), region("agent-1", 0.002))]);
        let mut out = String::new();
        write_regions(&mut out, Some(&one)).unwrap();
        write_regions(&mut out, None).unwrap();
        assert!(out.is_empty());
    }
}
