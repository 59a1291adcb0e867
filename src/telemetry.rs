//! Logging: tracing to stderr (journald captures it under systemd).
//!
//! The level comes from `logging.level`; `RUST_LOG`, when set, overrides it for debugging.
//! `logging.format` picks the line format:
//! - `text` (default): `2026-01-01T12:00:00.000000Z ERROR accumen_actors::mempool: mempool full:
//!   ... key=value`, so the runbook's grep patterns (`ERROR.*mempool.*full`, ...) match.
//! - `json`: one object per line, keys in this order: `timestamp` (RFC 3339, UTC), `level`
//!   (`ERROR`…`TRACE`), `target` (the module), `message`, then the event's own fields under
//!   their names (numbers and booleans as JSON values, the rest as strings). The fixed order
//!   keeps the same grep patterns matching JSON lines too. An event field named like one of the
//!   first four keys is written as `field.NAME`, so it can neither hide nor duplicate them.
//!
//! Under journald (stderr *is* the journal stream named by `JOURNAL_STREAM`, checked by device
//! and inode as systemd documents, so a redirected stderr does not count) our timestamp is left
//! out of both formats: the journal stamps every line itself, and two clocks on one line only
//! confuse.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::LogFormat;

/// Keys of a JSON line written before the event's fields.
const RESERVED: [&str; 4] = ["timestamp", "level", "target", "message"];

/// Installs the global subscriber; a second call is a no-op.
pub fn init(level: &str, format: LogFormat) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let timestamp = !stderr_is_journal();
    let layer = match format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let l = tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi);
            if timestamp {
                l.boxed()
            } else {
                l.without_time().boxed()
            }
        }
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(JsonLines { timestamp })
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
}

/// True when stderr is the journald stream systemd connected (`JOURNAL_STREAM=DEV:INODE`).
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(var) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    journal_stream_is(&var, meta.dev(), meta.ino())
}

/// Whether `JOURNAL_STREAM`'s value (decimal `DEV:INODE`) names this device and inode.
fn journal_stream_is(var: &str, dev: u64, ino: u64) -> bool {
    var.split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        .is_some_and(|(d, i)| d == dev && i == ino)
}

/// The `json` line format.
#[derive(Debug, Clone, Copy)]
struct JsonLines {
    timestamp: bool,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let time = if self.timestamp {
            let mut t = String::new();
            tracing_subscriber::fmt::time::SystemTime.format_time(&mut Writer::new(&mut t))?;
            Some(t)
        } else {
            None
        };
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = json_line(
            time.as_deref(),
            meta.level().as_str(),
            fields.log_target.as_deref().unwrap_or(meta.target()),
            &fields.message,
            &fields.rest,
        );
        writer.write_str(&line)?;
        writer.write_char('\n')
    }
}

/// An event's fields, collected as JSON values in the order they were recorded.
#[derive(Default)]
struct Fields {
    message: String,
    /// The real target of an event bridged from the `log` crate (wasmtime logs that way): its
    /// metadata says `log`, the `log.target` field says where it came from.
    log_target: Option<String>,
    rest: Vec<(String, serde_json::Value)>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        let name = field.name();
        if name == "log.target" {
            self.log_target = value.as_str().map(str::to_owned);
        } else if name.starts_with("log.") {
            // `log.file`, `log.line`, `log.module_path`: the text format drops them too.
        } else if name == "message" {
            self.message = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
        } else if RESERVED.contains(&name) {
            self.rest.push((format!("field.{name}"), value));
        } else {
            self.rest.push((name.to_owned(), value));
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // NaN and infinities have no JSON number: write them as strings.
        let v = serde_json::Number::from_f64(value)
            .map(serde_json::Value::Number)
            .unwrap_or_else(|| value.to_string().into());
        self.put(field, v);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
}

/// One JSON line (without the newline), keys in the documented order.
fn json_line(
    time: Option<&str>,
    level: &str,
    target: &str,
    message: &str,
    rest: &[(String, serde_json::Value)],
) -> String {
    let s = |v: &str| serde_json::Value::from(v).to_string();
    let mut out = String::from("{");
    if let Some(t) = time {
        let _ = write!(out, "\"timestamp\":{},", s(t));
    }
    let _ = write!(
        out,
        "\"level\":{},\"target\":{},\"message\":{}",
        s(level),
        s(target),
        s(message)
    );
    for (k, v) in rest {
        let _ = write!(out, ",{}:{v}", s(k));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_names_device_and_inode() {
        assert!(journal_stream_is("8:12345", 8, 12345));
        assert!(!journal_stream_is("8:12345", 8, 12346));
        assert!(!journal_stream_is("9:12345", 8, 12345));
        for bad in ["", "8", "8:", ":1", "a:b", "8:12345:1", " 8:12345"] {
            assert!(!journal_stream_is(bad, 8, 12345), "{bad:?}");
        }
    }

    #[test]
    fn json_lines_parse_and_keep_the_grep_order() {
        let rest = vec![
            ("height".to_owned(), serde_json::Value::from(12u64)),
            ("ok".to_owned(), true.into()),
            ("error".to_owned(), "disk \"full\"\nsecond line".into()),
            ("field.level".to_owned(), "spoofed".into()),
        ];
        let line = json_line(
            Some("2026-01-01T12:00:00.000000Z"),
            "ERROR",
            "accumen_actors::mempool",
            "mempool full: transaction rejected",
            &rest,
        );
        assert!(!line.contains('\n'), "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["timestamp"], "2026-01-01T12:00:00.000000Z");
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["target"], "accumen_actors::mempool");
        assert_eq!(v["message"], "mempool full: transaction rejected");
        assert_eq!(v["height"], 12);
        assert_eq!(v["ok"], true);
        assert_eq!(v["error"], "disk \"full\"\nsecond line");
        assert_eq!(v["field.level"], "spoofed");
        // Level, then module, then message: `ERROR.*mempool.*full` matches as on text lines.
        let (l, t, m) = (
            line.find("ERROR").unwrap(),
            line.find("mempool\"").unwrap(),
            line.find("full").unwrap(),
        );
        assert!(l < t && t < m, "{line}");

        let line = json_line(None, "INFO", "accumen::node", "listening", &[]);
        assert_eq!(
            line,
            r#"{"level":"INFO","target":"accumen::node","message":"listening"}"#
        );
    }

    #[test]
    fn event_fields_are_collected_with_their_types() {
        use tracing_subscriber::fmt::MakeWriter;

        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Buf {
            type Writer = Buf;
            fn make_writer(&'a self) -> Buf {
                self.clone()
            }
        }

        let buf = Buf::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(buf.clone())
                .event_format(JsonLines { timestamp: true }),
        );
        tracing::subscriber::with_default(subscriber, || {
            let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
            tracing::warn!(api = %addr, n = 3u64, neg = -2i64, ratio = 0.5, level = "x", "listening");
            // What the `log` bridge records for a wasmtime line.
            tracing::info!(
                log.target = "wasmtime::pool",
                log.line = 223u64,
                "creating pool"
            );
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let mut lines = text.lines();
        let v: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "listening");
        assert_eq!(v["api"], "127.0.0.1:8080");
        assert_eq!(v["n"], 3);
        assert_eq!(v["neg"], -2);
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["field.level"], "x");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'), "{v}");
        assert!(v["target"].as_str().unwrap().starts_with("accumen"), "{v}");
        let v: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(v["target"], "wasmtime::pool", "{v}");
        assert!(v.get("log.line").is_none(), "{v}");
        assert_eq!(v["message"], "creating pool");
    }
}
