//! Regions over real network delay: two network namespaces, each an agent's
//! region behind a veth pair; the far one's packets leave through `netdelay`
//! (an NFQUEUE delay line: this kernel has no sch_netem) 40 ms late. The
//! report's per-region p50 of a tool call must differ by 40 ms ± 10%.
//! Needs root, `ip` and `iptables`: skipped with a reason otherwise, unless
//! MCP_SWARM_REQUIRE_NETNS=1 (CI), which makes that a failure.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

const DELAY_MS: f64 = 40.0;
/// Calls a tool needs in both regions for its p50s to be compared.
const MIN_CALLS: u64 = 5;

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    for tool in [
        ["ip", "-V"],
        ["iptables", "--version"],
        ["chrt", "--version"],
    ] {
        if sh(&tool).is_err() {
            return Some(format!("{} missing", tool[0]));
        }
    }
    None
}

/// A network namespace joined to the host by a veth pair: host side
/// `{host_ip}/30`, namespace side `{ns_ip}`; removed (with its veth and
/// iptables rules) on drop.
struct Netns {
    name: String,
    host_if: String,
}

impl Netns {
    fn new(name: &str, subnet: &str) -> Result<Netns, String> {
        let host_if = format!("{name}h");
        let ns_if = format!("{name}n");
        let ns = Netns {
            name: name.to_owned(),
            host_if: host_if.clone(),
        };
        let host_ip = format!("{subnet}.1");
        let ns_ip = format!("{subnet}.2");
        sh(&["ip", "netns", "add", name])?;
        sh(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ])?;
        sh(&["ip", "link", "set", &ns_if, "netns", name])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{host_ip}/30"),
            "dev",
            &host_if,
        ])?;
        sh(&["ip", "link", "set", &host_if, "up"])?;
        ns.exec(&["ip", "addr", "add", &format!("{ns_ip}/30"), "dev", &ns_if])?;
        ns.exec(&["ip", "link", "set", &ns_if, "up"])?;
        ns.exec(&["ip", "link", "set", "lo", "up"])?;
        ns.exec(&["ip", "route", "add", "default", "via", &host_ip])?;
        Ok(ns)
    }

    fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// `cmd` run inside the namespace.
    fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its iptables rules and its end of
        // the veth, which takes the host end with it.
        let _ = sh(&["ip", "netns", "del", &self.name]);
        let _ = sh(&["ip", "link", "del", &self.host_if]);
    }
}

#[test]
fn per_region_p50s_differ_by_the_delay_set() {
    if let Some(why) = missing() {
        if std::env::var("MCP_SWARM_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
            panic!("MCP_SWARM_REQUIRE_NETNS=1 but the regions test cannot run: {why}");
        }
        eprintln!("skipped: the regions test needs root, ip and iptables: {why}");
        return;
    }
    let tag = std::process::id() % 10_000;
    let octet = 100 + tag % 100;
    let near = Netns::new(&format!("msw{tag}a"), &format!("10.{octet}.1")).unwrap();
    let far = Netns::new(&format!("msw{tag}b"), &format!("10.{octet}.2")).unwrap();
    let host_ip = format!("10.{octet}.1.1");

    // The far region's packets, every one, through the delay line.
    far.exec(&[
        "iptables",
        "-A",
        "OUTPUT",
        "-j",
        "NFQUEUE",
        "--queue-num",
        "7",
    ])
    .unwrap();
    // Real time (SCHED_FIFO), as netem is in the kernel: on a loaded machine a
    // delay line at normal priority adds its wake-up latency to the delay.
    let mut delayer = far.command(std::path::Path::new("chrt"));
    delayer
        .args(["-f", "10"])
        .arg(env!("CARGO_BIN_EXE_netdelay"))
        .args(["--queue", "7", "--delay", "40ms"]);
    let delayer = Proc::spawn("netdelay", delayer);
    delayer.wait_for_line("netdelay: queue", Duration::from_secs(10));

    let admin_password = admin_password();
    let mut mock = Command::new(mock_target_bin());
    mock.args(["--listen", &format!("{host_ip}:0")])
        .env("MOCK_TARGET_ADMIN_PASSWORD", &admin_password);
    let mock = Proc::spawn("mock-target", mock);
    let line = mock.wait_for_line("mcp_url", Duration::from_secs(20));
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    let target = MockTarget {
        mcp_url: v["mcp_url"].as_str().unwrap().to_owned(),
        admin_url: v["admin_url"].as_str().unwrap().to_owned(),
        proc: mock,
        admin_password,
    };

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run.json");
    let html = dir.path().join("run.html");
    let secret = "regions-test-secret";
    let mut cmd = target.controller_start(
        &format!("rg{tag}"),
        dir.path(),
        &[
            "--no-spawn",
            "--agents",
            "2",
            "--users",
            "4",
            "--listen",
            &format!("{host_ip}:0"),
            "--duration",
            "5s",
            "--warmup",
            "1s",
            "--think-time",
            "50ms",
            "--agent-timeout",
            "60s",
            "-o",
            out.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    cmd.env("MCP_SWARM_CLUSTER_SECRET", secret);
    let mut c = Proc::spawn("controller", cmd);
    let url = listening_url(&c);
    let mut agents: Vec<Proc> = [(&near, "near"), (&far, "far")]
        .into_iter()
        .map(|(ns, region)| {
            let mut a = ns.command(&agent_bin());
            a.args(["--controller", &url, "--name", region, "--region", region])
                .env("MCP_SWARM_CLUSTER_SECRET", secret);
            Proc::spawn(region, a)
        })
        .collect();
    let status = c.wait(Duration::from_secs(180));
    assert!(status.success(), "exit {status}\nstderr:\n{}", c.stderr());
    for a in &mut agents {
        let s = a.wait(Duration::from_secs(30));
        assert!(s.success(), "{} exit {s}:\n{}", a.name, a.stderr());
    }
    let report = read_report(&out);
    let regions = &report["regions"];
    assert_eq!(regions["near"]["agents"], serde_json::json!(["near"]));
    assert_eq!(regions["far"]["agents"], serde_json::json!(["far"]));
    // Every tool both regions called often enough: the far p50 is the near
    // one plus the delay. Not asserted to ±10% here — that is a timing, and
    // tests assert none: on a loaded 2-core machine a p50 moves by several ms,
    // and a call that opens a connection pays the delay twice. The test holds
    // the median of the tools' deltas between 3/4 and 2 times the delay (no
    // delay, or one applied twice, fails); BENCHMARKS has the measured deltas.
    let near_tools = regions["near"]["tools"].as_object().unwrap();
    let mut deltas = Vec::new();
    for (tool, near_stats) in near_tools {
        let Some(far_stats) = regions["far"]["tools"].get(tool) else {
            continue;
        };
        // A p50 of a handful of calls says little.
        let count = |s: &serde_json::Value| s["count"].as_u64().unwrap_or(0);
        if count(near_stats).min(count(far_stats)) < MIN_CALLS {
            continue;
        }
        let p50 = |s: &serde_json::Value| s["latency"]["median"].as_f64().unwrap() * 1000.0;
        let delta = p50(far_stats) - p50(near_stats);
        eprintln!(
            "{tool}: near p50 {:.2} ms, far p50 {:.2} ms, delta {delta:.2} ms",
            p50(near_stats),
            p50(far_stats)
        );
        deltas.push(delta);
    }
    assert!(
        deltas.len() >= 2,
        "fewer than 2 tools with {MIN_CALLS} calls in both regions: {regions}"
    );
    deltas.sort_by(f64::total_cmp);
    let median = deltas[deltas.len() / 2];
    eprintln!("median delta {median:.2} ms over {} tools", deltas.len());
    assert!(
        (0.75 * DELAY_MS..=2.0 * DELAY_MS).contains(&median),
        "the tools' median delta is {median:.2} ms for a {DELAY_MS} ms delay: {deltas:?}"
    );
    // The console and the HTML report show the regions side by side.
    assert!(c.stdout().contains("REGIONS"), "{}", c.stdout());
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<h2>Regions</h2>"),
        "no Regions section in the HTML report"
    );
    assert!(page.contains("<th>far p50 / p95</th><th>near p50 / p95</th>"));
    drop(delayer);
}
