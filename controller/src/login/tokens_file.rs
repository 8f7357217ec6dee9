//! `--login tokens-file`: tokens acquired elsewhere, one entry per user:
//!
//! ```json
//! { "alice": { "access_token": "…", "refresh_token": "…", "expires_at": 1767225600 } }
//! ```
//!
//! `refresh_token` and `expires_at` (Unix seconds) are optional; a token with
//! a refresh token is refreshed like any other (with `--client-id`, the client
//! it was issued to).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::Secret;
use common::ids::UserName;
use serde::Deserialize;

use super::{LoginError, TokenSet};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_at: Option<u64>,
}

/// Reads and checks the whole file.
pub fn load(path: &Path) -> Result<BTreeMap<UserName, TokenSet>, LoginError> {
    let err = |message: String| LoginError::TokensFile {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    parse(&text, SystemTime::now()).map_err(err)
}

fn parse(text: &str, now: SystemTime) -> Result<BTreeMap<UserName, TokenSet>, String> {
    // serde_json's message names line and column but never the token itself.
    let entries: BTreeMap<String, Entry> = serde_json::from_str(text).map_err(|e| {
        format!(
            "{e}: expected {{\"USER\": {{\"access_token\": \"…\", \"refresh_token\": \"…\", \"expires_at\": UNIX_SECONDS}}}}"
        )
    })?;
    if entries.is_empty() {
        return Err("lists no users".into());
    }
    entries
        .into_iter()
        .map(|(user, e)| {
            if e.access_token.trim().is_empty() {
                return Err(format!("user {user}: empty access_token"));
            }
            let expires_at = e
                .expires_at
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
            Ok((
                UserName::new(&user),
                TokenSet {
                    access: Secret::new(e.access_token),
                    refresh: e.refresh_token.filter(|r| !r.is_empty()).map(Secret::new),
                    // What is left of it is all we know of its lifetime.
                    lifetime: expires_at.map(|t| t.duration_since(now).unwrap_or_default()),
                    expires_at,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_users_and_optional_fields() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let tokens = parse(
            r#"{"alice": {"access_token": "a1", "refresh_token": "r1", "expires_at": 1600},
                "bob": {"access_token": "b1"}}"#,
            now,
        )
        .unwrap();
        let alice = &tokens[&UserName::new("alice")];
        assert_eq!(alice.access.expose(), "a1");
        assert_eq!(alice.refresh.as_ref().map(|r| r.expose()), Some("r1"));
        assert_eq!(alice.lifetime, Some(Duration::from_secs(600)));
        let bob = &tokens[&UserName::new("bob")];
        assert!(bob.refresh.is_none() && bob.expires_at.is_none());
    }

    #[test]
    fn bad_files_are_named_without_leaking_tokens() {
        let now = SystemTime::now();
        let check = |text: &str, expected: &str| {
            let e = parse(text, now).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
            assert!(!e.contains("SECRET-TOKEN"), "leaked: {e}");
        };
        check("{}", "no users");
        check(r#"{"a": {"access_token": ""}}"#, "empty access_token");
        check(r#"{"a": {"acces_token": "SECRET-TOKEN"}}"#, "acces_token");
        check(r#"["SECRET-TOKEN"]"#, "expected");
        check(r#"{"a": {"access_token": "SECRET-TOKEN", }"#, "line 1");
    }
}
