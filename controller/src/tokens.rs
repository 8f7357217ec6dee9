//! The controller owns every user's tokens. It refreshes each one before it
//! expires (a margin of 10% of its lifetime, at least `login::MIN_MARGIN` but never
//! more than half the lifetime), answers an agent's `RefreshRequest` (a 401)
//! at once, retries failed refreshes with backoff and jitter, and hands every
//! new token back to be pushed to the user's agent as a `TokenUpdate`.
//! It runs as its own task (`spawn`): the run talks to it through `Tokens`
//! and receives the updates to push on a channel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::ids::UserName;
use rand::Rng as _;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::login::{Authenticator, LoginError, TokenSet, refresh_margin};
use crate::messages::TokenUpdate;
use crate::provision::TestUser;

/// First retry delay after a failed refresh; doubles per attempt.
const RETRY_BASE: Duration = Duration::from_millis(500);
/// Longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// New tokens waiting to be pushed to agents.
const UPDATE_QUEUE: usize = 256;

/// A finished renewal: whose, whether it was a whole new login (no refresh
/// token to use), and what came of it.
pub type RefreshResult = (UserName, bool, Result<TokenSet, LoginError>);

/// Logins the keeper runs at once to renew tokens without a refresh token
/// (servers that issue none, such as the Nextcloud MCP server by default):
/// users logged in together expire together, and a login is a browser's
/// worth of requests to the identity provider.
pub const RELOGIN_CONCURRENCY: usize = 8;

/// Delay before retry number `attempt` (1-based): exponential, capped, with
/// ±50% jitter so that many users failing together do not retry together.
pub fn retry_delay(attempt: u32, jitter: f64) -> Duration {
    let exp = RETRY_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    exp.min(RETRY_MAX).mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

/// Users' next refresh times, also ordered by time: the session loop asks for the next one
/// after every event, which must not scan every user of a 10,000-user run.
#[derive(Debug, Default)]
struct DueTimes {
    by_user: BTreeMap<UserName, Instant>,
    by_time: BTreeSet<(Instant, UserName)>,
}

impl DueTimes {
    /// Sets (or moves) `user`'s time.
    fn insert(&mut self, user: UserName, at: Instant) {
        if let Some(old) = self.by_user.insert(user.clone(), at) {
            self.by_time.remove(&(old, user.clone()));
        }
        self.by_time.insert((at, user));
    }

    fn remove(&mut self, user: &UserName) {
        if let Some(at) = self.by_user.remove(user) {
            self.by_time.remove(&(at, user.clone()));
        }
    }

    fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns the users whose time is `now` or earlier, earliest first.
    fn take_due(&mut self, now: Instant) -> Vec<UserName> {
        let mut out = Vec::new();
        while self.by_time.first().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, user)) = self.by_time.pop_first() {
                self.by_user.remove(&user);
                out.push(user);
            }
        }
        out
    }
}

/// When a token should be refreshed unasked, on the tokio clock; `None` when
/// its lifetime is unknown.
fn refresh_at(tokens: &TokenSet, now: Instant, wall_now: SystemTime) -> Option<Instant> {
    let expires_at = tokens.expires_at?;
    let lifetime = tokens.lifetime?;
    let left = expires_at.duration_since(wall_now).unwrap_or_default();
    Some(now + left.saturating_sub(refresh_margin(lifetime)))
}

pub struct TokenKeeper {
    auth: Arc<Authenticator>,
    users: BTreeMap<UserName, TestUser>,
    tokens: BTreeMap<UserName, TokenSet>,
    in_flight: BTreeSet<UserName>,
    /// When each user's token is next refreshed without being asked.
    due: DueTimes,
    /// Failed attempts in a row, per user.
    attempts: BTreeMap<UserName, u32>,
    results_tx: mpsc::Sender<RefreshResult>,
    results: mpsc::Receiver<RefreshResult>,
    /// Bounds the logins that renew tokens without a refresh token.
    relogins_at_once: Arc<tokio::sync::Semaphore>,
    refreshes: u64,
    refresh_failures: u64,
    /// Renewals that were whole logins (no refresh token), successful.
    relogins: u64,
}

impl TokenKeeper {
    pub fn new(
        auth: Arc<Authenticator>,
        users: &[TestUser],
        tokens: BTreeMap<UserName, TokenSet>,
    ) -> TokenKeeper {
        let (results_tx, results) = mpsc::channel(256);
        let (now, wall_now) = (Instant::now(), SystemTime::now());
        let mut due = DueTimes::default();
        for (u, t) in &tokens {
            if let Some(at) = refresh_at(t, now, wall_now) {
                due.insert(u.clone(), at);
            }
        }
        TokenKeeper {
            auth,
            users: users.iter().map(|u| (u.name.clone(), u.clone())).collect(),
            tokens,
            in_flight: BTreeSet::new(),
            due,
            attempts: BTreeMap::new(),
            results_tx,
            results,
            relogins_at_once: Arc::new(tokio::sync::Semaphore::new(RELOGIN_CONCURRENCY)),
            refreshes: 0,
            refresh_failures: 0,
            relogins: 0,
        }
    }

    pub fn token(&self, user: &UserName) -> Option<&TokenSet> {
        self.tokens.get(user)
    }

    /// The next instant a scheduled refresh (or retry) is due.
    fn next_due(&self) -> Option<Instant> {
        self.due.next()
    }

    /// Starts every refresh whose time has come.
    fn start_due(&mut self, tasks: &TaskTracker) {
        for user in self.due.take_due(Instant::now()) {
            self.request(&user, tasks);
        }
    }

    /// Starts a refresh for `user` unless one is already running.
    fn request(&mut self, user: &UserName, tasks: &TaskTracker) {
        let Some(test_user) = self.users.get(user).cloned() else {
            tracing::warn!(%user, "refresh asked for a user that is not in this run");
            return;
        };
        if !self.in_flight.insert(user.clone()) {
            return;
        }
        self.due.remove(user);
        let auth = self.auth.clone();
        let current = self.tokens.get(user).cloned();
        let relogin = current.as_ref().is_none_or(|t| t.refresh.is_none());
        let limit = self.relogins_at_once.clone();
        let tx = self.results_tx.clone();
        tasks.spawn(async move {
            // A whole login waits its turn; a refresh grant does not.
            let _permit = if relogin {
                limit.acquire_owned().await.ok()
            } else {
                None
            };
            let r = auth.refresh(&test_user, current.as_ref()).await;
            let _ = tx.send((test_user.name, relogin, r)).await;
        });
    }

    /// Records a finished refresh; the update to push to the user's agent.
    /// A failure is retried after a backoff.
    fn finish(&mut self, (user, relogin, result): RefreshResult) -> Option<TokenUpdate> {
        self.in_flight.remove(&user);
        match result {
            Ok(tokens) => {
                tracing::debug!(%user, relogin, "token renewed");
                self.refreshes += 1;
                if relogin && tokens.refresh.is_none() {
                    self.relogins += 1;
                }
                self.attempts.remove(&user);
                if let Some(at) = refresh_at(&tokens, Instant::now(), SystemTime::now()) {
                    self.due.insert(user.clone(), at);
                }
                let update = TokenUpdate {
                    user: user.clone(),
                    access_token: tokens.access.clone(),
                    expires_at_ms: tokens.expires_at_ms(),
                };
                self.tokens.insert(user, tokens);
                Some(update)
            }
            Err(e) => {
                self.refresh_failures += 1;
                let attempt = self.attempts.entry(user.clone()).or_default();
                *attempt += 1;
                let delay = retry_delay(*attempt, rand::rng().random::<f64>());
                tracing::warn!(%user, attempt = *attempt, retry_in = ?delay, error = %e, "token refresh failed");
                self.due.insert(user, Instant::now() + delay);
                None
            }
        }
    }
}

/// What the run asks of the token task.
enum Command {
    /// An agent got a 401 for this user.
    Refresh(UserName),
    /// The current tokens of these users (for a re-assignment).
    Current(Vec<UserName>, oneshot::Sender<Vec<TokenUpdate>>),
}

/// Refresh counts for the report, and every user's last tokens.
#[derive(Debug, Default)]
pub struct TokenStats {
    pub refreshes: u64,
    pub refresh_failures: u64,
    /// Of `refreshes`, those that were whole logins (no refresh token).
    pub relogins: u64,
    pub tokens: BTreeMap<UserName, TokenSet>,
}

/// The run's handle on the token task.
pub struct Tokens {
    commands: mpsc::UnboundedSender<Command>,
    task: tokio::task::JoinHandle<TokenStats>,
    /// New tokens, to push to the agents that hold their users.
    pub updates: mpsc::Receiver<TokenUpdate>,
}

/// Starts the token task: it refreshes on schedule and on request until
/// `cancel` fires or `Tokens::finish`, and sends every new token on
/// `Tokens::updates`.
pub fn spawn(keeper: TokenKeeper, tasks: &TaskTracker, cancel: CancellationToken) -> Tokens {
    let (commands, rx) = mpsc::unbounded_channel();
    let (updates_tx, updates) = mpsc::channel(UPDATE_QUEUE);
    let task = tasks.spawn(keeper.run(rx, updates_tx, tasks.clone(), cancel));
    Tokens {
        commands,
        task,
        updates,
    }
}

impl Tokens {
    /// Asks for a refresh of `user` (an agent got a 401); never waits.
    pub fn request(&self, user: UserName) {
        let _ = self.commands.send(Command::Refresh(user));
    }

    /// The current token of each of `users` that has one.
    pub async fn current(&self, users: Vec<UserName>) -> Vec<TokenUpdate> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Current(users, tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Stops the task and returns its counts.
    pub async fn finish(self) -> TokenStats {
        drop(self.commands);
        self.task.await.unwrap_or_default()
    }
}

/// Sleeps until `at`, or forever when there is nothing scheduled.
async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl TokenKeeper {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        updates: mpsc::Sender<TokenUpdate>,
        tasks: TaskTracker,
        cancel: CancellationToken,
    ) -> TokenStats {
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = sleep_until_opt(self.next_due()) => self.start_due(&tasks),
                Some(result) = self.results.recv() => {
                    if let Some(update) = self.finish(result)
                        && updates.send(update).await.is_err()
                    {
                        break;
                    }
                }
                command = commands.recv() => match command {
                    None => break,
                    Some(Command::Refresh(user)) => self.request(&user, &tasks),
                    Some(Command::Current(users, reply)) => {
                        let current = users.iter().filter_map(|u| self.update_for(u)).collect();
                        let _ = reply.send(current);
                    }
                },
            }
        }
        TokenStats {
            refreshes: self.refreshes,
            refresh_failures: self.refresh_failures,
            relogins: self.relogins,
            tokens: self.tokens,
        }
    }

    fn update_for(&self, user: &UserName) -> Option<TokenUpdate> {
        self.tokens.get(user).map(|t| TokenUpdate {
            user: user.clone(),
            access_token: t.access.clone(),
            expires_at_ms: t.expires_at_ms(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_a_tenth_at_least_30s_at_most_half() {
        let check = |lifetime_s: u64, margin_s: f64| {
            assert_eq!(
                refresh_margin(Duration::from_secs(lifetime_s)),
                Duration::from_secs_f64(margin_s),
                "lifetime {lifetime_s}s"
            );
        };
        check(3600, 360.0); // 10%
        check(120, 30.0); // at least 30 s
        check(5, 2.5); // never more than half
        check(60, 30.0);
        check(0, 0.0);
    }

    #[test]
    fn retries_back_off_with_jitter_and_a_cap() {
        assert_eq!(retry_delay(1, 0.5), Duration::from_millis(500));
        assert_eq!(retry_delay(2, 0.5), Duration::from_secs(1));
        assert_eq!(retry_delay(3, 0.0), Duration::from_secs(1));
        assert_eq!(retry_delay(3, 1.0), Duration::from_secs(3));
        assert_eq!(retry_delay(40, 0.5), RETRY_MAX);
        assert!(retry_delay(u32::MAX, 1.0) <= RETRY_MAX.mul_f64(1.5));
    }

    #[test]
    fn due_times_come_out_in_order_once() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let u = |n: &str| UserName::new(n.to_owned());
        let mut due = DueTimes::default();
        due.insert(u("a"), at(30));
        due.insert(u("b"), at(10));
        due.insert(u("c"), at(20));
        due.insert(u("a"), at(5)); // moved earlier
        due.remove(&u("c"));
        due.remove(&u("nobody"));
        assert_eq!(due.next(), Some(at(5)));
        assert_eq!(due.take_due(at(4)), Vec::<UserName>::new());
        assert_eq!(due.take_due(at(10)), vec![u("a"), u("b")]);
        assert_eq!(due.next(), None);
        assert!(due.by_user.is_empty() && due.by_time.is_empty());
        // Equal times are kept apart by the user.
        due.insert(u("x"), at(1));
        due.insert(u("y"), at(1));
        assert_eq!(due.take_due(at(1)).len(), 2);
    }

    #[test]
    fn refresh_time_follows_expiry() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let t = |expires_in: u64, lifetime: Option<u64>| TokenSet {
            access: common::Secret::new("a".to_owned()),
            refresh: None,
            expires_at: Some(wall + Duration::from_secs(expires_in)),
            lifetime: lifetime.map(Duration::from_secs),
        };
        assert_eq!(
            refresh_at(&t(3600, Some(3600)), now, wall),
            Some(now + Duration::from_secs(3240))
        );
        // Already inside the margin: at once.
        assert_eq!(refresh_at(&t(10, Some(3600)), now, wall), Some(now));
        assert_eq!(refresh_at(&t(10, None), now, wall), None);
    }
}
