//! Turning an assignment into something runnable: reassembles chunks,
//! checks the scenario against its digest and the mix against the
//! scenario, and opens one MCP session per user (bounded concurrency),
//! recording each open's latency.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use common::chunk::{Added, Reassembly};
use common::ids::UserName;
use common::scenario::Scenario;
use common::series::SeriesKey;
use futures::StreamExt as _;
use http::{HeaderName, HeaderValue};

use crate::messages::{AssignmentChunk, RunSettings, VuserSpec};
use crate::recorder::{Recorder, Sample};
use crate::session::{McpSession, SessionContext, UserToken};

/// Sessions opened at once.
pub const OPEN_CONCURRENCY: usize = 32;
/// Failure messages passed on to the operator in `Ready`.
pub const FAILURE_SAMPLES: usize = 5;
/// Timeout of one session open when the run sets no request timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One chunk's part of an assignment: the settings (chunk 0) and its
/// groups by index.
type ChunkPart = (Option<RunSettings>, Vec<(u32, Vec<VuserSpec>)>);

/// Chunks of one assignment, as they arrive.
#[derive(Debug, Default)]
pub struct ChunkAssembler {
    chunks: Reassembly<ChunkPart>,
}

/// A complete assignment.
#[derive(Debug)]
pub struct Assignment {
    pub id: String,
    pub settings: RunSettings,
    pub groups: Vec<Vec<VuserSpec>>,
}

impl Assignment {
    /// Each user's token, swappable when the controller sends a new one.
    pub fn tokens(&self) -> HashMap<UserName, Arc<UserToken>> {
        self.groups
            .iter()
            .flatten()
            .map(|u| {
                (
                    u.name.clone(),
                    UserToken::new(u.name.clone(), u.token.clone()),
                )
            })
            .collect()
    }

    /// Each user's activation rank (closed-model stages).
    pub fn ranks(&self) -> HashMap<UserName, u32> {
        self.groups
            .iter()
            .flatten()
            .map(|u| (u.name.clone(), u.rank))
            .collect()
    }
}

impl ChunkAssembler {
    /// Adds a chunk; returns the assignment once every chunk is in.
    pub fn add(&mut self, chunk: AssignmentChunk) -> anyhow::Result<Option<Assignment>> {
        if let Some(old) = self.chunks.id()
            && old != chunk.id
        {
            tracing::warn!(old, new = %chunk.id, "a new assignment replaces an incomplete one");
        }
        let added = self
            .chunks
            .add(
                &chunk.id,
                chunk.index,
                chunk.count,
                (chunk.settings, chunk.groups),
            )
            .context("assignment")?;
        let Added::Complete { id, parts } = added else {
            return Ok(None);
        };
        let mut settings = None;
        let mut groups: BTreeMap<u32, Vec<VuserSpec>> = BTreeMap::new();
        for (chunk_settings, chunk_groups) in parts {
            settings = settings.or(chunk_settings);
            for (index, users) in chunk_groups {
                groups.entry(index).or_default().extend(users);
            }
        }
        let settings = settings.context("assignment complete but chunk 0 had no settings")?;
        Ok(Some(Assignment {
            id,
            settings,
            groups: groups.into_values().filter(|g| !g.is_empty()).collect(),
        }))
    }
}

/// Parses the run's scenario and checks its digest and mix.
pub fn load_scenario(settings: &RunSettings) -> anyhow::Result<Scenario> {
    common::limits::check_len(
        "the assigned scenario source",
        &settings.scenario_source,
        common::limits::MAX_SCENARIO_BYTES,
    )?;
    let scenario = Scenario::parse(&settings.scenario_source, "<assignment scenario>")
        .context("the assigned scenario does not parse")?;
    anyhow::ensure!(
        settings.scenario_digest.is_empty() || scenario.digest() == settings.scenario_digest,
        "the assigned scenario hashes to {} but the controller says {}",
        scenario.digest(),
        settings.scenario_digest
    );
    for entry in &settings.mix {
        anyhow::ensure!(
            scenario.workflow(&entry.workflow).is_some(),
            "the mix names workflow `{}`, which the scenario does not define",
            entry.workflow
        );
    }
    anyhow::ensure!(
        settings.mix.iter().any(|m| m.weight > 0),
        "the mix is empty or has only zero weights"
    );
    Ok(scenario)
}

pub fn headers(settings: &RunSettings) -> anyhow::Result<HashMap<HeaderName, HeaderValue>> {
    settings
        .headers
        .iter()
        .map(|(k, v)| {
            let name = HeaderName::try_from(k.as_str())
                .with_context(|| format!("invalid header name {k:?}"))?;
            let value = HeaderValue::try_from(v.as_str())
                .with_context(|| format!("invalid value for header {k}"))?;
            Ok((name, value))
        })
        .collect()
}

/// The request timeout of a run (a default when the controller sent 0).
pub fn request_timeout(settings: &RunSettings) -> Duration {
    if settings.request_timeout.is_zero() {
        DEFAULT_TIMEOUT
    } else {
        settings.request_timeout
    }
}

/// Sessions of an assignment, by group, and what failed.
#[derive(Debug, Default)]
pub struct OpenedSessions {
    pub groups: Vec<Vec<Arc<McpSession>>>,
    pub failed: u32,
    pub failure_samples: Vec<String>,
}

impl OpenedSessions {
    pub fn open_count(&self) -> u32 {
        u32::try_from(self.groups.iter().map(Vec::len).sum::<usize>()).unwrap_or(u32::MAX)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<McpSession>> {
        self.groups.iter().flatten()
    }
}

/// Opens every user's session; failed users are left out of their group.
pub async fn open_sessions(
    ctx: &Arc<SessionContext>,
    groups: &[Vec<VuserSpec>],
    tokens: &HashMap<UserName, Arc<UserToken>>,
    timeout: Duration,
    recorder: &Recorder,
) -> OpenedSessions {
    let mut jobs = Vec::new();
    for (g, users) in groups.iter().enumerate() {
        for (i, u) in users.iter().enumerate() {
            if let Some(t) = tokens.get(&u.name) {
                jobs.push((g, i, t.clone(), ctx.clone()));
            }
        }
    }
    let results: Vec<_> = futures::stream::iter(jobs)
        .map(move |(g, i, token, ctx)| async move {
            let started = std::time::Instant::now();
            let opened = McpSession::open(&ctx, token, timeout).await;
            (g, i, opened, started.elapsed())
        })
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect()
        .await;

    let mut slots: Vec<Vec<Option<Arc<McpSession>>>> =
        groups.iter().map(|g| vec![None; g.len()]).collect();
    let mut out = OpenedSessions::default();
    for (g, i, result, elapsed) in results {
        let user = groups[g][i].name.as_str();
        match result {
            Ok((session, latency)) => {
                recorder.record(
                    g,
                    [Sample {
                        key: SeriesKey::mcp_initialize(),
                        user: None,
                        latency,
                        corrected: None,
                        error: None,
                        conflict: false,
                    }],
                );
                slots[g][i] = Some(Arc::new(session));
            }
            Err(e) => {
                tracing::warn!(%user, kind = ?e.kind, error = %e.message, "MCP session failed to open");
                recorder.record(
                    g,
                    [Sample {
                        key: SeriesKey::mcp_initialize(),
                        user: None,
                        // How long the failed attempt took, not a 0 µs initialize.
                        latency: elapsed,
                        corrected: None,
                        error: Some(e.kind),
                        conflict: false,
                    }],
                );
                out.failed += 1;
                if out.failure_samples.len() < FAILURE_SAMPLES {
                    out.failure_samples.push(format!("{user}: {}", e.message));
                }
            }
        }
    }
    out.groups = slots
        .into_iter()
        .map(|g| g.into_iter().flatten().collect::<Vec<_>>())
        .filter(|g| !g.is_empty())
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::LoadModel;
    use common::Secret;

    fn settings() -> RunSettings {
        RunSettings {
            mcp_url: "http://x/mcp".into(),
            scenario_source: Scenario::builtin().source().into(),
            scenario_digest: Scenario::builtin().digest().into(),
            mix: Scenario::builtin().resolve_workload(None).unwrap().mix,
            load: LoadModel::Closed {
                think_time: Duration::ZERO,
            },
            request_timeout: Duration::from_secs(5),
            headers: vec![],
            mcp_version: Default::default(),
            elicitation: Default::default(),
            max_in_flight: crate::messages::MAX_IN_FLIGHT,
            stages: vec![],
            rate_share: 1.0,
        }
    }

    fn chunk(index: u32, count: u32, group: u32, user: &str) -> AssignmentChunk {
        AssignmentChunk {
            id: "a1".into(),
            index,
            count,
            settings: (index == 0).then(settings),
            groups: vec![(
                group,
                vec![VuserSpec {
                    name: user.into(),
                    token: Secret::new("t"),
                    rank: 0,
                }],
            )],
        }
    }

    #[test]
    fn assembles_chunks_in_any_order() {
        let mut asm = ChunkAssembler::default();
        // A count from the network is bounded before anything is sized by it.
        assert!(asm.add(chunk(0, u32::MAX, 0, "a")).is_err());
        assert!(asm.add(chunk(0, 0, 0, "a")).is_err());
        assert!(asm.add(chunk(2, 3, 1, "c")).unwrap().is_none());
        assert!(asm.add(chunk(0, 3, 0, "a")).unwrap().is_none());
        assert!(asm.add(chunk(2, 3, 1, "x")).is_err());
        let done = asm.add(chunk(1, 3, 0, "b")).unwrap().unwrap();
        let names: Vec<Vec<&str>> = done
            .groups
            .iter()
            .map(|g| g.iter().map(|u| u.name.as_str()).collect())
            .collect();
        assert_eq!(names, vec![vec!["a", "b"], vec!["c"]]);
    }

    #[test]
    fn checks_digest_and_mix() {
        assert!(load_scenario(&settings()).is_ok());
        let mut bad = settings();
        bad.scenario_digest = "00".into();
        assert!(
            load_scenario(&bad)
                .unwrap_err()
                .to_string()
                .contains("hashes to")
        );
        let mut bad = settings();
        bad.mix[0].workflow = "nope".into();
        assert!(
            load_scenario(&bad)
                .unwrap_err()
                .to_string()
                .contains("`nope`")
        );
    }
}
