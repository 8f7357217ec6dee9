//! What a step checks and keeps from a tool result: `expect` (error or
//! success, `contains`, JSON paths) and `capture` (values bound for later
//! steps). Pure functions over `ToolOutput`, the agent's view of a result.

use serde_json::Value;

use super::jsonpath::JsonPath;
use super::template::{Bindings, Template, TemplateError, ValueTemplate};
use crate::ErrorKind;

/// The longest excerpt of a result quoted in a failure message.
const EXCERPT_CHARS: usize = 200;

/// A tool result as the scenario engine sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutput {
    pub is_error: bool,
    /// The text contents, joined with newlines.
    pub text: String,
    /// Structured content if the server sent it, else the text parsed as
    /// JSON, else the text as a JSON string.
    pub json: Value,
}

impl ToolOutput {
    pub fn new(is_error: bool, text: String, structured: Option<Value>) -> Self {
        let json = structured
            .or_else(|| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| Value::String(text.clone()));
        Self {
            is_error,
            text,
            json,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum JsonCheck {
    /// Equal after templating (numbers and strings compare by text when
    /// their types differ, so `"42"` matches `42`).
    Equals(ValueTemplate),
    /// `{exists: true}` / `{exists: false}`.
    Exists(bool),
}

/// A step's `expect:`. The default expects success.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expect {
    /// `error: true`: the call must answer with `isError`.
    pub error: bool,
    /// Every one must occur in the result text.
    pub contains: Vec<Template>,
    pub json: Vec<(JsonPath, JsonCheck)>,
}

/// A step's `capture:` entry: bind `name` to the value at `path`.
#[derive(Clone, Debug, PartialEq)]
pub struct Capture {
    pub name: String,
    pub path: JsonPath,
}

/// Why a step did not succeed, with its error kind for the counters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepFailure {
    /// The tool answered `isError` and the step expected success.
    #[error("tool error: {0}")]
    Tool(String),
    #[error("expectation not met: {0}")]
    Expectation(String),
    /// A template could not be rendered, so the call was not made.
    #[error("skipped: {0}")]
    Skipped(#[from] TemplateError),
}

impl StepFailure {
    pub fn kind(&self) -> ErrorKind {
        match self {
            StepFailure::Tool(_) => ErrorKind::Tool,
            StepFailure::Expectation(_) => ErrorKind::Expectation,
            StepFailure::Skipped(_) => ErrorKind::Skipped,
        }
    }
}

impl Expect {
    /// Checks `output` against this expectation.
    pub fn check(
        &self,
        output: &ToolOutput,
        bindings: &Bindings,
        acting_role: usize,
    ) -> Result<(), StepFailure> {
        match (self.error, output.is_error) {
            (false, true) => return Err(StepFailure::Tool(excerpt(&output.text))),
            (true, false) => {
                return Err(StepFailure::Expectation(format!(
                    "expected an error result, got success: {}",
                    excerpt(&output.text)
                )));
            }
            _ => {}
        }
        for needle in &self.contains {
            let needle = needle.render_string(bindings, acting_role)?;
            if !output.text.contains(&needle) {
                return Err(StepFailure::Expectation(format!(
                    "result does not contain {needle:?}: {}",
                    excerpt(&output.text)
                )));
            }
        }
        for (path, check) in &self.json {
            let actual = path.lookup(&output.json);
            match check {
                JsonCheck::Exists(want) => {
                    if actual.is_some() != *want {
                        let what = if *want { "is missing" } else { "exists" };
                        return Err(StepFailure::Expectation(format!(
                            "`{path}` {what} in {}",
                            excerpt(&output.json.to_string())
                        )));
                    }
                }
                JsonCheck::Equals(expected) => {
                    let expected = expected.render(bindings, acting_role)?;
                    match actual {
                        Some(actual) if loosely_equal(actual, &expected) => {}
                        Some(actual) => {
                            return Err(StepFailure::Expectation(format!(
                                "`{path}` is {actual}, expected {expected}"
                            )));
                        }
                        None => {
                            return Err(StepFailure::Expectation(format!(
                                "`{path}` is missing (expected {expected}) in {}",
                                excerpt(&output.json.to_string())
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Extracts every capture from `output`; a missing value is an unmet
/// expectation (the result lacks what later steps need).
pub fn extract_captures(
    captures: &[Capture],
    output: &ToolOutput,
) -> Result<Vec<(String, Value)>, StepFailure> {
    captures
        .iter()
        .map(|c| {
            c.path
                .lookup(&output.json)
                .map(|v| (c.name.clone(), v.clone()))
                .ok_or_else(|| {
                    StepFailure::Expectation(format!(
                        "cannot capture `{}`: `{}` is missing in {}",
                        c.name,
                        c.path,
                        excerpt(&output.json.to_string())
                    ))
                })
        })
        .collect()
}

fn loosely_equal(actual: &Value, expected: &Value) -> bool {
    actual == expected
        || matches!((scalar_text(actual), scalar_text(expected)), (Some(a), Some(b)) if a == b)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn excerpt(text: &str) -> String {
    if text.chars().count() <= EXCERPT_CHARS {
        text.to_owned()
    } else {
        let cut: String = text.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::template::Scope;
    use serde_json::json;

    fn template(src: &str) -> Template {
        let roles = vec!["owner".to_string(), "reader".to_string()];
        Template::parse(
            src,
            &Scope {
                roles: &roles,
                steps: &[],
                parallel_steps: &[],
                captures: &["t"],
            },
        )
        .unwrap()
    }

    fn value_template(v: Value) -> ValueTemplate {
        let roles = vec!["owner".to_string(), "reader".to_string()];
        ValueTemplate::compile(
            &v,
            &Scope {
                roles: &roles,
                steps: &[],
                parallel_steps: &[],
                captures: &["t"],
            },
        )
        .unwrap()
    }

    fn output(is_error: bool, json: Value) -> ToolOutput {
        ToolOutput::new(is_error, json.to_string(), None)
    }

    fn check(expect: Expect, out: ToolOutput, expected: Result<(), (ErrorKind, &str)>) {
        let mut b = Bindings::new(vec!["alice".into(), "bob".into()], "u".into(), 0);
        b.set_capture("t", json!("note-1"));
        match (expect.check(&out, &b, 0), expected) {
            (Ok(()), Ok(())) => {}
            (Err(f), Err((kind, text))) => {
                assert_eq!(f.kind(), kind, "{f}");
                assert!(f.to_string().contains(text), "{f}");
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn expectations() {
        let ok = || output(false, json!({"id": 42, "title": "note-1"}));
        check(Expect::default(), ok(), Ok(()));
        check(
            Expect::default(),
            output(true, json!("403 Forbidden")),
            Err((ErrorKind::Tool, "403")),
        );
        let want_error = Expect {
            error: true,
            ..Default::default()
        };
        check(
            want_error.clone(),
            output(true, json!("403 Forbidden")),
            Ok(()),
        );
        check(
            want_error,
            ok(),
            Err((ErrorKind::Expectation, "expected an error")),
        );
        let contains = |s: &str| Expect {
            contains: vec![template(s)],
            ..Default::default()
        };
        check(contains("{{ t }}"), ok(), Ok(()));
        check(
            contains("other"),
            ok(),
            Err((ErrorKind::Expectation, "does not contain \"other\"")),
        );
        let json_eq = |p: &str, v: Value| Expect {
            json: vec![(
                JsonPath::parse(p).unwrap(),
                JsonCheck::Equals(value_template(v)),
            )],
            ..Default::default()
        };
        check(json_eq("$.title", json!("{{ t }}")), ok(), Ok(()));
        check(json_eq("$.id", json!("42")), ok(), Ok(()));
        check(
            json_eq("$.id", json!(41)),
            ok(),
            Err((ErrorKind::Expectation, "is 42, expected 41")),
        );
        check(
            json_eq("$.nope", json!(1)),
            ok(),
            Err((ErrorKind::Expectation, "is missing")),
        );
        let exists = |p: &str, b: bool| Expect {
            json: vec![(JsonPath::parse(p).unwrap(), JsonCheck::Exists(b))],
            ..Default::default()
        };
        check(exists("$.id", true), ok(), Ok(()));
        check(
            exists("$.etag", true),
            ok(),
            Err((ErrorKind::Expectation, "missing")),
        );
        check(exists("$.etag", false), ok(), Ok(()));
    }

    #[test]
    fn captures() {
        let out = output(false, json!({"id": 7, "shares": [{"id": "s"}]}));
        let caps = vec![
            Capture {
                name: "a".into(),
                path: JsonPath::parse("$.id").unwrap(),
            },
            Capture {
                name: "b".into(),
                path: JsonPath::parse("$.shares[0].id").unwrap(),
            },
        ];
        assert_eq!(
            extract_captures(&caps, &out).unwrap(),
            vec![("a".into(), json!(7)), ("b".into(), json!("s"))]
        );
        let missing = vec![Capture {
            name: "c".into(),
            path: JsonPath::parse("$.x").unwrap(),
        }];
        assert_eq!(
            extract_captures(&missing, &out).unwrap_err().kind(),
            ErrorKind::Expectation
        );
    }

    #[test]
    fn output_prefers_structured_then_json_text() {
        assert_eq!(
            ToolOutput::new(false, "{\"a\":1}".into(), None).json,
            json!({"a": 1})
        );
        assert_eq!(
            ToolOutput::new(false, "plain".into(), None).json,
            json!("plain")
        );
        assert_eq!(
            ToolOutput::new(false, "x".into(), Some(json!([1]))).json,
            json!([1])
        );
    }
}
