//! `--token-cache` (SPEC §3): the OAuth client and every user's tokens kept
//! in `--state-dir`, sealed with XChaCha20-Poly1305 under a key from
//! `MCP_SWARM_TOKEN_CACHE_KEY`, so the next run of the same users against
//! the same target reuses or refreshes them instead of logging everyone in
//! again (a 10,000-user browser login is paid once).
//!
//! The file is JSON: the format and the target in clear (bound to the
//! ciphertext as associated data, so neither can be swapped), a random
//! nonce, and the sealed client and tokens. A cache that is missing, made
//! for another target, issuer or client, sealed under another key, or
//! unreadable is ignored with a note: it only ever saves work.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use common::Secret;
use common::ids::UserName;
use serde::{Deserialize, Serialize};

use futures::StreamExt as _;

use super::{Authenticator, OAuthClient, TokenAuthMethod, TokenSet};
use crate::provision::TestUser;
use crate::settings::login::{CacheKey, TOKEN_CACHE_KEY_ENV};

pub const FILE_NAME: &str = "token-cache.json";
/// Past this a cache file is refused unread (10,000 users take ~20 MB).
const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
const FORMAT: u32 = 1;
/// A cached access token with less left than this (or than its refresh
/// margin) is refreshed before the run.
const MIN_LEFT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum TokenCacheError {
    #[error("writing the token cache {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("sealing the token cache: {0}")]
    Seal(String),
}

/// What the cache holds: the OAuth client (so refresh tokens, which are
/// bound to it, stay usable when the client came from DCR) and the tokens.
#[derive(Default)]
pub struct Cached {
    /// The issuer the client and tokens belong to.
    pub issuer: String,
    pub client: Option<OAuthClient>,
    pub tokens: BTreeMap<UserName, TokenSet>,
}

impl fmt::Debug for Cached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached")
            .field("issuer", &self.issuer)
            .field("client", &self.client)
            .field("n_tokens", &self.tokens.len())
            .finish()
    }
}

impl Cached {
    /// The tokens, if they were issued to `client` by `issuer`; else none,
    /// with a note saying why.
    pub fn tokens_for(self, issuer: &str, client_id: &str) -> BTreeMap<UserName, TokenSet> {
        if self.tokens.is_empty() {
            return BTreeMap::new();
        }
        let cached_id = self.client.as_ref().map_or("", |c| c.client_id.as_str());
        if self.issuer != issuer {
            tracing::info!(cached = %self.issuer, now = %issuer, "the token cache was made for another issuer; its tokens are ignored");
            return BTreeMap::new();
        }
        if cached_id != client_id {
            tracing::info!(cached = %cached_id, now = %client_id, "the token cache was made for another OAuth client; its tokens are ignored");
            return BTreeMap::new();
        }
        self.tokens
    }
}

/// The cache file of one target in one state directory.
#[derive(Debug)]
pub struct TokenCache {
    path: PathBuf,
    key: CacheKey,
    target: String,
}

#[derive(Serialize, Deserialize)]
struct FileForm {
    format: u32,
    target: String,
    nonce: String,
    sealed: String,
}

#[derive(Serialize, Deserialize)]
struct SealedForm {
    issuer: String,
    client: Option<ClientForm>,
    tokens: BTreeMap<String, TokenForm>,
}

#[derive(Serialize, Deserialize)]
struct ClientForm {
    client_id: String,
    client_secret: Option<String>,
    auth_method: String,
}

#[derive(Serialize, Deserialize)]
struct TokenForm {
    access: String,
    refresh: Option<String>,
    /// Unix ms; 0 = unknown.
    expires_at_ms: i64,
    lifetime_ms: Option<u64>,
}

impl TokenCache {
    pub fn new(state_dir: &Path, target: &url::Url, key: CacheKey) -> TokenCache {
        TokenCache {
            path: state_dir.join(FILE_NAME),
            key,
            target: target.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the cache holds for this target; empty (with a note) when there
    /// is none or it cannot be used.
    pub fn load(&self) -> Cached {
        match self.try_load() {
            Ok(Some(c)) => {
                tracing::info!(path = %self.path.display(), n_tokens = c.tokens.len(), "token cache read");
                c
            }
            Ok(None) => Cached::default(),
            Err(why) => {
                tracing::warn!(path = %self.path.display(), "token cache ignored: {why}");
                Cached::default()
            }
        }
    }

    fn try_load(&self) -> Result<Option<Cached>, String> {
        let len = match std::fs::metadata(&self.path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        if len > MAX_FILE_BYTES {
            return Err(format!("{len} bytes, past the bound of {MAX_FILE_BYTES}"));
        }
        let text = std::fs::read_to_string(&self.path).map_err(|e| e.to_string())?;
        let file: FileForm =
            serde_json::from_str(&text).map_err(|e| format!("not a token cache: {e}"))?;
        if file.format != FORMAT {
            return Err(format!(
                "format {} (this version reads {FORMAT})",
                file.format
            ));
        }
        if file.target != self.target {
            tracing::info!(cached = %file.target, now = %self.target, "the token cache was made for another target; ignored");
            return Ok(None);
        }
        let nonce = BASE64.decode(&file.nonce).map_err(|e| e.to_string())?;
        if nonce.len() != 24 {
            return Err("a nonce that is not 24 bytes".into());
        }
        let sealed = BASE64.decode(&file.sealed).map_err(|e| e.to_string())?;
        let cipher = XChaCha20Poly1305::new((&self.key.0).into());
        let plain = cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: &associated_data(file.format, &file.target),
                },
            )
            .map_err(|_| {
                format!("it does not open with this {TOKEN_CACHE_KEY_ENV} (another key, or the file was changed)")
            })?;
        let form: SealedForm =
            serde_json::from_slice(&plain).map_err(|e| format!("unreadable contents: {e}"))?;
        Ok(Some(from_form(form)?))
    }

    /// Keeps `auth`'s client and `tokens` but those of `except` (users
    /// deleted at the end); a failure to write is only a warning.
    pub fn keep(
        &self,
        auth: &Authenticator,
        tokens: &BTreeMap<UserName, TokenSet>,
        except: &std::collections::BTreeSet<UserName>,
    ) {
        let cached = Cached {
            issuer: auth.endpoints.issuer.clone(),
            client: auth.client().cloned(),
            tokens: tokens
                .iter()
                .filter(|(u, _)| !except.contains(*u))
                .map(|(u, t)| (u.clone(), t.clone()))
                .collect(),
        };
        if let Err(e) = self.save(&cached) {
            tracing::warn!(error = %e, "the token cache was not written");
        }
    }

    /// Writes `cached` (atomically, mode 0600).
    pub fn save(&self, cached: &Cached) -> Result<(), TokenCacheError> {
        let plain = serde_json::to_vec(&to_form(cached))
            .map_err(|e| TokenCacheError::Seal(e.to_string()))?;
        let nonce: [u8; 24] = rand::random();
        let cipher = XChaCha20Poly1305::new((&self.key.0).into());
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &associated_data(FORMAT, &self.target),
                },
            )
            .map_err(|e| TokenCacheError::Seal(e.to_string()))?;
        let file = FileForm {
            format: FORMAT,
            target: self.target.clone(),
            nonce: BASE64.encode(nonce),
            sealed: BASE64.encode(sealed),
        };
        let text = serde_json::to_vec(&file).map_err(|e| TokenCacheError::Seal(e.to_string()))?;
        let write_err = |source| TokenCacheError::Write {
            path: self.path.display().to_string(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let tmp = self
            .path
            .with_extension(format!("json.{}.tmp", std::process::id()));
        let written = (|| {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(write_err)?;
        tracing::info!(path = %self.path.display(), n_tokens = cached.tokens.len(), "token cache written");
        Ok(())
    }
}

/// What the cache spared: tokens reused as they were or refreshed, and the
/// users still to log in.
pub struct Reused {
    pub tokens: BTreeMap<UserName, TokenSet>,
    /// Of `tokens`, those renewed by the refresh grant.
    pub refreshed: u64,
    pub to_log_in: Vec<TestUser>,
}

/// Takes each user's cached tokens: as they are while they have more left
/// than the refresh margin, else renewed by the refresh grant
/// (`concurrency` at once); users without usable tokens are left to log in.
pub async fn reuse(
    auth: &Authenticator,
    users: &[TestUser],
    mut cached: BTreeMap<UserName, TokenSet>,
    concurrency: usize,
) -> Reused {
    let now = SystemTime::now();
    let mut reused = Reused {
        tokens: BTreeMap::new(),
        refreshed: 0,
        to_log_in: Vec::new(),
    };
    let mut to_refresh = Vec::new();
    for u in users {
        let Some(t) = cached.remove(&u.name) else {
            reused.to_log_in.push(u.clone());
            continue;
        };
        let left = t
            .expires_at
            .map(|at| at.duration_since(now).unwrap_or_default());
        let margin = t
            .lifetime
            .map_or(MIN_LEFT, |l| super::refresh_margin(l).max(MIN_LEFT));
        match (left, &t.refresh) {
            (Some(left), _) if left > margin => {
                reused.tokens.insert(u.name.clone(), t);
            }
            (None, _) => {
                reused.tokens.insert(u.name.clone(), t);
            }
            (Some(_), Some(refresh)) => to_refresh.push((u.clone(), refresh.clone())),
            (Some(_), None) => reused.to_log_in.push(u.clone()),
        }
    }
    let results: Vec<_> = futures::stream::iter(to_refresh)
        .map(|(u, refresh)| async move {
            let r = auth.refresh_grant(&u, &refresh).await;
            (u, r)
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for (u, r) in results {
        match r {
            Ok(t) => {
                reused.refreshed += 1;
                reused.tokens.insert(u.name.clone(), t);
            }
            Err(e) => {
                tracing::debug!(user = %u.name, error = %e, "cached refresh token refused; logging in");
                reused.to_log_in.push(u);
            }
        }
    }
    reused
}

fn associated_data(format: u32, target: &str) -> Vec<u8> {
    format!("mcp-swarm token cache {format}\n{target}").into_bytes()
}

fn to_form(c: &Cached) -> SealedForm {
    SealedForm {
        issuer: c.issuer.clone(),
        client: c.client.as_ref().map(|c| ClientForm {
            client_id: c.client_id.clone(),
            client_secret: c.client_secret.as_ref().map(|s| s.expose().to_owned()),
            auth_method: c.auth_method.as_str().to_owned(),
        }),
        tokens: c
            .tokens
            .iter()
            .map(|(u, t)| {
                (
                    u.to_string(),
                    TokenForm {
                        access: t.access.expose().to_owned(),
                        refresh: t.refresh.as_ref().map(|r| r.expose().to_owned()),
                        expires_at_ms: t.expires_at_ms(),
                        lifetime_ms: t.lifetime.map(|l| l.as_millis() as u64),
                    },
                )
            })
            .collect(),
    }
}

fn from_form(f: SealedForm) -> Result<Cached, String> {
    let client = match f.client {
        Some(c) => Some(OAuthClient {
            auth_method: TokenAuthMethod::parse(&c.auth_method)
                .ok_or_else(|| format!("an unknown client auth method {:?}", c.auth_method))?,
            client_id: c.client_id,
            client_secret: c.client_secret.map(Secret::new),
        }),
        None => None,
    };
    let tokens = f
        .tokens
        .into_iter()
        .map(|(u, t)| {
            let expires_at = u64::try_from(t.expires_at_ms)
                .ok()
                .filter(|ms| *ms > 0)
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
            (
                UserName::new(u),
                TokenSet {
                    access: Secret::new(t.access),
                    refresh: t.refresh.map(Secret::new),
                    expires_at,
                    lifetime: t.lifetime_ms.map(Duration::from_millis),
                },
            )
        })
        .collect();
    Ok(Cached {
        issuer: f.issuer,
        client,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> CacheKey {
        CacheKey([b; 32])
    }

    fn sample() -> Cached {
        let mut tokens = BTreeMap::new();
        tokens.insert(
            UserName::new("u1"),
            TokenSet {
                access: Secret::new("access-secret-1".to_owned()),
                refresh: Some(Secret::new("refresh-secret-1".to_owned())),
                expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)),
                lifetime: Some(Duration::from_secs(3600)),
            },
        );
        Cached {
            issuer: "http://127.0.0.1:1".into(),
            client: Some(OAuthClient {
                client_id: "client-1".into(),
                client_secret: Some(Secret::new("client-secret-1".to_owned())),
                auth_method: TokenAuthMethod::ClientSecretPost,
            }),
            tokens,
        }
    }

    fn target(port: u16) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap()
    }

    #[test]
    fn round_trip_sealed_with_no_secret_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), &target(1), key(7));
        cache.save(&sample()).unwrap();
        let text = std::fs::read_to_string(cache.path()).unwrap();
        for secret in [
            "access-secret-1",
            "refresh-secret-1",
            "client-secret-1",
            "client-1",
        ] {
            assert!(!text.contains(secret), "{secret} in clear");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(cache.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let back = cache.load();
        assert_eq!(back.issuer, "http://127.0.0.1:1");
        let c = back.client.as_ref().unwrap();
        assert_eq!(c.client_id, "client-1");
        assert_eq!(c.auth_method, TokenAuthMethod::ClientSecretPost);
        let t = &back.tokens[&UserName::new("u1")];
        assert_eq!(t.access.expose(), "access-secret-1");
        assert_eq!(t.refresh.as_ref().unwrap().expose(), "refresh-secret-1");
        assert_eq!(t.lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(back.tokens_for("http://127.0.0.1:1", "client-1").len(), 1);
    }

    #[test]
    fn another_key_target_client_or_a_changed_file_yields_nothing() {
        let dir = tempfile::tempdir().unwrap();
        TokenCache::new(dir.path(), &target(1), key(7))
            .save(&sample())
            .unwrap();
        assert!(
            TokenCache::new(dir.path(), &target(1), key(8))
                .load()
                .tokens
                .is_empty()
        );
        assert!(
            TokenCache::new(dir.path(), &target(2), key(7))
                .load()
                .tokens
                .is_empty()
        );
        let same = TokenCache::new(dir.path(), &target(1), key(7));
        assert!(
            same.load()
                .tokens_for("http://127.0.0.1:1", "other")
                .is_empty()
        );
        assert!(
            same.load()
                .tokens_for("http://other", "client-1")
                .is_empty()
        );

        // The target in clear is bound to the ciphertext.
        let path = same.path().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let swapped = text.replace("127.0.0.1:1/mcp", "127.0.0.1:2/mcp");
        std::fs::write(&path, swapped).unwrap();
        assert!(
            TokenCache::new(dir.path(), &target(2), key(7))
                .load()
                .tokens
                .is_empty()
        );
        std::fs::write(&path, "{ not json").unwrap();
        assert!(same.load().tokens.is_empty());
    }
}
