//! Ctrl-C and SIGTERM (what `docker stop` and Kubernetes send) are the same
//! request: cancel the run's token so it stops, reports and cleans up; a
//! second signal of either kind exits at once.

use tokio_util::sync::CancellationToken;

/// Exit code for a second signal: 128 + SIGINT, as shells report it.
const EXIT_ON_SECOND_SIGNAL: i32 = 130;

/// Spawns a task that cancels `token` on the first SIGINT or SIGTERM (printing
/// `message` to stderr) and exits the process on the second.
pub fn cancel_on_signal(token: CancellationToken, message: &'static str) {
    tokio::spawn(async move {
        let mut signals = match Signals::new() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot listen for signals ({e}); Ctrl-C will end the process at once");
                return;
            }
        };
        signals.next().await;
        eprintln!("{message}");
        token.cancel();
        signals.next().await;
        std::process::exit(EXIT_ON_SECOND_SIGNAL);
    });
}

struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    /// The next SIGINT or SIGTERM.
    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
