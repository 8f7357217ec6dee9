//! Groups, as Nextcloud keeps them: created and deleted by the admin, users
//! joining them at creation; a user may only join a group that exists.

use std::collections::BTreeSet;

use super::{Data, NcError};

impl Data {
    /// Creates a group; `Conflict` if it exists.
    pub fn add_group(&mut self, name: &str) -> Result<(), NcError> {
        if name.is_empty() || name.contains(['/', ':']) {
            return Err(NcError::BadRequest(format!("invalid group id {name:?}")));
        }
        if !self.groups.insert(name.to_owned()) {
            return Err(NcError::Conflict(format!("group {name} already exists")));
        }
        Ok(())
    }

    /// Deletes a group and every membership in it; `false` if there was none.
    pub fn delete_group(&mut self, name: &str) -> bool {
        if !self.groups.remove(name) {
            return false;
        }
        for user in self.users.values_mut() {
            user.groups.retain(|g| g != name);
        }
        true
    }

    pub fn group_ids(&self) -> impl Iterator<Item = &String> {
        self.groups.iter()
    }

    /// The members of a group, `None` if it does not exist.
    pub fn group_members(&self, name: &str) -> Option<BTreeSet<&String>> {
        self.groups.contains(name).then(|| {
            self.users
                .iter()
                .filter(|(_, u)| u.groups.iter().any(|g| g == name))
                .map(|(id, _)| id)
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    #[test]
    fn users_join_existing_groups_only() {
        let mut d = Data::default();
        d.add_group("t1").unwrap();
        assert!(matches!(d.add_group("t1"), Err(NcError::Conflict(_))));
        d.add_user("a", Secret::new("pw"), "a", "", vec!["t1".into()])
            .unwrap();
        assert!(
            d.add_user("b", Secret::new("pw"), "b", "", vec!["t2".into()])
                .is_err(),
            "t2 does not exist"
        );
        assert_eq!(
            d.group_members("t1")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["a"]
        );
        assert!(d.delete_group("t1"));
        assert!(d.user("a").unwrap().groups.is_empty());
        assert!(d.group_members("t1").is_none());
    }
}
