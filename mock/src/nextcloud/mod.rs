//! Nextcloud's own HTTP surface, over the same `state::Data` the mock's MCP server uses:
//! what the real nextcloud-mcp-server calls (status, OCS capabilities and user, the Notes API
//! v1, OCS shares, WebDAV), so it can run in front of the mock as its Nextcloud.
//!
//! `auth` (Basic with password or app password, or any live token of ours as Bearer), `ocs`
//! (the envelope), `status` (status.php, capabilities, cloud/user), `notes`, `shares`, and
//! WebDAV: `webdav` (routing, PROPFIND, GET, PUT, DELETE, MKCOL) with `multistatus` (its XML),
//! `transfer` (MOVE, COPY), `search` (DASL SEARCH), `tags` (system tags) and `comments`.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};

use crate::App;

mod auth;
mod comments;
mod multistatus;
mod notes;
mod ocs;
mod search;
mod shares;
mod status;
mod tags;
mod transfer;
mod webdav;

/// Largest request body any of these APIs reads (a WebDAV upload, a note): bigger is 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

const SHARES: &str = "/ocs/{api}/apps/files_sharing/api/v1/shares";

pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route("/status.php", get(status::status))
        .route("/ocs/{api}/cloud/capabilities", get(status::capabilities))
        .route("/ocs/{api}/cloud/user", get(status::current_user))
        .route(SHARES, get(shares::list).post(shares::create))
        .route(
            &format!("{SHARES}/{{id}}"),
            get(shares::get).put(shares::update).delete(shares::delete),
        )
        .route("/remote.php/dav", any(webdav::dav))
        .route("/remote.php/dav/", any(webdav::dav))
        .route("/remote.php/dav/{*rest}", any(webdav::dav));
    // Nextcloud routes app APIs through `/index.php`; with pretty URLs they also work without.
    for prefix in ["/index.php", ""] {
        let notes = format!("{prefix}/apps/notes/api/v1/notes");
        router = router
            .route(&notes, get(notes::list).post(notes::create))
            .route(
                &format!("{notes}/{{id}}"),
                get(notes::get).put(notes::update).delete(notes::delete),
            );
    }
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app)
}
