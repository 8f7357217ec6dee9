//! `nc_share_*` as nextcloud-mcp-server's server/sharing.py does them over OCS: each returns the
//! OCS `data` as compact JSON text (the tools are `-> str`, so `structuredContent` is
//! `{"result": "<text>"}`), and an OCS failure is the server's friendly HTTP error text.

use http::request::Parts;
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::args::{ShareCreateArgs, ShareIdArgs, ShareListArgs, ShareUpdateArgs};
use super::results::{self, http_failure, py_repr};
use super::tools::{NcServer, ToolResult, caller};
use crate::state::NcError;

const SHARES: &str = "apps/files_sharing/api/v1/shares";
const SHARE_TYPE_LINK: i64 = 3;

fn share_resource(id: u64) -> String {
    format!("{SHARES}/{id}")
}

/// `validate_share_with` of client/sharing.py, as the tool reports its `ValueError`s.
fn check_recipient(share_type: i64, share_with: Option<&str>) -> Result<(), String> {
    let recipient = share_with.map(str::trim).filter(|s| !s.is_empty());
    match (share_type == SHARE_TYPE_LINK, recipient) {
        (true, Some(_)) => Err(format!(
            "shareType 3 (public link) must not carry shareWith: Nextcloud ignores the recipient \
             and publishes the file to anyone holding the URL, so it would NOT be shared with {}. \
             Use shareType 0 (user) or 1 (group) to share with a recipient, or omit shareWith to \
             create an anonymous public link. For a public download link, use \
             nc_share_create_public_link.",
            py_repr(share_with.unwrap_or_default())
        )),
        (false, None) => Err(format!(
            "shareType {share_type} requires a non-empty shareWith recipient (user id, group id, \
             email address, federated user@remote, circle id, Talk conversation token or Deck \
             card id, depending on the type)"
        )),
        _ => Ok(()),
    }
}

fn done(tool: &str, resource: &str, r: Result<Value, NcError>) -> ToolResult {
    Ok(match r {
        Ok(data) => results::text_result(&data),
        Err(e) => results::error(http_failure(tool, resource, &e)),
    })
}

#[tool_router(router = shares_router, vis = "pub(super)")]
impl NcServer {
    #[tool]
    fn nc_share_create(
        &self,
        Parameters(a): Parameters<ShareCreateArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        const TOOL: &str = "nc_share_create";
        if let Err(message) = check_recipient(a.share_type, a.share_with.as_deref()) {
            return Ok(results::error(format!(
                "Error executing tool {TOOL}: {message}"
            )));
        }
        let user = &caller(&p)?.user;
        let share_type = u8::try_from(a.share_type).unwrap_or(u8::MAX);
        let permissions = u32::try_from(a.permissions).unwrap_or(u32::MAX);
        let recipient = a.share_with.as_deref().map(str::trim).unwrap_or_default();
        let created =
            self.app
                .data()
                .create_share(user, &a.path, recipient, share_type, permissions);
        done(TOOL, SHARES, created)
    }

    #[tool]
    fn nc_share_update(
        &self,
        Parameters(a): Parameters<ShareUpdateArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let id = a.share_id.0;
        let permissions = u32::try_from(a.permissions).unwrap_or(u32::MAX);
        let updated = self
            .app
            .data()
            .update_share(&caller(&p)?.user, id, permissions);
        done("nc_share_update", &share_resource(id), updated)
    }

    #[tool]
    fn nc_share_get(
        &self,
        Parameters(a): Parameters<ShareIdArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let id = a.share_id.0;
        let share = self.app.data().get_share(&caller(&p)?.user, id);
        done("nc_share_get", &share_resource(id), share)
    }

    #[tool]
    fn nc_share_list(
        &self,
        Parameters(a): Parameters<ShareListArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let listed =
            self.app
                .data()
                .list_shares(&caller(&p)?.user, a.path.as_deref(), a.shared_with_me);
        done("nc_share_list", SHARES, listed.map(Value::Array))
    }

    #[tool]
    fn nc_share_delete(
        &self,
        Parameters(a): Parameters<ShareIdArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let id = a.share_id.0;
        let deleted = self.app.data().delete_share(&caller(&p)?.user, id);
        done(
            "nc_share_delete",
            &share_resource(id),
            deleted.map(|()| json!({ "success": true, "message": format!("Share {id} deleted") })),
        )
    }
}
