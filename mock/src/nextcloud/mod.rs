//! Nextcloud's own HTTP surface, over the same `state::Data` the mock's MCP server uses:
//! what the real nextcloud-mcp-server calls (OCS capabilities and user, status, Notes API v1,
//! OCS shares, WebDAV).

use std::sync::Arc;

use axum::Router;

use crate::App;

pub fn router(app: Arc<App>) -> Router {
    Router::new().with_state(app)
}
