//! Executes one workflow: renders each step's arguments, calls the tool as
//! the step's role(s) (at once for parallel steps), checks expectations,
//! binds captures, and produces step and operation samples. A failure stops
//! the workflow except for `always` steps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ErrorKind;
use common::scenario::{Bindings, Step, StepFailure, ToolOutput, Workflow};
use common::series::SeriesKey;
use futures::future::join_all;
use serde_json::Value;

use crate::recorder::Sample;
use crate::session::McpSession;

/// How one workflow execution went.
#[derive(Debug)]
pub struct WorkflowOutcome {
    pub latency: Duration,
    /// The first failing step's error kind.
    pub error: Option<ErrorKind>,
    /// Why it failed, for logs and operator samples (never contains tokens).
    pub failure: Option<String>,
    /// Each failed step's first error, as the target put it.
    pub failures: Vec<StepFailed>,
    /// Step and operation samples (the workflow sample is the caller's).
    pub samples: Vec<Sample>,
}

/// One failed step of one execution.
#[derive(Debug)]
pub struct StepFailed {
    pub step: String,
    pub kind: ErrorKind,
    pub message: String,
}

/// A successful call: its result and the values it captured.
type Success = (ToolOutput, Vec<(String, Value)>);

/// One actor's call within a step.
struct ActorResult {
    outcome: Result<Success, (ErrorKind, String)>,
}

/// Runs `workflow` with `sessions[i]` playing role `i`.
pub async fn run_workflow(
    workflow: &Workflow,
    sessions: &[Arc<McpSession>],
    uuid: String,
    iteration: u64,
    request_timeout: Duration,
) -> WorkflowOutcome {
    let started = Instant::now();
    let users = sessions
        .iter()
        .map(|s| s.user().as_str().to_owned())
        .collect();
    let mut bindings = Bindings::new(users, uuid, iteration);
    let mut samples = Vec::with_capacity(workflow.steps.len() * 2);
    let mut error: Option<ErrorKind> = None;
    let mut failure: Option<String> = None;
    let mut failures = Vec::new();

    for step in &workflow.steps {
        if error.is_some() && !step.always {
            continue;
        }
        let step_started = Instant::now();
        let calls = step.actors.iter().map(|&role| {
            call_as(
                workflow,
                step,
                &sessions[role],
                role,
                &bindings,
                request_timeout,
            )
        });
        // Each call returns its own operation sample; collect them in order.
        let results: Vec<(ActorResult, Option<Sample>)> = join_all(calls).await;
        let step_latency = step_started.elapsed();

        let mut step_error: Option<(ErrorKind, String)> = None;
        let single = results.len() == 1;
        for (result, op) in results {
            samples.extend(op);
            match result.outcome {
                Ok((output, captures)) => {
                    if single {
                        for (name, value) in captures {
                            bindings.set_capture(&name, value);
                        }
                        bindings.set_result(&step.name, output.json);
                    }
                }
                Err(e) => {
                    if step_error.is_none() {
                        step_error = Some(e);
                    }
                }
            }
        }
        samples.push(Sample {
            key: SeriesKey::step(&workflow.name, &step.name),
            user: None,
            latency: step_latency,
            corrected: None,
            error: step_error.as_ref().map(|(k, _)| *k),
        });
        if let Some((kind, message)) = step_error {
            if error.is_none() {
                tracing::debug!(workflow = %workflow.name, step = %step.name, ?kind, %message, "step failed");
                error = Some(kind);
                failure = Some(format!("{}/{}: {message}", workflow.name, step.name));
            }
            failures.push(StepFailed {
                step: step.name.clone(),
                kind,
                message,
            });
        }
    }
    WorkflowOutcome {
        latency: started.elapsed(),
        error,
        failure,
        failures,
        samples,
    }
}

/// Renders, calls and evaluates one step for one role.
async fn call_as(
    workflow: &Workflow,
    step: &Step,
    session: &McpSession,
    role: usize,
    bindings: &Bindings,
    timeout: Duration,
) -> (ActorResult, Option<Sample>) {
    let args = match step.render_args(bindings, role) {
        Ok(args) => args,
        Err(e) => {
            let failure = StepFailure::from(e);
            return (
                ActorResult {
                    outcome: Err((failure.kind(), failure.to_string())),
                },
                None,
            );
        }
    };
    let started = Instant::now();
    let called = session.call(&step.tool, args, timeout).await;
    let latency = started.elapsed();
    let outcome = match called {
        Ok(output) => match step.evaluate(&output, bindings, role) {
            Ok(captures) => Ok((output, captures)),
            Err(f) => Err((f.kind(), f.to_string())),
        },
        Err(e) => Err((e.kind, e.message)),
    };
    let op = Sample {
        key: SeriesKey::operation(&workflow.name, &step.tool),
        user: Some(session.user().clone()),
        latency,
        corrected: None,
        error: outcome.as_ref().err().map(|(k, _)| *k),
    };
    (ActorResult { outcome }, Some(op))
}
