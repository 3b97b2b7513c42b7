//! The `sluice` binary's own entry point, built with the tests so that they
//! can start real gateway processes (several replicas, and kill one).

fn main() -> std::process::ExitCode {
    sluice_api::cli::main()
}
