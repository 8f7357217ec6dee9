//! Local agent processes for `--agents N` (without `--no-spawn`): this
//! executable run as `controller agent …` (or `--agent-bin`), with the cluster
//! secret in their environment, killed when dropped, waited for (bounded) at
//! the end.

use std::ffi::OsString;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use common::Secret;
use tokio::process::{Child, Command};

use crate::settings::agents::AgentCommand;

pub struct AgentProcesses {
    children: Vec<(String, Child)>,
}

impl AgentProcesses {
    /// Starts `n` agents dialing `controller_url`, with `extra_args` (the
    /// TLS trust: file paths, never secrets); the secret goes in the
    /// environment, never in argv.
    pub fn spawn(
        agent: &AgentCommand,
        n: u32,
        regions: &[common::region::Region],
        controller_url: &str,
        extra_args: &[OsString],
        secret: &Secret,
    ) -> anyhow::Result<AgentProcesses> {
        let bin = &agent.program;
        if !bin.is_file() {
            anyhow::bail!(
                "agent executable not found at {}: pass --agent-bin with the path of an `agent` (or `controller`) executable",
                bin.display()
            );
        }
        let mut children = Vec::new();
        for i in 0..n {
            let name = format!("agent-{i}");
            let mut command = Command::new(bin);
            command
                .args(&agent.leading_args)
                .arg("--controller")
                .arg(controller_url)
                .arg("--name")
                .arg(&name);
            if !regions.is_empty() {
                let region = &regions[i as usize % regions.len()];
                command.arg("--region").arg(region.as_str());
            }
            let child = command
                .args(extra_args)
                .env(common::CLUSTER_SECRET_ENV, secret.expose())
                .stdin(Stdio::null())
                .stdout(Stdio::inherit())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {} as {name}", bin.display()))?;
            tracing::debug!(agent = %name, pid = ?child.id(), "agent spawned");
            children.push((name, child));
        }
        Ok(AgentProcesses { children })
    }

    /// The first agent that has exited, with how.
    pub fn exited(&mut self) -> Option<String> {
        self.children
            .iter_mut()
            .find_map(|(name, child)| match child.try_wait() {
                Ok(Some(status)) => Some(format!("{name} exited ({status})")),
                _ => None,
            })
    }

    /// Waits up to `timeout` for every agent to exit, then kills the rest.
    pub async fn finish(mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        for (name, child) in &mut self.children {
            match tokio::time::timeout_at(deadline, child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => {
                    tracing::warn!(agent = %name, %status, "agent exited with failure")
                }
                Ok(Err(e)) => tracing::warn!(agent = %name, error = %e, "waiting for agent"),
                Err(_) => {
                    tracing::warn!(agent = %name, "agent still running; killing it");
                    let _ = child.kill().await;
                }
            }
        }
    }
}
