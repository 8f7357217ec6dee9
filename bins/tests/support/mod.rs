//! Test cluster harness: real `controller`, `agent` and `mock-target`
//! processes on 127.0.0.1 port 0, output captured, killed on drop.

#![allow(dead_code)]

pub mod real_server;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every end-to-end run in these tests is bounded well below this.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

pub fn controller_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_controller"))
}

pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agent"))
}

pub fn mock_target_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mock-target"))
}

/// A child process whose stdout and stderr are collected; killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn pump(name: String, stream: impl Read + Send + 'static, sink: Arc<Mutex<String>>, echo: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if echo {
                eprintln!("[{name}] {line}");
            }
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        pump(
            name.to_owned(),
            child.stdout.take().unwrap(),
            stdout.clone(),
            false,
        );
        pump(
            name.to_owned(),
            child.stderr.take().unwrap(),
            stderr.clone(),
            true,
        );
        Proc {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the first stdout or stderr line containing `needle`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            for text in [self.stdout(), self.stderr()] {
                if let Some(line) = text.lines().find(|l| l.contains(needle)) {
                    return line.to_owned();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}: no line with {needle:?} within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.name,
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The exit status if the process has exited (its output drained).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().unwrap()?;
        std::thread::sleep(Duration::from_millis(100));
        Some(status)
    }

    /// Waits for exit (killing the process past `timeout`, which fails the test).
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the pumps drain.
                std::thread::sleep(Duration::from_millis(100));
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Proc {
    /// Sends SIGINT, as Ctrl-C would (to this process only).
    pub fn interrupt(&self) {
        self.signal("INT");
    }

    /// Sends a signal by name (`TERM`, `STOP`, …) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
    }

    /// Kills the process (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` to its end on a runtime of its own (the tests are not async).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A mock admin password unique to this test process and call, long enough
/// for the leak test to search every output for it.
pub fn admin_password() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("mock-admin-pw-{}-{nanos:09}", std::process::id())
}

/// A standalone `mock-target` on 127.0.0.1:0.
pub struct MockTarget {
    pub proc: Proc,
    pub mcp_url: String,
    pub admin_url: String,
    pub admin_password: String,
}

impl MockTarget {
    pub fn start() -> MockTarget {
        Self::start_with(&[])
    }

    /// With extra `mock-target` flags (`--token-ttl 5s`).
    pub fn start_with(args: &[&str]) -> MockTarget {
        let admin_password = admin_password();
        let mut cmd = Command::new(mock_target_bin());
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("MOCK_TARGET_ADMIN_PASSWORD", &admin_password);
        let proc = Proc::spawn("mock-target", cmd);
        let line = proc.wait_for_line("mcp_url", Duration::from_secs(20));
        let v: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("mock-target line {line:?}: {e}"));
        MockTarget {
            mcp_url: v["mcp_url"].as_str().unwrap().to_owned(),
            admin_url: v["admin_url"].as_str().unwrap().to_owned(),
            proc,
            admin_password,
        }
    }

    /// `controller start ARGS` against this mock, its users created through
    /// the OCS API as `{prefix}_user_N` and journaled in `state_dir`.
    pub fn controller_start(
        &self,
        prefix: &str,
        state_dir: &std::path::Path,
        args: &[&str],
    ) -> Command {
        let mut cmd = controller(&["start"]);
        cmd.args([
            "--url",
            &self.mcp_url,
            "--nextcloud-url",
            &self.admin_url,
            "--user-prefix",
            prefix,
            "--state-dir",
            state_dir.to_str().unwrap(),
        ])
        .args(args)
        .env("NEXTCLOUD_ADMIN_PASSWORD", &self.admin_password);
        cmd
    }

    /// `METHOD {admin_url}{path}` as the mock's admin (its test endpoints
    /// under `/mock/`); the JSON it answers, which must be a success.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> serde_json::Value {
        block_on(async {
            let resp = reqwest::Client::new()
                .request(method, format!("{}{path}", self.admin_url))
                .basic_auth("admin", Some(&self.admin_password))
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "{path}: {}", resp.status());
            resp.json().await.unwrap()
        })
    }

    /// Users on the mock whose name starts with `prefix`.
    pub fn list_users(&self, prefix: &str) -> Vec<String> {
        block_on(async {
            let resp = reqwest::Client::new()
                .get(format!("{}/ocs/v2.php/cloud/users", self.admin_url))
                .query(&[("search", prefix)])
                .basic_auth("admin", Some(&self.admin_password))
                .header("OCS-APIRequest", "true")
                .header("Accept", "application/json")
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success(), "list users: {}", resp.status());
            let v: serde_json::Value = resp.json().await.unwrap();
            v["ocs"]["data"]["users"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        })
    }
}

/// A `controller` command with a clean environment for our variables.
pub fn controller(args: &[&str]) -> Command {
    controller_at(&controller_bin(), args)
}

/// As `controller`, running the executable at `path`.
pub fn controller_at(path: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(path);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("MCP_SWARM_") || k.starts_with("NEXTCLOUD_ADMIN") {
            cmd.env_remove(k);
        }
    }
    // Tests that run without --state-dir would record into the source tree;
    // the history's own test removes this.
    cmd.env("MCP_SWARM_NO_HISTORY", "1");
    cmd
}

pub fn agent(controller_url: &str, name: &str, secret: &str) -> Command {
    let mut cmd = Command::new(agent_bin());
    cmd.args(["--controller", controller_url, "--name", name])
        .env("MCP_SWARM_CLUSTER_SECRET", secret);
    cmd
}

/// The `http://ADDR` from the controller's "listening for agents on" line.
pub fn listening_url(proc: &Proc) -> String {
    let line = proc.wait_for_line("listening for agents on", Duration::from_secs(20));
    let start = line.find("http://").expect("URL in the listening line");
    line[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

pub fn read_report(path: &std::path::Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("report {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Checks what every run should show: workflows ran with high success,
/// every user and every agent did work.
pub fn assert_healthy_report(report: &serde_json::Value, n_users: usize, n_agents: usize) {
    let users = report["users"].as_object().expect("users");
    assert_eq!(users.len(), n_users, "users: {users:?}");
    for (name, u) in users {
        assert!(
            u["total_operations"].as_u64().unwrap() > 0,
            "user {name} has no operations"
        );
    }
    let agents = report["agents"].as_array().expect("agents");
    assert_eq!(agents.len(), n_agents);
    for a in agents {
        assert!(!a["lost"].as_bool().unwrap(), "agent lost: {a}");
        assert!(
            a["final_received"].as_bool().unwrap(),
            "no final report: {a}"
        );
        assert!(
            a["operations"].as_u64().unwrap() > 0,
            "agent did nothing: {a}"
        );
    }
    let summary = &report["summary"];
    let total = summary["total_operations"].as_u64().unwrap();
    let failed = summary["failed_operations"].as_u64().unwrap();
    assert!(total > 0);
    assert!(
        (failed as f64) < 0.01 * total as f64,
        "{failed} of {total} operations failed"
    );
    let workflows = report["workflows"].as_object().expect("workflows");
    assert!(!workflows.is_empty(), "no workflow ran");
    for (name, w) in workflows {
        let n = w["total_executions"].as_u64().unwrap();
        if n >= 20 {
            assert!(
                w["success_rate"].as_f64().unwrap() > 99.0,
                "workflow {name}: {w}"
            );
        }
    }
}
