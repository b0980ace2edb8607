//! Logging: `tracing` with JSON lines (production) or human-readable output, written by a
//! background thread so that request threads never wait on the log's file or pipe.

use std::io::IsTerminal as _;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable when standard error is a terminal, JSON otherwise (production).
    Auto,
    Pretty,
    Json,
}

/// Keeps the log writer running; dropping it writes out what is queued.
#[must_use = "logs queued at exit are lost unless the guard lives until then"]
pub struct LogGuard {
    _worker: Option<WorkerGuard>,
}

/// Installs the global subscriber. `level` is a `tracing` filter such as `info` or
/// `serac=debug,sqlx=warn`.
pub fn init(format: LogFormat, level: &str) -> Result<LogGuard, String> {
    let filter =
        EnvFilter::try_new(level).map_err(|e| format!("invalid log level '{level}': {e}"))?;
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    // Lines queue for the writer thread; only if it falls 128k lines behind do requests wait.
    // The thread writes through a buffer that it flushes whenever the queue runs empty, so a
    // busy server makes one write call per batch of lines, not per line.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(!json && std::io::stderr().is_terminal());
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
    // A subscriber may be installed already (tests start several servers in one process);
    // then this writer is not used.
    Ok(LogGuard {
        _worker: installed.ok().map(|()| guard),
    })
}
