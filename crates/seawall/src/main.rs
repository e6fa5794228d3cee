//! The `seawall` binary: parses the command line and runs [`seawall::cli::Cli`].
//!
//! Exit status: 0 on success, 2 when the configuration is at fault, 1 otherwise.

use std::process::ExitCode;

use clap::Parser;
use seawall::cli::Cli;

/// jemalloc: freed memory goes back to the OS, and its stats tell the memory check how much of
/// the resident memory is in use now.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bytes jemalloc keeps resident without using them (freed, not yet returned to the OS), fresh
/// (the stats are cached until the epoch advances).
#[cfg(not(target_env = "msvc"))]
fn idle() -> Option<u64> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    let (resident, allocated) = (
        stats::resident::read().ok()?,
        stats::allocated::read().ok()?,
    );
    u64::try_from(resident.saturating_sub(allocated)).ok()
}

fn main() -> ExitCode {
    #[cfg(not(target_env = "msvc"))]
    seawall::health::use_allocator_idle_bytes(idle);
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
