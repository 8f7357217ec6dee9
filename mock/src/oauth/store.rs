//! The authorization server's memory: registered clients, pending authorizations, codes, and
//! issued tokens grouped in families (one family per login) so reuse can revoke them together.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::jwt::{Claims, Keys};
use crate::Secret;
use crate::state::now_secs;

/// How long an authorization code may be redeemed.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// How long a login form stays valid.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Expired access-token records are pruned every this many issuances.
const PRUNE_EVERY: u64 = 1024;

/// A random URL-safe string with 256 bits of entropy.
pub fn random_token() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: Option<Secret>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub auth_method: String,
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

/// The parameters of a validated `/authorize` request.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub resource: Option<String>,
    pub scope: String,
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
    pub sub: String,
    pub exp: u64,
}

/// What `/token` returns.
#[derive(Debug)]
pub struct Issued {
    pub access_token: Secret,
    pub refresh_token: Option<Secret>,
    pub scope: String,
}

/// Issuer-wide settings a token is minted with.
pub struct Minter<'a> {
    pub keys: &'a Keys,
    pub iss: &'a str,
    pub aud: &'a str,
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
    /// jti → record, for every access token not yet revoked or pruned.
    pub access: HashMap<String, AccessRecord>,
    next_family: u64,
    issued: u64,
}

impl AuthStore {
    pub fn new_family(&mut self, sub: &str, client_id: &str, scope: &str) -> u64 {
        self.next_family += 1;
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
            aud: minter.aud.to_owned(),
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
                sub: sub.to_owned(),
                exp: claims.exp,
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

    /// Revokes everything issued to `sub` (a deleted user).
    pub fn revoke_subject(&mut self, sub: &str) {
        let ids: Vec<u64> = self
            .families
            .iter()
            .filter(|(_, f)| f.sub == sub)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.revoke_family(id);
        }
        self.access.retain(|_, r| r.sub != sub);
    }

    pub fn revoke_access(&mut self, jti: &str) -> bool {
        self.access.remove(jti).is_some()
    }

    pub fn access_active(&self, jti: &str) -> bool {
        self.access.get(jti).is_some_and(|r| r.exp > now_secs())
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
