//! What a running process (controller or agent) shows the outside while it
//! runs: its live figures (`live`), their Prometheus exposition (`metrics`),
//! and the HTTP edge serving `/health`, `/metrics` and, on the controller,
//! `/api/v1/status` (`server`). Both sides feed it the same interval deltas
//! that cross the wire, so the figures are the report's, only earlier.

pub mod control;
pub mod counts;
pub mod live;
pub mod metrics;
pub mod region;
pub mod server;

pub use live::{AgentView, Figures, Live, Phase, StartCounts};
pub use server::{HttpError, serve, serve_with_control};
