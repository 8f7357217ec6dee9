//! Browser sessions as Nextcloud keeps them: a cookie naming a server-side session that holds
//! the logged-in user, the CSRF request token every page carries in `<head data-requesttoken>`,
//! and what a flow in progress parked there (the oidc app's pending consent, Login Flow v2's
//! tokens). Bounded in count and expired when idle, so no client can grow it without end.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};

use crate::Secret;
use crate::authz::AuthRequest;
use crate::http::random_token;

/// The session cookie's name (Nextcloud names its own after the instance id).
pub const COOKIE: &str = "nc_session";
/// A session unused for this long is gone, as PHP's session GC makes it.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
/// More sessions than this evicts the least recently used.
pub const MAX_SESSIONS: usize = 10_000;
/// Consents remembered (user, client, scopes); past this the memory is cleared.
const MAX_CONSENTS: usize = 100_000;

/// An authorization request waiting on the consent page.
#[derive(Debug, Clone)]
pub struct PendingConsent {
    pub request: AuthRequest,
    pub client_name: String,
}

#[derive(Debug)]
pub struct Session {
    pub user: Option<String>,
    /// The CSRF token of every page of this session, checked on every POST.
    pub request_token: Secret,
    /// A failed login's message, shown once by the next login page.
    pub login_message: Option<String>,
    pub consent: Option<PendingConsent>,
    /// Login Flow v2: the flow's login token, then the state token of its grant page.
    pub flow_login_token: Option<String>,
    pub flow_state_token: Option<Secret>,
    last_used: Instant,
}

impl Session {
    fn new() -> Self {
        Self {
            user: None,
            request_token: Secret::new(random_token()),
            login_message: None,
            consent: None,
            flow_login_token: None,
            flow_state_token: None,
            last_used: Instant::now(),
        }
    }
}

#[derive(Default)]
pub struct Sessions {
    by_id: HashMap<String, Session>,
    consents: HashSet<(String, String, String)>,
}

/// The session id a request's `Cookie` header names, if any.
pub fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value for session `id`.
pub fn set_cookie(id: &str) -> HeaderValue {
    // A random token is URL-safe base64: always a valid header value.
    HeaderValue::from_str(&format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax"))
        .unwrap_or_else(|_| HeaderValue::from_static("nc_session=; Path=/"))
}

impl Sessions {
    /// The live session named by the request's cookie.
    pub fn get(&mut self, headers: &HeaderMap) -> Option<(String, &mut Session)> {
        let id = cookie_of(headers)?;
        let now = Instant::now();
        let live = self
            .by_id
            .get(&id)
            .is_some_and(|s| s.last_used + SESSION_TTL > now);
        if !live {
            self.by_id.remove(&id);
            return None;
        }
        let session = self.by_id.get_mut(&id)?;
        session.last_used = now;
        Some((id, session))
    }

    /// The request's session, or a new one; the id comes back with `true` when it is new
    /// (the response must set the cookie).
    pub fn get_or_create(&mut self, headers: &HeaderMap) -> (String, bool) {
        if let Some((id, _)) = self.get(headers) {
            return (id, false);
        }
        (self.create(), true)
    }

    /// A new, empty session.
    pub fn create(&mut self) -> String {
        self.make_room();
        let id = random_token();
        self.by_id.insert(id.clone(), Session::new());
        id
    }

    pub fn by_id(&mut self, id: &str) -> Option<&mut Session> {
        self.by_id.get_mut(id)
    }

    /// Logs `user` in: the session moves to a new id (as Nextcloud regenerates its session
    /// id on login, against fixation) keeping what flows parked in it; returns the new id.
    pub fn log_in(&mut self, old: &str, user: &str) -> String {
        let mut session = self.by_id.remove(old).unwrap_or_else(Session::new);
        session.user = Some(user.to_owned());
        session.login_message = None;
        session.request_token = Secret::new(random_token());
        session.last_used = Instant::now();
        self.make_room();
        let id = random_token();
        self.by_id.insert(id.clone(), session);
        id
    }

    pub fn has_consent(&self, user: &str, client: &str, scope: &str) -> bool {
        self.consents
            .contains(&(user.to_owned(), client.to_owned(), scope.to_owned()))
    }

    pub fn remember_consent(&mut self, user: &str, client: &str, scope: &str) {
        if self.consents.len() >= MAX_CONSENTS {
            self.consents.clear();
        }
        self.consents
            .insert((user.to_owned(), client.to_owned(), scope.to_owned()));
    }

    /// Drops expired sessions; if still full, the least recently used one.
    fn make_room(&mut self) {
        if self.by_id.len() < MAX_SESSIONS {
            return;
        }
        let now = Instant::now();
        self.by_id.retain(|_, s| s.last_used + SESSION_TTL > now);
        if self.by_id.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .by_id
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| id.clone())
        {
            self.by_id.remove(&oldest);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={id}"))
                .unwrap_or(HeaderValue::from_static("")),
        );
        h
    }

    #[test]
    fn sessions_are_found_by_cookie_move_on_login_and_stay_bounded() {
        let mut s = Sessions::default();
        let (id, new) = s.get_or_create(&HeaderMap::new());
        assert!(new);
        assert_eq!(s.get_or_create(&with_cookie(&id)), (id.clone(), false));
        let logged = s.log_in(&id, "alice");
        assert!(s.get(&with_cookie(&id)).is_none(), "the old id is gone");
        let user = s
            .get(&with_cookie(&logged))
            .and_then(|(_, x)| x.user.clone());
        assert_eq!(user.as_deref(), Some("alice"));
        for _ in 0..MAX_SESSIONS + 10 {
            s.create();
        }
        assert!(s.len() <= MAX_SESSIONS);
    }
}
