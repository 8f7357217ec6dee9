//! Templates in step arguments and expectations: `{{ user.name }}`,
//! `{{ other.name }}`, `{{ roles.<role>.name }}`, `{{ steps.<step>.result.<path> }}`,
//! captured values by bare name (with an optional path), the value the
//! acting role captured with `{{ my.<name> }}`, `{{ uuid }}`,
//! `{{ iteration }}`. Parsed and checked once at scenario load; rendered per
//! execution against `Bindings`.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use super::jsonpath::{JsonPath, Segment};

/// Names a capture may not take, because templates use them.
pub(crate) const RESERVED: [&str; 7] =
    ["user", "other", "roles", "steps", "uuid", "iteration", "my"];

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// One value per workflow execution, the same in every step.
    Uuid,
    /// The vuser's iteration counter.
    Iteration,
    /// The acting user's name.
    UserName,
    /// The name of the user playing the first role other than the acting one.
    OtherName,
    /// The name of the user playing a role (index into `Workflow::roles`).
    RoleName(usize),
    StepResult {
        step: String,
        path: JsonPath,
    },
    Capture {
        name: String,
        path: JsonPath,
    },
    /// `{{ my.<name> }}`: what the acting role itself captured under
    /// `name` (a parallel step's captures bind only this way).
    Mine {
        name: String,
        path: JsonPath,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Literal(String),
    Expr(Expr),
}

/// A string with `{{ … }}` holes.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// What a template may refer to at the point where it is used.
pub(crate) struct Scope<'a> {
    pub roles: &'a [String],
    /// Earlier steps whose result can be referenced.
    pub steps: &'a [&'a str],
    /// Earlier parallel steps (no single result to refer to).
    pub parallel_steps: &'a [&'a str],
    /// Names captured by earlier single-actor steps.
    pub captures: &'a [&'a str],
    /// Names captured by earlier steps of any kind, per acting role.
    pub role_captures: &'a [&'a str],
}

/// A template refers to a value this execution does not have (an earlier
/// step failed or its result lacks the path): the step is skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot render `{template}`: {reason}")]
pub struct TemplateError {
    pub template: String,
    pub reason: String,
}

impl Template {
    pub(crate) fn parse(source: &str, scope: &Scope<'_>) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!(
                    "template `{source}` has `{{{{` without a closing `}}}}`"
                ));
            };
            let expr = after[..close].trim();
            parts.push(Part::Expr(parse_expr(expr, scope)?));
            rest = &after[close + 2..];
        }
        if rest.contains("}}") {
            return Err(format!(
                "template `{source}` has `}}}}` without an opening `{{{{`"
            ));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template {
            source: source.to_owned(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(e) => Some(e),
            Part::Literal(_) => None,
        })
    }

    /// Renders to JSON. A template that is exactly one `{{ … }}` keeps the
    /// value's JSON type (a captured number stays a number); anything else
    /// becomes a string.
    pub fn render(&self, bindings: &Bindings, acting_role: usize) -> Result<Value, TemplateError> {
        if let [Part::Expr(expr)] = self.parts.as_slice() {
            return bindings
                .resolve(expr, acting_role)
                .map_err(|r| self.error(r));
        }
        self.render_string(bindings, acting_role).map(Value::String)
    }

    pub fn render_string(
        &self,
        bindings: &Bindings,
        acting_role: usize,
    ) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Expr(expr) => {
                    match bindings
                        .resolve(expr, acting_role)
                        .map_err(|r| self.error(r))?
                    {
                        Value::String(s) => out.push_str(&s),
                        other => out.push_str(&other.to_string()),
                    }
                }
            }
        }
        Ok(out)
    }

    fn error(&self, reason: String) -> TemplateError {
        TemplateError {
            template: self.source.clone(),
            reason,
        }
    }
}

fn parse_expr(expr: &str, scope: &Scope<'_>) -> Result<Expr, String> {
    if expr.is_empty() {
        return Err("empty `{{ }}`: write a name such as `{{ user.name }}` or `{{ uuid }}`".into());
    }
    let head_end = expr.find(['.', '[']).unwrap_or(expr.len());
    let (head, tail) = expr.split_at(head_end);
    let name_only = |what: &str, e: Expr| {
        if tail == ".name" {
            Ok(e)
        } else {
            Err(format!(
                "`{{{{ {expr} }}}}`: only `{what}.name` is available"
            ))
        }
    };
    match head {
        "uuid" | "iteration" if !tail.is_empty() => {
            Err(format!("`{{{{ {expr} }}}}`: `{head}` has no fields"))
        }
        "uuid" => Ok(Expr::Uuid),
        "iteration" => Ok(Expr::Iteration),
        "user" => name_only("user", Expr::UserName),
        "other" => {
            if scope.roles.len() < 2 {
                return Err(format!(
                    "`{{{{ {expr} }}}}` needs a second role, but the workflow has only {:?}; add one to `roles:`",
                    scope.roles
                ));
            }
            name_only("other", Expr::OtherName)
        }
        "roles" => {
            let rest = tail.strip_prefix('.').unwrap_or("");
            let (role, field) = rest.split_once('.').unwrap_or((rest, ""));
            let Some(index) = scope.roles.iter().position(|r| r == role) else {
                return Err(format!(
                    "`{{{{ {expr} }}}}`: unknown role `{role}`; roles are {:?}",
                    scope.roles
                ));
            };
            if field != "name" {
                return Err(format!("`{{{{ {expr} }}}}`: write `roles.{role}.name`"));
            }
            Ok(Expr::RoleName(index))
        }
        "steps" => {
            let rest = tail.strip_prefix('.').unwrap_or("");
            let step_end = rest.find('.').unwrap_or(rest.len());
            let step = &rest[..step_end];
            let after_step = &rest[step_end..];
            if scope.parallel_steps.contains(&step) {
                return Err(format!(
                    "`{{{{ {expr} }}}}`: step `{step}` runs in parallel and has no single result; \
                     capture from a non-parallel step instead"
                ));
            }
            if !scope.steps.contains(&step) {
                return Err(format!(
                    "`{{{{ {expr} }}}}`: no earlier step named `{step}`; earlier steps are {:?}",
                    scope.steps
                ));
            }
            let Some(path) = after_step.strip_prefix(".result") else {
                return Err(format!(
                    "`{{{{ {expr} }}}}`: write `steps.{step}.result` followed by an optional path like `.id`"
                ));
            };
            let path =
                JsonPath::parse_tail(path).map_err(|e| format!("`{{{{ {expr} }}}}`: {e}"))?;
            Ok(Expr::StepResult {
                step: step.to_owned(),
                path,
            })
        }
        "my" => {
            let rest = tail.strip_prefix('.').unwrap_or("");
            let name_end = rest.find(['.', '[']).unwrap_or(rest.len());
            let (name, path) = rest.split_at(name_end);
            if !scope.role_captures.contains(&name) {
                return Err(format!(
                    "`{{{{ {expr} }}}}`: `{name}` is not captured by an earlier step (captures so far: {:?}); \
                     `my.<name>` is the value the acting role captured",
                    scope.role_captures
                ));
            }
            let path =
                JsonPath::parse_tail(path).map_err(|e| format!("`{{{{ {expr} }}}}`: {e}"))?;
            Ok(Expr::Mine {
                name: name.to_owned(),
                path,
            })
        }
        name => {
            if !scope.captures.contains(&name) && scope.role_captures.contains(&name) {
                return Err(format!(
                    "`{{{{ {expr} }}}}`: `{name}` is captured by a parallel step, one value per role; \
                     write `{{{{ my.{name} }}}}` for the acting role's"
                ));
            }
            if !scope.captures.contains(&name) {
                return Err(format!(
                    "`{{{{ {expr} }}}}`: `{name}` is not captured by an earlier step (captures so far: {:?}); \
                     add `capture: {{ {name}: \"$.…\" }}` to an earlier step, or use user.name, other.name, \
                     roles.<role>.name, steps.<step>.result…, uuid, iteration",
                    scope.captures
                ));
            }
            let path =
                JsonPath::parse_tail(tail).map_err(|e| format!("`{{{{ {expr} }}}}`: {e}"))?;
            Ok(Expr::Capture {
                name: name.to_owned(),
                path,
            })
        }
    }
}

/// A JSON value with templates in its strings (step `args`, `expect.json` values).
#[derive(Clone, Debug, PartialEq)]
pub enum ValueTemplate {
    Fixed(Value),
    Text(Template),
    Array(Vec<ValueTemplate>),
    Object(Vec<(String, ValueTemplate)>),
}

impl ValueTemplate {
    /// Compiles a value; on error returns the path inside `value` and the message.
    pub(crate) fn compile(
        value: &Value,
        scope: &Scope<'_>,
    ) -> Result<ValueTemplate, (Vec<Segment>, String)> {
        Ok(match value {
            Value::String(s) => {
                let t = Template::parse(s, scope).map_err(|e| (Vec::new(), e))?;
                if t.is_literal() {
                    ValueTemplate::Fixed(value.clone())
                } else {
                    ValueTemplate::Text(t)
                }
            }
            Value::Array(items) => ValueTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        Self::compile(v, scope).map_err(|(mut p, e)| {
                            p.insert(0, Segment::Index(i));
                            (p, e)
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => ValueTemplate::Object(
                map.iter()
                    .map(|(k, v)| {
                        Self::compile(v, scope)
                            .map(|t| (k.clone(), t))
                            .map_err(|(mut p, e)| {
                                p.insert(0, Segment::Key(k.clone()));
                                (p, e)
                            })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            other => ValueTemplate::Fixed(other.clone()),
        })
    }

    pub fn render(&self, bindings: &Bindings, acting_role: usize) -> Result<Value, TemplateError> {
        Ok(match self {
            ValueTemplate::Fixed(v) => v.clone(),
            ValueTemplate::Text(t) => t.render(bindings, acting_role)?,
            ValueTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(bindings, acting_role))
                    .collect::<Result<_, _>>()?,
            ),
            ValueTemplate::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.render(bindings, acting_role)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
        })
    }
}

/// Everything templates of one workflow execution can refer to.
#[derive(Clone, Debug, Default)]
pub struct Bindings {
    /// User name per role index.
    users: Vec<String>,
    uuid: String,
    iteration: u64,
    results: HashMap<String, Value>,
    captures: HashMap<String, Value>,
    /// Per role index: what that role captured.
    mine: Vec<HashMap<String, Value>>,
}

impl Bindings {
    /// `users[i]` plays `Workflow::roles[i]`.
    pub fn new(users: Vec<String>, uuid: String, iteration: u64) -> Self {
        Self {
            users,
            uuid,
            iteration,
            results: HashMap::new(),
            captures: HashMap::new(),
            mine: Vec::new(),
        }
    }

    /// Binds `name` for `role` only (`{{ my.name }}`).
    pub fn set_capture_for(&mut self, role: usize, name: &str, value: Value) {
        if self.mine.len() <= role {
            self.mine.resize_with(role + 1, HashMap::new);
        }
        self.mine[role].insert(name.to_owned(), value);
    }

    pub fn user(&self, role: usize) -> Option<&str> {
        self.users.get(role).map(String::as_str)
    }

    pub fn set_result(&mut self, step: &str, result: Value) {
        self.results.insert(step.to_owned(), result);
    }

    pub fn set_capture(&mut self, name: &str, value: Value) {
        self.captures.insert(name.to_owned(), value);
    }

    pub fn capture(&self, name: &str) -> Option<&Value> {
        self.captures.get(name)
    }

    fn resolve(&self, expr: &Expr, acting_role: usize) -> Result<Value, String> {
        let user = |role: usize| {
            self.users
                .get(role)
                .map(|u| Value::String(u.clone()))
                .ok_or_else(|| format!("no user plays role #{role}"))
        };
        match expr {
            Expr::Uuid => Ok(Value::String(self.uuid.clone())),
            Expr::Iteration => Ok(Value::from(self.iteration)),
            Expr::UserName => user(acting_role),
            Expr::OtherName => {
                let other = (0..self.users.len())
                    .find(|&i| i != acting_role)
                    .ok_or("no other user in this execution")?;
                user(other)
            }
            Expr::RoleName(i) => user(*i),
            Expr::StepResult { step, path } => {
                let result = self
                    .results
                    .get(step)
                    .ok_or_else(|| format!("step `{step}` produced no result"))?;
                path.lookup(result)
                    .cloned()
                    .ok_or_else(|| format!("the result of step `{step}` has no `{path}`"))
            }
            Expr::Capture { name, path } => {
                let value = self
                    .captures
                    .get(name)
                    .ok_or_else(|| format!("`{name}` was not captured"))?;
                path.lookup(value)
                    .cloned()
                    .ok_or_else(|| format!("captured `{name}` has no `{path}`"))
            }
            Expr::Mine { name, path } => {
                let value = self
                    .mine
                    .get(acting_role)
                    .and_then(|m| m.get(name))
                    .ok_or_else(|| format!("role #{acting_role} did not capture `{name}`"))?;
                path.lookup(value)
                    .cloned()
                    .ok_or_else(|| format!("captured `{name}` has no `{path}`"))
            }
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope_roles() -> Vec<String> {
        vec!["owner".into(), "reader".into()]
    }

    fn parse(src: &str) -> Result<Template, String> {
        let roles = scope_roles();
        Template::parse(
            src,
            &Scope {
                roles: &roles,
                steps: &["create"],
                parallel_steps: &["both"],
                captures: &["note_id", "share"],
                role_captures: &["note_id", "share"],
            },
        )
    }

    fn bindings() -> Bindings {
        let mut b = Bindings::new(vec!["alice".into(), "bob".into()], "u-1".into(), 4);
        b.set_result("create", json!({"id": 42, "title": "t"}));
        b.set_capture("note_id", json!(42));
        b.set_capture("share", json!({"file_target": "/x.txt"}));
        b
    }

    fn check(src: &str, acting: usize, expected: Result<Value, &str>) {
        let got = parse(src).and_then(|t| t.render(&bindings(), acting).map_err(|e| e.to_string()));
        match (got, expected) {
            (Ok(v), Ok(want)) => assert_eq!(v, want, "{src}"),
            (Err(e), Err(want)) => assert!(e.contains(want), "{src}: {e}"),
            (got, want) => panic!("{src}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn renders() {
        check("plain", 0, Ok(json!("plain")));
        check("{{ user.name }}", 0, Ok(json!("alice")));
        check("{{user.name}}", 1, Ok(json!("bob")));
        check("{{ other.name }}", 1, Ok(json!("alice")));
        check("hi {{ roles.reader.name }}!", 0, Ok(json!("hi bob!")));
        check("{{ note_id }}", 0, Ok(json!(42)));
        check("n{{ note_id }}", 0, Ok(json!("n42")));
        check("{{ steps.create.result.title }}", 0, Ok(json!("t")));
        check(
            "{{ steps.create.result }}",
            0,
            Ok(json!({"id": 42, "title": "t"})),
        );
        check("{{ share.file_target }}", 0, Ok(json!("/x.txt")));
        check("{{ uuid }}-{{ iteration }}", 0, Ok(json!("u-1-4")));
        check(
            "{{ steps.create.result.missing }}",
            0,
            Err("has no `$.missing`"),
        );
        check("{{ share.nope }}", 0, Err("captured `share` has no"));
    }

    #[test]
    fn rejects() {
        check("{{ user.name", 0, Err("without a closing"));
        check("x }}", 0, Err("without an opening"));
        check("{{ }}", 0, Err("empty"));
        check("{{ user.email }}", 0, Err("only `user.name`"));
        check("{{ roles.admin.name }}", 0, Err("unknown role `admin`"));
        check(
            "{{ steps.nope.result }}",
            0,
            Err("no earlier step named `nope`"),
        );
        check("{{ steps.both.result }}", 0, Err("runs in parallel"));
        check(
            "{{ steps.create.id }}",
            0,
            Err("write `steps.create.result`"),
        );
        check("{{ mystery }}", 0, Err("`mystery` is not captured"));
        check("{{ uuid.x }}", 0, Err("has no fields"));
        check("{{ note_id[x] }}", 0, Err("neither an index"));
    }

    #[test]
    fn other_needs_two_roles() {
        let roles = vec!["solo".to_string()];
        let scope = Scope {
            roles: &roles,
            steps: &[],
            parallel_steps: &[],
            captures: &[],
            role_captures: &[],
        };
        assert!(
            Template::parse("{{ other.name }}", &scope)
                .unwrap_err()
                .contains("second role")
        );
    }
}
