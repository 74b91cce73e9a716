//! Logging: `tracing` to a daily-rolling file in `<data dir>/logs` and to stderr.
//!
//! Log lines never carry secrets: credentials are held in `SecretValue`s (which print as
//! `[redacted]`) and HTTP bodies are redacted by `mailroom-trace` before they are stored.

use std::path::{Path, PathBuf};

pub use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Name prefix of the log files (`mailroom.log.YYYY-MM-DD`).
pub const LOG_FILE_PREFIX: &str = "mailroom.log";

/// Where log files go for a data directory.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// Where the console copy of the log goes, and how.
enum Console {
    None,
    /// Text on standard error (the CLI's `--verbose` runs, the app in development).
    Stderr,
    /// JSON lines on standard output (a service: journald or a log shipper).
    JsonStdout,
}

/// Installs the global subscriber. Keep the returned guard alive for the program's lifetime
/// (dropping it flushes the file writer). `RUST_LOG` overrides the default filter `info`.
/// Returns `None` if a subscriber was already installed (e.g. twice in one test process).
pub fn init(data_dir: &Path, stderr: bool) -> Option<WorkerGuard> {
    install(
        data_dir,
        if stderr {
            Console::Stderr
        } else {
            Console::None
        },
    )
}

/// Like [`init`] for a service: the daily files, and JSON lines on standard output (one
/// object per event, for journald or a log shipper).
pub fn init_json(data_dir: &Path) -> Option<WorkerGuard> {
    install(data_dir, Console::JsonStdout)
}

fn install(data_dir: &Path, console: Console) -> Option<WorkerGuard> {
    let dir = log_dir(data_dir);
    let _ = std::fs::create_dir_all(&dir);
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(LOG_FILE_PREFIX)
        .max_log_files(14)
        .build(&dir)
        .ok()?;
    let (file_writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let file_layer = fmt::layer().with_ansi(false).with_writer(file_writer);
    let stderr_layer =
        matches!(console, Console::Stderr).then(|| fmt::layer().with_writer(std::io::stderr));
    let json_layer = matches!(console, Console::JsonStdout)
        .then(|| fmt::layer().json().with_writer(std::io::stdout));
    tracing_subscriber::registry()
        .with(filter)
        .with(file_layer)
        .with(stderr_layer)
        .with(json_layer)
        .try_init()
        .ok()?;
    Some(guard)
}
