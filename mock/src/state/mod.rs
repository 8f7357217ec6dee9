//! Per-user Nextcloud-like data: users, their file trees (notes are files under `/Notes`), shares,
//! and the path/permission resolution every tool goes through.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Secret;

pub mod app_passwords;
pub mod dav;
mod files;
mod groups;
mod notes;
mod shares;

pub use files::{FileInfo, Precondition, etag_matches};
pub use notes::Note;

pub const PERM_READ: u32 = 1;
pub const PERM_UPDATE: u32 = 2;
pub const PERM_CREATE: u32 = 4;
pub const PERM_DELETE: u32 = 8;
pub const PERM_SHARE: u32 = 16;
pub const PERM_ALL: u32 = 31;

/// A failed tool operation; its `Display` starts with the HTTP-like status the tool reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NcError {
    #[error("400 Bad Request: {0}")]
    BadRequest(String),
    #[error("403 Forbidden: {0}")]
    Forbidden(String),
    #[error("404 Not Found: {0}")]
    NotFound(String),
    #[error("405 Method Not Allowed: {0}")]
    NotAllowed(String),
    #[error("409 Conflict: {0}")]
    Conflict(String),
    #[error("412 Precondition Failed: {0}")]
    PreconditionFailed(String),
}

pub struct User {
    pub password: Secret,
    pub display_name: String,
    pub email: String,
    pub groups: Vec<String>,
}

#[derive(Clone)]
pub enum NodeKind {
    Dir,
    File {
        content: String,
        content_type: String,
    },
}

#[derive(Clone)]
pub struct Node {
    pub id: u64,
    pub kind: NodeKind,
    pub etag: String,
    pub modified: u64,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir)
    }
}

#[derive(Clone)]
pub struct Share {
    pub id: u64,
    /// Whose files hold the shared node.
    pub owner: String,
    /// Who created the share (the owner, or a resharer).
    pub initiator: String,
    pub node_id: u64,
    pub share_type: u8,
    pub share_with: String,
    pub permissions: u32,
    /// Where the share appears in the recipient's files.
    pub file_target: String,
    /// When the share was made (Unix seconds; OCS `stime`).
    pub stime: u64,
}

/// Where a caller's path really lives, and what the caller may do there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub owner: String,
    pub path: String,
    pub perms: u32,
    /// The share that grants access, when the caller is not the owner.
    pub via_share: Option<u64>,
}

/// All users' data. One instance behind a mutex in `App`.
#[derive(Default)]
pub struct Data {
    users: BTreeMap<String, User>,
    groups: std::collections::BTreeSet<String>,
    /// owner → path → node; the root `/` of each tree is implicit.
    trees: HashMap<String, BTreeMap<String, Node>>,
    /// node id → (owner, path), so ids (note ids) survive moves.
    index: HashMap<u64, (String, String)>,
    shares: BTreeMap<u64, Share>,
    /// owner → the file id of their root folder (what OCS calls `file_parent` of a top-level
    /// node, and what a PROPFIND of `/` reports).
    roots: HashMap<String, u64>,
    /// user → their app passwords.
    app_passwords: HashMap<String, Vec<app_passwords::AppPassword>>,
    /// System tags, their assignments, and comments on files (WebDAV `systemtags`, `comments`).
    dav: dav::Extras,
    next_id: u64,
    next_share: u64,
    etag_seq: u64,
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Normalizes a user-supplied path to `/a/b` form; `""` and `/` are the root.
pub fn norm(path: &str) -> Result<String, NcError> {
    let mut out = String::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(NcError::BadRequest(format!("invalid path {path:?}"))),
            p => {
                out.push('/');
                out.push_str(p);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `path` equals `dir` or lies below it; returns the rest (`""` or `/x/y`).
pub fn strip_dir<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    if dir == "/" {
        return Some(if path == "/" { "" } else { path });
    }
    let rest = path.strip_prefix(dir)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

pub fn join(dir: &str, rest: &str) -> String {
    if dir == "/" && !rest.is_empty() {
        rest.to_owned()
    } else {
        format!("{dir}{rest}")
    }
}

impl Data {
    pub fn add_user(
        &mut self,
        name: &str,
        password: Secret,
        display_name: &str,
        email: &str,
        groups: Vec<String>,
    ) -> Result<(), NcError> {
        if name.is_empty() || name.contains(['/', ':']) {
            return Err(NcError::BadRequest(format!("invalid user id {name:?}")));
        }
        if self.users.contains_key(name) {
            return Err(NcError::Conflict(format!("user {name} already exists")));
        }
        if let Some(g) = groups.iter().find(|g| !self.groups.contains(*g)) {
            return Err(NcError::NotFound(format!("group {g} does not exist")));
        }
        self.users.insert(
            name.to_owned(),
            User {
                password,
                display_name: display_name.to_owned(),
                email: email.to_owned(),
                groups,
            },
        );
        self.trees.insert(name.to_owned(), BTreeMap::new());
        let root = self.new_id();
        self.roots.insert(name.to_owned(), root);
        Ok(())
    }

    /// Gives a client that acts for itself (a client_credentials token,
    /// whose subject is its client id) a file tree of its own, as a service
    /// account; it is not a user (it cannot log in or be listed).
    pub fn ensure_service_account(&mut self, client_id: &str) {
        self.trees.entry(client_id.to_owned()).or_default();
        if !self.roots.contains_key(client_id) {
            let root = self.new_id();
            self.roots.insert(client_id.to_owned(), root);
        }
    }

    /// Deletes a user with their files and every share they own, made or received.
    pub fn delete_user(&mut self, name: &str) -> bool {
        if self.users.remove(name).is_none() {
            return false;
        }
        self.app_passwords.remove(name);
        self.roots.remove(name);
        if let Some(tree) = self.trees.remove(name) {
            for node in tree.values() {
                self.index.remove(&node.id);
            }
        }
        self.shares
            .retain(|_, s| s.owner != name && s.initiator != name && s.share_with != name);
        true
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn check_password(&self, name: &str, password: &str) -> bool {
        self.users
            .get(name)
            .is_some_and(|u| u.password.matches(password))
    }

    pub fn user_ids(&self) -> impl Iterator<Item = &String> {
        self.users.keys()
    }

    fn new_etag(&mut self) -> String {
        self.etag_seq += 1;
        format!("{:016x}", self.etag_seq.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn tree(&self, owner: &str) -> Result<&BTreeMap<String, Node>, NcError> {
        self.trees
            .get(owner)
            .ok_or_else(|| NcError::NotFound(format!("user {owner}")))
    }

    fn tree_mut(&mut self, owner: &str) -> Result<&mut BTreeMap<String, Node>, NcError> {
        self.trees
            .get_mut(owner)
            .ok_or_else(|| NcError::NotFound(format!("user {owner}")))
    }

    /// The file id of `owner`'s root folder (0 for an unknown owner).
    pub fn root_id(&self, owner: &str) -> u64 {
        self.roots.get(owner).copied().unwrap_or(0)
    }

    /// The file id of the folder holding `path` in `owner`'s tree.
    pub fn parent_id(&self, owner: &str, path: &str) -> u64 {
        let dir = parent(path);
        if dir == "/" {
            return self.root_id(owner);
        }
        self.node(owner, dir).map_or(0, |n| n.id)
    }

    /// The node at `path` in `owner`'s tree, or `None` (also for the root, which is implicit).
    pub fn node(&self, owner: &str, path: &str) -> Option<&Node> {
        self.trees.get(owner)?.get(path)
    }

    fn exists(&self, owner: &str, path: &str) -> bool {
        path == "/" || self.node(owner, path).is_some()
    }

    /// Resolves the caller's `path` (normalized) to the tree that holds it: a received share
    /// whose target covers the path, else the caller's own tree.
    pub fn locate(&self, user: &str, path: &str) -> Loc {
        let own = Loc {
            owner: user.to_owned(),
            path: path.to_owned(),
            perms: PERM_ALL,
            via_share: None,
        };
        if self.exists(user, path) {
            return own;
        }
        for share in self.shares.values().filter(|s| s.share_with == user) {
            let Some(rest) = strip_dir(path, &share.file_target) else {
                continue;
            };
            let Some((owner, base)) = self.index.get(&share.node_id) else {
                continue;
            };
            return Loc {
                owner: owner.clone(),
                path: join(base, rest),
                perms: share.permissions,
                via_share: Some(share.id),
            };
        }
        own
    }

    /// Creates missing parent directories of `path` in `owner`'s tree (like Notes and our
    /// lenient WebDAV writes do); fails if a parent is a file.
    fn ensure_dirs(&mut self, owner: &str, path: &str) -> Result<(), NcError> {
        let dir = parent(path).to_owned();
        if dir == "/" {
            return Ok(());
        }
        match self.node(owner, &dir) {
            Some(n) if n.is_dir() => return Ok(()),
            Some(_) => return Err(NcError::Conflict(format!("{dir} is a file"))),
            None => {}
        }
        self.ensure_dirs(owner, &dir)?;
        self.insert_node(owner, &dir, NodeKind::Dir)?;
        Ok(())
    }

    fn insert_node(&mut self, owner: &str, path: &str, kind: NodeKind) -> Result<Node, NcError> {
        let node = Node {
            id: self.new_id(),
            kind,
            etag: self.new_etag(),
            modified: now_secs(),
        };
        self.tree_mut(owner)?.insert(path.to_owned(), node.clone());
        self.index
            .insert(node.id, (owner.to_owned(), path.to_owned()));
        Ok(node)
    }

    /// Paths of `dir` and everything below it in `owner`'s tree.
    fn subtree(&self, owner: &str, dir: &str) -> Vec<String> {
        let Some(tree) = self.trees.get(owner) else {
            return Vec::new();
        };
        tree.range(dir.to_owned()..)
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(dir))
            .filter(|p| strip_dir(p, dir).is_some())
            .cloned()
            .collect()
    }

    /// Removes `path` and its descendants, with the shares on them.
    fn remove_subtree(&mut self, owner: &str, path: &str) {
        let paths = self.subtree(owner, path);
        let mut ids = Vec::with_capacity(paths.len());
        if let Some(tree) = self.trees.get_mut(owner) {
            for p in &paths {
                if let Some(node) = tree.remove(p) {
                    ids.push(node.id);
                }
            }
        }
        for id in &ids {
            self.index.remove(id);
        }
        self.shares.retain(|_, s| !ids.contains(&s.node_id));
    }

    /// Moves `from` (and descendants) to `to` within one tree, keeping ids; `to` must be free.
    fn move_subtree(&mut self, owner: &str, from: &str, to: &str) -> Result<(), NcError> {
        let paths = self.subtree(owner, from);
        let mut moved = Vec::with_capacity(paths.len());
        let tree = self.tree_mut(owner)?;
        for p in &paths {
            if let Some(node) = tree.remove(p) {
                let rest = strip_dir(p, from).unwrap_or("");
                moved.push((join(to, rest), node));
            }
        }
        for (p, node) in moved {
            self.index.insert(node.id, (owner.to_owned(), p.clone()));
            self.tree_mut(owner)?.insert(p, node);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norm_table() {
        let check = |input: &str, expected: Result<&str, ()>| {
            assert_eq!(
                norm(input).map_err(|_| ()),
                expected.map(str::to_owned),
                "{input:?}"
            );
        };
        check("", Ok("/"));
        check("/", Ok("/"));
        check("a/b", Ok("/a/b"));
        check("//a/./b/", Ok("/a/b"));
        check("/a/../b", Err(()));
    }

    #[test]
    fn strip_dir_table() {
        let check = |path: &str, dir: &str, expected: Option<&str>| {
            assert_eq!(strip_dir(path, dir), expected, "{path} in {dir}");
        };
        check("/a/b", "/a", Some("/b"));
        check("/a", "/a", Some(""));
        check("/ab", "/a", None);
        check("/a", "/", Some("/a"));
    }
}
