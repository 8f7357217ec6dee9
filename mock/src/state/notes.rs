//! Notes as the Nextcloud Notes app (>= 4.7) keeps them: a note is the file
//! `/Notes/<category>/<title>.md` of its owner, its id is the file id, and an id resolves only
//! inside the caller's own `/Notes` folder — a recipient of a shared note gets "not found" by id
//! (Notes `NotesService::get` looks the id up in the user's notes folder alone).

use serde::Serialize;

use super::{Data, NcError, NodeKind, basename, etag_matches, now_secs, parent};

/// The notes folder of every user (the Notes app's default `notesPath`).
pub const NOTES_DIR: &str = "/Notes";
/// The suffix new notes get (Notes >= 4.7's default `fileSuffix`).
pub const NOTE_EXT: &str = ".md";
/// Suffixes the Notes app lists as notes (older notes are `.txt`).
const NOTE_SUFFIXES: [&str; 2] = [".md", ".txt"];
/// Notes' `NoteUtil::MAX_TITLE_LENGTH`.
const MAX_TITLE_CHARS: usize = 100;

/// One note as Notes API v1 returns it (`GET /apps/notes/api/v1/notes/{id}`); serializes to
/// that JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub id: u64,
    pub etag: String,
    pub readonly: bool,
    pub modified: u64,
    pub title: String,
    pub category: String,
    pub content: String,
    pub favorite: bool,
}

/// Removes what Notes' `NoteUtil::sanitisePath` removes: characters illegal in file names on
/// some systems, and leading dots and spaces (no hidden files).
fn sanitise(s: &str) -> String {
    let kept: String = s
        .chars()
        .filter(|c| !matches!(c, '*' | '|' | '/' | '\\' | ':' | '"' | '<' | '>' | '?'))
        .collect();
    kept.trim_start_matches(['.', ' ', '\t']).trim().to_owned()
}

/// Notes' `getSafeTitle`: sanitised first line, white space as plain spaces, at most 100
/// characters, "New note" when empty.
pub fn safe_title(title: &str) -> String {
    let clean = sanitise(title);
    let first = clean.lines().next().unwrap_or("").trim();
    let spaced: String = first
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .take(MAX_TITLE_CHARS)
        .collect();
    let spaced = spaced.trim().to_owned();
    if spaced.is_empty() {
        "New note".to_owned()
    } else {
        spaced
    }
}

/// Notes' `normalizeCategoryPath`: each `/`-separated part sanitised, empty parts dropped.
pub fn normalize_category(category: &str) -> String {
    category
        .split('/')
        .map(sanitise)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

fn category_dir(category: &str) -> String {
    if category.is_empty() {
        NOTES_DIR.to_owned()
    } else {
        format!("{NOTES_DIR}/{category}")
    }
}

/// (title, category) of a note file path inside `/Notes`.
fn title_category(path: &str) -> (String, String) {
    let name = basename(path);
    let title = NOTE_SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    let category = parent(path)
        .strip_prefix(NOTES_DIR)
        .map(|c| c.trim_start_matches('/'))
        .unwrap_or("");
    (title.to_owned(), category.to_owned())
}

fn is_note_path(path: &str) -> bool {
    path.starts_with("/Notes/") && NOTE_SUFFIXES.iter().any(|s| path.ends_with(s))
}

fn not_found(id: u64) -> NcError {
    NcError::NotFound(format!("Note with id {id} not found"))
}

impl Data {
    /// The path of note `id` in `user`'s own notes folder; 404 for anything else (another
    /// user's note, shared or not, a directory, a non-note file).
    fn own_note_path(&self, user: &str, id: u64) -> Result<String, NcError> {
        match self.index.get(&id) {
            Some((owner, path))
                if owner == user
                    && is_note_path(path)
                    && self.node(owner, path).is_some_and(|n| !n.is_dir()) =>
            {
                Ok(path.clone())
            }
            _ => Err(not_found(id)),
        }
    }

    fn note_at(&self, user: &str, path: &str) -> Option<Note> {
        let node = self.node(user, path)?;
        let NodeKind::File { content, .. } = &node.kind else {
            return None;
        };
        let (title, category) = title_category(path);
        Some(Note {
            id: node.id,
            etag: node.etag.clone(),
            readonly: false,
            modified: node.modified,
            title,
            category,
            content: content.clone(),
            favorite: false,
        })
    }

    /// A free file name for `title` in `dir`, as Notes' `generateFileName` picks it: the
    /// title itself, else "title (2)", "title (3)", …; the note `keep` may keep its own name.
    fn note_file_name(&self, user: &str, dir: &str, title: &str, keep: Option<u64>) -> String {
        let mut candidate = title.to_owned();
        let mut n = 1;
        loop {
            let path = format!("{dir}/{candidate}{NOTE_EXT}");
            match self.node(user, &path) {
                Some(node) if Some(node.id) != keep => {
                    n += 1;
                    candidate = format!("{title} ({n})");
                }
                _ => return path,
            }
        }
    }

    /// Creates a note (Notes API `POST /notes`): title made safe ("New note" when empty),
    /// category folders created, a taken title gets " (2)".
    pub fn create_note(
        &mut self,
        user: &str,
        title: &str,
        content: &str,
        category: &str,
    ) -> Result<Note, NcError> {
        self.tree(user)?;
        let dir = category_dir(&normalize_category(category));
        let path = self.note_file_name(user, &dir, &safe_title(title), None);
        self.ensure_dirs(user, &path)?;
        let kind = NodeKind::File {
            content: content.to_owned(),
            content_type: "text/markdown".into(),
        };
        self.insert_node(user, &path, kind)?;
        self.note_at(user, &path)
            .ok_or_else(|| NcError::NotFound("note vanished".into()))
    }

    /// One of `user`'s own notes (Notes API `GET /notes/{id}`).
    pub fn get_note(&self, user: &str, id: u64) -> Result<Note, NcError> {
        let path = self.own_note_path(user, id)?;
        self.note_at(user, &path).ok_or_else(|| not_found(id))
    }

    /// All of `user`'s notes, by id (Notes API `GET /notes`); empty for an unknown user.
    pub fn list_notes(&self, user: &str) -> Vec<Note> {
        let Some(tree) = self.trees.get(user) else {
            return Vec::new();
        };
        let prefix = format!("{NOTES_DIR}/");
        let mut notes: Vec<Note> = tree
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter(|(p, n)| is_note_path(p) && !n.is_dir())
            .filter_map(|(p, _)| self.note_at(user, p))
            .collect();
        notes.sort_by_key(|n| n.id);
        notes
    }

    /// Updates one of `user`'s notes (Notes API `PUT /notes/{id}`). `if_match` is the
    /// `If-Match` header (quotes allowed): a stale etag is 412. As in Notes' controller, a
    /// `None` field is left alone, a new title renames the file (to a free name, in the new
    /// category when one is given), and a note nothing changed in keeps its etag.
    pub fn update_note(
        &mut self,
        user: &str,
        id: u64,
        if_match: Option<&str>,
        title: Option<&str>,
        content: Option<&str>,
        category: Option<&str>,
    ) -> Result<Note, NcError> {
        let mut path = self.own_note_path(user, id)?;
        let current = self.note_at(user, &path).ok_or_else(|| not_found(id))?;
        if let Some(given) = if_match
            && !etag_matches(&current.etag, given)
        {
            return Err(NcError::PreconditionFailed(format!(
                "The note has been changed (etag {given} is not {})",
                current.etag
            )));
        }
        let mut changed = false;
        let new_title = title.filter(|t| *t != current.title);
        let new_category = category
            .map(normalize_category)
            .filter(|c| *c != current.category);
        if new_title.is_some() || new_category.is_some() {
            let dir = category_dir(new_category.as_deref().unwrap_or(&current.category));
            let title = new_title.map_or_else(|| current.title.clone(), safe_title);
            let new_path = self.note_file_name(user, &dir, &title, Some(id));
            if new_path != path {
                self.ensure_dirs(user, &new_path)?;
                self.move_subtree(user, &path, &new_path)?;
                path = new_path;
                changed = true;
            }
        }
        let new_content = content.filter(|c| *c != current.content);
        changed |= new_content.is_some();
        if changed {
            let etag = self.new_etag();
            if let Some(node) = self.tree_mut(user)?.get_mut(&path) {
                if let (Some(new), NodeKind::File { content: old, .. }) =
                    (new_content, &mut node.kind)
                {
                    new.clone_into(old);
                }
                node.etag = etag;
                node.modified = now_secs();
            }
        }
        self.note_at(user, &path).ok_or_else(|| not_found(id))
    }

    /// Deletes one of `user`'s notes (Notes API `DELETE /notes/{id}`), with the shares on it.
    pub fn delete_note(&mut self, user: &str, id: u64) -> Result<(), NcError> {
        let path = self.own_note_path(user, id)?;
        self.remove_subtree(user, &path);
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
        for u in ["alice", "bob"] {
            d.add_user(u, Secret::new("pw"), u, "", Vec::new())
                .unwrap_or_default();
        }
        d
    }

    #[test]
    fn notes_are_md_files_under_their_category() {
        let mut d = data();
        let Ok(n) = d.create_note("alice", "Plan", "x", "Work") else {
            panic!("create");
        };
        assert_eq!((n.title.as_str(), n.category.as_str()), ("Plan", "Work"));
        assert!(d.node("alice", "/Notes/Work/Plan.md").is_some());
        let Ok(again) = d.create_note("alice", "Plan", "y", "Work") else {
            panic!("create");
        };
        assert_eq!(again.title, "Plan (2)");
        let Ok(odd) = d.create_note("alice", " ../a/b:c ", "", "x/../y") else {
            panic!("create");
        };
        assert_eq!((odd.title.as_str(), odd.category.as_str()), ("abc", "x/y"));
        let Ok(empty) = d.create_note("alice", "", "", "") else {
            panic!("create");
        };
        assert_eq!(empty.title, "New note");
        assert_eq!(d.list_notes("alice").len(), 4);
    }

    #[test]
    fn ids_resolve_only_in_the_own_notes_folder() {
        let mut d = data();
        let Ok(n) = d.create_note("alice", "Plan", "x", "Work") else {
            panic!("create");
        };
        assert!(
            d.create_share("alice", "/Notes/Work/Plan.md", "bob", 0, 3)
                .is_ok()
        );
        let check = |r: Result<(), NcError>, expected: &str| {
            assert_eq!(r.map_err(|e| e.to_string()[..3].to_owned()), {
                if expected == "ok" {
                    Ok(())
                } else {
                    Err(expected.to_owned())
                }
            });
        };
        check(d.get_note("alice", n.id).map(drop), "ok");
        check(d.get_note("bob", n.id).map(drop), "404");
        check(
            d.update_note("bob", n.id, None, None, Some("y"), None)
                .map(drop),
            "404",
        );
        check(d.delete_note("bob", n.id), "404");
        // Bob still reads it through the share, as a file.
        assert!(d.read_file("bob", "/Plan.md").is_ok());
        // A file outside /Notes is no note, even by its own id.
        let Ok(w) = d.write_file("alice", "/x.md", "", None, Precondition::None) else {
            panic!("write");
        };
        check(d.get_note("alice", w.file_id).map(drop), "404");
    }

    #[test]
    fn update_checks_the_etag_and_renames() {
        let mut d = data();
        let Ok(n) = d.create_note("alice", "Plan", "x", "") else {
            panic!("create");
        };
        let stale = n.etag.clone();
        let Ok(u) = d.update_note(
            "alice",
            n.id,
            Some(&format!("\"{stale}\"")),
            None,
            Some("y"),
            None,
        ) else {
            panic!("update with the current etag");
        };
        assert_ne!(u.etag, stale);
        assert!(matches!(
            d.update_note("alice", n.id, Some(&stale), None, Some("z"), None),
            Err(NcError::PreconditionFailed(_))
        ));
        let Ok(same) = d.update_note("alice", n.id, Some(&u.etag), None, Some("y"), None) else {
            panic!("no-op update");
        };
        assert_eq!(same.etag, u.etag, "nothing changed, same etag");
        let Ok(moved) = d.update_note("alice", n.id, None, Some("Renamed"), None, Some("New"))
        else {
            panic!("rename");
        };
        assert_eq!(moved.id, n.id);
        assert!(d.node("alice", "/Notes/New/Renamed.md").is_some());
        assert!(d.node("alice", "/Notes/Plan.md").is_none());
    }
}
