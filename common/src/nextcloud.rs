//! What we know of the Nextcloud MCP server (nextcloud-mcp-server 0.202.1)
//! without asking it: the OAuth scope each of its tools needs (its
//! `@require_scopes` decorators). The controller asks for the scopes a
//! workload's tools need, and names the missing scope when a tool is absent
//! from `tools/list` (the server hides tools whose scope the token lacks).
//! The mock keeps its own copy: it depends on no crate of ours, so a
//! mismatch between the two cannot hide behind a shared table.

/// The scope `tool` needs, for the Nextcloud tools we know.
pub fn tool_scope(tool: &str) -> Option<&'static str> {
    Some(match tool {
        "nc_notes_create_note"
        | "nc_notes_update_note"
        | "nc_notes_append_content"
        | "nc_notes_delete_note" => "notes.write",
        "nc_notes_search_notes" | "nc_notes_get_note" => "notes.read",
        "nc_webdav_list_directory"
        | "nc_webdav_read_file"
        | "nc_webdav_search_files"
        | "nc_webdav_find_by_name"
        | "nc_webdav_find_by_type"
        | "nc_webdav_list_favorites" => "files.read",
        "nc_webdav_write_file"
        | "nc_webdav_create_directory"
        | "nc_webdav_delete_resource"
        | "nc_webdav_move_resource"
        | "nc_webdav_copy_resource" => "files.write",
        "nc_share_create"
        | "nc_share_delete"
        | "nc_share_get"
        | "nc_share_list"
        | "nc_share_update"
        | "nc_share_create_public_link" => "sharing.write",
        "nc_auth_provision_access" | "nc_auth_check_status" => "openid",
        _ => return None,
    })
}

/// The scopes `tools` need, sorted, each once; `None` when a tool is not
/// one we know (the caller then asks for what the server offers).
pub fn scopes_for<'a>(tools: impl IntoIterator<Item = &'a str>) -> Option<Vec<&'static str>> {
    let mut scopes = Vec::new();
    for tool in tools {
        let s = tool_scope(tool)?;
        if !scopes.contains(&s) {
            scopes.push(s);
        }
    }
    scopes.sort_unstable();
    Some(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_scenarios_tools_all_have_a_scope() {
        let s = crate::scenario::Scenario::builtin();
        let tools: Vec<&str> = s
            .workflows()
            .flat_map(|w| w.steps.iter().map(|st| st.tool.as_str()))
            .collect();
        assert_eq!(
            scopes_for(tools),
            Some(vec![
                "files.read",
                "files.write",
                "notes.read",
                "notes.write",
                "sharing.write"
            ])
        );
        assert_eq!(scopes_for(["nc_notes_get_note", "other_tool"]), None);
    }
}
