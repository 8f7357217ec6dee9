//! App passwords (Login Flow v2, `DELETE /ocs/v2.php/core/apppassword`): per-user secrets that
//! Nextcloud accepts in place of the password as Basic auth on every API.

use super::{Data, NcError};
use crate::Secret;

/// One app password of a user.
// `name` and `created` are what Nextcloud's device list shows; no endpoint reads them yet.
#[allow(dead_code)]
pub struct AppPassword {
    pub password: Secret,
    /// What the client called itself (Login Flow v2's user agent).
    pub name: String,
    pub created: u64,
}

/// More app passwords than this per user is refused (a runaway client, not a real user).
pub const MAX_APP_PASSWORDS_PER_USER: usize = 1000;

impl Data {
    /// Issues a new app password for `user`.
    pub fn add_app_password(&mut self, user: &str, name: &str) -> Result<Secret, NcError> {
        if self.user(user).is_none() {
            return Err(NcError::NotFound(format!("user {user}")));
        }
        let list = self.app_passwords.entry(user.to_owned()).or_default();
        if list.len() >= MAX_APP_PASSWORDS_PER_USER {
            return Err(NcError::Forbidden(format!(
                "user {user} already has {MAX_APP_PASSWORDS_PER_USER} app passwords"
            )));
        }
        // Nextcloud's are 72 characters of [A-Za-z0-9]; ours are as long.
        let password = Secret::new(random_alnum(72));
        list.push(AppPassword {
            password: password.clone(),
            name: name.to_owned(),
            created: super::now_secs(),
        });
        Ok(password)
    }

    /// `password` is one of `user`'s app passwords.
    pub fn check_app_password(&self, user: &str, password: &str) -> bool {
        self.app_passwords
            .get(user)
            .is_some_and(|list| list.iter().any(|a| a.password.matches(password)))
    }

    /// Basic credentials as Nextcloud takes them: the login password or an app password.
    pub fn check_basic(&self, user: &str, password: &str) -> bool {
        self.check_password(user, password) || self.check_app_password(user, password)
    }

    /// Removes one app password; false when it was not `user`'s.
    pub fn revoke_app_password(&mut self, user: &str, password: &str) -> bool {
        let Some(list) = self.app_passwords.get_mut(user) else {
            return false;
        };
        let before = list.len();
        list.retain(|a| !a.password.matches(password));
        before != list.len()
    }

    /// How many app passwords `user` holds.
    pub fn app_password_count(&self, user: &str) -> usize {
        self.app_passwords.get(user).map_or(0, Vec::len)
    }
}

fn random_alnum(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_passwords_authenticate_until_revoked_or_user_deleted() {
        let mut d = Data::default();
        d.add_user("alice", Secret::new("pw"), "alice", "", Vec::new())
            .unwrap_or_default();
        let Ok(ap) = d.add_app_password("alice", "nextcloud-mcp-server") else {
            panic!("alice exists");
        };
        assert_eq!(ap.expose().len(), 72);
        assert!(d.check_basic("alice", "pw"));
        assert!(d.check_basic("alice", ap.expose()));
        assert!(!d.check_basic("bob", ap.expose()));
        assert!(d.add_app_password("bob", "x").is_err());
        assert!(d.revoke_app_password("alice", ap.expose()));
        assert!(!d.check_basic("alice", ap.expose()));
        let Ok(ap) = d.add_app_password("alice", "again") else {
            panic!("alice exists");
        };
        assert!(d.delete_user("alice"));
        assert!(!d.check_app_password("alice", ap.expose()));
    }
}
