//! The `seawall` command line: `run`, `check`, `ready`, `demo` and `schema`, with their exit codes
//! (0 success, 2 configuration error, 1 any other failure).

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::app::{App, AppError};
use crate::config::{self, ConfigError};
use crate::demo::{self, DemoOptions};

/// `seawall`: overload protection for callers of remote services.
#[derive(Debug, Parser)]
#[command(name = "seawall", version = crate::version::LONG, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon until SIGINT or SIGTERM, then drain gracefully.
    Run(RunArgs),
    /// Validate a configuration file and its secrets, then exit (2 on an error).
    Check(CheckArgs),
    /// Exit 0 when the daemon of this configuration answers ready on its admin listener
    /// (`GET /readyz`), else 1: a health check for images without curl.
    Ready(CheckArgs),
    /// Self-contained demo: flaky simulated upstreams, traffic and a live view.
    Demo(DemoArgs),
    /// Print the JSON Schema of the configuration file, for editors (yaml-language-server).
    Schema,
}

/// Arguments of `seawall run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The YAML configuration file.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Log line format. The level comes from `SEAWALL_LOG` or `RUST_LOG` (default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Arguments of `seawall check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The YAML configuration file.
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Arguments of `seawall demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How long the demo runs (`30s`, `5m`, …).
    #[arg(long, default_value = "60s", value_parser = config::duration::parse)]
    pub duration: Duration,
}

/// Format of the log lines of `seawall run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Why a command failed; [`CliError::exit_code`] maps it to the process status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration could not be loaded, validated or its secrets resolved.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The daemon could not start.
    #[error("error: {0}")]
    Start(#[from] AppError),
    /// Installing signal handlers or running the demo failed.
    #[error("error: {0}")]
    Io(#[from] io::Error),
    /// `seawall ready`: the daemon did not answer ready.
    #[error("error: not ready: {0}")]
    NotReady(#[from] crate::ready::NotReady),
    /// A second termination signal arrived while draining.
    #[error("error: {0} received again while draining; stopped without waiting")]
    Interrupted(&'static str),
}

impl CliError {
    /// 2 for configuration errors, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::Start(e) if e.is_config_error() => 2,
            _ => 1,
        }
    }
}

impl Cli {
    /// Runs the chosen command. Call it inside a tokio runtime.
    pub async fn execute(self) -> Result<(), CliError> {
        match self.command {
            Command::Run(args) => run(args).await,
            Command::Check(args) => check(&args),
            Command::Ready(args) => ready(&args).await,
            Command::Demo(args) => Ok(demo::run(DemoOptions {
                duration: args.duration,
            })
            .await?),
            Command::Schema => schema(),
        }
    }
}

/// Prints the configuration's JSON Schema; a reader that stops early (`| head`) is no error.
fn schema() -> Result<(), CliError> {
    let written = writeln!(io::stdout().lock(), "{:#}", config::json_schema());
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// How long `seawall ready` waits for an answer.
const READY_WITHIN: Duration = Duration::from_secs(3);

/// Asks the admin listener of `args.config` (secrets are not needed) for `/readyz`.
async fn ready(args: &CheckArgs) -> Result<(), CliError> {
    let config = config::load(&args.config)?;
    let addr = crate::ready::reach(config.admin.listen);
    let tls = config.admin.tls.is_some();
    crate::ready::probe(addr, tls, READY_WITHIN).await?;
    println!("ready: {addr}");
    Ok(())
}

fn check(args: &CheckArgs) -> Result<(), CliError> {
    let config = config::load(&args.config)?;
    config.resolve_secrets_from_env()?;
    config.check_files()?;
    println!(
        "ok: {} providers, {} pipelines",
        config.providers.len(),
        config.pipelines.len()
    );
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), CliError> {
    let config = config::load(&args.config)?;
    let secrets = config.resolve_secrets_from_env()?;
    config.check_files()?;
    init_tracing(args.log_format);
    // Installed before the listeners open, so no signal finds the default (fatal) action.
    let mut signals = Termination::new()?;
    let app = App::start(config, secrets).await?;
    let signal = loop {
        match signals.recv().await {
            // The reloader logs what it did.
            Signal::Reload => drop(app.reload().await),
            Signal::Stop(name) => break name,
        }
    };
    tracing::info!(
        signal,
        "shutting down gracefully; send it again to stop at once"
    );
    app.shutdown();
    let wait = app.wait();
    tokio::pin!(wait);
    loop {
        tokio::select! {
            () = &mut wait => return Ok(()),
            again = signals.recv() => match again {
                Signal::Reload => tracing::info!("SIGHUP ignored: shutting down"),
                Signal::Stop(name) => return Err(CliError::Interrupted(name)),
            },
        }
    }
}

/// A signal the daemon acts on.
enum Signal {
    /// `SIGHUP`: reload the configuration.
    Reload,
    /// `SIGINT`, `SIGTERM` (Ctrl-C elsewhere), by name: stop.
    Stop(&'static str),
}

/// Logs to stderr, filtered by `SEAWALL_LOG`, else `RUST_LOG`, else `info`; in colour only
/// when [`colour`] says so.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SEAWALL_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = colour(io::stderr().is_terminal(), std::env::var_os("NO_COLOR"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(io::stderr);
    // `try_init`: an embedding program may have installed its own subscriber already.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Whether log lines carry ANSI colours: only when they go to a terminal, and not when
/// `NO_COLOR` is set to anything but the empty string (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// SIGINT, SIGTERM and SIGHUP (Ctrl-C elsewhere), listened to from creation on.
struct Termination {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Termination {
    #[cfg(unix)]
    fn new() -> io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Termination {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> io::Result<Self> {
        Ok(Termination {})
    }

    /// The next signal received.
    #[cfg(unix)]
    async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::Stop("SIGINT"),
            _ = self.terminate.recv() => Signal::Stop("SIGTERM"),
            _ = self.hangup.recv() => Signal::Reload,
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) -> Signal {
        match tokio::signal::ctrl_c().await {
            Ok(()) => Signal::Stop("Ctrl-C"),
            Err(_) => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn demo_duration_uses_the_config_syntax() {
        let cli = Cli::try_parse_from(["seawall", "demo", "--duration", "90s"]).unwrap();
        let Command::Demo(args) = cli.command else {
            panic!("not demo")
        };
        assert_eq!(args.duration, Duration::from_secs(90));
        let cli = Cli::try_parse_from(["seawall", "demo"]).unwrap();
        assert!(
            matches!(cli.command, Command::Demo(DemoArgs { duration }) if duration == Duration::from_secs(60))
        );
        assert!(Cli::try_parse_from(["seawall", "demo", "--duration", "soon"]).is_err());
    }

    #[test]
    fn logs_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsString::new())));
        assert!(!colour(true, Some(OsString::from("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsString::new())));
    }

    #[test]
    fn run_takes_a_log_format() {
        let cli = Cli::try_parse_from(["seawall", "run", "-c", "x.yaml", "--log-format", "json"])
            .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.config, PathBuf::from("x.yaml"));
    }
}
