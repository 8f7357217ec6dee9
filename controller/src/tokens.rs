//! The controller owns every user's tokens: it answers an agent's
//! `RefreshRequest` by refreshing (or re-logging-in) that user and hands the
//! new token back to be pushed as a `TokenUpdate`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::ids::UserName;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use crate::login::{Authenticator, LoginError, TokenSet};
use crate::messages::TokenUpdate;
use crate::provision::TestUser;

pub type RefreshResult = (UserName, Result<TokenSet, LoginError>);

pub struct TokenKeeper {
    auth: Arc<Authenticator>,
    users: BTreeMap<UserName, TestUser>,
    tokens: BTreeMap<UserName, TokenSet>,
    in_flight: BTreeSet<UserName>,
    results_tx: mpsc::Sender<RefreshResult>,
    pub results: mpsc::Receiver<RefreshResult>,
    pub refreshes: u64,
    pub refresh_failures: u64,
}

impl TokenKeeper {
    pub fn new(
        auth: Arc<Authenticator>,
        users: &[TestUser],
        tokens: BTreeMap<UserName, TokenSet>,
    ) -> TokenKeeper {
        let (results_tx, results) = mpsc::channel(256);
        TokenKeeper {
            auth,
            users: users.iter().map(|u| (u.name.clone(), u.clone())).collect(),
            tokens,
            in_flight: BTreeSet::new(),
            results_tx,
            results,
            refreshes: 0,
            refresh_failures: 0,
        }
    }

    pub fn token(&self, user: &UserName) -> Option<&TokenSet> {
        self.tokens.get(user)
    }

    /// Starts a refresh for `user` unless one is already running.
    pub fn request(&mut self, user: &UserName, tasks: &TaskTracker) {
        let Some(test_user) = self.users.get(user).cloned() else {
            tracing::warn!(%user, "refresh asked for a user that is not in this run");
            return;
        };
        if !self.in_flight.insert(user.clone()) {
            return;
        }
        let auth = self.auth.clone();
        let current = self.tokens.get(user).cloned();
        let tx = self.results_tx.clone();
        tasks.spawn(async move {
            let r = auth.refresh(&test_user, current.as_ref()).await;
            let _ = tx.send((test_user.name, r)).await;
        });
    }

    /// Records a finished refresh; the update to push to the user's agent.
    pub fn finish(&mut self, (user, result): RefreshResult) -> Option<TokenUpdate> {
        self.in_flight.remove(&user);
        match result {
            Ok(tokens) => {
                self.refreshes += 1;
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
                tracing::warn!(error = %e, "token refresh failed");
                None
            }
        }
    }
}
