//! `netdelay`: a thin main over `mcp_swarm::netdelay`.

fn main() -> std::process::ExitCode {
    mcp_swarm::netdelay::main()
}
