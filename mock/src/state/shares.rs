//! Shares (`nc_share_*`, OCS `files_sharing`): user shares of a file or folder with Nextcloud's
//! permission bits; the recipient sees the item at `file_target` in their own root. Share JSON is
//! what `ShareAPIController::formatShare` returns, relative to the viewer: `path` is where the
//! viewer sees the node (the recipient's `file_target`, the owner's own path).

use serde_json::{Value, json};

use super::{
    Data, NcError, PERM_ALL, PERM_CREATE, PERM_DELETE, PERM_READ, PERM_SHARE, Share, basename,
    join, norm, strip_dir,
};

/// Nextcloud's share type for a user share; the only one the mock supports.
const SHARE_TYPE_USER: u8 = 0;

fn wrong_share_id() -> NcError {
    NcError::NotFound("Wrong share ID, share does not exist".into())
}

fn wrong_path() -> NcError {
    NcError::NotFound("Wrong path, file/folder does not exist".into())
}

/// A small stable number for an owner's storage (OCS `storage`, the numeric storage id).
fn storage_number(owner: &str) -> u64 {
    owner
        .bytes()
        .fold(7_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 100_000
}

impl Data {
    /// Where `viewer` sees node `node_id`: its own path for the owner, else below the
    /// `file_target` of a share it received that covers the node.
    pub fn view_path(&self, viewer: &str, node_id: u64) -> Option<String> {
        let (owner, path) = self.index.get(&node_id)?;
        if owner == viewer {
            return Some(path.clone());
        }
        self.shares
            .values()
            .filter(|s| s.share_with == viewer)
            .find_map(|s| {
                let (_, base) = self.index.get(&s.node_id)?;
                let rest = strip_dir(path, base)?;
                Some(join(&s.file_target, rest))
            })
    }

    /// The OCS share object as `viewer` gets it.
    fn share_json(&self, viewer: &str, share: &Share) -> Value {
        let display = |u: &str| {
            self.user(u)
                .map_or_else(|| u.to_owned(), |u| u.display_name.clone())
        };
        let node = self
            .index
            .get(&share.node_id)
            .and_then(|(owner, path)| Some((owner, path, self.node(owner, path)?)));
        let (is_dir, mimetype, size, mtime, file_parent) = match node {
            Some((owner, path, n)) => {
                let (mime, size) = match &n.kind {
                    super::NodeKind::Dir => ("httpd/unix-directory".to_owned(), 0),
                    super::NodeKind::File {
                        content,
                        content_type,
                    } => (content_type.clone(), content.len()),
                };
                (
                    n.is_dir(),
                    mime,
                    size,
                    n.modified,
                    self.parent_id(owner, path),
                )
            }
            None => (false, String::new(), 0, 0, 0),
        };
        let path = if viewer == share.share_with {
            share.file_target.clone()
        } else {
            self.view_path(viewer, share.node_id)
                .unwrap_or_else(|| share.file_target.clone())
        };
        let item_permissions = if viewer == share.share_with {
            share.permissions
        } else if is_dir {
            PERM_ALL
        } else {
            PERM_ALL & !(PERM_CREATE | PERM_DELETE)
        };
        let editable = viewer == share.owner || viewer == share.initiator;
        let unique = self
            .user(&share.share_with)
            .filter(|u| !u.email.is_empty())
            .map_or_else(|| share.share_with.clone(), |u| u.email.clone());
        json!({
            "id": share.id.to_string(),
            "share_type": share.share_type,
            "uid_owner": share.initiator,
            "displayname_owner": display(&share.initiator),
            "permissions": share.permissions,
            "can_edit": editable,
            "can_delete": editable,
            "stime": share.stime,
            "parent": null,
            "expiration": null,
            "token": null,
            "uid_file_owner": share.owner,
            "note": "",
            "label": "",
            "displayname_file_owner": display(&share.owner),
            "path": path,
            "item_type": if is_dir { "folder" } else { "file" },
            "item_permissions": item_permissions,
            "is-mount-root": false,
            "mount-type": if viewer == share.share_with { "shared" } else { "" },
            "mimetype": mimetype,
            "has_preview": false,
            "storage_id": format!("home::{}", share.owner),
            "storage": storage_number(&share.owner),
            "item_source": share.node_id,
            "file_source": share.node_id,
            "file_parent": file_parent,
            "file_target": share.file_target,
            "item_size": size,
            "item_mtime": mtime,
            "share_with": share.share_with,
            "share_with_displayname": display(&share.share_with),
            "share_with_displayname_unique": unique,
            "status": [],
            "mail_send": 0,
            "hide_download": 0,
            "attributes": null,
            "tags": [],
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

    /// Creates a user share (OCS `POST /shares`) and returns it as the creator sees it. As
    /// Nextcloud does, read is always granted and a file share loses create and delete.
    pub fn create_share(
        &mut self,
        user: &str,
        path: &str,
        share_with: &str,
        share_type: u8,
        permissions: u32,
    ) -> Result<Value, NcError> {
        if share_type != SHARE_TYPE_USER {
            return Err(NcError::BadRequest("Unknown share type".into()));
        }
        if permissions > PERM_ALL {
            return Err(NcError::BadRequest("Invalid permissions".into()));
        }
        let path = norm(path)?;
        if path == "/" {
            return Err(NcError::Forbidden(
                "You cannot share your root folder".into(),
            ));
        }
        let loc = self.locate(user, &path);
        let (node_id, is_dir) = self
            .node(&loc.owner, &loc.path)
            .map(|n| (n.id, n.is_dir()))
            .ok_or_else(wrong_path)?;
        let mut permissions = permissions | PERM_READ;
        if !is_dir {
            permissions &= !(PERM_CREATE | PERM_DELETE);
        }
        if self.user(share_with).is_none() {
            return Err(NcError::NotFound(
                "Please specify a valid account to share with".into(),
            ));
        }
        if share_with == user || share_with == loc.owner {
            return Err(NcError::Forbidden(format!(
                "Sharing {} failed, because you can not share with yourself",
                basename(&path)
            )));
        }
        if loc.via_share.is_some() {
            if loc.perms & PERM_SHARE == 0 {
                return Err(NcError::NotFound(format!(
                    "You are not allowed to share {}",
                    basename(&path)
                )));
            }
            if permissions & !loc.perms != 0 {
                return Err(NcError::NotFound(format!(
                    "Cannot increase permissions of {}",
                    basename(&path)
                )));
            }
        }
        if self
            .shares
            .values()
            .any(|s| s.node_id == node_id && s.share_with == share_with)
        {
            return Err(NcError::Forbidden(format!(
                "Sharing {} failed, because this item is already shared with the account {share_with}",
                basename(&path)
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
            stime: super::now_secs(),
        };
        let out = self.share_json(user, &share);
        self.shares.insert(share.id, share);
        Ok(out)
    }

    /// The share if the caller may see it (owner, initiator or recipient), else 404.
    fn visible_share(&self, user: &str, id: u64) -> Result<&Share, NcError> {
        self.shares
            .get(&id)
            .filter(|s| s.owner == user || s.initiator == user || s.share_with == user)
            .ok_or_else(wrong_share_id)
    }

    /// Changes a share's permissions (OCS `PUT /shares/{id}`); only its owner or initiator may.
    pub fn update_share(
        &mut self,
        user: &str,
        id: u64,
        permissions: u32,
    ) -> Result<Value, NcError> {
        let share = self.visible_share(user, id)?;
        if share.owner != user && share.initiator != user {
            return Err(NcError::Forbidden(
                "You are not allowed to edit incoming shares".into(),
            ));
        }
        if permissions > PERM_ALL || permissions & PERM_READ == 0 {
            return Err(NcError::BadRequest("Invalid permissions".into()));
        }
        let is_dir = self
            .index
            .get(&share.node_id)
            .and_then(|(o, p)| self.node(o, p))
            .is_some_and(|n| n.is_dir());
        let mut permissions = permissions;
        if !is_dir {
            permissions &= !(PERM_CREATE | PERM_DELETE);
        }
        let Some(share) = self.shares.get_mut(&id) else {
            return Err(wrong_share_id());
        };
        share.permissions = permissions;
        let share = share.clone();
        Ok(self.share_json(user, &share))
    }

    /// One share (OCS `GET /shares/{id}` returns it as a one-element list; this is the element).
    pub fn get_share(&self, user: &str, id: u64) -> Result<Value, NcError> {
        Ok(self.share_json(user, self.visible_share(user, id)?))
    }

    /// OCS `GET /shares`: the caller's own shares (made by or owned by them), optionally of one
    /// path; or, with `shared_with_me`, the shares they received.
    pub fn list_shares(
        &self,
        user: &str,
        path: Option<&str>,
        shared_with_me: bool,
    ) -> Result<Vec<Value>, NcError> {
        let path = path.filter(|p| !p.is_empty()).map(norm).transpose()?;
        let node_id = match &path {
            None => None,
            Some(p) => {
                let loc = self.locate(user, p);
                Some(
                    self.node(&loc.owner, &loc.path)
                        .map(|n| n.id)
                        .ok_or_else(wrong_path)?,
                )
            }
        };
        Ok(self
            .shares
            .values()
            .filter(|s| {
                let mine = if shared_with_me {
                    s.share_with == user
                } else {
                    s.owner == user || s.initiator == user
                };
                mine && node_id.is_none_or(|id| id == s.node_id)
            })
            .map(|s| self.share_json(user, s))
            .collect())
    }

    /// Deletes a share (OCS `DELETE /shares/{id}`); a recipient deleting it unshares it from
    /// themself.
    pub fn delete_share(&mut self, user: &str, id: u64) -> Result<(), NcError> {
        self.visible_share(user, id)?;
        self.shares.remove(&id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use crate::state::Precondition;

    fn data() -> Data {
        let mut d = Data::default();
        for u in ["alice", "bob", "carol"] {
            d.add_user(u, Secret::new("pw"), u, &format!("{u}@x"), Vec::new())
                .unwrap_or_default();
        }
        d
    }

    /// The status prefix of an operation's outcome ("ok" or e.g. "403").
    fn status<T>(r: Result<T, NcError>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(e) => e.to_string()[..3].to_owned(),
        }
    }

    fn write(d: &mut Data, user: &str, path: &str, content: &str) {
        assert!(
            d.write_file(user, path, content, None, Precondition::None)
                .is_ok(),
            "{user} writes {path}"
        );
    }

    #[test]
    fn folder_shares_resharing_and_user_deletion() {
        let mut d = data();
        assert!(d.create_directory("alice", "/Team").is_ok());
        assert!(d.create_directory("bob", "/Team").is_ok());
        write(&mut d, "alice", "/Team/a.txt", "x");
        write(&mut d, "bob", "/Team/mine.txt", "b");
        let share = d
            .create_share("alice", "/Team", "bob", 0, 1 | 2 | 4)
            .unwrap_or_default();
        // Bob already has a /Team, so the share lands at "/Team (2)".
        assert_eq!(share["file_target"], "/Team (2)");
        assert_eq!(share["item_type"], "folder");
        let check = |d: &mut Data, op: &str, expected: &str| {
            let r = match op {
                "bob reads" => status(d.read_file("bob", "/Team (2)/a.txt")),
                "bob writes" => {
                    status(d.write_file("bob", "/Team (2)/a.txt", "y", None, Precondition::None))
                }
                "bob creates" => {
                    status(d.write_file("bob", "/Team (2)/new.txt", "n", None, Precondition::None))
                }
                "bob deletes" => status(d.delete_resource("bob", "/Team (2)/a.txt")),
                "bob reshares" => status(d.create_share("bob", "/Team (2)", "carol", 0, 1)),
                "carol reads" => status(d.read_file("carol", "/Team/a.txt")),
                "carol shares alice's path" => {
                    status(d.create_share("carol", "/Team", "bob", 0, 1))
                }
                "share with nobody" => status(d.create_share("alice", "/Team", "nobody", 0, 1)),
                _ => unreachable!("unknown op {op}"),
            };
            assert_eq!(r, expected, "{op}");
        };
        check(&mut d, "bob reads", "ok");
        check(&mut d, "bob writes", "ok");
        check(&mut d, "bob creates", "ok");
        check(&mut d, "bob deletes", "403");
        check(&mut d, "bob reshares", "404");
        check(&mut d, "carol reads", "404");
        check(&mut d, "carol shares alice's path", "404");
        check(&mut d, "share with nobody", "404");
        assert_eq!(
            d.read_file("alice", "/Team/new.txt").map(|(_, c)| c),
            Ok("n".into())
        );

        assert!(d.delete_user("alice"));
        assert!(d.shares.is_empty());
        check(&mut d, "bob reads", "404");
        assert_eq!(status(d.read_file("bob", "/Team/mine.txt")), "ok");
    }

    #[test]
    fn share_json_is_ocs_shaped_and_viewer_relative() {
        let mut d = data();
        let Ok(note) = d.create_note("alice", "Plan", "x", "Work") else {
            panic!("create note");
        };
        // A file share loses create and delete; read is always there.
        let created = d
            .create_share("alice", "/Notes/Work/Plan.md", "bob", 0, 2 | 4 | 8)
            .unwrap_or_default();
        assert_eq!(created["id"], "1", "OCS ids are strings");
        assert_eq!(created["permissions"], 3);
        assert_eq!(created["path"], "/Notes/Work/Plan.md", "the owner's path");
        assert_eq!(created["file_target"], "/Plan.md");
        assert_eq!(created["item_source"], note.id);
        assert_eq!(created["share_with_displayname_unique"], "bob@x");
        for field in [
            "share_type",
            "uid_owner",
            "displayname_owner",
            "stime",
            "parent",
            "expiration",
            "token",
            "uid_file_owner",
            "displayname_file_owner",
            "note",
            "label",
            "item_type",
            "mimetype",
            "has_preview",
            "storage_id",
            "storage",
            "file_source",
            "file_parent",
            "share_with",
            "share_with_displayname",
            "status",
            "mail_send",
            "hide_download",
            "attributes",
            "item_permissions",
        ] {
            assert!(created.get(field).is_some(), "{field} missing");
        }
        let Ok(received) = d.list_shares("bob", None, true) else {
            panic!("list");
        };
        assert_eq!(received.len(), 1);
        assert_eq!(received[0]["path"], "/Plan.md", "the recipient's view");
        assert_eq!(received[0]["item_permissions"], 3);
        assert_eq!(status(d.update_share("bob", 1, 1)), "403");
        assert_eq!(status(d.get_share("carol", 1)), "404");
        let Ok(updated) = d.update_share("alice", 1, 1) else {
            panic!("update");
        };
        assert_eq!(updated["permissions"], 1);
        assert_eq!(
            d.list_shares("alice", Some("/Notes/Work/Plan.md"), false)
                .map(|v| v.len()),
            Ok(1)
        );
        assert_eq!(
            status(d.list_shares("alice", Some("/nothing"), false)),
            "404"
        );
    }
}
