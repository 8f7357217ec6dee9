//! The scenario model (SPEC §4): workflows of steps played by roles, and
//! workloads that mix them. Parsed and fully checked from YAML at load time
//! (errors name file, line and column); no I/O. The agent executes steps
//! with the pure helpers re-exported here (template rendering, expectation
//! checks, captures).

mod compile;
mod expect;
mod jsonpath;
mod locate;
mod raw;
mod setup;
mod template;

use std::sync::OnceLock;

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use expect::{
    Capture, DEFAULT_CONFLICT_MARKERS, Expect, JsonCheck, Outcome, StepFailure, ToolOutput,
    extract_captures,
};
pub use jsonpath::{JsonPath, Segment};
pub use locate::{Location, ScenarioError};
pub use setup::{Provision, Visit};
pub use template::{Bindings, Expr, Template, TemplateError, ValueTemplate};

/// The built-in scenario library, compiled in.
const BUILTIN_SOURCE: &str = include_str!("../../scenarios/builtin.yaml");
const BUILTIN_ORIGIN: &str = "<builtin>/builtin.yaml";

/// A parsed, checked scenario file.
#[derive(Clone, Debug)]
pub struct Scenario {
    source: String,
    digest: String,
    description: String,
    default_workload: Option<String>,
    workloads: Vec<Workload>,
    workflows: Vec<Workflow>,
    provision: Option<Provision>,
}

/// A named weighted mix of workflows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub mix: Vec<MixEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MixEntry {
    pub workflow: String,
    pub weight: u32,
}

#[derive(Clone, Debug)]
pub struct Workflow {
    pub name: String,
    pub description: String,
    /// Role names; a run plays role `i` with the `i`-th user of the execution.
    pub roles: Vec<String>,
    /// Single-user workflow whose steps are the report's baseline operations.
    pub baseline: bool,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    /// The MCP tool to call.
    pub tool: String,
    /// Who calls it: indexes into `Workflow::roles`. More than one only
    /// when `parallel`, in which case every actor calls at the same time.
    pub actors: Vec<usize>,
    pub parallel: bool,
    /// Renders to a JSON object.
    pub args: ValueTemplate,
    pub expect: Expect,
    pub capture: Vec<Capture>,
    /// Runs even after an earlier step failed (if its templates resolve).
    pub always: bool,
    /// `retry: { on: conflict, … }`: a call that lost a write race is tried
    /// again, after re-running an earlier step for the same actor.
    pub retry: Option<Retry>,
}

/// A bounded retry of a step whose call ended in a conflict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Calls in all, the first included (2..=10).
    pub attempts: u32,
    /// The earlier step (index into `Workflow::steps`) run again, for the
    /// same actor, before each new attempt: the re-read that gets a fresh
    /// etag. Its captures rebind.
    pub reread: Option<usize>,
}

/// What one actor's call of a step came to.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluated {
    pub outcome: Outcome,
    /// Values to bind for later steps (none on error or conflict outcomes).
    pub captures: Vec<(String, Value)>,
}

impl Scenario {
    /// Parses and checks a scenario; `origin` (a file path) prefixes errors.
    pub fn parse(source: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let raw: raw::RawScenario =
            serde_yaml::from_str(source).map_err(|e| ScenarioError::from_yaml(origin, &e))?;
        let compiled = compile::compile(raw)
            .map_err(|e| ScenarioError::at(origin, source, &e.path, e.message))?;
        Ok(Scenario {
            source: source.to_owned(),
            digest: sha256_hex(source),
            description: compiled.description,
            default_workload: compiled.default_workload,
            workloads: compiled.workloads,
            workflows: compiled.workflows,
            provision: compiled.provision,
        })
    }

    /// The scenario compiled into this build (`common/scenarios/builtin.yaml`).
    pub fn builtin() -> &'static Scenario {
        static BUILTIN: OnceLock<Scenario> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The file is compiled in and parsed by this crate's tests, so a
            // failure here cannot reach a user.
            Scenario::parse(BUILTIN_SOURCE, BUILTIN_ORIGIN).expect("built-in scenario is valid")
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The file's top-level `description:` (may be empty).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Hex SHA-256 of the source text.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// `setup.provision`: what each user does once before the load, when
    /// the server asks for it.
    pub fn provision(&self) -> Option<&Provision> {
        self.provision.as_ref()
    }

    pub fn workflow(&self, name: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.name == name)
    }

    pub fn workflows(&self) -> impl Iterator<Item = &Workflow> {
        self.workflows.iter()
    }

    /// Every series an agent running this scenario can record: each
    /// workflow, its steps and the tools they call, and session
    /// initialization. A series from the wire outside this set is refused.
    pub fn series_keys(&self) -> std::collections::BTreeSet<crate::series::SeriesKey> {
        use crate::series::SeriesKey;
        let mut keys = std::collections::BTreeSet::from([SeriesKey::mcp_initialize()]);
        for w in &self.workflows {
            keys.insert(SeriesKey::workflow(&w.name));
            for step in &w.steps {
                keys.insert(SeriesKey::step(&w.name, &step.name));
                keys.insert(SeriesKey::operation(&w.name, &step.tool));
            }
        }
        keys
    }

    pub fn workloads(&self) -> impl Iterator<Item = &Workload> {
        self.workloads.iter()
    }

    /// The workload to run. `None` is the scenario's default: its
    /// `default_workload:`, else `mixed` if defined, else every workflow with
    /// weight 1 (named `all`). A workflow name that is not a workload runs
    /// that workflow alone.
    pub fn resolve_workload(&self, name: Option<&str>) -> Result<Workload, ScenarioError> {
        let name = match name {
            Some(n) => n,
            None => match &self.default_workload {
                Some(d) => d.as_str(),
                None if self.workloads.iter().any(|w| w.name == "mixed") => "mixed",
                None => {
                    return Ok(Workload {
                        name: "all".to_owned(),
                        mix: self
                            .workflows
                            .iter()
                            .map(|w| MixEntry {
                                workflow: w.name.clone(),
                                weight: 1,
                            })
                            .collect(),
                    });
                }
            },
        };
        if let Some(w) = self.workloads.iter().find(|w| w.name == name) {
            return Ok(w.clone());
        }
        if let Some(wf) = self.workflow(name) {
            return Ok(Workload {
                name: wf.name.clone(),
                mix: vec![MixEntry {
                    workflow: wf.name.clone(),
                    weight: 1,
                }],
            });
        }
        Err(ScenarioError::UnknownWorkload {
            name: name.to_owned(),
            available: compile::names(self.workloads.iter().map(|w| w.name.as_str())),
        })
    }
}

impl Workflow {
    pub fn n_roles(&self) -> usize {
        self.roles.len()
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
}

impl Step {
    /// The call's arguments for the actor playing `role`.
    pub fn render_args(&self, bindings: &Bindings, role: usize) -> Result<Value, TemplateError> {
        self.args.render(bindings, role)
    }

    /// Checks `output` against `expect` and extracts the captures, which
    /// the caller binds (with the result) for later steps.
    pub fn evaluate(
        &self,
        output: &ToolOutput,
        bindings: &Bindings,
        role: usize,
    ) -> Result<Evaluated, StepFailure> {
        let outcome = self.expect.check(output, bindings, role)?;
        if outcome != Outcome::Success {
            // An expected error or conflict has nothing to capture.
            return Ok(Evaluated {
                outcome,
                captures: Vec::new(),
            });
        }
        Ok(Evaluated {
            outcome,
            captures: extract_captures(&self.capture, output)?,
        })
    }

    /// Whether `output` is a conflict this step retries.
    pub fn retries_on(&self, output: &ToolOutput) -> bool {
        self.retry.is_some() && self.expect.outcome(output) == Outcome::Conflict
    }
}

fn sha256_hex(text: &str) -> String {
    use std::fmt::Write as _;
    Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests;
