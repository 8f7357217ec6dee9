//! Test users: who they are, where they come from (`UserProvider`), and the
//! journal that lets `controller cleanup` remove them after a crash.

pub mod journal;
pub mod nextcloud;
pub mod static_users;

use std::fmt;

use common::Secret;
use common::ids::UserName;
use futures::StreamExt;
use rand::Rng;

pub use journal::Journal;
pub use nextcloud::{OCS_USERS_PATH, OcsProvider};
pub use static_users::StaticUsers;

/// Length of generated user passwords.
const PASSWORD_LEN: usize = 24;

/// A user of the run with the password it logs in with.
#[derive(Clone)]
pub struct TestUser {
    /// 1-based, as in the name.
    pub index: u32,
    pub name: UserName,
    pub password: Secret,
    pub display_name: String,
    pub email: String,
    /// `--tenants`: the tenant (group) the user belongs to.
    pub tenant: Option<String>,
}

impl fmt::Debug for TestUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestUser")
            .field("index", &self.index)
            .field("name", &self.name)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

impl TestUser {
    /// `{prefix}_user_{n}` with a fresh random password.
    pub fn generate(prefix: &str, index: u32) -> TestUser {
        let name = user_name(prefix, index);
        TestUser {
            index,
            display_name: format!("Load Test User {index}"),
            email: format!("{name}@benchmark.local"),
            name: UserName::new(name),
            password: random_secret(PASSWORD_LEN),
            tenant: None,
        }
    }
}

/// `{prefix}_tenant_{n}`, 1-based: the Nextcloud group of tenant `n`.
pub fn tenant_name(prefix: &str, n: u32) -> String {
    format!("{prefix}_tenant_{n}")
}

pub fn user_name(prefix: &str, index: u32) -> String {
    format!("{prefix}_user_{index}")
}

/// The prefix every user of a run shares (`loadtest_user_`).
pub fn name_prefix(prefix: &str) -> String {
    format!("{prefix}_user_")
}

/// Alphanumeric random string (passwords, the cluster secret, PKCE verifiers).
pub fn random_secret(len: usize) -> Secret {
    let s: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect();
    Secret::new(s)
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{op} {user}: {source}")]
    Http {
        op: &'static str,
        user: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{op} {user}: the admin API answered HTTP {status}: {message}")]
    Rejected {
        op: &'static str,
        user: String,
        status: u16,
        message: String,
    },
    #[error(
        "user {user} already exists (left over from an earlier run? run `controller cleanup --prefix {prefix}` or use another --user-prefix)"
    )]
    AlreadyExists { user: String, prefix: String },
    #[error(
        "the admin API refused the admin credentials (HTTP {status}): check NEXTCLOUD_ADMIN_USER/NEXTCLOUD_ADMIN_PASSWORD"
    )]
    Unauthorized { status: u16 },
    #[error("--users-file {path}: {message}")]
    UsersFile { path: String, message: String },
}

/// Creates, deletes and lists users on the target's identity store.
pub trait UserProvider: Send + Sync {
    fn create(&self, user: &TestUser) -> impl Future<Output = Result<(), ProvisionError>> + Send;
    fn delete(&self, name: &UserName) -> impl Future<Output = Result<(), ProvisionError>> + Send;
    /// Users whose name starts with `prefix`.
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<UserName>, ProvisionError>> + Send;
    /// Whether this provider creates users (and so must delete them).
    fn manages_users(&self) -> bool;
    /// Where users live, for the journal (`http://host/`).
    fn location(&self) -> String;
}

/// The provider chosen for a run.
pub enum Provider {
    Ocs(OcsProvider),
    Static(StaticUsers),
}

impl UserProvider for Provider {
    async fn create(&self, user: &TestUser) -> Result<(), ProvisionError> {
        match self {
            Provider::Ocs(p) => p.create(user).await,
            Provider::Static(p) => p.create(user).await,
        }
    }
    async fn delete(&self, name: &UserName) -> Result<(), ProvisionError> {
        match self {
            Provider::Ocs(p) => p.delete(name).await,
            Provider::Static(p) => p.delete(name).await,
        }
    }
    async fn list(&self, prefix: &str) -> Result<Vec<UserName>, ProvisionError> {
        match self {
            Provider::Ocs(p) => p.list(prefix).await,
            Provider::Static(p) => p.list(prefix).await,
        }
    }
    fn manages_users(&self) -> bool {
        match self {
            Provider::Ocs(p) => p.manages_users(),
            Provider::Static(p) => p.manages_users(),
        }
    }
    fn location(&self) -> String {
        match self {
            Provider::Ocs(p) => p.location(),
            Provider::Static(p) => p.location(),
        }
    }
}

/// Creates `users` concurrently (at most `concurrency` at once). Returns the
/// names that were created even when some failed, so they can be deleted.
pub async fn create_all<P: UserProvider>(
    provider: &P,
    users: &[TestUser],
    concurrency: usize,
) -> (Vec<UserName>, Vec<ProvisionError>) {
    let results: Vec<(UserName, Result<(), ProvisionError>)> = futures::stream::iter(users)
        .map(|u| async move { (u.name.clone(), provider.create(u).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut created = Vec::new();
    let mut errors = Vec::new();
    for (name, r) in results {
        match r {
            Ok(()) => created.push(name),
            Err(e) => errors.push(e),
        }
    }
    (created, errors)
}

/// Deletes `names` concurrently; returns the ones actually deleted and the errors.
pub async fn delete_all<P: UserProvider>(
    provider: &P,
    names: &[UserName],
    concurrency: usize,
) -> (Vec<UserName>, Vec<ProvisionError>) {
    let results: Vec<(UserName, Result<(), ProvisionError>)> = futures::stream::iter(names)
        .map(|n| async move { (n.clone(), provider.delete(n).await) })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (name, r) in results {
        match r {
            Ok(()) => deleted.push(name),
            Err(e) => errors.push(e),
        }
    }
    (deleted, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_users_follow_the_framework() {
        let u = TestUser::generate("loadtest", 3);
        assert_eq!(u.name.as_str(), "loadtest_user_3");
        assert_eq!(u.display_name, "Load Test User 3");
        assert_eq!(u.email, "loadtest_user_3@benchmark.local");
        assert_eq!(u.password.expose().len(), 24);
        assert!(!format!("{u:?}").contains(u.password.expose()));
    }
}
