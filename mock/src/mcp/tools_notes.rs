//! `nc_notes_*` as nextcloud-mcp-server's server/notes.py and client/notes.py do them over the
//! Notes API: note ids of the caller's own notes only, empty fields not sent (so left alone),
//! `If-Match` on updates, append as a read and then a conditional write — two steps, so two
//! concurrent appends race and the loser gets the real 412 text.

use http::request::Parts;
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use serde_json::json;

use super::args::{AppendArgs, CreateNoteArgs, NoteIdArgs, SearchArgs, UpdateNoteArgs};
use super::notes_search;
use super::results::{self, status_of};
use super::tools::{NcServer, ToolResult, caller};
use crate::state::NcError;

/// What the real client sends for a field: nothing when it is empty (`if title: body[...]`).
fn sent(field: Option<&str>) -> Option<&str> {
    field.filter(|s| !s.is_empty())
}

/// The separator `NotesClient.append_content` puts between the note and the addition.
const APPEND_SEPARATOR: &str = "\n---\n";
/// How long the real server takes between its GET of the note and its PUT: one round trip to
/// Nextcloud. Without a gap this wide, two appends sent at once (over two connections, some
/// tens of µs apart) would almost never overlap, and the race the real server has would not show.
const APPEND_ROUND_TRIP: std::time::Duration = std::time::Duration::from_millis(1);

#[tool_router(router = notes_router, vis = "pub(super)")]
impl NcServer {
    #[tool]
    fn nc_notes_create_note(
        &self,
        Parameters(a): Parameters<CreateNoteArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let user = &caller(&p)?.user;
        let created = self.app.data().create_note(
            user,
            sent(Some(&a.title)).unwrap_or_default(),
            &a.content,
            sent(Some(&a.category)).unwrap_or_default(),
        );
        Ok(match created {
            Ok(n) => results::model(results::note_changed(self.base(), &n)),
            Err(e) => results::error(match status_of(&e) {
                403 => "Access denied: insufficient permissions to create notes".to_owned(),
                409 => format!(
                    "A note with title '{}' already exists in this category",
                    a.title
                ),
                s => format!("Failed to create note: server error ({s})"),
            }),
        })
    }

    #[tool]
    fn nc_notes_get_note(
        &self,
        Parameters(a): Parameters<NoteIdArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let (user, id) = (&caller(&p)?.user, a.note_id.0);
        let note = self.app.data().get_note(user, id);
        Ok(match note {
            Ok(n) => results::model(results::note(self.base(), &n)),
            Err(e) => results::error(match status_of(&e) {
                404 => format!("Note {id} not found"),
                403 => format!("Access denied to note {id}"),
                _ => format!("Failed to retrieve note {id}: {}", reason(&e)),
            }),
        })
    }

    #[tool]
    fn nc_notes_update_note(
        &self,
        Parameters(a): Parameters<UpdateNoteArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let (user, id) = (&caller(&p)?.user, a.note_id.0);
        let updated = self.app.data().update_note(
            user,
            id,
            Some(&format!("\"{}\"", a.etag)),
            sent(a.title.as_deref()),
            sent(a.content.as_deref()),
            sent(a.category.as_deref()),
        );
        Ok(match updated {
            Ok(n) => results::model(results::note_changed(self.base(), &n)),
            Err(e) => results::error(match status_of(&e) {
                404 => format!("Note {id} not found"),
                412 => format!(
                    "Note {id} has been modified by someone else. Please refresh and try again."
                ),
                403 => format!("Access denied: insufficient permissions to update note {id}"),
                s => format!("Failed to update note {id}: server error ({s})"),
            }),
        })
    }

    #[tool]
    async fn nc_notes_append_content(
        &self,
        Parameters(a): Parameters<AppendArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let (user, id) = (caller(&p)?.user.clone(), a.note_id.0);
        let fail = |e: &NcError| {
            results::error(match status_of(e) {
                404 => format!("Note {id} not found"),
                403 => format!("Access denied: insufficient permissions to modify note {id}"),
                s => format!("Failed to append content to note {id}: server error ({s})"),
            })
        };
        // GET the note (the lock is released at the end of the statement) …
        let current = self.app.data().get_note(&user, id);
        let current = match current {
            Ok(n) => n,
            Err(e) => return Ok(fail(&e)),
        };
        // … the real server's round trip to Nextcloud lies here: another append may land …
        tokio::task::yield_now().await;
        tokio::time::sleep(APPEND_ROUND_TRIP).await;
        let combined = if current.content.is_empty() {
            a.content
        } else {
            format!("{}{APPEND_SEPARATOR}{}", current.content, a.content)
        };
        // … then PUT it with `If-Match` of the etag read.
        let updated = self.app.data().update_note(
            &user,
            id,
            Some(&format!("\"{}\"", current.etag)),
            None,
            sent(Some(&combined)),
            None,
        );
        Ok(match updated {
            Ok(n) => results::model(results::note_changed(self.base(), &n)),
            Err(e) => fail(&e),
        })
    }

    #[tool]
    fn nc_notes_search_notes(
        &self,
        Parameters(a): Parameters<SearchArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let notes = self.app.data().list_notes(&caller(&p)?.user);
        let hits: Vec<_> = notes_search::search(&notes, &a.query)
            .iter()
            .map(|h| {
                json!({
                    "id": h.note.id,
                    "title": h.note.title,
                    "category": h.note.category,
                    "score": h.score,
                    "url": results::note_url(self.base(), h.note.id),
                })
            })
            .collect();
        Ok(results::model(json!({
            "success": true,
            "timestamp": results::timestamp(),
            "total_found": hits.len(),
            "results": hits,
            "query": a.query,
        })))
    }

    #[tool]
    fn nc_notes_delete_note(
        &self,
        Parameters(a): Parameters<NoteIdArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let (user, id) = (&caller(&p)?.user, a.note_id.0);
        let deleted = self.app.data().delete_note(user, id);
        Ok(match deleted {
            Ok(()) => results::model(json!({
                "success": true,
                "timestamp": results::timestamp(),
                "status_code": 200,
                "message": format!("Note {id} deleted successfully"),
                "deleted_id": id,
            })),
            Err(e) => results::error(match status_of(&e) {
                404 => format!("Note {id} not found"),
                403 => format!("Access denied: insufficient permissions to delete note {id}"),
                s => format!("Failed to delete note {id}: server error ({s})"),
            }),
        })
    }
}

/// The HTTP reason phrase the real server quotes for an unexpected status.
fn reason(e: &NcError) -> &'static str {
    match status_of(e) {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        412 => "Precondition Failed",
        _ => "Error",
    }
}
