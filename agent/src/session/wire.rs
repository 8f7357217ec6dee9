//! The JSON-RPC bytes of an MCP session: request bodies serialized straight
//! to bytes, and the one parse of a response message (initialize result,
//! tool result, JSON-RPC error), picking our response out of whatever else
//! the server sends.

use std::fmt;

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, IgnoredAny, Visitor};
use serde_json::Value;

/// The `notifications/initialized` body.
pub const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The per-request `_meta` of 2026-07-28 (SEP-2567): protocol version,
/// client info and capabilities, the same bytes on every request.
pub const STATELESS_META: &str = concat!(
    r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","#,
    r#""io.modelcontextprotocol/clientInfo":{"name":"mcp-swarm","version":""#,
    env!("CARGO_PKG_VERSION"),
    r#""},"io.modelcontextprotocol/clientCapabilities":{}}"#
);

/// The `initialize` request with id `id`, offering `version`.
pub fn initialize(id: u64, version: &str) -> Bytes {
    let mut buf = Vec::with_capacity(192);
    buf.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    buf.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    buf.extend_from_slice(br#","method":"initialize","params":{"protocolVersion":""#);
    buf.extend_from_slice(version.as_bytes());
    buf.extend_from_slice(br#"","capabilities":{},"clientInfo":{"name":"mcp-swarm","version":""#);
    buf.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    buf.extend_from_slice(br#""}}}"#);
    Bytes::from(buf)
}

/// The `server/discover` request (2026-07-28) with id `id`.
pub fn discover(id: u64) -> Bytes {
    let mut buf = Vec::with_capacity(64 + STATELESS_META.len());
    buf.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    buf.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    buf.extend_from_slice(br#","method":"server/discover","params":{"_meta":"#);
    buf.extend_from_slice(STATELESS_META.as_bytes());
    buf.extend_from_slice(b"}}");
    Bytes::from(buf)
}

/// A `tools/call` request; `args` is an object, or null for no arguments;
/// `stateless` adds the 2026-07-28 `_meta`.
pub fn tool_call(id: u64, tool: &str, args: &Value, stateless: bool) -> Bytes {
    // A guess that fits typical arguments without regrowing.
    let meta_len = if stateless {
        STATELESS_META.len() + 9
    } else {
        0
    };
    let mut buf = Vec::with_capacity(192 + tool.len() + meta_len);
    buf.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    buf.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    buf.extend_from_slice(br#","method":"tools/call","params":{"name":"#);
    // Writing a `str` or a `Value` (string keys, finite numbers) into a Vec
    // has no failure mode, so the results are ignored.
    let _ = serde_json::to_writer(&mut buf, tool);
    buf.extend_from_slice(br#","arguments":"#);
    if args.is_null() {
        buf.extend_from_slice(b"{}");
    } else {
        let _ = serde_json::to_writer(&mut buf, args);
    }
    if stateless {
        buf.extend_from_slice(br#","_meta":"#);
        buf.extend_from_slice(STATELESS_META.as_bytes());
    }
    buf.extend_from_slice(b"}}");
    Bytes::from(buf)
}

/// What a response message said, once it is known to answer our request.
#[derive(Debug, PartialEq)]
pub enum Reply<R> {
    Result(R),
    Error(RpcError),
}

/// A JSON-RPC error object.
#[derive(Debug, PartialEq, Deserialize)]
pub struct RpcError {
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// The part of an `initialize` result we use.
#[derive(Debug, PartialEq, Deserialize)]
pub struct InitializeResult {
    #[serde(rename = "protocolVersion")]
    pub protocol_version: String,
}

/// The part of a `server/discover` result we use.
#[derive(Debug, PartialEq, Deserialize)]
pub struct DiscoverResult {
    #[serde(default, rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

/// A `tools/call` result: text contents, `isError`, structured content.
#[derive(Debug, PartialEq, Deserialize)]
pub struct CallResult {
    #[serde(default)]
    pub content: Vec<Content>,
    #[serde(default, rename = "isError")]
    pub is_error: Option<bool>,
    #[serde(default, rename = "structuredContent")]
    pub structured: Option<Value>,
}

impl CallResult {
    /// The text contents joined with newlines (moved, not copied, when there is one).
    pub fn text(&mut self) -> String {
        let mut texts = self
            .content
            .iter_mut()
            .filter(|c| c.kind == ContentKind::Text)
            .filter_map(|c| c.text.take());
        let Some(first) = texts.next() else {
            return String::new();
        };
        match texts.next() {
            None => first,
            Some(second) => {
                let mut out = first;
                for t in std::iter::once(second).chain(texts) {
                    out.push('\n');
                    out.push_str(&t);
                }
                out
            }
        }
    }
}

#[derive(Debug, PartialEq, Deserialize)]
pub struct Content {
    #[serde(rename = "type")]
    pub kind: ContentKind,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
pub enum ContentKind {
    #[serde(rename = "text")]
    Text,
    #[serde(other)]
    Other,
}

/// A message id: ours are numbers; anything else answers someone else.
#[derive(Debug, PartialEq, Eq)]
enum Id {
    Number(u64),
    Other,
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl<'de> Visitor<'de> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON-RPC id")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Id, E> {
                Ok(Id::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Id, E> {
                Ok(u64::try_from(v).map_or(Id::Other, Id::Number))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Id, E> {
                Ok(Id::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Id, E> {
                Ok(Id::Other)
            }
        }
        d.deserialize_any(IdVisitor)
    }
}

/// One JSON-RPC message as we read it: a response has `id` and `result` or
/// `error`; a request or notification from the server has `method`.
#[derive(Deserialize)]
#[serde(bound = "R: DeserializeOwned")]
struct Message<R> {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default)]
    method: Option<IgnoredAny>,
    #[serde(default = "none")]
    result: Option<R>,
    #[serde(default)]
    error: Option<RpcError>,
}

fn none<R>() -> Option<R> {
    None
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireError {
    #[error("malformed JSON-RPC message: {0}")]
    Malformed(String),
    #[error("a response to request {0} with neither result nor error")]
    Empty(u64),
}

/// Parses one message; `Ok(None)` when it is not the response to `id`
/// (a notification, a request from the server, a batch, another id).
pub fn parse_reply<R: DeserializeOwned>(
    bytes: &[u8],
    id: u64,
) -> Result<Option<Reply<R>>, WireError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Batches (`[`) were removed in 2025-06-18 and never answer our single request.
        return match first {
            Some(b'[') => Ok(None),
            _ => Err(WireError::Malformed("not a JSON object".into())),
        };
    }
    let message: Message<R> =
        serde_json::from_slice(bytes).map_err(|e| WireError::Malformed(e.to_string()))?;
    if message.method.is_some() || message.id != Some(Id::Number(id)) {
        return Ok(None);
    }
    match (message.result, message.error) {
        (_, Some(e)) => Ok(Some(Reply::Error(e))),
        (Some(r), None) => Ok(Some(Reply::Result(r))),
        (None, None) => Err(WireError::Empty(id)),
    }
}

/// A request the server sent us (it has `method` and `id`): its id as sent
/// (a number or a string) and its method. `None` for anything else.
pub fn server_request(bytes: &[u8]) -> Option<(Value, String)> {
    #[derive(Deserialize)]
    struct Request {
        id: Option<Value>,
        method: Option<String>,
    }
    let r: Request = serde_json::from_slice(bytes).ok()?;
    match (r.id, r.method) {
        (Some(id @ (Value::Number(_) | Value::String(_))), Some(method)) => Some((id, method)),
        _ => None,
    }
}

/// Our answer to a server's request, as a client without sampling or roots
/// answers: `ping` → `{}`, `elicitation/create` → the configured action,
/// anything else → JSON-RPC "method not found" (-32601).
pub fn server_answer(
    id: &Value,
    method: &str,
    elicitation: common::protocol::ElicitationAnswer,
) -> Bytes {
    use common::protocol::ElicitationAnswer;
    let body = match method {
        "ping" => serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": {} }),
        "elicitation/create" => {
            let result = match elicitation {
                ElicitationAnswer::Decline => serde_json::json!({ "action": "decline" }),
                ElicitationAnswer::Cancel => serde_json::json!({ "action": "cancel" }),
                ElicitationAnswer::AcceptEmpty => {
                    serde_json::json!({ "action": "accept", "content": {} })
                }
            };
            serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": result })
        }
        other => serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": { "code": -32601, "message": format!("Method not found: {other} (this client does not offer it)") },
        }),
    };
    Bytes::from(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_requests_are_recognized_and_answered() {
        use common::protocol::ElicitationAnswer::*;
        let req = br#"{"jsonrpc":"2.0","id":"e-1","method":"elicitation/create","params":{}}"#;
        let (id, method) = server_request(req).unwrap();
        assert_eq!(
            (id.clone(), method.as_str()),
            (json!("e-1"), "elicitation/create")
        );
        let answer = |m: &str, e| -> Value {
            serde_json::from_slice(&server_answer(&json!(7), m, e)).unwrap()
        };
        assert_eq!(
            answer("elicitation/create", Decline)["result"],
            json!({"action": "decline"})
        );
        assert_eq!(
            answer("elicitation/create", Cancel)["result"],
            json!({"action": "cancel"})
        );
        assert_eq!(
            answer("elicitation/create", AcceptEmpty)["result"],
            json!({"action": "accept", "content": {}})
        );
        assert_eq!(
            answer("ping", Decline),
            json!({"jsonrpc": "2.0", "id": 7, "result": {}})
        );
        assert_eq!(
            answer("sampling/createMessage", Decline)["error"]["code"],
            -32601
        );
        assert_eq!(answer("roots/list", Decline)["error"]["code"], -32601);
        // Notifications, responses and junk are not requests.
        assert_eq!(
            server_request(br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#),
            None
        );
        assert_eq!(
            server_request(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#),
            None
        );
        assert_eq!(server_request(b"nope"), None);
    }

    fn check(input: &str, expected: Result<Option<Reply<CallResult>>, WireError>) {
        assert_eq!(
            parse_reply::<CallResult>(input.as_bytes(), 7),
            expected,
            "{input}"
        );
    }

    fn result(text: &str, is_error: Option<bool>) -> Result<Option<Reply<CallResult>>, WireError> {
        Ok(Some(Reply::Result(CallResult {
            content: vec![Content {
                kind: ContentKind::Text,
                text: Some(text.into()),
            }],
            is_error,
            structured: None,
        })))
    }

    #[test]
    fn parses_responses_and_skips_other_messages() {
        check(
            r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}]}}"#,
            result("hi", None),
        );
        // Field order does not matter; isError is kept.
        check(
            r#"{"result":{"isError":true,"content":[{"type":"text","text":"no"}]},"id":7,"jsonrpc":"2.0"}"#,
            result("no", Some(true)),
        );
        check(
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad args"}}"#,
            Ok(Some(Reply::Error(RpcError {
                code: -32602,
                message: "bad args".into(),
            }))),
        );
        // Not ours: another id, a string id, a notification, a server request, a batch.
        check(r#"{"jsonrpc":"2.0","id":8,"result":{}}"#, Ok(None));
        check(r#"{"jsonrpc":"2.0","id":"7","result":{}}"#, Ok(None));
        check(
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#,
            Ok(None),
        );
        check(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#, Ok(None));
        check(r#"[{"jsonrpc":"2.0","id":7,"result":{}}]"#, Ok(None));
        check(r#"{"jsonrpc":"2.0","id":7}"#, Err(WireError::Empty(7)));
        assert!(matches!(
            parse_reply::<CallResult>(b"not json", 7),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            parse_reply::<CallResult>(br#"{"id":7,"result":{"content":5}}"#, 7),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn tool_text_joins_text_contents_only() {
        let check = |content: Value, expected: &str| {
            let mut r: CallResult = serde_json::from_value(json!({ "content": content })).unwrap();
            assert_eq!(r.text(), expected, "{content}");
        };
        check(json!([]), "");
        check(json!([{"type": "text", "text": "a"}]), "a");
        check(
            json!([{"type": "text", "text": "a"}, {"type": "image", "data": "x", "mimeType": "image/png"}, {"type": "text", "text": "b"}]),
            "a\nb",
        );
    }

    #[test]
    fn request_bodies_are_valid_json_rpc() {
        let check = |body: &[u8], expected: Value| {
            let got: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(got, expected);
        };
        check(
            &tool_call(
                3,
                "nc_notes_get_note",
                &json!({"note_id": 1, "q": "a\"b"}),
                false,
            ),
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                   "params": {"name": "nc_notes_get_note", "arguments": {"note_id": 1, "q": "a\"b"}}}),
        );
        check(
            &tool_call(4, "t", &Value::Null, false),
            json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "t", "arguments": {}}}),
        );
        let meta = json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "mcp-swarm", "version": env!("CARGO_PKG_VERSION")},
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        check(
            &tool_call(5, "t", &json!({"a": 1}), true),
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                   "params": {"name": "t", "arguments": {"a": 1}, "_meta": meta}}),
        );
        check(
            &discover(6),
            json!({"jsonrpc": "2.0", "id": 6, "method": "server/discover", "params": {"_meta": meta}}),
        );
        check(
            &initialize(1, "2025-06-18"),
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "mcp-swarm", "version": env!("CARGO_PKG_VERSION")}}}),
        );
        check(
            INITIALIZED,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        );
    }
}
