//! `--provider static`: existing users from a CSV of `username,password`;
//! nothing is created or deleted.

use std::path::Path;

use common::Secret;
use common::ids::UserName;

use super::{ProvisionError, TestUser, UserProvider};

pub struct StaticUsers;

impl StaticUsers {
    /// Reads the first `n_users` users of the file (blank lines and `#`
    /// comments skipped; an optional `username,password` header too).
    pub fn load(path: &Path, n_users: u32) -> Result<Vec<TestUser>, ProvisionError> {
        let err = |message: String| ProvisionError::UsersFile {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let users = parse(&text).map_err(err)?;
        if users.len() < n_users as usize {
            return Err(ProvisionError::UsersFile {
                path: path.display().to_string(),
                message: format!(
                    "has {} users but --users is {n_users}: add users or lower --users",
                    users.len()
                ),
            });
        }
        Ok(users.into_iter().take(n_users as usize).collect())
    }
}

fn parse(text: &str) -> Result<Vec<TestUser>, String> {
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, password)) = line.split_once(',') else {
            return Err(format!("line {}: expected username,password", i + 1));
        };
        let (name, password) = (name.trim(), password.trim());
        if i == 0 && name.eq_ignore_ascii_case("username") {
            continue;
        }
        if name.is_empty() || password.is_empty() {
            return Err(format!("line {}: empty username or password", i + 1));
        }
        let index = users.len() as u32 + 1;
        users.push(TestUser {
            index,
            name: UserName::new(name),
            password: Secret::new(password),
            display_name: name.to_owned(),
            email: String::new(),
            tenant: None,
        });
    }
    Ok(users)
}

impl UserProvider for StaticUsers {
    async fn create(&self, _user: &TestUser) -> Result<(), ProvisionError> {
        Ok(())
    }
    async fn delete(&self, _name: &UserName) -> Result<(), ProvisionError> {
        Ok(())
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<UserName>, ProvisionError> {
        Ok(Vec::new())
    }
    fn manages_users(&self) -> bool {
        false
    }
    fn location(&self) -> String {
        "static".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csv() {
        let users = parse("username,password\nalice, pw1\n\n# c\nbob,pw,with,commas\n").unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].name.as_str(), "alice");
        assert_eq!(users[0].password.expose(), "pw1");
        assert_eq!(users[1].password.expose(), "pw,with,commas");
        assert!(parse("alice\n").unwrap_err().contains("line 1"));
    }
}
