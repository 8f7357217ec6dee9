//! Per-tenant statistics (`--tenants N`): each tenant's users' operations
//! folded together (counts and their compact histograms merged), throughput
//! per user, and the fairness figure: the lowest and highest per-user
//! throughput over tenants, and their ratio (1 = every tenant served alike).

use std::collections::BTreeMap;
use std::time::Duration;

use common::report::{Fairness, LatencyStats, TenantReport, TenantsReport, round6, success_rate};
use common::series::{SeriesSet, UserStats};

/// `None` when the run has no tenants.
pub fn tenants_report(
    merged: &SeriesSet,
    tenant_of: &BTreeMap<String, String>,
    duration: Duration,
) -> Option<TenantsReport> {
    if tenant_of.is_empty() {
        return None;
    }
    let mut folded: BTreeMap<&str, (u64, UserStats)> = BTreeMap::new();
    for (user, tenant) in tenant_of {
        let entry = folded.entry(tenant.as_str()).or_default();
        entry.0 += 1;
        if let Some(stats) = merged.users.get(&common::ids::UserName::new(user.clone())) {
            entry.1.merge(stats);
        }
    }
    let secs = duration.as_secs_f64();
    let tenants: BTreeMap<String, TenantReport> = folded
        .into_iter()
        .map(|(name, (n_users, s))| {
            let throughput = if secs > 0.0 {
                s.total() as f64 / secs
            } else {
                0.0
            };
            let report = TenantReport {
                users: n_users,
                total_operations: s.total(),
                successful_operations: s.ok,
                failed_operations: s.failed,
                success_rate: success_rate(s.ok, s.ok + s.failed),
                throughput_per_sec: round6(throughput),
                throughput_per_user: round6(throughput / n_users.max(1) as f64),
                latency: LatencyStats::from_histogram(&s.latency),
            };
            (name.to_owned(), report)
        })
        .collect();
    let per_user = tenants.values().map(|t| t.throughput_per_user);
    let min = per_user.clone().fold(f64::INFINITY, f64::min);
    let max = per_user.fold(0.0, f64::max);
    Some(TenantsReport {
        fairness: Fairness {
            min_throughput_per_user: round6(min),
            max_throughput_per_user: round6(max),
            ratio: if max > 0.0 { round6(min / max) } else { 1.0 },
        },
        tenants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::ids::UserName;

    #[test]
    fn folds_users_into_tenants_and_compares_them() {
        let mut merged = SeriesSet::default();
        let calls = [("u1", 10), ("u2", 30), ("u3", 5), ("u4", 5)];
        for (user, n) in calls {
            for _ in 0..n {
                merged
                    .user(&UserName::new(user))
                    .record("tool", Duration::from_millis(4), None);
            }
        }
        let tenant_of: BTreeMap<String, String> =
            [("u1", "a"), ("u2", "a"), ("u3", "b"), ("u4", "b")]
                .into_iter()
                .map(|(u, t)| (u.to_owned(), t.to_owned()))
                .collect();
        let r = tenants_report(&merged, &tenant_of, Duration::from_secs(10)).unwrap();
        assert_eq!(r.tenants["a"].users, 2);
        assert_eq!(r.tenants["a"].total_operations, 40);
        assert_eq!(r.tenants["a"].throughput_per_user, 2.0);
        assert_eq!(r.tenants["b"].throughput_per_user, 0.5);
        assert_eq!(r.fairness.min_throughput_per_user, 0.5);
        assert_eq!(r.fairness.max_throughput_per_user, 2.0);
        assert_eq!(r.fairness.ratio, 0.25);
        assert!(tenants_report(&merged, &BTreeMap::new(), Duration::from_secs(1)).is_none());
    }
}
