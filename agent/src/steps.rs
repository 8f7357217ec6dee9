//! Executes one workflow: renders each step's arguments, calls the tool as
//! the step's role(s) (at once for parallel steps), checks expectations,
//! binds captures (for everyone from a single-actor step, and always for
//! the acting role: `{{ my.x }}`), retries calls that lost a write race
//! where the step says so (re-reading first), and produces step and
//! operation samples. A failure stops the workflow except for `always`
//! steps; an allowed conflict does not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ErrorKind;
use common::scenario::{Bindings, Evaluated, Outcome, Step, StepFailure, ToolOutput, Workflow};
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
}

/// Where a workflow's step and operation samples go, each the moment it is
/// taken (the workflow's own sample is the caller's): a call is recorded
/// when it completes, so each second's figures say what the target did in
/// that second, however long the workflow around it takes.
pub type Sink<'a> = &'a (dyn Fn(Sample) + Send + Sync);

/// One failed step of one execution.
#[derive(Debug)]
pub struct StepFailed {
    pub step: String,
    pub kind: ErrorKind,
    pub message: String,
}

/// One actor's part in a step: how it ended and the values it captured
/// (the samples of every call it made went to the sink as they came).
struct ActorRun {
    role: usize,
    outcome: Result<(ToolOutput, Evaluated), (ErrorKind, String)>,
    /// Captures of re-read steps made while retrying, to bind for this role.
    rebound: Vec<(String, Value)>,
}

/// Runs `workflow` with `sessions[i]` playing role `i`, each sample into `sink`.
pub async fn run_workflow(
    workflow: &Workflow,
    sessions: &[Arc<McpSession>],
    uuid: String,
    iteration: u64,
    request_timeout: Duration,
    sink: Sink<'_>,
) -> WorkflowOutcome {
    let started = Instant::now();
    let users = sessions
        .iter()
        .map(|s| s.user().as_str().to_owned())
        .collect();
    let mut bindings = Bindings::new(users, uuid, iteration);
    let mut error: Option<ErrorKind> = None;
    let mut failure: Option<String> = None;
    let mut failures = Vec::new();

    for step in &workflow.steps {
        if error.is_some() && !step.always {
            continue;
        }
        let step_started = Instant::now();
        let calls = step.actors.iter().map(|&role| {
            play(
                workflow,
                step,
                &sessions[role],
                role,
                &bindings,
                request_timeout,
                sink,
            )
        });
        let runs: Vec<ActorRun> = join_all(calls).await;
        let step_latency = step_started.elapsed();

        let mut step_error: Option<(ErrorKind, String)> = None;
        let mut conflict = false;
        let single = runs.len() == 1;
        for run in runs {
            for (name, value) in run.rebound {
                bindings.set_capture_for(run.role, &name, value);
            }
            match run.outcome {
                Ok((output, evaluated)) => {
                    conflict |= evaluated.outcome == Outcome::Conflict;
                    for (name, value) in evaluated.captures {
                        if single {
                            bindings.set_capture(&name, value.clone());
                        }
                        bindings.set_capture_for(run.role, &name, value);
                    }
                    if single {
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
        sink(Sample {
            key: SeriesKey::step(&workflow.name, &step.name),
            user: None,
            latency: step_latency,
            corrected: None,
            error: step_error.as_ref().map(|(k, _)| *k),
            conflict: conflict && step_error.is_none(),
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
    }
}

/// One actor's part in a step: the call, and while it loses write races
/// that the step retries, the re-read (if any) and the call again.
async fn play(
    workflow: &Workflow,
    step: &Step,
    session: &McpSession,
    role: usize,
    bindings: &Bindings,
    timeout: Duration,
    sink: Sink<'_>,
) -> ActorRun {
    let mut run = ActorRun {
        role,
        outcome: Err((ErrorKind::Skipped, String::new())),
        rebound: Vec::new(),
    };
    let Some(retry) = &step.retry else {
        let (outcome, sample) = call_once(workflow, step, session, role, bindings, timeout).await;
        if let Some(s) = sample {
            sink(s);
        }
        run.outcome = outcome;
        return run;
    };
    // Re-reads rebind this role's captures; the other actors keep theirs.
    let mut mine = bindings.clone();
    for attempt in 1..=retry.attempts {
        let (outcome, sample) = call_raw(workflow, step, session, role, &mine, timeout).await;
        let last = attempt == retry.attempts;
        match outcome {
            Ok(output) if !last && step.retries_on(&output) => {
                if let Some(s) = sample {
                    sink(Sample {
                        conflict: true,
                        ..s
                    });
                }
            }
            Ok(output) => {
                let evaluated = step
                    .evaluate(&output, &mine, role)
                    .map_err(|f| (f.kind(), f.to_string()));
                if let Some(s) = sample {
                    sink(op_sample(s, &evaluated));
                }
                run.outcome = evaluated.map(|e| (output, e));
                return run;
            }
            Err(e) => {
                if let Some(s) = sample {
                    sink(Sample {
                        error: Some(e.0),
                        ..s
                    });
                }
                run.outcome = Err(e);
                return run;
            }
        }
        if let Some(reread) = retry.reread.and_then(|i| workflow.steps.get(i)) {
            let (outcome, sample) =
                call_once(workflow, reread, session, role, &mine, timeout).await;
            if let Some(s) = sample {
                sink(s);
            }
            match outcome {
                Ok((_, evaluated)) => {
                    for (name, value) in evaluated.captures {
                        mine.set_capture_for(role, &name, value.clone());
                        run.rebound.push((name, value));
                    }
                }
                Err((kind, message)) => {
                    run.outcome = Err((
                        kind,
                        format!("re-reading with `{}`: {message}", reread.name),
                    ));
                    return run;
                }
            }
        }
    }
    run
}

/// The operation sample of a call, by how it was evaluated.
fn op_sample(sample: Sample, evaluated: &Result<Evaluated, (ErrorKind, String)>) -> Sample {
    Sample {
        error: evaluated.as_ref().err().map(|(k, _)| *k),
        conflict: matches!(evaluated, Ok(e) if e.outcome == Outcome::Conflict),
        ..sample
    }
}

/// Renders, calls and evaluates one step for one role.
async fn call_once(
    workflow: &Workflow,
    step: &Step,
    session: &McpSession,
    role: usize,
    bindings: &Bindings,
    timeout: Duration,
) -> (
    Result<(ToolOutput, Evaluated), (ErrorKind, String)>,
    Option<Sample>,
) {
    let (called, sample) = call_raw(workflow, step, session, role, bindings, timeout).await;
    let outcome = called.and_then(|output| {
        step.evaluate(&output, bindings, role)
            .map(|e| (output, e))
            .map_err(|f| (f.kind(), f.to_string()))
    });
    let sample = sample.map(|s| Sample {
        error: outcome.as_ref().err().map(|(k, _)| *k),
        conflict: matches!(&outcome, Ok((_, e)) if e.outcome == Outcome::Conflict),
        ..s
    });
    (outcome, sample)
}

/// Renders and makes one call: the tool's output, or why there is none,
/// and the operation sample (no sample when nothing was sent). The sample's
/// outcome is the caller's to set.
async fn call_raw(
    workflow: &Workflow,
    step: &Step,
    session: &McpSession,
    role: usize,
    bindings: &Bindings,
    timeout: Duration,
) -> (Result<ToolOutput, (ErrorKind, String)>, Option<Sample>) {
    let args = match step.render_args(bindings, role) {
        Ok(args) => args,
        Err(e) => {
            let failure = StepFailure::from(e);
            return (Err((failure.kind(), failure.to_string())), None);
        }
    };
    let started = Instant::now();
    let called = session.call(&step.tool, args, timeout).await;
    let latency = started.elapsed();
    let op = Sample {
        key: SeriesKey::operation(&workflow.name, &step.tool),
        user: Some(session.user().clone()),
        latency,
        corrected: None,
        error: None,
        conflict: false,
    };
    (called.map_err(|e| (e.kind, e.message)), Some(op))
}
