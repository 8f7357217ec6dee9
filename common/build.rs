//! Compiles `proto/mcp_swarm.proto` with protox (pure Rust, no protoc).

/// Every message with a token field; `src/proto.rs` implements their `Debug`.
const TOKEN_MESSAGES: [&str; 2] = [".mcp_swarm.v1.VuserSpec", ".mcp_swarm.v1.TokenUpdate"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../proto/mcp_swarm.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["../proto"])?;
    tonic_prost_build::configure()
        // Messages that carry an access token get a hand-written, redacting
        // `Debug` (`common::proto`), so no `{:?}` can print a token.
        .skip_debug(TOKEN_MESSAGES)
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
