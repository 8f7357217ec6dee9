//! The per-user section: which users are worth a look (the slowest, those
//! with the most errors), the spread over all of them, and — for runs with
//! more users than a report should list — the CSV file beside the JSON
//! report that holds every user, one row each.
//!
//! A 100,000-user run listed in the JSON report took 40 MB, most of it the
//! same keys repeated per user; its CSV takes a fifth of that and opens in
//! any spreadsheet or data-frame library.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use common::report::{UserReport, UsersDetail};

/// Slowest users and users with the most errors a report keeps when every
/// user is in the CSV file.
const LISTED: usize = 50;

/// `report.json` → `report.users.csv` (beside it).
pub fn csv_path(report: &Path) -> PathBuf {
    let stem = report
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".to_owned());
    report.with_file_name(format!("{stem}.users.csv"))
}

/// Lowest, median, 95th percentile and highest of `values` (nearest rank).
pub fn spread(mut values: Vec<f64>) -> [f64; 4] {
    values.sort_by(f64::total_cmp);
    [0.0, 0.5, 0.95, 1.0].map(|q| nearest_rank(&values, q))
}

/// The value at quantile `q` of sorted `values` (nearest rank), 0 when empty.
fn nearest_rank(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// Tool calls per second of each user over `duration` seconds.
pub fn throughputs<'a>(users: impl Iterator<Item = &'a UserReport>, duration: f64) -> Vec<f64> {
    users
        .map(|u| {
            if duration > 0.0 {
                u.total_operations as f64 / duration
            } else {
                0.0
            }
        })
        .collect()
}

/// The `n` slowest users by p95, ties by name.
pub fn slowest<'a>(
    users: &[(&'a str, &'a UserReport)],
    n: usize,
) -> Vec<(&'a str, &'a UserReport)> {
    let mut out = users.to_vec();
    out.sort_by(|a, b| {
        b.1.latency
            .p95
            .total_cmp(&a.1.latency.p95)
            .then_with(|| natural_cmp(a.0, b.0))
    });
    out.truncate(n);
    out
}

/// The `n` users with the most failed calls (only those with any).
pub fn most_failing<'a>(
    users: &[(&'a str, &'a UserReport)],
    n: usize,
) -> Vec<(&'a str, &'a UserReport)> {
    let mut out: Vec<_> = users
        .iter()
        .copied()
        .filter(|(_, u)| u.failed_operations > 0)
        .collect();
    out.sort_by(|a, b| {
        b.1.failed_operations
            .cmp(&a.1.failed_operations)
            .then_with(|| natural_cmp(a.0, b.0))
    });
    out.truncate(n);
    out
}

/// Splits `users` for a report written to `report_path`: with at most
/// `inline_max` users, `None` (the report lists them all). With more,
/// writes every user to the CSV file beside the report and returns the
/// users the report keeps and the detail that points to the file.
pub fn split(
    users: &BTreeMap<String, UserReport>,
    duration: f64,
    report_path: &Path,
    inline_max: usize,
) -> anyhow::Result<Option<(BTreeMap<String, UserReport>, UsersDetail)>> {
    if users.len() <= inline_max {
        return Ok(None);
    }
    let path = csv_path(report_path);
    let columns = write_csv(users, &path)?;
    let all: Vec<(&str, &UserReport)> = users.iter().map(|(n, u)| (n.as_str(), u)).collect();
    let keep: BTreeSet<&str> = slowest(&all, LISTED)
        .into_iter()
        .chain(most_failing(&all, LISTED))
        .map(|(name, _)| name)
        .collect();
    let listed = keep
        .iter()
        .map(|name| ((*name).to_owned(), users[*name].clone()))
        .collect();
    let detail = UsersDetail {
        users: users.len() as u64,
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        columns,
        listed: format!(
            "the {LISTED} slowest users by p95 and the {LISTED} with the most failed calls; \
             every user is in the file"
        ),
        throughput_spread: spread(throughputs(users.values(), duration)),
        p95_spread: spread(users.values().map(|u| u.latency.p95).collect()),
    };
    Ok(Some((listed, detail)))
}

/// Every user, one row each in natural order (`user_2` before `user_10`),
/// written atomically; returns the header.
fn write_csv(users: &BTreeMap<String, UserReport>, path: &Path) -> anyhow::Result<Vec<String>> {
    let tools: BTreeSet<&str> = users
        .values()
        .flat_map(|u| u.operations_breakdown.keys().map(String::as_str))
        .collect();
    let kinds: BTreeSet<&str> = users
        .values()
        .flat_map(|u| u.errors_breakdown.keys().map(String::as_str))
        .collect();
    let mut columns: Vec<String> = [
        "user",
        "total_operations",
        "successful_operations",
        "failed_operations",
        "conflicted_operations",
        "success_rate",
        "latency_min",
        "latency_mean",
        "latency_median",
        "latency_p90",
        "latency_p95",
        "latency_p99",
        "latency_max",
    ]
    .map(str::to_owned)
    .to_vec();
    columns.extend(tools.iter().map(|t| format!("calls:{t}")));
    columns.extend(kinds.iter().map(|k| format!("errors:{k}")));

    let mut out = csv::Writer::from_writer(Vec::with_capacity(users.len() * 64));
    out.write_record(&columns)?;
    let mut rows: Vec<(&String, &UserReport)> = users.iter().collect();
    rows.sort_by(|a, b| natural_cmp(a.0, b.0));
    let mut row: Vec<String> = Vec::with_capacity(columns.len());
    for (name, u) in rows {
        row.clear();
        row.push(name.clone());
        row.extend(
            [
                u.total_operations,
                u.successful_operations,
                u.failed_operations,
                u.conflicted_operations,
            ]
            .map(|n| n.to_string()),
        );
        let l = &u.latency;
        row.extend(
            [
                u.success_rate,
                l.min,
                l.mean,
                l.median,
                l.p90,
                l.p95,
                l.p99,
                l.max,
            ]
            .map(number),
        );
        row.extend(tools.iter().map(|t| {
            u.operations_breakdown
                .get(*t)
                .copied()
                .unwrap_or(0)
                .to_string()
        }));
        row.extend(
            kinds
                .iter()
                .map(|k| u.errors_breakdown.get(*k).copied().unwrap_or(0).to_string()),
        );
        out.write_record(&row)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("encoding the per-user CSV: {}", e.error()))?;
    super::write_atomic(path, &bytes)
        .with_context(|| format!("writing every user's figures to {}", path.display()))?;
    Ok(columns)
}

/// A figure as the JSON report writes it, without a trailing `.0`.
fn number(x: f64) -> String {
    if x == 0.0 {
        "0".to_owned()
    } else {
        x.to_string()
    }
}

/// Names in their natural order: `user_2` before `user_10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let end_a = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                let end_b = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
                let (na, nb) = (
                    a[..end_a].trim_start_matches('0'),
                    b[..end_b].trim_start_matches('0'),
                );
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[end_a..];
                b = &b[end_b..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                a = &a[x.len_utf8()..];
                b = &b[y.len_utf8()..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::report::LatencyStats;

    fn user(ops: u64, failed: u64, p95: f64) -> UserReport {
        UserReport {
            total_operations: ops,
            successful_operations: ops - failed,
            failed_operations: failed,
            conflicted_operations: 0,
            success_rate: 100.0,
            latency: LatencyStats {
                p95,
                ..Default::default()
            },
            operations_breakdown: BTreeMap::from([("tool_a".to_owned(), ops)]),
            errors_breakdown: if failed > 0 {
                BTreeMap::from([("timeout".to_owned(), failed)])
            } else {
                BTreeMap::new()
            },
        }
    }

    #[test]
    fn a_small_run_keeps_every_user_in_the_report() {
        let dir = tempfile::tempdir().unwrap();
        let users = BTreeMap::from([("u1".to_owned(), user(3, 0, 0.1))]);
        let path = dir.path().join("r.json");
        assert!(split(&users, 10.0, &path, 1).unwrap().is_none());
        assert!(!csv_path(&path).exists());
    }

    #[test]
    fn a_big_run_writes_every_user_to_the_csv_and_keeps_the_worst() {
        let dir = tempfile::tempdir().unwrap();
        let users: BTreeMap<String, UserReport> = (0..200)
            .map(|i| {
                let failed = u64::from(i % 7 == 0);
                (format!("user_{i}"), user(10, failed, f64::from(i) / 1000.0))
            })
            .collect();
        let path = dir.path().join("r.json");
        let (listed, detail) = split(&users, 10.0, &path, 100).unwrap().unwrap();
        assert_eq!(detail.users, 200);
        assert_eq!(detail.file, "r.users.csv");
        assert!(listed.contains_key("user_199"), "the slowest is listed");
        assert!(listed.contains_key("user_0"), "the most failing are listed");
        assert!(listed.len() <= 2 * LISTED);
        assert_eq!(detail.p95_spread[3], 0.199);
        assert_eq!(detail.throughput_spread, [1.0; 4]);

        let mut reader = csv::Reader::from_path(dir.path().join("r.users.csv")).unwrap();
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(header, detail.columns);
        assert!(header.contains(&"calls:tool_a".to_owned()));
        assert!(header.contains(&"errors:timeout".to_owned()));
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 200);
        let row = rows.iter().find(|r| &r[0] == "user_7").unwrap();
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        assert_eq!(&row[col("failed_operations")], "1");
        assert_eq!(&row[col("latency_p95")], "0.007");
        assert_eq!(&row[col("errors:timeout")], "1");
    }

    #[test]
    fn names_sort_naturally() {
        assert_eq!(natural_cmp("user_2", "user_10"), Ordering::Less);
        assert_eq!(natural_cmp("a", "b"), Ordering::Less);
    }
}
