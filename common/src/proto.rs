//! The generated controller–agent protocol (`proto/mcp_swarm.proto`).
//!
//! Only the gRPC edges (`controller::service`, `agent::link`) and the
//! conversions in this crate touch these types; everything else works with
//! domain types.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("mcp_swarm.v1");
