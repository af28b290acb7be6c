//! The `agentd` binary: parses the command line and hands over to `agentd::cli`.

use std::process::ExitCode;

fn main() -> ExitCode {
    // .env fills in what the environment does not set; a missing file is fine.
    let _ = dotenvy::dotenv();
    let cli = agentd::cli::parse();
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
