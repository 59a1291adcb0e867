//! Logging: tracing to stderr (journald captures it under systemd).
//!
//! The level comes from `logging.level`; `RUST_LOG`, when set, overrides it for debugging.
//! Lines look like `2026-01-01T12:00:00.000000Z ERROR accumen_actors::mempool: mempool full: ...`,
//! so the runbook's grep patterns (`ERROR.*mempool.*full`, ...) match them.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(level: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}
