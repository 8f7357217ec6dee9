//! What Nextcloud's own HTTP surface (`crate::nextcloud`) asks of the state beyond the
//! operations the tools share with it: whether an owner still has files (for bearer tokens
//! that outlive their user), WebDAV COPY, and system tags (Nextcloud's `systemtags`: instance-wide
//! tags, assigned to files by id).

use std::collections::{BTreeMap, BTreeSet};

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

/// More tags than this on the instance are refused: a runaway client, not a real instance.
pub const MAX_TAGS: usize = 10_000;
/// More (file, tag) assignments than this are refused, for the same reason.
pub const MAX_TAGGINGS: usize = 1_000_000;
/// Nextcloud's limit on a tag's name.
const MAX_TAG_NAME_CHARS: usize = 64;

/// One system tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub id: u64,
    pub name: String,
    pub user_visible: bool,
    pub user_assignable: bool,
}

/// The instance's system tags and their assignments. File ids are never reused, so an
/// assignment to a deleted file is inert and is dropped when next seen.
#[derive(Default)]
pub struct Tags {
    by_id: BTreeMap<u64, Tag>,
    /// (file id, tag id).
    on_files: BTreeSet<(u64, u64)>,
    next_id: u64,
}

impl Data {
    /// `owner` has a file tree: a user, or a client acting for itself (a service account). A
    /// bearer token outlives its user; the data APIs refuse it once the tree is gone.
    pub fn has_files(&self, owner: &str) -> bool {
        self.trees.contains_key(owner)
    }

    /// Every system tag, by id.
    pub fn tags(&self) -> Vec<Tag> {
        self.tags.by_id.values().cloned().collect()
    }

    /// Creates a tag (`POST /remote.php/dav/systemtags/`): 409 when the name is taken.
    pub fn create_tag(
        &mut self,
        name: &str,
        user_visible: bool,
        user_assignable: bool,
    ) -> Result<Tag, NcError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_TAG_NAME_CHARS {
            return Err(NcError::BadRequest(format!(
                "a tag name is 1 to {MAX_TAG_NAME_CHARS} characters"
            )));
        }
        if self.tags.by_id.values().any(|t| t.name == name) {
            return Err(NcError::Conflict(format!(
                "Tag with the properties \"{name}\" already exists"
            )));
        }
        if self.tags.by_id.len() >= MAX_TAGS {
            return Err(NcError::Forbidden(format!("at most {MAX_TAGS} tags")));
        }
        self.tags.next_id += 1;
        let tag = Tag {
            id: self.tags.next_id,
            name: name.to_owned(),
            user_visible,
            user_assignable,
        };
        self.tags.by_id.insert(tag.id, tag.clone());
        Ok(tag)
    }

    /// The tags on file `file_id`; 404 when the caller cannot see the file.
    pub fn file_tags(&self, user: &str, file_id: u64) -> Result<Vec<Tag>, NcError> {
        self.visible_file(user, file_id)?;
        Ok(self
            .tags
            .on_files
            .range((file_id, 0)..=(file_id, u64::MAX))
            .filter_map(|(_, t)| self.tags.by_id.get(t).cloned())
            .collect())
    }

    /// Assigns a tag (`PUT …/systemtags-relations/files/<file>/<tag>`): 404 for a file the
    /// caller cannot see or an unknown tag, 409 when already assigned.
    pub fn tag_file(&mut self, user: &str, file_id: u64, tag_id: u64) -> Result<(), NcError> {
        self.visible_file(user, file_id)?;
        if !self.tags.by_id.contains_key(&tag_id) {
            return Err(NcError::NotFound(format!("Tag with id {tag_id} not found")));
        }
        if self.tags.on_files.contains(&(file_id, tag_id)) {
            return Err(NcError::Conflict(format!(
                "Tag {tag_id} is already assigned to file {file_id}"
            )));
        }
        if self.tags.on_files.len() >= MAX_TAGGINGS {
            self.tags
                .on_files
                .retain(|(f, _)| self.index.contains_key(f));
            if self.tags.on_files.len() >= MAX_TAGGINGS {
                return Err(NcError::Forbidden(format!(
                    "at most {MAX_TAGGINGS} tag assignments"
                )));
            }
        }
        self.tags.on_files.insert((file_id, tag_id));
        Ok(())
    }

    /// Removes a tag from a file: 404 when the file is not visible or does not carry it.
    pub fn untag_file(&mut self, user: &str, file_id: u64, tag_id: u64) -> Result<(), NcError> {
        self.visible_file(user, file_id)?;
        if self.tags.on_files.remove(&(file_id, tag_id)) {
            Ok(())
        } else {
            Err(NcError::NotFound(format!(
                "Tag {tag_id} is not assigned to file {file_id}"
            )))
        }
    }

    /// Where the caller sees the files carrying every one of `tag_ids` (a `REPORT` with
    /// `oc:filter-files`), sorted.
    pub fn paths_with_tags(&self, user: &str, tag_ids: &[u64]) -> Vec<String> {
        let Some(first) = tag_ids.first() else {
            return Vec::new();
        };
        let mut paths: Vec<String> = self
            .tags
            .on_files
            .iter()
            .filter(|(_, t)| t == first)
            .map(|(f, _)| *f)
            .filter(|f| {
                tag_ids
                    .iter()
                    .all(|t| self.tags.on_files.contains(&(*f, *t)))
            })
            .filter_map(|f| self.view_path(user, f))
            .collect();
        paths.sort();
        paths
    }

    fn visible_file(&self, user: &str, file_id: u64) -> Result<(), NcError> {
        self.view_path(user, file_id)
            .map(|_| ())
            .ok_or_else(|| NcError::NotFound(format!("File with id {file_id} not found")))
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
    fn tags_assign_to_visible_files_only() {
        let mut d = Data::default();
        for u in ["alice", "bob"] {
            d.add_user(u, Secret::new("pw"), u, "", Vec::new())
                .unwrap_or_default();
        }
        let Ok(w) = d.write_file("alice", "/a.txt", "a", None, Precondition::None) else {
            panic!("write");
        };
        let Ok(tag) = d.create_tag("urgent", true, true) else {
            panic!("tag");
        };
        assert!(matches!(
            d.create_tag("urgent", true, true),
            Err(NcError::Conflict(_))
        ));
        assert!(matches!(
            d.create_tag(" ", true, true),
            Err(NcError::BadRequest(_))
        ));
        assert_eq!(d.tag_file("alice", w.file_id, tag.id), Ok(()));
        assert!(matches!(
            d.tag_file("alice", w.file_id, tag.id),
            Err(NcError::Conflict(_))
        ));
        assert!(matches!(
            d.tag_file("bob", w.file_id, tag.id),
            Err(NcError::NotFound(_))
        ));
        assert!(matches!(
            d.tag_file("alice", w.file_id, 999),
            Err(NcError::NotFound(_))
        ));
        assert_eq!(d.file_tags("alice", w.file_id).map(|t| t.len()), Ok(1));
        assert_eq!(
            d.paths_with_tags("alice", &[tag.id]),
            vec!["/a.txt".to_owned()]
        );
        assert!(d.paths_with_tags("bob", &[tag.id]).is_empty());
        assert_eq!(d.untag_file("alice", w.file_id, tag.id), Ok(()));
        assert!(matches!(
            d.untag_file("alice", w.file_id, tag.id),
            Err(NcError::NotFound(_))
        ));
    }

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
