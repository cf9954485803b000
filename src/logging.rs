//! Log lines on stderr: `METRICSTREAM_LOG` (an `EnvFilter` string) picks
//! what is logged, `--log-format` how.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("METRICSTREAM_LOG").unwrap_or_else(|_| "info".into());
    // Colour codes are noise in a file or a pipe; NO_COLOR is the user's veto.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(colour).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}
