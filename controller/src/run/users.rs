//! The run's users: choosing the provider, creating users (journaled first),
//! logging them in, and deleting them at the end whatever happened.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use common::ids::UserName;

use crate::login::{Authenticator, LoginOutcome, TokenSet, cache};
use crate::provision::{
    self, Journal, OcsProvider, Provider, ProvisionError, StaticUsers, TestUser, UserProvider,
};
use crate::settings::RunConfig;
use crate::settings::provider::ProviderConfig;
use crate::target::Target;

/// Most errors quoted in one message.
const ERRORS_SHOWN: usize = 3;
/// Bound on deleting users at the end.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Users of the run and what must be undone.
pub struct UserPool {
    pub provider: Provider,
    pub journal: Option<Journal>,
    pub users: Vec<TestUser>,
    /// Created by us (to delete at the end).
    pub created: Vec<UserName>,
    /// `--tenants`: the tenants' groups, and those we created (to delete).
    pub tenants: Vec<String>,
    groups_created: Vec<String>,
}

pub fn provider_for(config: &ProviderConfig, target: &Target) -> anyhow::Result<Provider> {
    Ok(match config {
        ProviderConfig::Embedded => {
            let e = target
                .embedded
                .as_ref()
                .context("--provider embedded needs the embedded mock target (no --url)")?;
            Provider::Ocs(OcsProvider::new(
                &e.admin_url,
                e.admin.user.clone(),
                e.admin.password.clone(),
            )?)
        }
        ProviderConfig::Nextcloud { base_url, admin } => Provider::Ocs(OcsProvider::new(
            base_url,
            admin.user.clone(),
            admin.password.clone(),
        )?),
        ProviderConfig::Static { .. } => Provider::Static(StaticUsers),
    })
}

impl UserPool {
    /// Picks the users (generated or from `--users-file`); creates nothing yet.
    pub fn new(config: &RunConfig, target: &Target) -> anyhow::Result<UserPool> {
        let provider = provider_for(&config.provider, target)?;
        let mut users = match &config.provider {
            ProviderConfig::Static { users_file } => StaticUsers::load(users_file, config.n_users)?,
            _ => (1..=config.n_users)
                .map(|i| TestUser::generate(&config.user_prefix, i))
                .collect(),
        };
        // Users go round the tenants: user n to tenant (n - 1) % N + 1.
        let tenants: Vec<String> = (1..=config.tenants)
            .map(|t| provision::tenant_name(&config.user_prefix, t))
            .collect();
        if !tenants.is_empty() {
            for (i, u) in users.iter_mut().enumerate() {
                u.tenant = Some(tenants[i % tenants.len()].clone());
            }
        }
        // The embedded target's users die with this process: nothing to journal.
        let journal = match (&config.provider, provider.manages_users()) {
            (ProviderConfig::Nextcloud { .. }, true) => {
                Some(Journal::open(&config.state_dir).with_context(|| {
                    format!(
                        "opening the user journal in --state-dir {}",
                        config.state_dir.display()
                    )
                })?)
            }
            _ => None,
        };
        Ok(UserPool {
            provider,
            journal,
            users,
            created: Vec::new(),
            tenants,
            groups_created: Vec::new(),
        })
    }

    /// User → tenant, for the report (empty without tenants).
    pub fn tenant_of(&self) -> std::collections::BTreeMap<String, String> {
        self.users
            .iter()
            .filter_map(|u| Some((u.name.to_string(), u.tenant.clone()?)))
            .collect()
    }

    /// Creates the tenants' groups (users created by us join them).
    async fn create_groups(&mut self) -> anyhow::Result<()> {
        let Provider::Ocs(ocs) = &self.provider else {
            // Users from a file: tenants are only labels in the report.
            return Ok(());
        };
        for group in &self.tenants {
            ocs.create_group(group)
                .await
                .with_context(|| format!("creating the group of tenant {group}"))?;
            self.groups_created.push(group.clone());
        }
        if !self.tenants.is_empty() {
            tracing::info!(n_tenants = self.tenants.len(), "tenant groups created");
        }
        Ok(())
    }

    /// Creates every user (journaled and fsynced first), `concurrency` at once.
    pub async fn create(&mut self, concurrency: usize) -> anyhow::Result<()> {
        if !self.provider.manages_users() {
            return Ok(());
        }
        self.create_groups().await?;
        let names: Vec<UserName> = self.users.iter().map(|u| u.name.clone()).collect();
        if let Some(j) = &self.journal {
            j.record_created(&self.provider.location(), &names)
                .with_context(|| format!("writing the user journal {}", j.path().display()))?;
        }
        let started = std::time::Instant::now();
        let (created, errors) =
            provision::create_all(&self.provider, &self.users, concurrency).await;
        self.created = created;
        if !errors.is_empty() {
            bail!(summarize("could not create", self.users.len(), &errors));
        }
        tracing::info!(n_users = self.created.len(), elapsed = ?started.elapsed(), "users created");
        Ok(())
    }

    /// Logs every user in, `concurrency` at once; with `cached` tokens
    /// (`--token-cache`), only those whose tokens cannot be reused or
    /// refreshed.
    pub async fn login(
        &self,
        auth: &Arc<Authenticator>,
        concurrency: usize,
        cached: BTreeMap<UserName, TokenSet>,
    ) -> anyhow::Result<LoginOutcome> {
        let started = std::time::Instant::now();
        let reused = if cached.is_empty() {
            None
        } else {
            Some(cache::reuse(auth, &self.users, cached, concurrency).await)
        };
        let to_log_in = reused
            .as_ref()
            .map_or(&self.users[..], |r| &r.to_log_in[..]);
        let mut outcome = auth.login_all(to_log_in, concurrency).await;
        if !outcome.failures.is_empty() {
            bail!(summarize(
                "could not log in",
                self.users.len(),
                &outcome.failures
            ));
        }
        if let Some(r) = reused {
            tracing::info!(
                reused = r.tokens.len() as u64 - r.refreshed,
                refreshed = r.refreshed,
                logging_in = r.to_log_in.len(),
                "tokens from the token cache"
            );
            outcome.from_cache = r.tokens.len() as u64;
            outcome.tokens.extend(r.tokens);
        }
        tracing::info!(n_users = outcome.tokens.len(), logged_in = outcome.latency.len(), elapsed = ?started.elapsed(), "users logged in");
        Ok(outcome)
    }

    /// Deletes what we created (bounded); reports but does not fail on errors.
    pub async fn cleanup(&mut self, concurrency: usize) {
        self.cleanup_users(concurrency).await;
        if let Provider::Ocs(ocs) = &self.provider {
            for group in std::mem::take(&mut self.groups_created) {
                if let Err(e) = ocs.delete_group(&group).await {
                    tracing::warn!(%group, error = %e, "could not delete a tenant group");
                }
            }
        }
    }

    async fn cleanup_users(&mut self, concurrency: usize) {
        if self.created.is_empty() {
            return;
        }
        let names = std::mem::take(&mut self.created);
        let work = provision::delete_all(&self.provider, &names, concurrency);
        match tokio::time::timeout(CLEANUP_TIMEOUT, work).await {
            Ok((deleted, errors)) => {
                if let Some(j) = &self.journal
                    && let Err(e) = j.record_deleted(&self.provider.location(), &deleted)
                {
                    tracing::warn!(error = %e, "could not update the user journal");
                }
                if errors.is_empty() {
                    tracing::info!(n_users = deleted.len(), "users deleted");
                } else {
                    tracing::warn!(
                        "{}; run `controller cleanup` to retry",
                        summarize("could not delete", names.len(), &errors)
                    );
                }
            }
            Err(_) => tracing::warn!(
                "deleting users took longer than {CLEANUP_TIMEOUT:?}; run `controller cleanup` to finish"
            ),
        }
    }
}

fn summarize<E: std::fmt::Display>(what: &str, n_total: usize, errors: &[E]) -> String {
    // First-seen order; the set keeps this linear when thousands of users fail.
    let mut seen = BTreeSet::new();
    let mut distinct: Vec<String> = Vec::new();
    for e in errors {
        let text = e.to_string();
        if seen.insert(text.clone()) {
            distinct.push(text);
        }
    }
    let more = distinct.len().saturating_sub(ERRORS_SHOWN);
    let shown: Vec<String> = distinct.into_iter().take(ERRORS_SHOWN).collect();
    format!(
        "{what} {} of {n_total} users: {}{}",
        errors.len(),
        shown.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    )
}

/// `controller cleanup`: deletes `{prefix}_user_*` through the provider and
/// whatever the journal still lists for it.
pub async fn cleanup_command(
    provider: &Provider,
    journal: Option<&Journal>,
    prefix: &str,
    dry_run: bool,
) -> anyhow::Result<usize> {
    let name_prefix = provision::name_prefix(prefix);
    let mut names: BTreeSet<UserName> = provider
        .list(&name_prefix)
        .await
        .map_err(|e: ProvisionError| anyhow::anyhow!(e))
        .context("listing users")?
        .into_iter()
        .collect();
    let location = provider.location();
    if let Some(j) = journal {
        let mut pending = j.pending().context("reading the user journal")?;
        if let Some(users) = pending.remove(&location) {
            names.extend(users);
        }
    }
    let names: Vec<UserName> = names.into_iter().collect();
    if dry_run {
        for n in &names {
            println!("would delete {n}");
        }
        println!("{} users would be deleted", names.len());
        return Ok(names.len());
    }
    let (deleted, errors) = provision::delete_all(provider, &names, 32).await;
    if let Some(j) = journal {
        j.record_deleted(&location, &deleted)
            .context("updating the user journal")?;
    }
    println!("deleted {} users", deleted.len());
    if !errors.is_empty() {
        bail!(summarize("could not delete", names.len(), &errors));
    }
    Ok(deleted.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_quotes_distinct_errors_in_order() {
        let check = |errors: &[&str], expected: &str| {
            assert_eq!(summarize("could not create", 9, errors), expected);
        };
        check(&["a", "b", "a"], "could not create 3 of 9 users: a; b");
        check(
            &["a", "b", "c", "d", "b", "e"],
            "could not create 6 of 9 users: a; b; c; and 2 more",
        );
        let many: Vec<String> = (0..10_000).map(|i| format!("user {i}: refused")).collect();
        assert!(summarize("could not log in", 10_000, &many).ends_with("and 9997 more"));
    }
}
