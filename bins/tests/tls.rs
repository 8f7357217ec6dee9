//! TLS end to end with real processes, certificates made by rcgen at run
//! time: a `--no-spawn` controller with `--tls-cert`/`--tls-key` runs with
//! agents dialing `https://` with `--tls-ca`, and refuses a plaintext agent
//! saying why; a controller under mTLS (`--tls-client-ca`) gives the agents
//! it spawns what they need on its own.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

struct Certs {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let server = rcgen::generate_simple_self_signed(["127.0.0.1".to_owned()]).unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    Certs {
        cert: write("controller.crt", server.cert.pem()),
        key: write("controller.key", server.signing_key.serialize_pem()),
        client_ca: write("client-ca.crt", ca.pem()),
        _dir: dir,
    }
}

/// The `https://ADDR` from the controller's "listening for agents on" line.
fn https_url(proc: &Proc) -> String {
    let line = proc.wait_for_line("listening for agents on", Duration::from_secs(30));
    let start = line
        .find("https://")
        .expect("an https URL in the listening line");
    line[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn no_spawn_over_tls_runs_and_refuses_a_plaintext_agent() {
    let certs = certs();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let secret = "tls-no-spawn-secret";
    let mut cmd = controller(&[
        "start",
        "--no-spawn",
        "--agents",
        "2",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        path(&certs.cert),
        "--tls-key",
        path(&certs.key),
        "--duration",
        "2s",
        "--warmup",
        "500ms",
        "--agent-timeout",
        "60s",
        "-o",
        out.to_str().unwrap(),
    ]);
    cmd.env("MCP_SWARM_CLUSTER_SECRET", secret);
    let mut c = Proc::spawn("controller", cmd);
    let url = https_url(&c);

    let plaintext = url.replace("https://", "http://");
    let mut intruder = Proc::spawn("plaintext agent", agent(&plaintext, "plaintext", secret));
    let s = intruder.wait(Duration::from_secs(30));
    assert!(!s.success(), "a plaintext agent was let in");
    assert!(
        intruder.stderr().contains("requires TLS"),
        "the plaintext agent should say why:\n{}",
        intruder.stderr()
    );

    let mut agents: Vec<Proc> = (0..2)
        .map(|i| {
            let mut cmd = agent(&url, &format!("tls-{i}"), secret);
            cmd.args(["--tls-ca", path(&certs.cert)]);
            Proc::spawn(&format!("agent-{i}"), cmd)
        })
        .collect();
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    for a in &mut agents {
        let s = a.wait(Duration::from_secs(20));
        assert!(s.success(), "{} exit {s}", a.name);
    }
    assert_healthy_report(&read_report(&out), 4, 2);
    assert!(
        c.stderr().contains("plaintext connection refused"),
        "the controller should log the refusal:\n{}",
        c.stderr()
    );
}

#[test]
fn spawned_agents_get_their_trust_under_mtls() {
    let certs = certs();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let mut c = Proc::spawn(
        "controller",
        controller(&[
            "start",
            "--agents",
            "2",
            "--tls-cert",
            path(&certs.cert),
            "--tls-key",
            path(&certs.key),
            "--tls-client-ca",
            path(&certs.client_ca),
            "--duration",
            "2s",
            "--warmup",
            "500ms",
            "-o",
            out.to_str().unwrap(),
        ]),
    );
    let status = c.wait(RUN_TIMEOUT);
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    assert_healthy_report(&read_report(&out), 4, 2);
}
