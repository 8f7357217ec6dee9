//! Tool arguments, accepted as the real server's pydantic argument models accept them: the same
//! names, the same required fields (a required `str | None` must be present, null allowed), the
//! same defaults. tools/list shows the real schemas (`catalog`); a test holds these types to them.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

/// A note or share id: an integer; as pydantic's lax mode does, a numeric string is accepted too.
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
        json_schema!({ "type": "integer" })
    }
}

/// A required field that may be null (`title: str | None` without a default): present, or the
/// call is refused; serde's own `Option` handling would let it be missing.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateNoteArgs {
    pub title: String,
    pub content: String,
    pub category: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoteIdArgs {
    pub note_id: Id,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateNoteArgs {
    pub note_id: Id,
    pub etag: String,
    #[serde(deserialize_with = "nullable")]
    pub title: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub content: Option<String>,
    #[serde(deserialize_with = "nullable")]
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

fn read_only() -> i64 {
    1
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareCreateArgs {
    pub path: String,
    #[serde(default)]
    pub share_with: Option<String>,
    #[serde(default)]
    pub share_type: i64,
    #[serde(default = "read_only")]
    pub permissions: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareUpdateArgs {
    pub share_id: Id,
    pub permissions: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareIdArgs {
    pub share_id: Id,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ShareListArgs {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub shared_with_me: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteFileArgs {
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub if_match: Option<String>,
}

/// `parse_document: Literal["auto", "markdown", "raw"] = "auto"`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParseMode {
    #[default]
    Auto,
    Markdown,
    Raw,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadFileArgs {
    pub path: String,
    #[serde(default)]
    pub parse_document: ParseMode,
    #[serde(default)]
    pub page_start: Option<i64>,
    #[serde(default)]
    pub page_end: Option<i64>,
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
    #[serde(default)]
    pub if_destination_match: Option<String>,
}

/// Parses `tool`'s arguments into its type; `None` for a tool the mock does not offer.
#[cfg(test)]
pub fn parse(tool: &str, args: serde_json::Value) -> Option<Result<(), String>> {
    fn p<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<(), String> {
        serde_json::from_value::<T>(v)
            .map(drop)
            .map_err(|e| e.to_string())
    }
    Some(match tool {
        "nc_notes_create_note" => p::<CreateNoteArgs>(args),
        "nc_notes_update_note" => p::<UpdateNoteArgs>(args),
        "nc_notes_append_content" => p::<AppendArgs>(args),
        "nc_notes_search_notes" => p::<SearchArgs>(args),
        "nc_notes_get_note" | "nc_notes_delete_note" => p::<NoteIdArgs>(args),
        "nc_webdav_list_directory" => p::<ListDirArgs>(args),
        "nc_webdav_read_file" => p::<ReadFileArgs>(args),
        "nc_webdav_write_file" => p::<WriteFileArgs>(args),
        "nc_webdav_create_directory" | "nc_webdav_delete_resource" => p::<PathArgs>(args),
        "nc_webdav_move_resource" => p::<MoveArgs>(args),
        "nc_share_create" => p::<ShareCreateArgs>(args),
        "nc_share_delete" | "nc_share_get" => p::<ShareIdArgs>(args),
        "nc_share_list" => p::<ShareListArgs>(args),
        "nc_share_update" => p::<ShareUpdateArgs>(args),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::mcp::catalog::REAL_TOOLS_JSON;

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
        check(json!(7), Some(7));
        check(json!("42"), Some(42));
        check(json!("x"), None);
        check(json!(-1), None);
    }

    /// A value the real schema of one property accepts.
    fn sample(schema: &Value) -> Value {
        if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
            return first.clone();
        }
        let kind = schema["type"].as_str().or_else(|| {
            schema["anyOf"].as_array().and_then(|a| {
                a.iter()
                    .find_map(|s| s["type"].as_str().filter(|t| *t != "null"))
            })
        });
        match kind {
            Some("integer") => json!(1),
            Some("boolean") => json!(true),
            _ => json!("x"),
        }
    }

    /// Each tool's argument type takes exactly the real schema's required set: all properties
    /// parse, dropping an optional one parses, dropping a required one is refused, and a
    /// nullable required one takes null.
    #[test]
    fn argument_types_match_the_real_schemas() {
        let Ok(Value::Array(tools)) = serde_json::from_str::<Value>(REAL_TOOLS_JSON) else {
            panic!("the committed tools/list is a JSON array");
        };
        assert_eq!(tools.len(), 17);
        for tool in &tools {
            let name = tool["name"].as_str().unwrap_or_default();
            let schema = &tool["inputSchema"];
            let props = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let full: Map<String, Value> =
                props.iter().map(|(k, s)| (k.clone(), sample(s))).collect();
            let check = |args: Map<String, Value>, ok: bool, what: &str| {
                let Some(result) = parse(name, Value::Object(args)) else {
                    panic!("{name} is not offered");
                };
                assert_eq!(result.is_ok(), ok, "{name}: {what}: {result:?}");
            };
            check(full.clone(), true, "all arguments");
            for (key, prop) in &props {
                let mut fewer = full.clone();
                fewer.remove(key);
                let is_required = required.contains(&key.as_str());
                check(fewer, !is_required, &format!("without {key}"));
                let nullable = prop["anyOf"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|s| s["type"] == "null"));
                if nullable {
                    let mut null = full.clone();
                    null.insert(key.clone(), Value::Null);
                    check(null, true, &format!("{key} null"));
                }
            }
        }
    }
}
