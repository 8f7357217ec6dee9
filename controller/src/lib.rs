//! The mcp-swarm controller: provisions users, logs them in, plans and drives
//! the run over gRPC, merges what agents measure into the report.

pub mod report;
pub mod thresholds;
