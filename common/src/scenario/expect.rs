//! What a step checks and keeps from a tool result: `expect` (the outcomes
//! a step may have — success, error, conflict —, `contains`, JSON paths) and
//! `capture` (values bound for later steps). Pure functions over
//! `ToolOutput`, the agent's view of a result.

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
    /// JSON, else the text as a JSON string. Structured content that is only
    /// `{"result": "<JSON text>"}` (what the Python MCP SDK makes of a tool
    /// that returns a string, e.g. every `nc_share_*` tool) is that text
    /// parsed, so `$.id` reads the share's id.
    pub json: Value,
}

impl ToolOutput {
    pub fn new(is_error: bool, text: String, structured: Option<Value>) -> Self {
        let json = structured
            .map(unwrap_result_text)
            .or_else(|| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| Value::String(text.clone()));
        Self {
            is_error,
            text,
            json,
        }
    }

    /// What this output is for a step whose conflicts are recognized by
    /// `markers`: a success, a conflict (an error result whose text holds
    /// one of them) or another error.
    pub fn outcome(&self, markers: &[String]) -> Outcome {
        if !self.is_error {
            Outcome::Success
        } else if markers.iter().any(|m| self.text.contains(m.as_str())) {
            Outcome::Conflict
        } else {
            Outcome::Error
        }
    }
}

/// `{"result": "<JSON text>"}` → the parsed text; anything else unchanged.
fn unwrap_result_text(structured: Value) -> Value {
    if let Value::Object(map) = &structured
        && map.len() == 1
        && let Some(Value::String(text)) = map.get("result")
        && let Ok(parsed) = serde_json::from_str::<Value>(text)
    {
        return parsed;
    }
    structured
}

/// How a tool call ended, as a step sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Success,
    /// An error result: the tool refused or failed.
    Error,
    /// An error result that says the write lost a race: a precondition
    /// (`If-Match` etag) no longer held because someone else wrote first.
    Conflict,
}

impl Outcome {
    pub const NAMES: [&str; 3] = ["success", "error", "conflict"];

    pub fn parse(name: &str) -> Option<Outcome> {
        match name {
            "success" => Some(Outcome::Success),
            "error" => Some(Outcome::Error),
            "conflict" => Some(Outcome::Conflict),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Conflict => "conflict",
        }
    }
}

/// Texts that mark an error result as a write conflict unless a step names
/// its own (`expect.conflict_when`): what the Nextcloud MCP server and
/// Nextcloud say when an `If-Match` etag is stale (HTTP 412).
pub const DEFAULT_CONFLICT_MARKERS: [&str; 6] = [
    "(412)",
    "412 Precondition Failed",
    "modified by someone else",
    "modified since the given etag",
    "Resource changed since it was read",
    "(concurrent edit)",
];

#[derive(Clone, Debug, PartialEq)]
pub enum JsonCheck {
    /// Equal after templating (numbers and strings compare by text when
    /// their types differ, so `"42"` matches `42`).
    Equals(ValueTemplate),
    /// `{exists: true}` / `{exists: false}`.
    Exists(bool),
    /// `{contains: "text"}`: the value at the path (a string, or any other
    /// value as JSON text) contains the text — e.g. a search's hits hold a
    /// title, whatever else the result echoes.
    Contains(Template),
}

/// A step's `expect:`. The default expects success.
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    /// The outcomes the step may have (`outcomes: [success, conflict]`;
    /// `error: true` is `[error]`); never empty.
    pub outcomes: Vec<Outcome>,
    /// Texts that make an error result a conflict.
    pub conflict_markers: Vec<String>,
    /// Every one must occur in the result text (checked on success and
    /// error outcomes, not on conflicts).
    pub contains: Vec<Template>,
    pub json: Vec<(JsonPath, JsonCheck)>,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            outcomes: vec![Outcome::Success],
            conflict_markers: DEFAULT_CONFLICT_MARKERS.map(String::from).to_vec(),
            contains: Vec::new(),
            json: Vec::new(),
        }
    }
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
    /// The outcome of `output` under this step's conflict markers.
    pub fn outcome(&self, output: &ToolOutput) -> Outcome {
        output.outcome(&self.conflict_markers)
    }

    /// Checks `output` against this expectation; on success, which allowed
    /// outcome it had.
    pub fn check(
        &self,
        output: &ToolOutput,
        bindings: &Bindings,
        acting_role: usize,
    ) -> Result<Outcome, StepFailure> {
        let outcome = self.outcome(output);
        if !self.outcomes.contains(&outcome) {
            return Err(match outcome {
                Outcome::Success => StepFailure::Expectation(format!(
                    "expected {}, got success: {}",
                    self.outcome_names(),
                    excerpt(&output.text)
                )),
                Outcome::Error | Outcome::Conflict => StepFailure::Tool(excerpt(&output.text)),
            });
        }
        if outcome == Outcome::Conflict {
            // A lost race has nothing of the result to check.
            return Ok(outcome);
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
                JsonCheck::Contains(needle) => {
                    let needle = needle.render_string(bindings, acting_role)?;
                    let found = match actual {
                        Some(Value::String(s)) => s.contains(&needle),
                        Some(other) => other.to_string().contains(&needle),
                        None => false,
                    };
                    if !found {
                        return Err(StepFailure::Expectation(format!(
                            "`{path}` does not contain {needle:?} in {}",
                            excerpt(&output.json.to_string())
                        )));
                    }
                }
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
        Ok(outcome)
    }

    /// `an error result`, `success or conflict`, … for messages.
    fn outcome_names(&self) -> String {
        let names: Vec<&str> = self.outcomes.iter().map(|o| o.as_str()).collect();
        names.join(" or ")
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
                role_captures: &["t"],
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
                role_captures: &["t"],
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
        match (expect.check(&out, &b, 0).map(|_| ()), expected) {
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
            outcomes: vec![Outcome::Error],
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
            Err((ErrorKind::Expectation, "expected error, got success")),
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
        let hits = || {
            output(
                false,
                json!({"query": "note-1", "results": [{"title": "note-2"}]}),
            )
        };
        let json_contains = |p: &str, s: &str| Expect {
            json: vec![(
                JsonPath::parse(p).unwrap(),
                JsonCheck::Contains(template(s)),
            )],
            ..Default::default()
        };
        // The echoed query does not count: only the hits are looked at.
        check(
            json_contains("$.results", "{{ t }}"),
            hits(),
            Err((ErrorKind::Expectation, "does not contain \"note-1\"")),
        );
        check(json_contains("$.results", "note-2"), hits(), Ok(()));
        check(json_contains("$.query", "note"), hits(), Ok(()));
    }

    #[test]
    fn conflicts_are_an_outcome_of_their_own() {
        let conflict = || {
            output(
                true,
                json!("Note 7 has been modified by someone else. Please refresh and try again."),
            )
        };
        let b = Bindings::new(vec!["alice".into()], "u".into(), 0);
        // Not allowed: a conflict fails the step as the tool error it is.
        let strict = Expect::default();
        assert_eq!(strict.outcome(&conflict()), Outcome::Conflict);
        assert_eq!(
            strict.check(&conflict(), &b, 0).map_err(|f| f.kind()),
            Err(ErrorKind::Tool)
        );
        let lenient = Expect {
            outcomes: vec![Outcome::Success, Outcome::Conflict],
            contains: vec![template("never checked on a conflict")],
            ..Default::default()
        };
        assert_eq!(lenient.check(&conflict(), &b, 0), Ok(Outcome::Conflict));
        // Another error is still an error.
        assert_eq!(
            lenient
                .check(&output(true, json!("Note 7 not found")), &b, 0)
                .map_err(|f| f.kind()),
            Err(ErrorKind::Tool)
        );
        let markers = vec!["locked".to_owned()];
        assert_eq!(conflict().outcome(&markers), Outcome::Error);
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
        // The Python SDK's wrapping of a tool that returns a string.
        let share = r#"{"id":"11","file_target":"/n.md"}"#;
        let wrapped = ToolOutput::new(false, share.into(), Some(json!({ "result": share })));
        assert_eq!(wrapped.json, json!({"id": "11", "file_target": "/n.md"}));
        // A lone `result` that is not JSON text stays as it is.
        let plain = ToolOutput::new(false, "ok".into(), Some(json!({ "result": "ok" })));
        assert_eq!(plain.json, json!({ "result": "ok" }));
    }
}
