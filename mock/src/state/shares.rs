//! Shares (`nc_share_*`): user shares of a file or folder with Nextcloud's permission bits; the
//! recipient sees the item at `file_target` in their own root.

use serde_json::{Value, json};

use super::{Data, NcError, PERM_ALL, PERM_READ, PERM_SHARE, Share, basename, norm};

/// Nextcloud's share type for a user share; the only one the mock supports.
const SHARE_TYPE_USER: u8 = 0;

impl Data {
    fn share_json(&self, share: &Share) -> Value {
        let (path, item_type) = match self.index.get(&share.node_id) {
            Some((owner, path)) => {
                let dir = self.node(owner, path).is_some_and(|n| n.is_dir());
                (path.clone(), if dir { "folder" } else { "file" })
            }
            None => (String::new(), "file"),
        };
        json!({
            "id": share.id,
            "path": path,
            "share_type": share.share_type,
            "share_with": share.share_with,
            "share_with_displayname": self.user(&share.share_with).map(|u| u.display_name.clone()),
            "uid_owner": share.initiator,
            "uid_file_owner": share.owner,
            "permissions": share.permissions,
            "file_target": share.file_target,
            "item_type": item_type,
            "item_source": share.node_id,
        })
    }

    /// A free `/{name}` in the recipient's root: own files and other shares' targets are taken.
    fn free_target(&self, user: &str, name: &str) -> String {
        let (stem, ext) = match name.rfind('.') {
            Some(i) if i > 0 => (&name[..i], &name[i..]),
            _ => (name, ""),
        };
        let taken = |t: &str| {
            self.node(user, t).is_some()
                || self
                    .shares
                    .values()
                    .any(|s| s.share_with == user && s.file_target == t)
        };
        let mut target = format!("/{name}");
        let mut n = 1;
        while taken(&target) {
            n += 1;
            target = format!("/{stem} ({n}){ext}");
        }
        target
    }

    pub fn create_share(
        &mut self,
        user: &str,
        path: &str,
        share_with: &str,
        share_type: u8,
        permissions: u32,
    ) -> Result<Value, NcError> {
        if share_type != SHARE_TYPE_USER {
            return Err(NcError::BadRequest(format!(
                "share type {share_type} is not supported"
            )));
        }
        if permissions & PERM_READ == 0 || permissions > PERM_ALL {
            return Err(NcError::BadRequest(format!(
                "invalid permissions {permissions}"
            )));
        }
        let path = norm(path)?;
        if path == "/" {
            return Err(NcError::Forbidden("cannot share the root".into()));
        }
        let loc = self.locate(user, &path);
        let node_id = self
            .node(&loc.owner, &loc.path)
            .map(|n| n.id)
            .ok_or_else(|| {
                NcError::NotFound(format!("wrong path, file/folder {path} does not exist"))
            })?;
        if self.user(share_with).is_none() {
            return Err(NcError::NotFound(format!(
                "user {share_with} does not exist"
            )));
        }
        if share_with == user || share_with == loc.owner {
            return Err(NcError::Forbidden(
                "cannot share with yourself or the owner".into(),
            ));
        }
        if loc.via_share.is_some() {
            if loc.perms & PERM_SHARE == 0 {
                return Err(NcError::Forbidden("no permission to reshare".into()));
            }
            if permissions & !loc.perms != 0 {
                return Err(NcError::Forbidden(
                    "cannot grant more permissions than you have".into(),
                ));
            }
        }
        if self
            .shares
            .values()
            .any(|s| s.node_id == node_id && s.share_with == share_with)
        {
            return Err(NcError::Forbidden(format!(
                "{path} is already shared with {share_with}"
            )));
        }
        self.next_share += 1;
        let share = Share {
            id: self.next_share,
            owner: loc.owner.clone(),
            initiator: user.to_owned(),
            node_id,
            share_type,
            share_with: share_with.to_owned(),
            permissions,
            file_target: self.free_target(share_with, basename(&loc.path)),
        };
        let out = self.share_json(&share);
        self.shares.insert(share.id, share);
        Ok(out)
    }

    /// The share if the caller may see it (owner, initiator or recipient), else 404.
    fn visible_share(&self, user: &str, id: u64) -> Result<&Share, NcError> {
        self.shares
            .get(&id)
            .filter(|s| s.owner == user || s.initiator == user || s.share_with == user)
            .ok_or_else(|| NcError::NotFound(format!("share {id}")))
    }

    pub fn update_share(
        &mut self,
        user: &str,
        id: u64,
        permissions: u32,
    ) -> Result<Value, NcError> {
        let share = self.visible_share(user, id)?;
        if share.owner != user && share.initiator != user {
            return Err(NcError::Forbidden(
                "only the owner can change a share".into(),
            ));
        }
        if permissions & PERM_READ == 0 || permissions > PERM_ALL {
            return Err(NcError::BadRequest(format!(
                "invalid permissions {permissions}"
            )));
        }
        let Some(share) = self.shares.get_mut(&id) else {
            return Err(NcError::NotFound(format!("share {id}")));
        };
        share.permissions = permissions;
        let share = share.clone();
        Ok(self.share_json(&share))
    }

    pub fn get_share(&self, user: &str, id: u64) -> Result<Value, NcError> {
        Ok(self.share_json(self.visible_share(user, id)?))
    }

    pub fn list_shares(
        &self,
        user: &str,
        path: Option<&str>,
        shared_with_me: bool,
    ) -> Result<Value, NcError> {
        let path = path.filter(|p| !p.is_empty()).map(norm).transpose()?;
        // For the caller's own listing, a path is compared in the owner's terms.
        let located = path.as_ref().map(|p| self.locate(user, p).path);
        let shares: Vec<Value> = self
            .shares
            .values()
            .filter(|s| {
                if shared_with_me {
                    s.share_with == user && path.as_ref().is_none_or(|p| *p == s.file_target)
                } else {
                    (s.owner == user || s.initiator == user)
                        && located.as_ref().is_none_or(|lp| {
                            self.index.get(&s.node_id).is_some_and(|(_, sp)| sp == lp)
                        })
                }
            })
            .map(|s| self.share_json(s))
            .collect();
        Ok(json!({ "shares": shares }))
    }

    pub fn delete_share(&mut self, user: &str, id: u64) -> Result<Value, NcError> {
        self.visible_share(user, id)?;
        self.shares.remove(&id);
        Ok(json!({ "id": id, "status_code": 200, "message": format!("share {id} deleted") }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn data() -> Data {
        let mut d = Data::default();
        for u in ["alice", "bob", "carol"] {
            d.add_user(u, Secret::new("pw"), u, "", Vec::new())
                .unwrap_or_default();
        }
        d
    }

    /// The status prefix of an operation's outcome ("ok" or e.g. "403").
    fn status(r: Result<Value, NcError>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string()[..3].to_owned(),
        }
    }

    #[test]
    fn folder_shares_resharing_and_user_deletion() {
        let mut d = data();
        d.write_file("alice", "/Team/a.txt", "x", None, None)
            .unwrap_or_default();
        d.write_file("bob", "/Team/mine.txt", "b", None, None)
            .unwrap_or_default();
        let share = d
            .create_share("alice", "/Team", "bob", 0, 1 | 2 | 4)
            .unwrap_or_default();
        // Bob already has a /Team, so the share lands at "/Team (2)".
        assert_eq!(share["file_target"], "/Team (2)");
        assert_eq!(share["item_type"], "folder");
        let check = |d: &mut Data, op: &str, expected: &str| {
            let r = match op {
                "bob reads" => d.read_file("bob", "/Team (2)/a.txt"),
                "bob writes" => d.write_file("bob", "/Team (2)/a.txt", "y", None, None),
                "bob creates" => d.write_file("bob", "/Team (2)/new.txt", "n", None, None),
                "bob deletes" => d.delete_resource("bob", "/Team (2)/a.txt"),
                "bob reshares" => d.create_share("bob", "/Team (2)", "carol", 0, 1),
                "carol reads" => d.read_file("carol", "/Team/a.txt"),
                "carol shares alice's path" => d.create_share("carol", "/Team", "bob", 0, 1),
                "share with nobody" => d.create_share("alice", "/Team", "nobody", 0, 1),
                _ => unreachable!("unknown op {op}"),
            };
            assert_eq!(status(r), expected, "{op}");
        };
        check(&mut d, "bob reads", "ok");
        check(&mut d, "bob writes", "ok");
        check(&mut d, "bob creates", "ok");
        check(&mut d, "bob deletes", "403");
        check(&mut d, "bob reshares", "403");
        check(&mut d, "carol reads", "404");
        check(&mut d, "carol shares alice's path", "404");
        check(&mut d, "share with nobody", "404");
        assert_eq!(
            d.read_file("alice", "/Team/new.txt")
                .map(|v| v["content"].clone()),
            Ok("n".into())
        );

        assert!(d.delete_user("alice"));
        assert!(d.shares.is_empty());
        check(&mut d, "bob reads", "404");
        assert_eq!(status(d.read_file("bob", "/Team/mine.txt")), "ok");
    }
}
