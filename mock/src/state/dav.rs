//! What Nextcloud's own HTTP surface (the mock's Nextcloud data APIs) asks of the state beyond the
//! operations the tools share with it: whether an owner still has files (for bearer tokens
//! that outlive their user), WebDAV COPY, system tags (Nextcloud's `systemtags`: instance-wide
//! tags, assigned to files by id) and comments on files.

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

/// How many comments the instance keeps at most.
pub const MAX_COMMENTS: usize = 1_000_000;
/// Nextcloud's `IComment::MAX_MESSAGE_LENGTH`.
pub const MAX_COMMENT_CHARS: usize = 1000;

/// One comment on a file, by a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: u64,
    pub file_id: u64,
    pub actor_id: String,
    pub actor_display_name: String,
    pub message: String,
    /// Unix seconds.
    pub created: u64,
}

/// The instance's system tags with their assignments, and the comments on files. File ids are
/// never reused, so an assignment or a comment on a deleted file is inert.
#[derive(Default)]
pub struct Extras {
    tags: BTreeMap<u64, Tag>,
    /// (file id, tag id).
    on_files: BTreeSet<(u64, u64)>,
    next_tag: u64,
    /// (file id, comment id) → comment.
    comments: BTreeMap<(u64, u64), Comment>,
    next_comment: u64,
}

impl Data {
    /// `owner` has a file tree: a user, or a client acting for itself (a service account). A
    /// bearer token outlives its user; the data APIs refuse it once the tree is gone.
    pub fn has_files(&self, owner: &str) -> bool {
        self.trees.contains_key(owner)
    }

    /// Every system tag, by id.
    pub fn tags(&self) -> Vec<Tag> {
        self.dav.tags.values().cloned().collect()
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
        if self.dav.tags.values().any(|t| t.name == name) {
            return Err(NcError::Conflict(format!(
                "Tag with the properties \"{name}\" already exists"
            )));
        }
        if self.dav.tags.len() >= MAX_TAGS {
            return Err(NcError::Forbidden(format!("at most {MAX_TAGS} tags")));
        }
        self.dav.next_tag += 1;
        let tag = Tag {
            id: self.dav.next_tag,
            name: name.to_owned(),
            user_visible,
            user_assignable,
        };
        self.dav.tags.insert(tag.id, tag.clone());
        Ok(tag)
    }

    /// The tags on file `file_id`; 404 when the caller cannot see the file.
    pub fn file_tags(&self, user: &str, file_id: u64) -> Result<Vec<Tag>, NcError> {
        self.visible_file(user, file_id)?;
        Ok(self
            .dav
            .on_files
            .range((file_id, 0)..=(file_id, u64::MAX))
            .filter_map(|(_, t)| self.dav.tags.get(t).cloned())
            .collect())
    }

    /// Assigns a tag (`PUT …/systemtags-relations/files/<file>/<tag>`): 404 for a file the
    /// caller cannot see or an unknown tag, 409 when already assigned.
    pub fn tag_file(&mut self, user: &str, file_id: u64, tag_id: u64) -> Result<(), NcError> {
        self.visible_file(user, file_id)?;
        if !self.dav.tags.contains_key(&tag_id) {
            return Err(NcError::NotFound(format!("Tag with id {tag_id} not found")));
        }
        if self.dav.on_files.contains(&(file_id, tag_id)) {
            return Err(NcError::Conflict(format!(
                "Tag {tag_id} is already assigned to file {file_id}"
            )));
        }
        if self.dav.on_files.len() >= MAX_TAGGINGS {
            self.dav
                .on_files
                .retain(|(f, _)| self.index.contains_key(f));
            if self.dav.on_files.len() >= MAX_TAGGINGS {
                return Err(NcError::Forbidden(format!(
                    "at most {MAX_TAGGINGS} tag assignments"
                )));
            }
        }
        self.dav.on_files.insert((file_id, tag_id));
        Ok(())
    }

    /// Removes a tag from a file: 404 when the file is not visible or does not carry it.
    pub fn untag_file(&mut self, user: &str, file_id: u64, tag_id: u64) -> Result<(), NcError> {
        self.visible_file(user, file_id)?;
        if self.dav.on_files.remove(&(file_id, tag_id)) {
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
            .dav
            .on_files
            .iter()
            .filter(|(_, t)| t == first)
            .map(|(f, _)| *f)
            .filter(|f| {
                tag_ids
                    .iter()
                    .all(|t| self.dav.on_files.contains(&(*f, *t)))
            })
            .filter_map(|f| self.view_path(user, f))
            .collect();
        paths.sort();
        paths
    }

    /// Comments on file `file_id`, newest first, `offset` skipped, at most `limit`; 404 when
    /// the caller cannot see the file.
    pub fn file_comments(
        &self,
        user: &str,
        file_id: u64,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Comment>, NcError> {
        self.visible_file(user, file_id)?;
        Ok(self
            .dav
            .comments
            .range((file_id, 0)..=(file_id, u64::MAX))
            .rev()
            .skip(offset)
            .take(limit)
            .map(|(_, c)| c.clone())
            .collect())
    }

    /// Comments on a file as `user`: 404 when the caller cannot see it; an empty message or one
    /// past Nextcloud's 1000 characters is refused.
    pub fn add_comment(
        &mut self,
        user: &str,
        file_id: u64,
        message: &str,
    ) -> Result<Comment, NcError> {
        self.visible_file(user, file_id)?;
        if message.trim().is_empty() {
            return Err(NcError::BadRequest("the comment is empty".into()));
        }
        if message.chars().count() > MAX_COMMENT_CHARS {
            return Err(NcError::BadRequest(format!(
                "Message exceeds allowed character limit of {MAX_COMMENT_CHARS}"
            )));
        }
        if self.dav.comments.len() >= MAX_COMMENTS {
            return Err(NcError::Forbidden(format!(
                "at most {MAX_COMMENTS} comments"
            )));
        }
        self.dav.next_comment += 1;
        let comment = Comment {
            id: self.dav.next_comment,
            file_id,
            actor_id: user.to_owned(),
            actor_display_name: self
                .user(user)
                .map_or_else(|| user.to_owned(), |u| u.display_name.clone()),
            message: message.to_owned(),
            created: super::now_secs(),
        };
        self.dav
            .comments
            .insert((file_id, comment.id), comment.clone());
        Ok(comment)
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
        for i in 0..3 {
            assert!(d.add_comment("alice", w.file_id, &format!("c{i}")).is_ok());
        }
        assert!(
            d.add_comment("bob", w.file_id, "x").is_err(),
            "bob cannot see it"
        );
        assert!(
            d.add_comment("alice", w.file_id, &"x".repeat(1001))
                .is_err()
        );
        let newest: Vec<String> = d
            .file_comments("alice", w.file_id, 1, 5)
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.message)
            .collect();
        assert_eq!(newest, vec!["c1", "c0"]);
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
