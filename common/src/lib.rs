//! Shared vocabulary of mcp-swarm, with no I/O: ids, secrets, the generated
//! protocol, durations, the latency histogram, series of measurements, the
//! scenario model and the report model.

pub mod chunk;
pub mod duration;
pub mod error_kind;
pub mod failures;
pub mod histogram;
pub mod ids;
pub mod limits;
pub mod load;
pub mod nextcloud;
pub mod proto;
pub mod protocol;
pub mod region;
pub mod report;
pub mod scenario;
pub mod secret;
pub mod series;

pub use error_kind::ErrorKind;
pub use histogram::{CompactHistogram, LatencyHistogram};
pub use secret::Secret;

/// Version of the controller–agent protocol; `Register` refuses any other.
/// 4: `AddGroups`/`GroupsAdded` (groups re-assigned from a lost agent) and
/// failure samples in interval and final reports. 6: the controller's
/// `Keepalive`, without which an agent takes the controller for silent.
/// 7: the agent's region in `Register`.
pub const PROTOCOL_VERSION: u32 = 7;

/// Metadata key that carries the cluster secret on every gRPC call.
pub const SECRET_METADATA: &str = "x-mcp-swarm-secret";

/// Metadata key that carries the agent id on `Attach`.
pub const AGENT_METADATA: &str = "x-mcp-swarm-agent";

/// Environment variable through which agents receive the cluster secret.
pub const CLUSTER_SECRET_ENV: &str = "MCP_SWARM_CLUSTER_SECRET";
