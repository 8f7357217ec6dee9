//! The `mock-target` binary: starts, announces its URLs as one JSON line, serves metadata.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the child on drop, so a failing test leaves no process behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_prints_urls_and_serves_metadata() {
    let child = Command::new(env!("CARGO_BIN_EXE_mock-target"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--user",
            "alice:pw",
            "--token-ttl",
            "30s",
        ])
        .env_remove("MOCK_TARGET_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mock-target");
    let mut child = Killed(child);
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .expect("no JSON line in time")
    .expect("join")
    .expect("read");
    let urls: serde_json::Value = serde_json::from_str(&line).expect("one JSON line");
    let issuer = urls["issuer"].as_str().expect("issuer");
    assert_eq!(urls["mcp_url"], format!("{issuer}/mcp"));
    assert_eq!(urls["admin_url"], issuer);
    let meta: serde_json::Value = tokio::time::timeout(Duration::from_secs(10), async {
        reqwest::get(format!("{issuer}/.well-known/oauth-authorization-server"))
            .await?
            .json()
            .await
    })
    .await
    .expect("timeout")
    .expect("metadata");
    assert_eq!(meta["issuer"], issuer);

    // SIGTERM stops it cleanly with exit code 0.
    let pid = child.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            break status.code();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mock-target did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code, Some(0));
}

#[test]
fn bad_flags_are_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_mock-target"))
        .args(["--listen", "127.0.0.1:0", "--error-rate", "7"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--error-rate"));
    let output = Command::new(env!("CARGO_BIN_EXE_mock-target"))
        .args(["--listen", "0.0.0.0:0"])
        .env_remove("MOCK_TARGET_ADMIN_PASSWORD")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("MOCK_TARGET_ADMIN_PASSWORD"));
}
