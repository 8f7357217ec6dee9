//! The authorization server's memory: registered clients, pending authorizations, codes, and
//! issued tokens grouped in families (one family per login) so reuse can revoke them together.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::jwt::{Claims, Keys};
use crate::Secret;
use crate::authz::AuthRequest;
use crate::http::random_token;
use crate::state::now_secs;

/// How long an authorization code may be redeemed.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a login form stays valid.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Expired access-token records are pruned every this many issuances.
const PRUNE_EVERY: u64 = 1024;

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: Option<Secret>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub auth_method: super::TokenAuthMethod,
    pub name: Option<String>,
    pub scope: String,
    pub issued_at: u64,
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret.is_none()
    }

    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
            // A client that may log users in may also refresh what it got.
            || (grant == "refresh_token"
                && self.grant_types.iter().any(|g| g == "authorization_code" || g == "password"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    Login,
    Consent { user: String },
}

/// A login form shown to a browser, waiting for its POST.
#[derive(Debug)]
pub struct Pending {
    pub request: AuthRequest,
    /// Single-use anti-CSRF value; replaced on every render.
    pub csrf: Secret,
    pub stage: Stage,
    pub created: Instant,
}

#[derive(Debug)]
pub struct CodeGrant {
    pub request: AuthRequest,
    pub user: String,
    pub expires: Instant,
    pub used: bool,
    /// The token family issued from this code, revoked if the code is replayed.
    pub family: Option<u64>,
}

#[derive(Debug)]
pub struct Family {
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub revoked: bool,
    pub access: Vec<String>,
    /// The one refresh token of this family that may still be used.
    pub current_refresh: Option<String>,
}

#[derive(Debug)]
pub struct AccessRecord {
    pub exp: u64,
    /// SHA-256 of the token as issued: a bearer token whose digest matches is the one we
    /// signed, so its signature need not be checked again on every request.
    pub digest: [u8; 32],
}

/// SHA-256 of a token, as kept in its `AccessRecord`.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What `/token` returns.
#[derive(Debug)]
pub struct Issued {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    /// With the `openid` scope (set by the token endpoint, not by `issue`).
    pub id_token: Option<Secret>,
    pub scope: String,
}

/// Issuer-wide settings a token is minted with.
pub struct Minter<'a> {
    pub keys: &'a Keys,
    pub iss: &'a str,
    /// The access token's audiences: the client id and the resource.
    pub aud: Vec<String>,
    pub ttl: Duration,
}

#[derive(Default)]
pub struct AuthStore {
    pub clients: HashMap<String, Client>,
    pub pending: HashMap<String, Pending>,
    pub codes: HashMap<String, CodeGrant>,
    /// refresh token → family id (rotated-out tokens stay here so reuse is detected).
    pub refresh: HashMap<String, u64>,
    pub families: HashMap<u64, Family>,
    /// subject → its families, so deleting a user does not scan every family.
    by_sub: HashMap<String, Vec<u64>>,
    /// jti → record, for every access token not yet revoked or pruned.
    pub access: HashMap<String, AccessRecord>,
    next_family: u64,
    issued: u64,
}

impl AuthStore {
    pub fn new_family(&mut self, sub: &str, client_id: &str, scope: &str) -> u64 {
        self.next_family += 1;
        self.by_sub
            .entry(sub.to_owned())
            .or_default()
            .push(self.next_family);
        self.families.insert(
            self.next_family,
            Family {
                sub: sub.to_owned(),
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                revoked: false,
                access: Vec::new(),
                current_refresh: None,
            },
        );
        self.next_family
    }

    /// Mints an access token (and a refresh token when `family` is given).
    pub fn issue(
        &mut self,
        minter: &Minter<'_>,
        sub: &str,
        client_id: &str,
        scope: &str,
        family: Option<u64>,
    ) -> Issued {
        self.issued += 1;
        if self.issued.is_multiple_of(PRUNE_EVERY) {
            self.prune();
        }
        let now = now_secs();
        let claims = Claims {
            iss: minter.iss.to_owned(),
            sub: sub.to_owned(),
            aud: minter.aud.clone(),
            exp: now + minter.ttl.as_secs().max(1),
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            scope: scope.to_owned(),
            client_id: client_id.to_owned(),
        };
        let access_token = Secret::new(minter.keys.sign(&claims));
        self.access.insert(
            claims.jti.clone(),
            AccessRecord {
                exp: claims.exp,
                digest: token_digest(access_token.expose()),
            },
        );
        let mut refresh_token = None;
        if let Some(id) = family
            && let Some(fam) = self.families.get_mut(&id)
        {
            fam.access.push(claims.jti);
            let token = random_token();
            fam.current_refresh = Some(token.clone());
            self.refresh.insert(token.clone(), id);
            refresh_token = Some(Secret::new(token));
        }
        Issued {
            access_token,
            refresh_token,
            id_token: None,
            scope: scope.to_owned(),
        }
    }

    /// Revokes a family: its refresh tokens stop working and its access tokens become inactive.
    pub fn revoke_family(&mut self, id: u64) {
        if let Some(fam) = self.families.get_mut(&id) {
            fam.revoked = true;
            fam.current_refresh = None;
            for jti in fam.access.drain(..) {
                self.access.remove(&jti);
            }
        }
    }

    /// Revokes everything issued to `sub` (a deleted user). Every token issued to a user
    /// belongs to one of its families (only client_credentials tokens have none, and their
    /// subject is the client).
    pub fn revoke_subject(&mut self, sub: &str) {
        for id in self.by_sub.remove(sub).unwrap_or_default() {
            self.revoke_family(id);
        }
    }

    /// Revokes every access token at once (a 401 storm), keeping refresh
    /// tokens, so clients recover by refreshing; returns how many there were.
    pub fn revoke_all_access(&mut self) -> usize {
        for fam in self.families.values_mut() {
            fam.access.clear();
        }
        let n = self.access.len();
        self.access.clear();
        n
    }

    pub fn revoke_access(&mut self, jti: &str) -> bool {
        self.access.remove(jti).is_some()
    }

    /// Whether `digest` is that of the access token `jti` as issued and not yet revoked
    /// (constant-time comparison).
    pub fn is_issued(&self, jti: &str, digest: &[u8; 32]) -> bool {
        self.access
            .get(jti)
            .is_some_and(|r| bool::from(r.digest.ct_eq(digest)))
    }

    /// The live family of a refresh token, or `None` if unknown, rotated out or revoked.
    pub fn refresh_family(&self, token: &str) -> Option<u64> {
        let id = *self.refresh.get(token)?;
        let fam = self.families.get(&id)?;
        (!fam.revoked && fam.current_refresh.as_deref() == Some(token)).then_some(id)
    }

    fn prune(&mut self) {
        let now = now_secs();
        self.access.retain(|_, r| r.exp > now);
        let now = Instant::now();
        self.codes.retain(|_, c| c.expires + CODE_TTL > now);
        self.pending.retain(|_, p| p.created + PENDING_TTL > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minter(keys: &Keys) -> Minter<'_> {
        Minter {
            keys,
            iss: "http://as",
            aud: vec!["c".into(), "http://as/mcp".into()],
            ttl: Duration::from_secs(60),
        }
    }

    fn jti(keys: &Keys, token: &Secret) -> String {
        keys.decode(token.expose())
            .map(|c| c.jti)
            .unwrap_or_default()
    }

    #[test]
    fn issued_tokens_match_only_their_own_digest() {
        let keys = Keys::generate().expect("an RSA key");
        let mut store = AuthStore::default();
        let family = store.new_family("alice", "c", "mcp:tools");
        let a = store.issue(&minter(&keys), "alice", "c", "mcp:tools", Some(family));
        let b = store.issue(&minter(&keys), "alice", "c", "mcp:tools", Some(family));
        let (ja, ta) = (jti(&keys, &a.access_token), a.access_token.expose());
        assert!(store.is_issued(&ja, &token_digest(ta)));
        assert!(!store.is_issued(&ja, &token_digest(b.access_token.expose())));
        assert!(!store.is_issued(&ja, &token_digest(&format!("{ta}x"))));
        assert!(!store.is_issued("unknown", &token_digest(ta)));
        assert!(store.revoke_access(&ja));
        assert!(!store.is_issued(&ja, &token_digest(ta)));
    }

    #[test]
    fn revoking_all_access_keeps_refresh_tokens() {
        let keys = Keys::generate().expect("an RSA key");
        let mut store = AuthStore::default();
        let issued: Vec<(u64, Issued)> = ["alice", "bob"]
            .into_iter()
            .map(|sub| {
                let family = store.new_family(sub, "c", "mcp:tools");
                (
                    family,
                    store.issue(&minter(&keys), sub, "c", "mcp:tools", Some(family)),
                )
            })
            .collect();
        assert_eq!(store.revoke_all_access(), 2);
        for (family, t) in &issued {
            let token = t.access_token.expose();
            assert!(!store.is_issued(&jti(&keys, &t.access_token), &token_digest(token)));
            let refresh = t.refresh_token.as_ref().map(|r| r.expose()).unwrap_or("");
            assert_eq!(store.refresh_family(refresh), Some(*family));
        }
        assert_eq!(store.revoke_all_access(), 0);
    }

    #[test]
    fn revoking_a_subject_revokes_all_its_families_and_nothing_else() {
        let keys = Keys::generate().expect("an RSA key");
        let mut store = AuthStore::default();
        let mut tokens = Vec::new();
        for sub in ["alice", "bob", "alice"] {
            let family = store.new_family(sub, "c", "mcp:tools");
            let t = store.issue(&minter(&keys), sub, "c", "mcp:tools", Some(family));
            tokens.push((sub, family, t));
        }
        store.revoke_subject("alice");
        store.revoke_subject("nobody");
        for (sub, family, t) in &tokens {
            let live = *sub == "bob";
            let token = t.access_token.expose();
            assert_eq!(
                store.is_issued(&jti(&keys, &t.access_token), &token_digest(token)),
                live,
                "{sub}"
            );
            let refresh = t.refresh_token.as_ref().map(|r| r.expose()).unwrap_or("");
            assert_eq!(
                store.refresh_family(refresh),
                live.then_some(*family),
                "{sub}"
            );
        }
    }
}
