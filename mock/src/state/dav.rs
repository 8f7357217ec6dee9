//! What Nextcloud's own HTTP surface (`crate::nextcloud`) asks of the state beyond the
//! operations the tools share with it: whether an owner still has files (for bearer tokens
//! that outlive their user) and WebDAV COPY.

use super::{
    Data, NcError, Node, PERM_CREATE, PERM_DELETE, PERM_READ, PERM_UPDATE, etag_matches, join,
    norm, parent, strip_dir,
};

fn need(perms: u32, bit: u32, what: &str) -> Result<(), NcError> {
    if perms & bit == bit {
        Ok(())
    } else {
        Err(NcError::Forbidden(format!("no permission to {what}")))
    }
}

impl Data {
    /// `owner` has a file tree: a user, or a client acting for itself (a service account). A
    /// bearer token outlives its user; the data APIs refuse it once the tree is gone.
    pub fn has_files(&self, owner: &str) -> bool {
        self.trees.contains_key(owner)
    }

    /// A WebDAV COPY of the caller's `source` (and everything below it) to `destination`, as
    /// Sabre does it: 404 without a source, 409 without the destination's parent or into the
    /// source itself, 412 onto an existing destination without `overwrite` (or when
    /// `if_destination_match` no longer matches it). The copies are new files with new ids,
    /// owned by whoever owns the destination folder (a copy out of a received share is the
    /// caller's). Ok(true) when the destination is new (201).
    pub fn copy_resource(
        &mut self,
        user: &str,
        source: &str,
        destination: &str,
        overwrite: bool,
        if_destination_match: Option<&str>,
    ) -> Result<bool, NcError> {
        let (source, destination) = (norm(source)?, norm(destination)?);
        if destination == "/" {
            return Err(NcError::Forbidden("cannot copy onto the root".into()));
        }
        if strip_dir(&destination, &source).is_some() {
            return Err(NcError::Conflict(
                "cannot copy a resource into itself".into(),
            ));
        }
        let from = self.locate(user, &source);
        let from_exists = from.path == "/" && from.via_share.is_none()
            || self.node(&from.owner, &from.path).is_some();
        if !from_exists {
            return Err(NcError::NotFound(format!(
                "File with name {} could not be located",
                source.trim_start_matches('/')
            )));
        }
        need(from.perms, PERM_READ, "read the source")?;
        let to = self.locate(user, &destination);
        let dest = self.node(&to.owner, &to.path);
        if let Some(given) = if_destination_match {
            match dest {
                None => {
                    return Err(NcError::NotFound(format!(
                        "File with name {} could not be located",
                        destination.trim_start_matches('/')
                    )));
                }
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
            need(to.perms, PERM_CREATE, "create here")?;
            if existed {
                need(
                    to.perms,
                    PERM_UPDATE | PERM_DELETE,
                    "replace the destination",
                )?;
            }
        }
        // Read everything first: source and destination may be the same tree.
        let copies: Vec<(String, super::NodeKind)> = self
            .subtree(&from.owner, &from.path)
            .into_iter()
            .filter_map(|p| {
                let node = self.node(&from.owner, &p)?;
                let rest = strip_dir(&p, &from.path)?;
                Some((join(&to.path, rest), node.kind.clone()))
            })
            .collect();
        if existed {
            self.remove_subtree(&to.owner, &to.path);
        }
        for (path, kind) in copies {
            self.insert_node(&to.owner, &path, kind)?;
        }
        Ok(!existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;
    use crate::state::Precondition;

    #[test]
    fn copy_table() {
        let mut d = Data::default();
        for u in ["alice", "bob"] {
            d.add_user(u, Secret::new("pw"), u, "", Vec::new())
                .unwrap_or_default();
        }
        for (path, content) in [("/D/a.txt", "a"), ("/D/E/b.txt", "b"), ("/c.txt", "c")] {
            d.create_directory("alice", "/D").ok();
            d.create_directory("alice", "/D/E").ok();
            d.write_file("alice", path, content, None, Precondition::None)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        d.create_share("alice", "/D", "bob", 0, 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let status = |r: Result<bool, NcError>| match r {
            Ok(true) => "201".to_owned(),
            Ok(false) => "204".to_owned(),
            Err(e) => e.to_string()[..3].to_owned(),
        };
        let check =
            |d: &mut Data, user: &str, from: &str, to: &str, overwrite: bool, expected: &str| {
                assert_eq!(
                    status(d.copy_resource(user, from, to, overwrite, None)),
                    expected,
                    "{user} {from} -> {to}"
                );
            };
        check(&mut d, "alice", "/D", "/F", false, "201");
        check(&mut d, "alice", "/D", "/F", false, "412");
        check(&mut d, "alice", "/c.txt", "/F/a.txt", true, "204");
        check(&mut d, "alice", "/nope", "/x", true, "404");
        check(&mut d, "alice", "/c.txt", "/no/x", true, "409");
        check(&mut d, "alice", "/D", "/D/E/D", true, "409");
        check(&mut d, "bob", "/D/E", "/mine", false, "201");
        check(&mut d, "bob", "/mine/b.txt", "/D/c.txt", false, "403");
        let read = |d: &Data, user: &str, path: &str| {
            d.read_file(user, path).map(|(_, c)| c).unwrap_or_default()
        };
        assert_eq!(read(&d, "alice", "/F/E/b.txt"), "b");
        assert_eq!(read(&d, "alice", "/F/a.txt"), "c");
        assert_eq!(
            read(&d, "alice", "/D/a.txt"),
            "a",
            "the source is untouched"
        );
        assert_eq!(
            read(&d, "bob", "/mine/b.txt"),
            "b",
            "a copy out of a share is the caller's"
        );
        let ids =
            |d: &Data, user: &str, path: &str| d.stat(user, path).map(|f| f.file_id).unwrap_or(0);
        assert_ne!(
            ids(&d, "alice", "/F/E/b.txt"),
            ids(&d, "alice", "/D/E/b.txt")
        );
    }
}
