//! `netdelay`: a userspace delay line for kernels without `sch_netem`. It takes
//! the packets an `iptables … -j NFQUEUE --queue-num N` rule queues and accepts
//! each one `--delay` ± `--jitter` after it arrived, in arrival order (a packet
//! never overtakes the one before it, so TCP sees no reordering), holding at
//! most `--max-held` packets (past that a packet is dropped and counted, as a
//! full netem queue drops). Only metadata crosses to userspace (copy range 0).
//!
//! Run it inside the network namespace whose rule queues the packets: netlink
//! sockets belong to a namespace. Where the kernel has netem, `tc qdisc add dev
//! IF root netem delay 40ms 5ms` does the same without it.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use nfq::{Queue, Verdict};
use tokio_util::sync::CancellationToken;

/// How long the loop sleeps at most between two looks at the queue: the
/// resolution of the delay.
const POLL: Duration = Duration::from_micros(250);

#[derive(Debug, Parser)]
#[command(
    name = "netdelay",
    about = "Delays the packets an iptables NFQUEUE rule queues (a netem stand-in)"
)]
pub struct Cli {
    /// The NFQUEUE number the iptables rule sends to (`--queue-num`).
    #[arg(long, default_value_t = 0)]
    pub queue: u16,
    /// Delay added to every packet (`40ms`, `0.04s`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub delay: Duration,
    /// Up to this much more or less, uniformly (`5ms`); never below zero.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0ms")]
    pub jitter: Duration,
    /// Most packets held at once; a packet past it is dropped and counted.
    #[arg(long, default_value_t = 10_000)]
    pub max_held: usize,
}

/// What a run did, printed when it stops.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub delayed: u64,
    pub dropped: u64,
}

/// The due times: arrival + delay ± jitter, never before the previous packet's.
#[derive(Debug)]
pub struct Schedule {
    delay: Duration,
    jitter: Duration,
    last_due: Option<Instant>,
    seed: u64,
}

impl Schedule {
    pub fn new(delay: Duration, jitter: Duration, seed: u64) -> Self {
        Self {
            delay,
            jitter,
            last_due: None,
            seed: seed | 1,
        }
    }

    /// When a packet that arrived at `now` is to be let through.
    pub fn due(&mut self, now: Instant) -> Instant {
        let mut due = now + self.delay;
        if !self.jitter.is_zero() {
            // xorshift64: the jitter needs spread, not quality.
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            let span = self.jitter.as_nanos() as u64 * 2 + 1;
            let offset = self.seed % span;
            let jitter_ns = self.jitter.as_nanos() as u64;
            due = if offset >= jitter_ns {
                due + Duration::from_nanos(offset - jitter_ns)
            } else {
                due.checked_sub(Duration::from_nanos(jitter_ns - offset))
                    .map_or(now, |d| d.max(now))
            };
        }
        if let Some(last) = self.last_due {
            due = due.max(last);
        }
        self.last_due = Some(due);
        due
    }
}

/// Binds the queue and delays packets until `stop` is set; the counts.
pub fn run(cli: &Cli, stop: &AtomicBool) -> anyhow::Result<Counts> {
    if cli.max_held == 0 {
        bail!("--max-held must be at least 1");
    }
    let mut queue = Queue::open().context(
        "opening a netfilter queue socket (needs CAP_NET_ADMIN and a kernel with NETFILTER_NETLINK_QUEUE)",
    )?;
    queue.bind(cli.queue).with_context(|| {
        format!(
            "binding NFQUEUE {} (is another netdelay bound to it?)",
            cli.queue
        )
    })?;
    queue
        .set_copy_range(cli.queue, 0)
        .context("asking for packet metadata only")?;
    queue.set_nonblocking(true);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut schedule = Schedule::new(cli.delay, cli.jitter, seed);
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    let mut counts = Counts::default();
    while !stop.load(Ordering::Relaxed) {
        loop {
            match queue.recv() {
                Ok(mut msg) => {
                    if held.len() >= cli.max_held {
                        msg.set_verdict(Verdict::Drop);
                        queue.verdict(msg).context("dropping a packet")?;
                        counts.dropped += 1;
                    } else {
                        held.push_back((schedule.due(Instant::now()), msg));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("receiving from the netfilter queue"),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, mut msg)) = held.pop_front() {
                msg.set_verdict(Verdict::Accept);
                queue.verdict(msg).context("letting a packet through")?;
                counts.delayed += 1;
            }
        }
        let wait = held.front().map_or(POLL, |(due, _)| {
            due.saturating_duration_since(now).min(POLL)
        });
        std::thread::sleep(wait);
    }
    // Let the held packets go rather than lose them.
    for (_, mut msg) in held.drain(..) {
        msg.set_verdict(Verdict::Accept);
        queue
            .verdict(msg)
            .context("letting a held packet through")?;
    }
    Ok(counts)
}

/// The binary's main: parse, run until SIGINT/SIGTERM, print the counts.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netdelay: error: starting the signal runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    eprintln!(
        "netdelay: queue {} delay {:?} jitter {:?}",
        cli.queue, cli.delay, cli.jitter
    );
    let worker = {
        let stop = Arc::clone(&stop);
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            let result = run(&cli, &stop);
            shutdown.cancel();
            result
        })
    };
    runtime.block_on(async {
        crate::signals::cancel_on_signal(shutdown.clone(), "netdelay: stopping");
        shutdown.cancelled().await;
    });
    stop.store(true, Ordering::Relaxed);
    match worker.join() {
        Ok(Ok(c)) => {
            eprintln!(
                "netdelay: stopped: {} packets delayed, {} dropped",
                c.delayed, c.dropped
            );
            std::process::ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("netdelay: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("netdelay: error: the delay loop panicked");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_keep_order_and_stay_within_the_jitter() {
        let start = Instant::now();
        let mut s = Schedule::new(Duration::from_millis(40), Duration::from_millis(5), 42);
        let mut last = start;
        for i in 0..1000u64 {
            let now = start + Duration::from_micros(i * 100);
            let due = s.due(now);
            assert!(due >= last, "packet {i} overtook the one before it");
            assert!(due >= now + Duration::from_millis(35));
            last = due;
        }
        let mut plain = Schedule::new(Duration::from_millis(40), Duration::ZERO, 1);
        assert_eq!(plain.due(start), start + Duration::from_millis(40));
    }
}
