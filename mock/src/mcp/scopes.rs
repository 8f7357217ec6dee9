//! Per-tool OAuth scopes, as nextcloud-mcp-server's `@require_scopes` decorators set them: a
//! tool the token's scopes do not allow is left out of `tools/list` and refused when called,
//! with the real server's text.

/// The scope a tool needs (from the tool's `@require_scopes` in nextcloud_mcp_server/server/).
pub fn required_scope(tool: &str) -> Option<&'static str> {
    Some(match tool {
        "nc_notes_create_note"
        | "nc_notes_update_note"
        | "nc_notes_append_content"
        | "nc_notes_delete_note" => "notes.write",
        "nc_notes_search_notes" | "nc_notes_get_note" => "notes.read",
        "nc_webdav_list_directory" | "nc_webdav_read_file" => "files.read",
        "nc_webdav_write_file"
        | "nc_webdav_create_directory"
        | "nc_webdav_delete_resource"
        | "nc_webdav_move_resource" => "files.write",
        "nc_share_create" | "nc_share_delete" | "nc_share_get" | "nc_share_list"
        | "nc_share_update" => "sharing.write",
        _ => return None,
    })
}

/// Whether a token with `scopes` sees `tool` in `tools/list`. As the real server's
/// `list_tools_filtered`: a token without any scope sees every tool (its calls still fail).
pub fn listed(tool: &str, scopes: &[String]) -> bool {
    scopes.is_empty() || allowed(tool, scopes)
}

/// Whether a token with `scopes` may call `tool`.
pub fn allowed(tool: &str, scopes: &[String]) -> bool {
    required_scope(tool).is_none_or(|needed| scopes.iter().any(|s| s == needed))
}

/// The `isError` text of a call without the tool's scope: the `InsufficientScopeError` message
/// of `require_scopes` in login-flow mode, as the server's `_cause_message` prefixes it.
pub fn refusal(tool: &str, scopes: &[String]) -> String {
    let missing = required_scope(tool).unwrap_or_default();
    let mut has: Vec<&str> = scopes.iter().map(String::as_str).collect();
    has.sort_unstable();
    has.dedup();
    let has = if has.is_empty() {
        "none".to_owned()
    } else {
        has.join(", ")
    };
    format!(
        "{tool} failed: Access denied to {tool}: Missing required scopes: {missing}. \
         Token has scopes: {has}. These are OAuth token scopes, not stored app-password scopes: \
         'nc_auth_update_scopes' cannot grant them. The OIDC client must permit the scope \
         (Nextcloud → Administration → OpenID Connect) and it must be included in your consent \
         (Nextcloud → Personal settings, where user scope selection is enabled); then \
         re-authorize to obtain a new token."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_gate_tools() {
        let s = |list: &[&str]| list.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let check = |tool: &str, scopes: &[&str], (is_listed, is_allowed): (bool, bool)| {
            assert_eq!(
                (listed(tool, &s(scopes)), allowed(tool, &s(scopes))),
                (is_listed, is_allowed),
                "{tool} with {scopes:?}"
            );
        };
        check("nc_notes_get_note", &["notes.read"], (true, true));
        check("nc_notes_create_note", &["notes.read"], (false, false));
        check("nc_share_list", &["openid", "files.read"], (false, false));
        check("nc_share_list", &["sharing.write"], (true, true));
        check("nc_webdav_move_resource", &["files.write"], (true, true));
        check("nc_notes_create_note", &[], (true, false));
        assert!(
            refusal("nc_notes_create_note", &s(&["openid", "notes.read"])).contains(
                "Missing required scopes: notes.write. Token has scopes: notes.read, openid."
            )
        );
    }
}
