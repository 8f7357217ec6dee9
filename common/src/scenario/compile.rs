//! Turns a `RawScenario` into the checked model: resolves roles, compiles
//! templates, JSON paths and captures, and checks workloads. Every error
//! carries the path of the offending node so `locate` can find its line.

use serde_json::Value;

use super::expect::{Capture, Expect, JsonCheck, Outcome};
use super::jsonpath::{JsonPath, Segment};
use super::raw::{OneOrMany, RawScenario, RawStep, RawWorkflow};
use super::template::{RESERVED, Scope, Template, ValueTemplate};
use super::{MixEntry, Retry, Step, Workflow, Workload};

/// The only scenario format version so far.
const VERSION: u32 = 1;

/// What went wrong and where (path from the document root).
pub(crate) struct CompileError {
    pub path: Vec<Segment>,
    pub message: String,
}

type Result<T> = std::result::Result<T, CompileError>;

fn key(k: &str) -> Segment {
    Segment::Key(k.to_owned())
}

fn err<T>(path: Vec<Segment>, message: impl Into<String>) -> Result<T> {
    Err(CompileError {
        path,
        message: message.into(),
    })
}

pub(crate) struct Compiled {
    pub description: String,
    pub default_workload: Option<String>,
    pub workloads: Vec<Workload>,
    pub workflows: Vec<Workflow>,
    pub provision: Option<super::setup::Provision>,
}

pub(crate) fn compile(raw: RawScenario) -> Result<Compiled> {
    if let Some(v) = raw.version
        && v != VERSION
    {
        return err(
            vec![key("version")],
            format!("unsupported scenario version {v}; this build reads `version: {VERSION}`"),
        );
    }
    if raw.workflows.0.is_empty() {
        return err(
            vec![key("workflows")],
            "`workflows:` is empty; define at least one workflow",
        );
    }
    let workflows = raw
        .workflows
        .0
        .into_iter()
        .map(|(name, wf)| compile_workflow(name, wf))
        .collect::<Result<Vec<_>>>()?;

    let mut workloads = Vec::new();
    for (name, entries) in raw.workloads.0 {
        let path = || vec![key("workloads"), key(&name)];
        check_name(&name, "workload", path())?;
        let mut mix = Vec::new();
        for (workflow, weight) in entries.0 {
            if !workflows.iter().any(|w| w.name == workflow) {
                let mut p = path();
                p.push(key(&workflow));
                return err(
                    p,
                    format!(
                        "workload `{name}` refers to unknown workflow `{workflow}`; workflows are {}",
                        names(workflows.iter().map(|w| w.name.as_str()))
                    ),
                );
            }
            mix.push(MixEntry { workflow, weight });
        }
        if mix.iter().map(|m| u64::from(m.weight)).sum::<u64>() == 0 {
            return err(
                path(),
                format!(
                    "workload `{name}` has a total weight of 0; give at least one workflow a weight above 0"
                ),
            );
        }
        workloads.push(Workload { name, mix });
    }
    if let Some(default) = &raw.default_workload
        && !workloads.iter().any(|w| w.name == *default)
    {
        return err(
            vec![key("default_workload")],
            format!(
                "default_workload `{default}` is not defined under `workloads:`; workloads are {}",
                names(workloads.iter().map(|w| w.name.as_str()))
            ),
        );
    }
    let provision = match raw.setup.and_then(|s| s.provision) {
        None => None,
        Some(p) => Some(super::setup::compile(p).map_err(|(at, message)| {
            let mut path = vec![key("setup"), key("provision")];
            path.extend(at.into_iter().map(key));
            CompileError { path, message }
        })?),
    };
    Ok(Compiled {
        description: raw.description,
        default_workload: raw.default_workload,
        workloads,
        workflows,
        provision,
    })
}

pub(crate) fn names<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = items.collect();
    if v.is_empty() {
        "(none)".to_owned()
    } else {
        v.join(", ")
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_name(name: &str, what: &str, path: Vec<Segment>) -> Result<()> {
    if is_name(name) {
        Ok(())
    } else {
        err(
            path,
            format!("{what} name `{name}` may only use letters, digits, `_` and `-`"),
        )
    }
}

fn compile_workflow(name: String, raw: RawWorkflow) -> Result<Workflow> {
    let wf_path = || vec![key("workflows"), key(&name)];
    check_name(&name, "workflow", wf_path())?;
    let roles_path = || {
        let mut p = wf_path();
        p.push(key("roles"));
        p
    };
    let roles = raw.roles.unwrap_or_else(|| vec!["user".to_owned()]);
    if roles.is_empty() {
        return err(
            roles_path(),
            format!("workflow `{name}` has no roles; list at least one, e.g. `roles: [owner]`"),
        );
    }
    for (i, role) in roles.iter().enumerate() {
        let mut p = roles_path();
        p.push(Segment::Index(i));
        check_name(role, "role", p.clone())?;
        if role == "all" {
            return err(
                p,
                "`all` is reserved (it means every role in `as: all`); rename the role",
            );
        }
        if roles[..i].contains(role) {
            return err(p, format!("workflow `{name}` lists role `{role}` twice"));
        }
    }
    if raw.baseline && roles.len() != 1 {
        let mut p = wf_path();
        p.push(key("baseline"));
        return err(
            p,
            format!(
                "workflow `{name}` is a baseline workflow, which must have exactly one role (it has {roles:?})"
            ),
        );
    }
    if raw.steps.is_empty() {
        let mut p = wf_path();
        p.push(key("steps"));
        return err(p, format!("workflow `{name}` has no steps"));
    }

    let mut steps: Vec<Step> = Vec::new();
    let mut captures = Captured::default();
    for (i, raw_step) in raw.steps.into_iter().enumerate() {
        let mut step_path = wf_path();
        step_path.extend([key("steps"), Segment::Index(i)]);
        let step = compile_step(&name, &roles, &steps, &captures, raw_step, &step_path)?;
        for c in &step.capture {
            if !step.parallel && !captures.global.contains(&c.name) {
                captures.global.push(c.name.clone());
            }
            if !captures.per_role.contains(&c.name) {
                captures.per_role.push(c.name.clone());
            }
        }
        steps.push(step);
    }
    Ok(Workflow {
        name,
        description: raw.description,
        roles,
        baseline: raw.baseline,
        steps,
    })
}

/// Names captured so far: by single-actor steps (`{{ name }}`), and by
/// any step (`{{ my.name }}`, bound per acting role).
#[derive(Default)]
struct Captured {
    global: Vec<String>,
    per_role: Vec<String>,
}

/// The most calls a `retry:` may make.
const MAX_ATTEMPTS: u32 = 10;

fn compile_step(
    workflow: &str,
    roles: &[String],
    earlier: &[Step],
    captures: &Captured,
    raw: RawStep,
    step_path: &[Segment],
) -> Result<Step> {
    let at = |field: &str| {
        let mut p = step_path.to_vec();
        p.push(key(field));
        p
    };
    let name = raw.name;
    let ctx = format!("workflow `{workflow}`, step `{name}`");
    check_name(&name, "step", at("name"))?;
    if earlier.iter().any(|s| s.name == name) {
        return err(
            at("name"),
            format!("{ctx}: duplicate step name; step names must be unique within a workflow"),
        );
    }
    if raw.tool.trim().is_empty() {
        return err(
            at("tool"),
            format!("{ctx}: `tool:` is empty; name the MCP tool to call"),
        );
    }

    let all: Vec<usize> = (0..roles.len()).collect();
    let role_index = |role: &str, path: Vec<Segment>| -> Result<usize> {
        roles.iter().position(|r| r == role).map_or_else(
            || err(path, format!("{ctx}: unknown role `{role}`; the workflow's roles are {roles:?} (or `all`)")),
            Ok,
        )
    };
    let actors = match raw.actors {
        None if raw.parallel => all,
        None if roles.len() == 1 => vec![0],
        None => {
            return err(
                step_path.to_vec(),
                format!(
                    "{ctx}: add `as:` with one of the roles {roles:?} (or `all` with `parallel: true`)"
                ),
            );
        }
        Some(OneOrMany::One(r)) if r == "all" => all,
        Some(OneOrMany::One(r)) => vec![role_index(&r, at("as"))?],
        Some(OneOrMany::Many(list)) => {
            if list.is_empty() {
                return err(at("as"), format!("{ctx}: `as: []` names no role"));
            }
            let mut out = Vec::new();
            for (i, r) in list.iter().enumerate() {
                let mut p = at("as");
                p.push(Segment::Index(i));
                let idx = role_index(r, p.clone())?;
                if out.contains(&idx) {
                    return err(p, format!("{ctx}: role `{r}` is listed twice in `as:`"));
                }
                out.push(idx);
            }
            out
        }
    };
    if actors.len() > 1 && !raw.parallel {
        return err(
            at("as"),
            format!(
                "{ctx}: a step for several roles must say `parallel: true` (they run at the same time)"
            ),
        );
    }

    let step_names: Vec<&str> = earlier
        .iter()
        .filter(|s| !s.parallel)
        .map(|s| s.name.as_str())
        .collect();
    let parallel_names: Vec<&str> = earlier
        .iter()
        .filter(|s| s.parallel)
        .map(|s| s.name.as_str())
        .collect();
    let capture_names: Vec<&str> = captures.global.iter().map(String::as_str).collect();
    let role_capture_names: Vec<&str> = captures.per_role.iter().map(String::as_str).collect();
    let scope = Scope {
        roles,
        steps: &step_names,
        parallel_steps: &parallel_names,
        captures: &capture_names,
        role_captures: &role_capture_names,
    };
    let in_value = |field: &str, value: &Value| -> Result<ValueTemplate> {
        ValueTemplate::compile(value, &scope).map_err(|(inner, message)| {
            let mut p = at(field);
            p.extend(inner);
            CompileError {
                path: p,
                message: format!("{ctx}: {message}"),
            }
        })
    };

    let args = match raw.args {
        None | Some(Value::Null) => ValueTemplate::Object(Vec::new()),
        Some(v @ Value::Object(_)) => in_value("args", &v)?,
        Some(_) => {
            return err(
                at("args"),
                format!("{ctx}: `args:` must be a mapping of argument names to values"),
            );
        }
    };

    let mut expect = Expect::default();
    if let Some(raw_expect) = raw.expect {
        let expect_at = |field: &str| {
            let mut p = at("expect");
            p.push(key(field));
            p
        };
        expect.outcomes = match (raw_expect.error, raw_expect.outcomes) {
            (true, Some(_)) => {
                return err(
                    expect_at("outcomes"),
                    format!("{ctx}: write either `error: true` or `outcomes:`, not both"),
                );
            }
            (true, None) => vec![Outcome::Error],
            (false, None) => vec![Outcome::Success],
            (false, Some(list)) => {
                let names = match list {
                    OneOrMany::One(n) => vec![n],
                    OneOrMany::Many(n) => n,
                };
                if names.is_empty() {
                    return err(
                        expect_at("outcomes"),
                        format!(
                            "{ctx}: `outcomes: []` allows nothing; list some of {:?}",
                            Outcome::NAMES
                        ),
                    );
                }
                let mut outcomes = Vec::new();
                for (i, n) in names.iter().enumerate() {
                    let mut p = expect_at("outcomes");
                    p.push(Segment::Index(i));
                    let Some(o) = Outcome::parse(n) else {
                        return err(
                            p,
                            format!(
                                "{ctx}: unknown outcome `{n}`; outcomes are {:?}",
                                Outcome::NAMES
                            ),
                        );
                    };
                    if !outcomes.contains(&o) {
                        outcomes.push(o);
                    }
                }
                outcomes
            }
        };
        if let Some(markers) = raw_expect.conflict_when {
            let markers = match markers {
                OneOrMany::One(m) => vec![m],
                OneOrMany::Many(m) => m,
            };
            if markers.iter().any(|m| m.is_empty()) || markers.is_empty() {
                return err(
                    expect_at("conflict_when"),
                    format!(
                        "{ctx}: `conflict_when:` lists the texts that mark an error result as a conflict; none may be empty"
                    ),
                );
            }
            expect.conflict_markers = markers;
        }
        let contains = match raw_expect.contains {
            None => Vec::new(),
            Some(OneOrMany::One(text)) => vec![(text, expect_at("contains"))],
            Some(OneOrMany::Many(texts)) => texts
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    let mut p = expect_at("contains");
                    p.push(Segment::Index(i));
                    (t, p)
                })
                .collect(),
        };
        for (text, p) in contains {
            expect
                .contains
                .push(Template::parse(&text, &scope).or_else(|e| err(p, format!("{ctx}: {e}")))?);
        }
        for (path_text, value) in raw_expect.json.0 {
            let mut p = expect_at("json");
            p.push(key(&path_text));
            let path =
                JsonPath::parse(&path_text).or_else(|e| err(p.clone(), format!("{ctx}: {e}")))?;
            let check = match &value {
                Value::Object(map) if map.contains_key("contains") => {
                    match (map.len(), &map["contains"]) {
                        (1, Value::String(text)) => JsonCheck::Contains(
                            Template::parse(text, &scope)
                                .or_else(|e| err(p.clone(), format!("{ctx}: {e}")))?,
                        ),
                        _ => {
                            return err(p, format!("{ctx}: write `{{contains: \"text\"}}` alone"));
                        }
                    }
                }
                Value::Object(map) if map.contains_key("exists") => {
                    match (map.len(), &map["exists"]) {
                        (1, Value::Bool(b)) => JsonCheck::Exists(*b),
                        _ => {
                            return err(
                                p,
                                format!(
                                    "{ctx}: write `{{exists: true}}` or `{{exists: false}}` alone"
                                ),
                            );
                        }
                    }
                }
                _ => JsonCheck::Equals(ValueTemplate::compile(&value, &scope).map_err(
                    |(inner, message)| {
                        p.extend(inner);
                        CompileError {
                            path: p.clone(),
                            message: format!("{ctx}: {message}"),
                        }
                    },
                )?),
            };
            expect.json.push((path, check));
        }
    }

    let retry = match raw.retry {
        None => None,
        Some(r) => {
            let retry_at = |field: &str| {
                let mut p = at("retry");
                p.push(key(field));
                p
            };
            if r.on != "conflict" {
                return err(
                    retry_at("on"),
                    format!(
                        "{ctx}: `retry: {{ on: {} }}`: only `on: conflict` is supported (a lost write race)",
                        r.on
                    ),
                );
            }
            if !(2..=MAX_ATTEMPTS).contains(&r.attempts) {
                return err(
                    retry_at("attempts"),
                    format!(
                        "{ctx}: `attempts: {}` counts every call, the first included: use 2 to {MAX_ATTEMPTS}",
                        r.attempts
                    ),
                );
            }
            let reread = match r.reread {
                None => None,
                Some(step) => {
                    let Some(i) = earlier.iter().position(|s| s.name == step) else {
                        return err(
                            retry_at("reread"),
                            format!(
                                "{ctx}: `reread: {step}` names no earlier step; earlier steps are {:?}",
                                earlier.iter().map(|s| s.name.as_str()).collect::<Vec<_>>()
                            ),
                        );
                    };
                    if let Some(r) = actors.iter().find(|a| !earlier[i].actors.contains(a)) {
                        return err(
                            retry_at("reread"),
                            format!(
                                "{ctx}: `reread: {step}` is not played by role `{}`, who may retry here",
                                roles[*r]
                            ),
                        );
                    }
                    Some(i)
                }
            };
            Some(Retry {
                attempts: r.attempts,
                reread,
            })
        }
    };
    let mut capture = Vec::new();
    for (cap_name, path_text) in raw.capture.0 {
        let mut p = at("capture");
        p.push(key(&cap_name));
        if !is_name(&cap_name) || cap_name.contains('-') {
            return err(
                p,
                format!("{ctx}: capture name `{cap_name}` may only use letters, digits and `_`"),
            );
        }
        if RESERVED.contains(&cap_name.as_str()) {
            return err(
                p,
                format!(
                    "{ctx}: `{cap_name}` is a reserved template name; pick another capture name"
                ),
            );
        }
        let path = JsonPath::parse(&path_text).or_else(|e| err(p, format!("{ctx}: {e}")))?;
        capture.push(Capture {
            name: cap_name,
            path,
        });
    }

    Ok(Step {
        name,
        tool: raw.tool,
        actors,
        parallel: raw.parallel,
        args,
        expect,
        capture,
        always: raw.always,
        retry,
    })
}
