//! The MCP server every session runs: nextcloud-mcp-server 0.202.1's tools for notes
//! (`tools_notes`), WebDAV files (`tools_files`) and shares (`tools_shares`), with the real
//! server's schemas (`catalog`), per-tool scopes (`scopes`) and result shapes (`results`).

use std::borrow::Cow;
use std::sync::Arc;

use http::request::Parts;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ResultType, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use super::{Principal, catalog, results, scopes};
use crate::App;

pub type ToolResult = Result<CallToolResult, ErrorData>;

/// One MCP session's handler; all sessions share the same `App` state and tool router.
#[derive(Clone)]
pub struct NcServer {
    pub(super) app: Arc<App>,
    tool_router: Arc<ToolRouter<Self>>,
}

impl NcServer {
    /// The router every session shares: building one (schemas, name checks) costs ~50 µs,
    /// too much to pay per session when thousands open at once.
    pub fn router() -> Arc<ToolRouter<Self>> {
        let mut router = Self::notes_router() + Self::files_router() + Self::shares_router();
        if let Err(e) = catalog::apply(&mut router) {
            tracing::error!(error = %e, "tools/list keeps rmcp's generated schemas");
        }
        Arc::new(router)
    }

    pub fn new(app: Arc<App>, tool_router: Arc<ToolRouter<Self>>) -> Self {
        Self { app, tool_router }
    }

    /// Where the deep links in results point (the real server's browser base URL defaults to
    /// its Nextcloud host; the mock is its own Nextcloud).
    pub(super) fn base(&self) -> &str {
        &self.app.issuer
    }
}

/// The request's authenticated caller, put there by the guard.
pub(super) fn caller(parts: &Parts) -> Result<&Principal, ErrorData> {
    parts
        .extensions
        .get::<Principal>()
        .ok_or_else(|| ErrorData::internal_error("request has no authenticated principal", None))
}

fn scopes_of(context: &RequestContext<RoleServer>) -> Option<&[String]> {
    context
        .extensions
        .get::<Parts>()
        .and_then(|p| p.extensions.get::<Principal>())
        .map(|p| p.scopes.as_slice())
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

    /// The tools the token's scopes allow (the real server filters the same way).
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let scopes = scopes_of(&context).unwrap_or_default();
        let tools = self
            .tool_router
            .list_all()
            .into_iter()
            .filter(|t| scopes::listed(&t.name, scopes))
            .collect();
        let cache_hints = context
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms: cache_hints.then_some(0),
            // The list depends on the caller's token.
            cache_scope: cache_hints.then_some(CacheScope::Private),
        })
    }

    /// Refuses a tool the token's scopes do not allow, with the real server's text.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(scopes) = scopes_of(&context)
            && !scopes::allowed(&request.name, scopes)
        {
            return Ok(results::error(scopes::refusal(&request.name, scopes)).into());
        }
        let tcc = ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
    }
}
