//! The `seawall` binary: parses the command line and runs [`seawall::cli::Cli`].
//!
//! Exit status: 0 on success, 2 when the configuration is at fault, 1 otherwise.

use std::process::ExitCode;

use clap::Parser;
use seawall::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.execute()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
