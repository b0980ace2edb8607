//! Logging: `tracing` with JSON lines (production) or human-readable output.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable when standard error is a terminal, JSON otherwise.
    Auto,
    Pretty,
    Json,
}

/// Installs the global subscriber. `level` is a `tracing` filter such as `info` or
/// `serac=debug,sqlx=warn`.
pub fn init(format: LogFormat, level: &str) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(level).map_err(|e| format!("invalid log level '{level}': {e}"))?;
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // A subscriber may be installed already (tests start several servers in one process).
    let _ = result;
    Ok(())
}
