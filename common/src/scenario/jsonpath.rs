//! The small JSON path subset scenarios use: `$`, `$.a.b`, `$.items[0].id`,
//! `$["key with spaces"]`, and the same tails after a template value
//! (`{{ steps.create.result.shares[0].id }}`).

use std::fmt;

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A parsed path into a JSON value; empty means the value itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonPath {
    segments: Vec<Segment>,
}

impl JsonPath {
    /// Parses `$`, `$.a.b[0]`, `$["x"]`.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let Some(tail) = text.trim().strip_prefix('$') else {
            return Err(format!(
                "JSON path `{text}` must start with `$` (for example `$.id` or `$.shares[0].id`)"
            ));
        };
        Self::parse_tail(tail).map_err(|e| format!("JSON path `{text}`: {e}"))
    }

    /// Parses the part after a root: `.a.b[0]`, `[1]`, or nothing.
    pub fn parse_tail(tail: &str) -> Result<JsonPath, String> {
        let mut segments = Vec::new();
        let mut rest = tail;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(|c: char| !is_key_char(c)).unwrap_or(after.len());
                if end == 0 {
                    return Err(format!(
                        "expected a key after `.` at `{rest}` (keys are letters, digits, `_` and `-`; \
                         use [\"…\"] for others)"
                    ));
                }
                segments.push(Segment::Key(after[..end].to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let Some(close) = after.find(']') else {
                    return Err(format!("missing `]` in `{rest}`"));
                };
                let inner = after[..close].trim();
                if let Some(quoted) = inner
                    .strip_prefix('"')
                    .and_then(|s| s.strip_suffix('"'))
                    .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                {
                    segments.push(Segment::Key(quoted.to_owned()));
                } else {
                    let index = inner.parse::<usize>().map_err(|_| {
                        format!("`[{inner}]` is neither an index like [0] nor a quoted key like [\"name\"]")
                    })?;
                    segments.push(Segment::Index(index));
                }
                rest = &after[close + 1..];
            } else {
                return Err(format!("unexpected `{rest}`: use `.key` or `[index]`"));
            }
        }
        Ok(JsonPath { segments })
    }

    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The value at this path, if there is one.
    pub fn lookup<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        let mut current = value;
        for segment in &self.segments {
            current = match (segment, current) {
                (Segment::Key(k), Value::Object(map)) => map.get(k)?,
                (Segment::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for segment in &self.segments {
            match segment {
                Segment::Key(k) if !k.is_empty() && k.chars().all(is_key_char) => {
                    write!(f, ".{k}")?
                }
                Segment::Key(k) => write!(f, "[{k:?}]")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(path: &str, expected: Result<Option<Value>, &str>) {
        let doc = json!({"id": 7, "shares": [{"id": "s1"}, {"id": "s2"}], "a b": true});
        match (JsonPath::parse(path), expected) {
            (Ok(p), Ok(want)) => assert_eq!(p.lookup(&doc).cloned(), want, "path {path}"),
            (Err(e), Err(want)) => assert!(e.contains(want), "path {path}: {e}"),
            (got, want) => panic!("path {path}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn paths() {
        check(
            "$",
            Ok(Some(
                json!({"id": 7, "shares": [{"id": "s1"}, {"id": "s2"}], "a b": true}),
            )),
        );
        check("$.id", Ok(Some(json!(7))));
        check("$.shares[1].id", Ok(Some(json!("s2"))));
        check("$[\"a b\"]", Ok(Some(json!(true))));
        check("$.missing", Ok(None));
        check("$.shares[9]", Ok(None));
        check("$.id.deeper", Ok(None));
        check("id", Err("must start with `$`"));
        check("$.", Err("expected a key"));
        check("$[x]", Err("neither an index"));
        check("$[0", Err("missing `]`"));
        check("$id", Err("unexpected `id`"));
    }

    #[test]
    fn display_round_trips() {
        for p in ["$", "$.a.b[0].c", "$[\"a b\"].x"] {
            assert_eq!(JsonPath::parse(p).unwrap().to_string(), p);
        }
    }
}
