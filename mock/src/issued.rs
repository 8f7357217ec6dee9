//! The record of every secret this mock handed out or was given (passwords,
//! client secrets, access and refresh tokens), kept only with
//! `MockConfig::record_secrets` so a leak test can search a run's output for
//! each of them; served at `GET /mock/issued-secrets` behind admin auth.

use std::sync::Mutex;

use serde::Serialize;

use crate::lock;

/// Entries kept per kind; past it the oldest stay (a leak test's run is small).
const MAX_PER_KIND: usize = 100_000;

#[derive(Clone, Copy, Debug)]
pub enum SecretKind {
    Password,
    ClientSecret,
    AccessToken,
    RefreshToken,
    /// Login Flow v2 app passwords.
    AppPassword,
}

/// What `GET /mock/issued-secrets` returns.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Issued {
    pub passwords: Vec<String>,
    pub client_secrets: Vec<String>,
    pub access_tokens: Vec<String>,
    pub refresh_tokens: Vec<String>,
    pub app_passwords: Vec<String>,
}

#[derive(Debug, Default)]
pub struct SecretLog {
    issued: Mutex<Issued>,
}

impl SecretLog {
    pub fn record(&self, kind: SecretKind, secret: &str) {
        let mut issued = lock(&self.issued);
        let list = match kind {
            SecretKind::Password => &mut issued.passwords,
            SecretKind::ClientSecret => &mut issued.client_secrets,
            SecretKind::AccessToken => &mut issued.access_tokens,
            SecretKind::RefreshToken => &mut issued.refresh_tokens,
            SecretKind::AppPassword => &mut issued.app_passwords,
        };
        if list.len() < MAX_PER_KIND {
            list.push(secret.to_owned());
        }
    }

    pub fn snapshot(&self) -> Issued {
        lock(&self.issued).clone()
    }
}
