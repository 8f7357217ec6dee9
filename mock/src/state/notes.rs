//! Notes (`nc_notes_*`): a note is the file `/Notes/{category}/{title}.txt` of its owner; its id
//! is the file id, so shared notes are reachable by id with the share's permissions.

use serde_json::{Value, json};

use super::{
    Data, NcError, NodeKind, PERM_DELETE, PERM_READ, PERM_UPDATE, basename, files::etag_matches,
    now_secs, parent,
};

const NOTES_DIR: &str = "/Notes";
const NOTE_EXT: &str = ".txt";

fn note_path(title: &str, category: &str) -> Result<String, NcError> {
    let title = title.trim();
    if title.is_empty() || title.contains('/') || title.starts_with('.') {
        return Err(NcError::BadRequest(format!("invalid note title {title:?}")));
    }
    let category = category.trim().trim_matches('/');
    if category.split('/').any(|c| c == ".." || c == ".") {
        return Err(NcError::BadRequest(format!(
            "invalid category {category:?}"
        )));
    }
    Ok(if category.is_empty() {
        format!("{NOTES_DIR}/{title}{NOTE_EXT}")
    } else {
        format!("{NOTES_DIR}/{category}/{title}{NOTE_EXT}")
    })
}

/// (title, category) of a note file path.
fn title_category(path: &str) -> (String, String) {
    let name = basename(path);
    let title = name
        .strip_suffix(NOTE_EXT)
        .or_else(|| name.strip_suffix(".md"))
        .unwrap_or(name);
    let dir = parent(path);
    let category = dir
        .strip_prefix(NOTES_DIR)
        .map(|c| c.trim_start_matches('/'))
        .unwrap_or("");
    (title.to_owned(), category.to_owned())
}

fn need(perms: u32, bit: u32, what: &str) -> Result<(), NcError> {
    if perms & bit == bit {
        Ok(())
    } else {
        Err(NcError::Forbidden(format!("no permission to {what}")))
    }
}

impl Data {
    fn note_json(&self, id: u64, owner: &str, path: &str) -> Result<Value, NcError> {
        let node = self
            .node(owner, path)
            .ok_or_else(|| NcError::NotFound(format!("note {id}")))?;
        let NodeKind::File { content, .. } = &node.kind else {
            return Err(NcError::NotFound(format!("note {id}")));
        };
        let (title, category) = title_category(path);
        Ok(json!({
            "id": id,
            "title": title,
            "content": content,
            "category": category,
            "etag": node.etag,
            "modified": node.modified,
        }))
    }

    /// The note's owner, path and the caller's permissions; 404 when the caller cannot see it.
    fn note_access(&self, user: &str, id: u64) -> Result<(String, String, u32), NcError> {
        self.perms_on(user, id)
            .filter(|(owner, path, _)| self.node(owner, path).is_some_and(|n| !n.is_dir()))
            .ok_or_else(|| NcError::NotFound(format!("note {id}")))
    }

    pub fn create_note(
        &mut self,
        user: &str,
        title: &str,
        content: &str,
        category: &str,
    ) -> Result<Value, NcError> {
        let mut path = note_path(title, category)?;
        // Like the Notes app, a taken title gets a " (n)" suffix instead of failing.
        let mut n = 1;
        while self.node(user, &path).is_some() {
            n += 1;
            path = note_path(&format!("{} ({n})", title.trim()), category)?;
        }
        self.ensure_dirs(user, &path)?;
        let kind = NodeKind::File {
            content: content.to_owned(),
            content_type: "text/plain".into(),
        };
        let node = self.insert_node(user, &path, kind)?;
        self.note_json(node.id, user, &path)
    }

    pub fn get_note(&self, user: &str, id: u64) -> Result<Value, NcError> {
        let (owner, path, perms) = self.note_access(user, id)?;
        need(perms, PERM_READ, "read this note")?;
        self.note_json(id, &owner, &path)
    }

    pub fn update_note(
        &mut self,
        user: &str,
        id: u64,
        etag: &str,
        title: Option<&str>,
        content: Option<&str>,
        category: Option<&str>,
    ) -> Result<Value, NcError> {
        let (owner, mut path, perms) = self.note_access(user, id)?;
        need(perms, PERM_UPDATE, "update this note")?;
        let current = self
            .node(&owner, &path)
            .map(|n| n.etag.clone())
            .unwrap_or_default();
        if !etag_matches(&current, etag) {
            return Err(NcError::PreconditionFailed(format!(
                "note {id} was modified (etag {etag} is stale)"
            )));
        }
        if title.is_some() || category.is_some() {
            let (old_title, old_category) = title_category(&path);
            let new_path = note_path(
                title.unwrap_or(&old_title),
                category.unwrap_or(&old_category),
            )?;
            if new_path != path {
                if owner != user {
                    return Err(NcError::Forbidden(
                        "only the owner can rename a note".into(),
                    ));
                }
                if self.node(&owner, &new_path).is_some() {
                    return Err(NcError::Conflict(format!(
                        "a note already exists at {new_path}"
                    )));
                }
                self.ensure_dirs(&owner, &new_path)?;
                self.move_subtree(&owner, &path, &new_path)?;
                path = new_path;
            }
        }
        let etag = self.new_etag();
        if let Some(node) = self.tree_mut(&owner)?.get_mut(&path) {
            if let (Some(new), NodeKind::File { content: old, .. }) = (content, &mut node.kind) {
                *old = new.to_owned();
            }
            node.etag = etag;
            node.modified = now_secs();
        }
        self.note_json(id, &owner, &path)
    }

    pub fn append_note(&mut self, user: &str, id: u64, content: &str) -> Result<Value, NcError> {
        let (owner, path, perms) = self.note_access(user, id)?;
        need(perms, PERM_UPDATE, "update this note")?;
        let etag = self.new_etag();
        if let Some(node) = self.tree_mut(&owner)?.get_mut(&path) {
            if let NodeKind::File { content: old, .. } = &mut node.kind {
                if !old.is_empty() {
                    old.push('\n');
                }
                old.push_str(content);
            }
            node.etag = etag;
            node.modified = now_secs();
        }
        self.note_json(id, &owner, &path)
    }

    /// The caller's own notes whose title or content contains `query` (case-insensitive).
    pub fn search_notes(&self, user: &str, query: &str) -> Result<Value, NcError> {
        let needle = query.to_lowercase();
        let prefix = format!("{NOTES_DIR}/");
        let results: Vec<Value> = self
            .tree(user)?
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, node)| {
                let NodeKind::File { content, .. } = &node.kind else {
                    return None;
                };
                let (title, category) = title_category(p);
                let hit = needle.is_empty()
                    || title.to_lowercase().contains(&needle)
                    || content.to_lowercase().contains(&needle);
                hit.then(|| {
                    json!({
                        "id": node.id,
                        "title": title,
                        "category": category,
                        "etag": node.etag,
                        "modified": node.modified,
                    })
                })
            })
            .collect();
        Ok(json!({ "results": results }))
    }

    pub fn delete_note(&mut self, user: &str, id: u64) -> Result<Value, NcError> {
        let (owner, path, perms) = self.note_access(user, id)?;
        need(perms, PERM_DELETE, "delete this note")?;
        self.remove_subtree(&owner, &path);
        Ok(json!({ "id": id, "status_code": 200, "message": format!("note {id} deleted") }))
    }
}
