//! The live view of a run on stderr, read off the shared live figures: on a
//! terminal an `indicatif` bar (phase, elapsed of total, ops/s and errors
//! over the last interval, agents running and lost, users active); off a
//! terminal one plain line per interval. Rates count the measurement window
//! only, never warmup.

use std::io::IsTerminal as _;
use std::time::{Duration, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use observe::{Figures, Live, Phase};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the bar is redrawn on a terminal.
const BAR_EVERY: Duration = Duration::from_secs(1);
/// How often a plain line is printed off a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// One view of the figures, as both forms print it.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub phase: Phase,
    pub elapsed: Duration,
    pub total: Duration,
    /// Over the last interval of the measurement window.
    pub ops_per_sec: f64,
    pub errors: u64,
    pub running: usize,
    pub lost: usize,
    pub n_agents: usize,
    pub active_users: u64,
    /// Measured operations and errors so far.
    pub operations: u64,
    pub total_errors: u64,
    /// Open model: starts dropped at the in-flight bound so far.
    pub dropped_starts: u64,
}

impl View {
    /// The view at `now`, `last` being the figures one interval earlier.
    pub fn of(f: &Figures, last: &Figures, every: Duration, now: SystemTime) -> View {
        let elapsed = f
            .started_at
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        let total = match (f.started_at, f.measure_from, f.measure_for) {
            (Some(s), Some(m), Some(d)) => m.duration_since(s).unwrap_or_default() + d,
            _ => Duration::ZERO,
        };
        let ops = f
            .measured
            .operations
            .saturating_sub(last.measured.operations);
        View {
            phase: f.phase,
            elapsed,
            total,
            ops_per_sec: ops as f64 / every.as_secs_f64(),
            errors: f
                .measured
                .n_errors()
                .saturating_sub(last.measured.n_errors()),
            running: f.agents_in("running"),
            lost: f.agents_in("lost"),
            n_agents: f.agents.len(),
            active_users: f.active_users,
            operations: f.measured.operations,
            total_errors: f.measured.n_errors(),
            dropped_starts: f.starts.dropped,
        }
    }

    /// The text after the bar (and the whole plain line, with `line`).
    pub fn message(&self) -> String {
        // The drain's calls are not the window's: say what is left instead.
        let mut s = if self.phase == Phase::Draining {
            format!(
                "draining {} in flight · agents {}/{} running",
                self.active_users, self.running, self.n_agents
            )
        } else if self.phase == Phase::Warmup {
            // Warmup calls are made but not measured: no rate to show.
            format!(
                "warming up (not measured) · agents {}/{} running",
                self.running, self.n_agents
            )
        } else {
            format!(
                "{:.0} ops/s, {} errors (last interval) · agents {}/{} running",
                self.ops_per_sec, self.errors, self.running, self.n_agents
            )
        };
        if self.lost > 0 {
            s.push_str(&format!(", {} lost", self.lost));
        }
        if self.phase != Phase::Draining {
            s.push_str(&format!(" · users {}", self.active_users));
        }
        if self.dropped_starts > 0 {
            s.push_str(&format!(" · {} starts dropped", self.dropped_starts));
        }
        s
    }

    pub fn line(&self) -> String {
        format!(
            "[{:>4}s/{}s {}] {} · measured {} ops, {} errors",
            self.elapsed.as_secs(),
            self.total.as_secs(),
            self.phase.as_str(),
            self.message(),
            self.operations,
            self.total_errors
        )
    }
}

/// Draws the view until `stop` is cancelled; the bar is cleared at the end.
pub fn spawn(live: Live, stop: CancellationToken) -> JoinHandle<()> {
    let terminal = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        if terminal {
            bar(live, stop).await
        } else {
            lines(live, stop).await
        }
    })
}

async fn lines(live: Live, stop: CancellationToken) {
    let mut last = live.snapshot();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + LINE_EVERY, LINE_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = live.snapshot();
        if now.phase.is_running() || now.phase == Phase::Draining {
            let view = View::of(&now, &last, LINE_EVERY, SystemTime::now());
            eprintln!("{}", view.line());
        }
        last = now;
    }
}

async fn bar(live: Live, stop: CancellationToken) {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix:>18} [{bar:30.cyan/blue}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    let mut last = live.snapshot();
    let mut ticks = tokio::time::interval(BAR_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let now = live.snapshot();
        let view = View::of(&now, &last, BAR_EVERY, SystemTime::now());
        bar.set_length(view.total.as_secs().max(1));
        bar.set_position(view.elapsed.as_secs().min(view.total.as_secs()));
        bar.set_prefix(format!(
            "{} {}s/{}s",
            view.phase.as_str(),
            view.elapsed.as_secs(),
            view.total.as_secs()
        ));
        bar.set_message(view.message());
        last = now;
    }
    bar.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_count_the_last_interval_of_the_window_only() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut last = Figures {
            started_at: Some(t0),
            measure_from: Some(t0 + Duration::from_secs(5)),
            measure_for: Some(Duration::from_secs(30)),
            phase: Phase::Measuring,
            ..Default::default()
        };
        last.measured.operations = 1_000;
        let mut now = last.clone();
        now.measured.operations = 1_500;
        now.measured.errors.insert("http_5xx".into(), 3);
        now.active_users = 20;
        let v = View::of(
            &now,
            &last,
            Duration::from_secs(5),
            t0 + Duration::from_secs(12),
        );
        assert_eq!(v.ops_per_sec, 100.0);
        assert_eq!(v.errors, 3);
        assert_eq!(v.total, Duration::from_secs(35));
        assert_eq!(v.elapsed, Duration::from_secs(12));
        assert_eq!(
            v.line(),
            "[  12s/35s measuring] 100 ops/s, 3 errors (last interval) · agents 0/0 running · users 20 · measured 1500 ops, 3 errors"
        );
    }
}
