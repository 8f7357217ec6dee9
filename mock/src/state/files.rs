//! WebDAV-like file operations (`nc_webdav_*`), seen from the caller: own files plus received
//! shares mounted at their `file_target`.

use serde_json::{Value, json};

use super::{
    Data, Loc, NcError, Node, NodeKind, PERM_CREATE, PERM_DELETE, PERM_READ, PERM_UPDATE, basename,
    join, norm, now_secs, parent, strip_dir,
};

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

pub fn etag_matches(current: &str, given: &str) -> bool {
    unquote(current) == unquote(given)
}

fn entry(path: &str, node: &Node) -> Value {
    let (size, content_type) = match &node.kind {
        NodeKind::Dir => (0, "httpd/unix-directory"),
        NodeKind::File {
            content,
            content_type,
        } => (content.len(), content_type.as_str()),
    };
    json!({
        "name": basename(path),
        "path": path,
        "is_directory": node.is_dir(),
        "size": size,
        "etag": node.etag,
        "content_type": content_type,
        "last_modified": node.modified,
    })
}

impl Data {
    pub fn write_file(
        &mut self,
        user: &str,
        path: &str,
        content: &str,
        content_type: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<Value, NcError> {
        let path = norm(path)?;
        if path == "/" {
            return Err(NcError::BadRequest("cannot write the root".into()));
        }
        let loc = self.locate(user, &path);
        let etag = self.new_etag();
        let tree = self.tree_mut(&loc.owner)?;
        if let Some(node) = tree.get_mut(&loc.path) {
            need(&loc, PERM_UPDATE, "update this file")?;
            let NodeKind::File {
                content: old,
                content_type: ct,
            } = &mut node.kind
            else {
                return Err(NcError::Conflict(format!("{path} is a directory")));
            };
            if let Some(given) = if_match
                && !etag_matches(&node.etag, given)
            {
                return Err(NcError::PreconditionFailed(format!(
                    "etag of {path} has changed"
                )));
            }
            *old = content.to_owned();
            if let Some(t) = content_type {
                *ct = t.to_owned();
            }
            node.etag = etag.clone();
            node.modified = now_secs();
            return Ok(json!({ "path": path, "etag": etag, "status_code": 204 }));
        }
        if if_match.is_some() {
            return Err(NcError::PreconditionFailed(format!(
                "{path} does not exist"
            )));
        }
        if loc.via_share.is_some() {
            need(&loc, PERM_CREATE, "create files here")?;
            if !self.exists(&loc.owner, parent(&loc.path)) {
                return Err(NcError::Conflict(format!(
                    "parent of {path} does not exist"
                )));
            }
        }
        self.ensure_dirs(&loc.owner, &loc.path)?;
        let kind = NodeKind::File {
            content: content.to_owned(),
            content_type: content_type.unwrap_or("text/plain").to_owned(),
        };
        let node = self.insert_node(&loc.owner, &loc.path, kind)?;
        Ok(json!({ "path": path, "etag": node.etag, "status_code": 201 }))
    }

    pub fn read_file(&self, user: &str, path: &str) -> Result<Value, NcError> {
        let path = norm(path)?;
        let loc = self.locate(user, &path);
        let node = self
            .node(&loc.owner, &loc.path)
            .ok_or_else(|| NcError::NotFound(path.clone()))?;
        need(&loc, PERM_READ, "read this file")?;
        let NodeKind::File {
            content,
            content_type,
        } = &node.kind
        else {
            return Err(NcError::BadRequest(format!("{path} is a directory")));
        };
        Ok(json!({
            "path": path,
            "content": content,
            "content_type": content_type,
            "etag": node.etag,
            "size": content.len(),
        }))
    }

    pub fn list_directory(&self, user: &str, path: &str) -> Result<Value, NcError> {
        let path = norm(path)?;
        let loc = self.locate(user, &path);
        if let Some(node) = self.node(&loc.owner, &loc.path) {
            if !node.is_dir() {
                return Err(NcError::BadRequest(format!("{path} is not a directory")));
            }
        } else if loc.path != "/" {
            return Err(NcError::NotFound(path));
        }
        need(&loc, PERM_READ, "list this directory")?;
        let prefix = if loc.path == "/" {
            "/".to_owned()
        } else {
            format!("{}/", loc.path)
        };
        let mut files: Vec<Value> = self
            .tree(&loc.owner)?
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, _)| !p[prefix.len()..].contains('/'))
            .map(|(p, node)| {
                let rest = strip_dir(p, &loc.path).unwrap_or("");
                entry(&join(&path, rest), node)
            })
            .collect();
        if loc.via_share.is_none() {
            // Received shares appear where their targets are.
            for share in self.shares.values().filter(|s| s.share_with == user) {
                if parent(&share.file_target) != path {
                    continue;
                }
                if let Some((owner, p)) = self.index.get(&share.node_id)
                    && let Some(node) = self.node(owner, p)
                {
                    files.push(entry(&share.file_target, node));
                }
            }
        }
        Ok(json!({ "path": path, "files": files }))
    }

    pub fn create_directory(&mut self, user: &str, path: &str) -> Result<Value, NcError> {
        let path = norm(path)?;
        let loc = self.locate(user, &path);
        if self.exists(&loc.owner, &loc.path) {
            return Err(NcError::NotAllowed(format!("{path} already exists")));
        }
        if loc.via_share.is_some() {
            need(&loc, PERM_CREATE, "create directories here")?;
            if !self.exists(&loc.owner, parent(&loc.path)) {
                return Err(NcError::Conflict(format!(
                    "parent of {path} does not exist"
                )));
            }
        }
        self.ensure_dirs(&loc.owner, &loc.path)?;
        self.insert_node(&loc.owner, &loc.path, NodeKind::Dir)?;
        Ok(json!({ "path": path, "status_code": 201 }))
    }

    pub fn delete_resource(&mut self, user: &str, path: &str) -> Result<Value, NcError> {
        let path = norm(path)?;
        if path == "/" {
            return Err(NcError::Forbidden("cannot delete the root".into()));
        }
        let loc = self.locate(user, &path);
        if !self.exists(&loc.owner, &loc.path) {
            return Err(NcError::NotFound(path));
        }
        if let Some(share_id) = loc.via_share
            && self
                .shares
                .get(&share_id)
                .is_some_and(|s| s.file_target == path)
        {
            // Deleting a share's mount point unshares it from the recipient, as on Nextcloud.
            self.shares.remove(&share_id);
            return Ok(json!({ "path": path, "status_code": 204 }));
        }
        need(&loc, PERM_DELETE, "delete this resource")?;
        self.remove_subtree(&loc.owner, &loc.path);
        Ok(json!({ "path": path, "status_code": 204 }))
    }

    pub fn move_resource(
        &mut self,
        user: &str,
        source: &str,
        destination: &str,
        overwrite: bool,
    ) -> Result<Value, NcError> {
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
        if !self.exists(&from.owner, &from.path) {
            return Err(NcError::NotFound(source));
        }
        need(&from, PERM_DELETE | PERM_UPDATE, "move this resource")?;
        let to = self.locate(user, &destination);
        if to.owner != from.owner {
            return Err(NcError::Forbidden(
                "cannot move between different owners' files".into(),
            ));
        }
        if to.via_share.is_some() {
            need(&to, PERM_CREATE, "create here")?;
        }
        let existed = self.exists(&to.owner, &to.path);
        if existed {
            if !overwrite {
                return Err(NcError::PreconditionFailed(format!(
                    "{destination} already exists"
                )));
            }
            self.remove_subtree(&to.owner, &to.path);
        }
        self.ensure_dirs(&to.owner, &to.path)?;
        self.move_subtree(&from.owner, &from.path, &to.path)?;
        Ok(json!({
            "source_path": source,
            "destination_path": destination,
            "status_code": if existed { 204 } else { 201 },
        }))
    }
}
