//! Files as WebDAV (Sabre in Nextcloud) sees them from the caller: own files plus received
//! shares mounted at their `file_target`. Writes are conditional (`If-Match` / `If-None-Match`),
//! parents must exist (409), and a collection that exists cannot be made again (405).

use super::{
    Data, Loc, NcError, Node, NodeKind, PERM_ALL, PERM_CREATE, PERM_DELETE, PERM_READ, PERM_UPDATE,
    basename, join, norm, now_secs, parent, strip_dir,
};

/// A write's precondition, as the HTTP headers carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No header: create or replace.
    None,
    /// `If-Match: <etag>` (quotes allowed): the file must exist with that etag; `*` means
    /// it must merely exist.
    IfMatch(String),
    /// `If-None-Match: *`: the file must not exist (create-only).
    IfNoneMatchAny,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// A new file (HTTP 201) rather than a replaced one (204).
    pub created: bool,
    pub etag: String,
    pub file_id: u64,
}

/// One file or folder as a PROPFIND shows it to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The caller's path (inside a received share: below its `file_target`).
    pub path: String,
    pub file_id: u64,
    pub is_dir: bool,
    pub size: u64,
    pub etag: String,
    /// `httpd/unix-directory` for folders.
    pub content_type: String,
    pub modified: u64,
    /// The caller's permission bits on it (`PERM_*`).
    pub permissions: u32,
}

impl FileInfo {
    pub fn name(&self) -> &str {
        basename(&self.path)
    }
}

fn need(loc: &Loc, bit: u32, what: &str) -> Result<(), NcError> {
    if loc.perms & bit == bit {
        Ok(())
    } else {
        Err(NcError::Forbidden(format!("no permission to {what}")))
    }
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

/// Etags compare without quotes and the weak prefix.
pub fn etag_matches(current: &str, given: &str) -> bool {
    unquote(current) == unquote(given)
}

fn missing(path: &str) -> NcError {
    NcError::NotFound(format!(
        "File with name {} could not be located",
        path.trim_start_matches('/')
    ))
}

impl Data {
    fn info(&self, view_path: &str, node: &Node, perms: u32) -> FileInfo {
        let (size, content_type) = match &node.kind {
            NodeKind::Dir => (0, "httpd/unix-directory".to_owned()),
            NodeKind::File {
                content,
                content_type,
            } => (content.len() as u64, content_type.clone()),
        };
        FileInfo {
            path: view_path.to_owned(),
            file_id: node.id,
            is_dir: node.is_dir(),
            size,
            etag: node.etag.clone(),
            content_type,
            modified: node.modified,
            permissions: perms,
        }
    }

    /// The caller's root folder as a `FileInfo` (it has no node of its own).
    fn root_info(&self, user: &str) -> FileInfo {
        FileInfo {
            path: "/".into(),
            file_id: self.root_id(user),
            is_dir: true,
            size: 0,
            etag: format!("{:016x}", self.root_id(user)),
            content_type: "httpd/unix-directory".into(),
            modified: 0,
            permissions: PERM_ALL,
        }
    }

    /// A Depth-0 PROPFIND: the file or folder at the caller's `path` (`/` is the root).
    pub fn stat(&self, user: &str, path: &str) -> Result<FileInfo, NcError> {
        let path = norm(path)?;
        self.tree(user)?;
        if path == "/" {
            return Ok(self.root_info(user));
        }
        let loc = self.locate(user, &path);
        let node = self
            .node(&loc.owner, &loc.path)
            .ok_or_else(|| missing(&path))?;
        Ok(self.info(&path, node, loc.perms))
    }

    /// A GET: the file's metadata and content; 404 for a missing path, 400 for a folder.
    pub fn read_file(&self, user: &str, path: &str) -> Result<(FileInfo, String), NcError> {
        let path = norm(path)?;
        let loc = self.locate(user, &path);
        let node = self
            .node(&loc.owner, &loc.path)
            .ok_or_else(|| missing(&path))?;
        need(&loc, PERM_READ, "read this file")?;
        let NodeKind::File { content, .. } = &node.kind else {
            return Err(NcError::BadRequest(format!("{path} is a directory")));
        };
        Ok((self.info(&path, node, loc.perms), content.clone()))
    }

    /// A Depth-1 PROPFIND: the children of the caller's folder `path`, received shares
    /// included where they are mounted.
    pub fn list_directory(&self, user: &str, path: &str) -> Result<Vec<FileInfo>, NcError> {
        let path = norm(path)?;
        self.tree(user)?;
        let loc = self.locate(user, &path);
        if let Some(node) = self.node(&loc.owner, &loc.path) {
            if !node.is_dir() {
                return Err(NcError::BadRequest(format!("{path} is not a directory")));
            }
        } else if loc.path != "/" {
            return Err(missing(&path));
        }
        need(&loc, PERM_READ, "list this directory")?;
        let prefix = if loc.path == "/" {
            "/".to_owned()
        } else {
            format!("{}/", loc.path)
        };
        let mut files: Vec<FileInfo> = self
            .tree(&loc.owner)?
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p[prefix.len()..].contains('/'))
            .map(|(p, node)| {
                let rest = strip_dir(p, &loc.path).unwrap_or("");
                self.info(&join(&path, rest), node, loc.perms)
            })
            .collect();
        if loc.via_share.is_none() {
            for share in self.shares.values().filter(|s| s.share_with == user) {
                if parent(&share.file_target) != path {
                    continue;
                }
                if let Some((owner, p)) = self.index.get(&share.node_id)
                    && let Some(node) = self.node(owner, p)
                {
                    files.push(self.info(&share.file_target, node, share.permissions));
                }
            }
        }
        Ok(files)
    }

    /// A PUT under `cond`: 412 when the precondition fails, 409 when the parent folder is
    /// missing, 403 without the share permission needed.
    pub fn write_file(
        &mut self,
        user: &str,
        path: &str,
        content: &str,
        content_type: Option<&str>,
        cond: Precondition,
    ) -> Result<Written, NcError> {
        let path = norm(path)?;
        if path == "/" {
            return Err(NcError::NotAllowed("cannot write the root".into()));
        }
        self.tree(user)?;
        let loc = self.locate(user, &path);
        let existing = self.node(&loc.owner, &loc.path).map(|n| n.etag.clone());
        match (&cond, &existing) {
            (Precondition::IfNoneMatchAny, Some(_)) => {
                return Err(NcError::PreconditionFailed(format!(
                    "An If-None-Match header was specified, but the ETag matched (or * was specified) for {path}"
                )));
            }
            (Precondition::IfMatch(_), None) => {
                return Err(NcError::PreconditionFailed(format!(
                    "An If-Match header was specified, but none of the specified ETags matched for {path}"
                )));
            }
            (Precondition::IfMatch(given), Some(current))
                if given.trim() != "*" && !etag_matches(current, given) =>
            {
                return Err(NcError::PreconditionFailed(format!(
                    "An If-Match header was specified, but none of the specified ETags matched for {path}"
                )));
            }
            _ => {}
        }
        if existing.is_some() {
            need(&loc, PERM_UPDATE, "update this file")?;
            let etag = self.new_etag();
            let Some(node) = self.tree_mut(&loc.owner)?.get_mut(&loc.path) else {
                return Err(missing(&path));
            };
            let NodeKind::File {
                content: old,
                content_type: ct,
            } = &mut node.kind
            else {
                return Err(NcError::NotAllowed(format!("{path} is a directory")));
            };
            content.clone_into(old);
            if let Some(t) = content_type {
                t.clone_into(ct);
            }
            node.etag.clone_from(&etag);
            node.modified = now_secs();
            return Ok(Written {
                created: false,
                etag,
                file_id: node.id,
            });
        }
        let dir = parent(&loc.path);
        let parent_ok = dir == "/" || self.node(&loc.owner, dir).is_some_and(Node::is_dir);
        if !parent_ok {
            return Err(NcError::Conflict(format!(
                "Parent of {path} does not exist or is not a folder"
            )));
        }
        if loc.via_share.is_some() {
            need(&loc, PERM_CREATE, "create files here")?;
        }
        let kind = NodeKind::File {
            content: content.to_owned(),
            content_type: content_type
                .unwrap_or("application/octet-stream")
                .to_owned(),
        };
        let node = self.insert_node(&loc.owner, &loc.path, kind)?;
        Ok(Written {
            created: true,
            etag: node.etag,
            file_id: node.id,
        })
    }

    /// A MKCOL: 405 when `path` exists, 409 when its parent does not.
    pub fn create_directory(&mut self, user: &str, path: &str) -> Result<FileInfo, NcError> {
        let path = norm(path)?;
        self.tree(user)?;
        let loc = self.locate(user, &path);
        if loc.path == "/" || self.node(&loc.owner, &loc.path).is_some() {
            return Err(NcError::NotAllowed(
                "The resource you tried to create already exists".into(),
            ));
        }
        let dir = parent(&loc.path);
        if dir != "/" && !self.node(&loc.owner, dir).is_some_and(Node::is_dir) {
            return Err(NcError::Conflict("Parent node does not exist".into()));
        }
        if loc.via_share.is_some() {
            need(&loc, PERM_CREATE, "create directories here")?;
        }
        let node = self.insert_node(&loc.owner, &loc.path, NodeKind::Dir)?;
        Ok(self.info(&path, &node, loc.perms))
    }

    /// A DELETE of a file or folder (with everything below it and the shares on it); deleting a
    /// received share's mount point unshares it from the caller, as on Nextcloud.
    pub fn delete_resource(&mut self, user: &str, path: &str) -> Result<(), NcError> {
        let path = norm(path)?;
        if path == "/" {
            return Err(NcError::Forbidden("cannot delete the root".into()));
        }
        let loc = self.locate(user, &path);
        if self.node(&loc.owner, &loc.path).is_none() {
            return Err(missing(&path));
        }
        if let Some(share_id) = loc.via_share
            && self
                .shares
                .get(&share_id)
                .is_some_and(|s| s.file_target == path)
        {
            self.shares.remove(&share_id);
            return Ok(());
        }
        need(&loc, PERM_DELETE, "delete this resource")?;
        self.remove_subtree(&loc.owner, &loc.path);
        Ok(())
    }

    /// A MOVE within one owner's files: 404 without a source, 412 onto an existing
    /// destination without `overwrite` (or when `if_destination_match` no longer matches it),
    /// 409 without the destination's parent. Ok(true) when the destination is new (201).
    pub fn move_resource(
        &mut self,
        user: &str,
        source: &str,
        destination: &str,
        overwrite: bool,
        if_destination_match: Option<&str>,
    ) -> Result<bool, NcError> {
        let (source, destination) = (norm(source)?, norm(destination)?);
        if source == "/" || destination == "/" {
            return Err(NcError::Forbidden("cannot move the root".into()));
        }
        if strip_dir(&destination, &source).is_some() {
            return Err(NcError::Conflict(
                "cannot move a resource into itself".into(),
            ));
        }
        let from = self.locate(user, &source);
        if self.node(&from.owner, &from.path).is_none() {
            return Err(missing(&source));
        }
        need(&from, PERM_DELETE | PERM_UPDATE, "move this resource")?;
        let to = self.locate(user, &destination);
        if to.owner != from.owner {
            return Err(NcError::Forbidden(
                "cannot move between different owners' files".into(),
            ));
        }
        let dest = self.node(&to.owner, &to.path);
        if let Some(given) = if_destination_match {
            match dest {
                None => return Err(missing(&destination)),
                Some(n) if n.is_dir() || !etag_matches(&n.etag, given) => {
                    return Err(NcError::PreconditionFailed(format!(
                        "the destination {destination} has changed"
                    )));
                }
                Some(_) => {}
            }
        }
        let existed = dest.is_some();
        if existed && !overwrite {
            return Err(NcError::PreconditionFailed(format!(
                "The destination node already exists, and the overwrite header is set to false for {destination}"
            )));
        }
        let dir = parent(&to.path);
        if dir != "/" && !self.node(&to.owner, dir).is_some_and(Node::is_dir) {
            return Err(NcError::Conflict(
                "The destination node is not found".into(),
            ));
        }
        if to.via_share.is_some() {
            need(&to, PERM_CREATE, "create here")?;
        }
        if existed {
            self.remove_subtree(&to.owner, &to.path);
        }
        self.move_subtree(&from.owner, &from.path, &to.path)?;
        Ok(!existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    #[test]
    fn conditional_writes() {
        let mut d = Data::default();
        d.add_user("alice", Secret::new("pw"), "alice", "", Vec::new())
            .unwrap_or_default();
        let status = |r: Result<Written, NcError>| match r {
            Ok(w) if w.created => "201".to_owned(),
            Ok(_) => "204".to_owned(),
            Err(e) => e.to_string()[..3].to_owned(),
        };
        use Precondition as P;
        assert_eq!(
            status(d.write_file("alice", "/a.txt", "1", None, P::IfNoneMatchAny)),
            "201"
        );
        assert_eq!(
            status(d.write_file("alice", "/a.txt", "2", None, P::IfNoneMatchAny)),
            "412"
        );
        let Ok(etag) = d.stat("alice", "/a.txt").map(|f| f.etag) else {
            panic!("stat");
        };
        assert_eq!(
            status(d.write_file(
                "alice",
                "/a.txt",
                "3",
                None,
                P::IfMatch(format!("\"{etag}\""))
            )),
            "204"
        );
        assert_eq!(
            status(d.write_file("alice", "/a.txt", "4", None, P::IfMatch(etag))),
            "412",
            "stale"
        );
        assert_eq!(
            status(d.write_file("alice", "/a.txt", "5", None, P::IfMatch("*".into()))),
            "204"
        );
        assert_eq!(
            status(d.write_file("alice", "/b.txt", "6", None, P::IfMatch("*".into()))),
            "412"
        );
        assert_eq!(
            status(d.write_file("alice", "/a.txt", "7", None, P::None)),
            "204"
        );
        assert_eq!(
            status(d.write_file("alice", "/no/such/c.txt", "8", None, P::None)),
            "409"
        );
        assert_eq!(
            d.read_file("alice", "/a.txt").map(|(_, c)| c),
            Ok("7".to_owned())
        );
        assert!(matches!(
            d.create_directory("alice", "/x/y"),
            Err(NcError::Conflict(_))
        ));
        assert!(d.create_directory("alice", "/x").is_ok());
        assert!(matches!(
            d.create_directory("alice", "/x"),
            Err(NcError::NotAllowed(_))
        ));
    }
}
