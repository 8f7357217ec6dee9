//! `mock-target`: a thin main over `mock::cli`.

fn main() -> std::process::ExitCode {
    mock::cli::main()
}
