//! The `agentd` binary: parses the command line and hands over to `agentd::cli`.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc malloc: malloc/free were 21 % of the server's CPU on the turn path
/// with glibc, and glibc kept the memory of closed connections and finished streams (its
/// per-thread arenas return little to the system). Measured in docs/operations.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // .env fills in what the environment does not set; a missing file is fine.
    let _ = dotenvy::dotenv();
    let cli = agentd::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            agentd::cli::report(&anyhow::Error::new(e).context("cannot start the async runtime"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(agentd::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            agentd::cli::report(&e);
            ExitCode::FAILURE
        }
    }
}
