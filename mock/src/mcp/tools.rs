//! The MCP tools, named and shaped like the Nextcloud MCP server's (notes, sharing, WebDAV).
//! Results are JSON objects (structured content plus the same JSON as text); failures are tool
//! results with `is_error` and a message starting with the HTTP-like status.

use std::borrow::Cow;
use std::sync::Arc;

use http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, ProtocolVersion, ServerCapabilities, ServerConfig,
};
use rmcp::{
    ErrorData, ServerHandler, handler::server::common::Extension, tool, tool_handler, tool_router,
};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::Principal;
use crate::App;
use crate::state::{Data, NcError};

/// A note or share id: an integer, also accepted as a numeric string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub u64);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => Ok(Id(n)),
            Raw::Str(s) => {
                s.trim().parse().map(Id).map_err(|_| {
                    serde::de::Error::custom(format!("expected a numeric id, got {s:?}"))
                })
            }
        }
    }
}

impl JsonSchema for Id {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Id".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [{ "type": "integer", "minimum": 0 }, { "type": "string", "pattern": "^[0-9]+$" }]
        })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateNoteArgs {
    pub title: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub category: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoteIdArgs {
    pub note_id: Id,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateNoteArgs {
    pub note_id: Id,
    /// The note's current ETag; a stale one fails with 412.
    pub etag: String,
    pub title: Option<String>,
    pub content: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AppendArgs {
    pub note_id: Id,
    pub content: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    pub query: String,
}

fn default_permissions() -> u32 {
    1
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareCreateArgs {
    pub path: String,
    pub share_with: String,
    /// 0 = user share (the only kind the mock supports).
    #[serde(default)]
    pub share_type: u8,
    /// Bits: 1 read, 2 update, 4 create, 8 delete, 16 share.
    #[serde(default = "default_permissions")]
    pub permissions: u32,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareUpdateArgs {
    pub share_id: Id,
    pub permissions: u32,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareIdArgs {
    pub share_id: Id,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareListArgs {
    pub path: Option<String>,
    #[serde(default)]
    pub shared_with_me: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteFileArgs {
    pub path: String,
    pub content: String,
    pub content_type: Option<String>,
    /// Only write if the file's ETag still matches (else 412).
    pub if_match: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PathArgs {
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListDirArgs {
    #[serde(default)]
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MoveArgs {
    pub source_path: String,
    pub destination_path: String,
    #[serde(default)]
    pub overwrite: bool,
}

/// One MCP session's handler; all sessions share the same `App` state and tool router.
#[derive(Clone)]
pub struct NcServer {
    app: Arc<App>,
    tool_router: Arc<ToolRouter<Self>>,
}

impl NcServer {
    /// The router every session shares: building one (schemas, name checks) costs ~50 µs,
    /// too much to pay per session when thousands open at once.
    pub fn router() -> Arc<ToolRouter<Self>> {
        Arc::new(Self::tool_router())
    }

    pub fn new(app: Arc<App>, tool_router: Arc<ToolRouter<Self>>) -> Self {
        Self { app, tool_router }
    }

    /// Runs one state operation as the request's principal and shapes the result.
    fn run(
        &self,
        parts: &Parts,
        op: impl FnOnce(&mut Data, &str) -> Result<Value, NcError>,
    ) -> Result<CallToolResult, ErrorData> {
        let Some(principal) = parts.extensions.get::<Principal>() else {
            return Err(ErrorData::internal_error(
                "request has no authenticated principal",
                None,
            ));
        };
        let result = op(&mut self.app.data(), &principal.user);
        Ok(match result {
            Ok(value) => CallToolResult::structured(value),
            Err(e) => CallToolResult::error(vec![ContentBlock::text(e.to_string())]),
        })
    }
}

type ToolResult = Result<CallToolResult, ErrorData>;

#[tool_router]
impl NcServer {
    #[tool(description = "Create a new note in Nextcloud Notes")]
    fn nc_notes_create_note(
        &self,
        Parameters(a): Parameters<CreateNoteArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| {
            d.create_note(u, &a.title, &a.content, &a.category)
        })
    }

    #[tool(description = "Get a note by id (own notes and notes shared with you)")]
    fn nc_notes_get_note(
        &self,
        Parameters(a): Parameters<NoteIdArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.get_note(u, a.note_id.0))
    }

    #[tool(description = "Update a note; requires its current etag")]
    fn nc_notes_update_note(
        &self,
        Parameters(a): Parameters<UpdateNoteArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| {
            d.update_note(
                u,
                a.note_id.0,
                &a.etag,
                a.title.as_deref(),
                a.content.as_deref(),
                a.category.as_deref(),
            )
        })
    }

    #[tool(description = "Append content to the end of a note")]
    fn nc_notes_append_content(
        &self,
        Parameters(a): Parameters<AppendArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.append_note(u, a.note_id.0, &a.content))
    }

    #[tool(description = "Search your notes by title and content")]
    fn nc_notes_search_notes(
        &self,
        Parameters(a): Parameters<SearchArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.search_notes(u, &a.query))
    }

    #[tool(description = "Delete a note")]
    fn nc_notes_delete_note(
        &self,
        Parameters(a): Parameters<NoteIdArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.delete_note(u, a.note_id.0))
    }

    #[tool(description = "Share a file or folder with a user")]
    fn nc_share_create(
        &self,
        Parameters(a): Parameters<ShareCreateArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| {
            d.create_share(u, &a.path, &a.share_with, a.share_type, a.permissions)
        })
    }

    #[tool(description = "Change a share's permissions")]
    fn nc_share_update(
        &self,
        Parameters(a): Parameters<ShareUpdateArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.update_share(u, a.share_id.0, a.permissions))
    }

    #[tool(description = "Get a share by id")]
    fn nc_share_get(
        &self,
        Parameters(a): Parameters<ShareIdArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.get_share(u, a.share_id.0))
    }

    #[tool(description = "List shares you own (optionally for one path) or shares with you")]
    fn nc_share_list(
        &self,
        Parameters(a): Parameters<ShareListArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| {
            d.list_shares(u, a.path.as_deref(), a.shared_with_me)
        })
    }

    #[tool(description = "Delete a share")]
    fn nc_share_delete(
        &self,
        Parameters(a): Parameters<ShareIdArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.delete_share(u, a.share_id.0))
    }

    #[tool(description = "Write a file via WebDAV (creates or replaces)")]
    fn nc_webdav_write_file(
        &self,
        Parameters(a): Parameters<WriteFileArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| {
            d.write_file(
                u,
                &a.path,
                &a.content,
                a.content_type.as_deref(),
                a.if_match.as_deref(),
            )
        })
    }

    #[tool(description = "Read a file via WebDAV")]
    fn nc_webdav_read_file(
        &self,
        Parameters(a): Parameters<PathArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.read_file(u, &a.path))
    }

    #[tool(description = "List a directory via WebDAV")]
    fn nc_webdav_list_directory(
        &self,
        Parameters(a): Parameters<ListDirArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.list_directory(u, &a.path))
    }

    #[tool(description = "Create a directory via WebDAV")]
    fn nc_webdav_create_directory(
        &self,
        Parameters(a): Parameters<PathArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.create_directory(u, &a.path))
    }

    #[tool(description = "Delete a file or directory via WebDAV")]
    fn nc_webdav_delete_resource(
        &self,
        Parameters(a): Parameters<PathArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| d.delete_resource(u, &a.path))
    }

    #[tool(description = "Move or rename a file or directory via WebDAV")]
    fn nc_webdav_move_resource(
        &self,
        Parameters(a): Parameters<MoveArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        self.run(&p, |d, u| {
            d.move_resource(u, &a.source_path, &a.destination_path, a.overwrite)
        })
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for NcServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "mcp-swarm mock of the Nextcloud MCP server: notes, shares and WebDAV files",
        )
    }

    /// Every version rmcp knows, or those `--mcp-versions` names.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        match &self.app.mcp_versions {
            None => Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS),
            Some(versions) => Cow::Owned(versions.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_accepts_numbers_and_numeric_strings() {
        let check = |input: Value, expected: Option<u64>| {
            assert_eq!(
                serde_json::from_value::<Id>(input.clone())
                    .ok()
                    .map(|i| i.0),
                expected,
                "{input}"
            );
        };
        check(serde_json::json!(7), Some(7));
        check(serde_json::json!("42"), Some(42));
        check(serde_json::json!("x"), None);
        check(serde_json::json!(-1), None);
    }
}
