//! `nc_webdav_*` as nextcloud-mcp-server's server/webdav.py and client/webdav.py do them over
//! WebDAV: writes fail closed (`If-None-Match: *` without `if_match`), a missing path to delete
//! is a success `{"status_code":404}`, known conflicts are results, other HTTP failures the
//! server's friendly error text.

use base64::Engine;
use http::request::Parts;
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use serde_json::{Value, json};

use super::args::{ListDirArgs, MoveArgs, ParseMode, PathArgs, ReadFileArgs, WriteFileArgs};
use super::results::{self, dav_resource, http_failure, py_repr, status_of};
use super::tools::{NcServer, ToolResult, caller};
use crate::state::Precondition;

/// What `WebDAVClient.write_file` says for a 412, by the precondition it sent.
fn write_conflict(if_match: Option<&str>) -> &'static str {
    match if_match {
        None => {
            "File already exists — read it first to get its etag and pass if_match to overwrite \
             safely, or pass if_match='*' to overwrite deliberately"
        }
        Some("*") => {
            "File does not exist — cannot force-overwrite a missing file; omit if_match to \
             create it"
        }
        Some(_) => {
            "File was modified since the given etag was read (concurrent edit) — re-read before \
             writing"
        }
    }
}

/// The content type the real client guesses from a path (`mimetypes.guess_type`), for the few
/// suffixes a load test writes.
fn guess_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "txt" => "text/plain",
        "md" => "text/markdown",
        "json" => "application/json",
        "html" | "htm" => "text/html",
        "csv" => "text/csv",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// A text result error as the SDK words a `ToolError` the tool raised.
fn tool_error(tool: &str, message: &str) -> rmcp::model::CallToolResult {
    results::error(format!("Error executing tool {tool}: {message}"))
}

#[tool_router(router = files_router, vis = "pub(super)")]
impl NcServer {
    #[tool]
    fn nc_webdav_list_directory(
        &self,
        Parameters(a): Parameters<ListDirArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let listed = self.app.data().list_directory(&caller(&p)?.user, &a.path);
        let files = match listed {
            Ok(files) => files,
            Err(e) => {
                let failure = http_failure("nc_webdav_list_directory", &dav_resource(&a.path), &e);
                return Ok(results::error(failure));
            }
        };
        let n_dirs = files.iter().filter(|f| f.is_dir).count();
        let total_size: u64 = files.iter().filter(|f| !f.is_dir).map(|f| f.size).sum();
        let infos: Vec<Value> = files
            .iter()
            .map(|f| results::file_info(self.base(), &a.path, f))
            .collect();
        Ok(results::model(json!({
            "success": true,
            "timestamp": results::timestamp(),
            "path": a.path,
            "files": infos,
            "total_count": files.len(),
            "directories_count": n_dirs,
            "files_count": files.len() - n_dirs,
            "total_size": total_size,
        })))
    }

    #[tool]
    fn nc_webdav_read_file(
        &self,
        Parameters(a): Parameters<ReadFileArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        const TOOL: &str = "nc_webdav_read_file";
        if a.page_start.is_some() || a.page_end.is_some() {
            if a.parse_document == ParseMode::Raw {
                return Ok(tool_error(
                    TOOL,
                    "page_start/page_end select pages to parse, so they cannot be combined with \
                     parse_document='raw'.",
                ));
            }
            for (name, value) in [("page_start", a.page_start), ("page_end", a.page_end)] {
                if let Some(v) = value.filter(|v| *v < 1) {
                    return Ok(tool_error(
                        TOOL,
                        &format!("Invalid page range: {name}={v}, but pages are numbered from 1."),
                    ));
                }
            }
        }
        let read = self.app.data().read_file(&caller(&p)?.user, &a.path);
        let (info, content) = match read {
            Ok(r) => r,
            Err(e) => {
                return Ok(results::error(http_failure(
                    TOOL,
                    &dav_resource(&a.path),
                    &e,
                )));
            }
        };
        if a.page_start.is_some() || a.page_end.is_some() {
            return Ok(tool_error(
                TOOL,
                &format!(
                    "page_start/page_end apply to PDFs only, and {} is {}. Read it without a page \
                     range.",
                    py_repr(&a.path),
                    py_repr(&info.content_type)
                ),
            ));
        }
        let (content, encoding, format) = if info.content_type.starts_with("text/") {
            (content, Value::Null, "text")
        } else {
            let encoded = base64::engine::general_purpose::STANDARD.encode(content.as_bytes());
            (encoded, json!("base64"), "base64")
        };
        let status = if a.parse_document == ParseMode::Raw {
            "skipped"
        } else {
            "not_applicable"
        };
        Ok(results::model(json!({
            "success": true,
            "timestamp": results::timestamp(),
            "path": a.path,
            "content": content,
            "content_type": info.content_type,
            "size": info.size,
            "encoding": encoding,
            "parsed": false,
            "parse_status": status,
            "parse_tier": null,
            "parse_processor": null,
            "content_format": format,
            "parse_notes": [],
            "parsing_metadata": null,
            "page_count": null,
            "page_start": null,
            "page_end": null,
            "etag": info.etag,
            "last_modified": null,
            "url": results::file_url(self.base(), info.file_id),
        })))
    }

    #[tool]
    fn nc_webdav_write_file(
        &self,
        Parameters(a): Parameters<WriteFileArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        const TOOL: &str = "nc_webdav_write_file";
        let user = &caller(&p)?.user;
        let (content, content_type) = match a.content_type.as_deref() {
            Some(t) if t.to_ascii_lowercase().contains("base64") => {
                match base64::engine::general_purpose::STANDARD.decode(a.content.as_bytes()) {
                    Ok(bytes) => (
                        String::from_utf8_lossy(&bytes).into_owned(),
                        t.replace(";base64", ""),
                    ),
                    Err(e) => return Ok(results::error(format!("{TOOL} failed: {e}"))),
                }
            }
            Some(t) if !t.is_empty() => (a.content.clone(), t.to_owned()),
            _ => (a.content.clone(), guess_type(&a.path).to_owned()),
        };
        // Fail closed, as `_write_precondition_header`: create-only unless an etag is given.
        let cond = match a.if_match.as_deref() {
            None => Precondition::IfNoneMatchAny,
            Some(etag) => Precondition::IfMatch(etag.to_owned()),
        };
        let written =
            self.app
                .data()
                .write_file(user, &a.path, &content, Some(&content_type), cond);
        Ok(match written {
            Ok(w) => results::model(json!({
                "success": true,
                "timestamp": results::timestamp(),
                "status_code": if w.created { 201 } else { 204 },
                "message": null,
                "path": a.path,
                "size": content.len(),
                "created": w.created,
                "etag": w.etag,
            })),
            Err(e) if status_of(&e) == 412 => tool_error(
                TOOL,
                &format!(
                    "{} ({})",
                    write_conflict(a.if_match.as_deref()),
                    py_repr(&a.path)
                ),
            ),
            Err(e) => results::error(http_failure(TOOL, &dav_resource(&a.path), &e)),
        })
    }

    #[tool]
    fn nc_webdav_create_directory(
        &self,
        Parameters(a): Parameters<PathArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let made = self.app.data().create_directory(&caller(&p)?.user, &a.path);
        Ok(match made {
            Ok(_) => results::plain(&json!({ "status_code": 201 })),
            Err(e) if status_of(&e) == 405 => results::plain(
                &json!({ "status_code": 405, "message": "Directory already exists" }),
            ),
            Err(e) => results::error(http_failure(
                "nc_webdav_create_directory",
                &format!("{}/", dav_resource(&a.path).trim_end_matches('/')),
                &e,
            )),
        })
    }

    #[tool]
    fn nc_webdav_delete_resource(
        &self,
        Parameters(a): Parameters<PathArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        let deleted = self.app.data().delete_resource(&caller(&p)?.user, &a.path);
        Ok(match deleted {
            Ok(()) => results::plain(&json!({ "status_code": 204 })),
            Err(e) if status_of(&e) == 404 => results::plain(&json!({ "status_code": 404 })),
            Err(e) => results::error(http_failure(
                "nc_webdav_delete_resource",
                &format!("{}/", dav_resource(&a.path).trim_end_matches('/')),
                &e,
            )),
        })
    }

    #[tool]
    fn nc_webdav_move_resource(
        &self,
        Parameters(a): Parameters<MoveArgs>,
        Extension(p): Extension<Parts>,
    ) -> ToolResult {
        const TOOL: &str = "nc_webdav_move_resource";
        if a.if_destination_match.is_some() && !a.overwrite {
            return Ok(tool_error(
                TOOL,
                "if_destination_match requires overwrite=True: the destination etag only matters \
                 when the destination may be replaced",
            ));
        }
        let moved = self.app.data().move_resource(
            &caller(&p)?.user,
            &a.source_path,
            &a.destination_path,
            a.overwrite,
            a.if_destination_match.as_deref(),
        );
        let (status, message) = match moved {
            Ok(created) => (if created { 201 } else { 204 }, None),
            Err(e) => match status_of(&e) {
                404 if a.if_destination_match.is_some() => (
                    404,
                    Some(
                        "Source not found, or the destination whose etag was asserted does not \
                         exist (an If: condition naming a missing URI yields 404, not 412).",
                    ),
                ),
                404 => (404, Some("Source resource not found")),
                412 if a.if_destination_match.is_some() => (
                    412,
                    Some(
                        "Destination changed since that etag was read — re-read it before \
                         retrying. Note the etag condition applies to files only: a directory \
                         destination always fails this check.",
                    ),
                ),
                412 => (
                    412,
                    Some("Destination already exists and overwrite is false"),
                ),
                409 => (409, Some("Parent directory of destination doesn't exist")),
                _ => {
                    let failure = http_failure(TOOL, &dav_resource(&a.source_path), &e);
                    return Ok(results::error(failure));
                }
            },
        };
        Ok(results::model(json!({
            "success": message.is_none(),
            "timestamp": results::timestamp(),
            "status_code": status,
            "message": message,
            "source_path": a.source_path,
            "destination_path": a.destination_path,
            "overwrite": a.overwrite,
        })))
    }
}
