//! The operator surface the runbook promises: every metric name it lists is exported, the
//! restart series exist at 0 before any restart (so `increase()` alerts fire on the first one),
//! the stats endpoints carry the runbook's fields, and the health listener answers.

use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

/// The seed runbook's metric names, plus the supervisor's.
const RUNBOOK_METRICS: &[&str] = &[
    "accumen_blocks_produced_total",
    "accumen_transactions_processed_total",
    "accumen_block_production_duration_seconds",
    "accumen_transaction_execution_duration_seconds",
    "accumen_gas_used_total",
    "accumen_mempool_size",
    "accumen_mempool_accounts",
    "accumen_execution_queue_depth",
    "accumen_memory_usage_bytes",
    "accumen_goroutines",
    "accumen_transaction_failures_total",
    "accumen_execution_errors_total",
    "accumen_bridge_errors_total",
    "accumen_api_errors_total",
    "accumen_actor_restarts_total",
    // HTTP (RUNBOOK "Metrics"): the seed's `grep http` finds these.
    "accumen_http_requests_total",
    "accumen_http_request_duration_seconds",
    "accumen_http_requests_in_flight",
    // What replaces the seed's `go_memstats` (standard process metrics).
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_cpu_seconds_total",
    "process_threads",
    "process_start_time_seconds",
];

#[test]
fn runbook_metrics_and_stats_fields_are_there() {
    let node = TestNode::start("");
    // HTTP series appear with the first request of their labels.
    assert_eq!(node.get("/stats").0, 200);
    let text = node.metrics_text();
    for name in RUNBOOK_METRICS {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "metric {name} missing from /metrics:\n{text}"
        );
    }
    for actor in ["mempool", "executor", "block_producer"] {
        for reason in ["stuck", "dead"] {
            let series =
                format!("accumen_actor_restarts_total{{actor=\"{actor}\",reason=\"{reason}\"}} 0");
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
    }
    let (code, stats) = node.get("/stats");
    assert_eq!(code, 200);
    for field in [
        "running",
        "block_height",
        "blocks_produced",
        "txs_processed",
        "uptime",
    ] {
        assert!(stats.get(field).is_some(), "/stats lacks {field}: {stats}");
    }
    assert!(stats["mempool_stats"].get("size").is_some());
    assert!(stats["mempool_stats"].get("accounts").is_some());
    let health = accumen::client::HttpClient::new(&node.health).unwrap();
    let (code, h) = health.get("/health").unwrap();
    assert_eq!(code, 200, "{h}");
    for field in ["status", "timestamp", "uptime", "version"] {
        assert!(h.get(field).is_some(), "/health lacks {field}: {h}");
    }
    assert_eq!(h["status"], "healthy");
    for path in ["/mempool/stats", "/execution/stats", "/bridge/stats"] {
        let (code, v) = node.get(path);
        assert_eq!(code, 200, "{path}: {v}");
    }
}

/// The value of the sample line starting with `series` (labels included), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Sends one raw HTTP/1.1 request and returns the status line (for methods the client lacks).
fn raw_request(base: &str, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn http_series_use_route_templates_and_bounded_labels() {
    let node = TestNode::start("");
    // A templated route, with different values: one series.
    for h in ["0", "1", "999999"] {
        let _ = node.get(&format!("/v1/blocks/{h}"));
    }
    // Random paths and made-up methods: one `unmatched` series per method label and status.
    for i in 0..20 {
        let (code, _) = node.get(&format!("/no/such/{i}/x{}", i * 7919));
        assert_eq!(code, 404);
    }
    for i in 0..5 {
        let line = raw_request(&node.api, &format!("BREW{i}"), &format!("/pot/{i}"));
        assert!(line.contains("404"), "{line}");
    }
    let health = accumen::client::HttpClient::new(&node.health).unwrap();
    assert_eq!(health.get("/health").unwrap().0, 200);

    let text = node.metrics_text();
    let blocks: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with(
                "accumen_http_requests_total{listener=\"api\",route=\"/v1/blocks/{height}\",method=\"GET\",",
            )
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(blocks, 3.0, "{text}");
    let unmatched = "accumen_http_requests_total{listener=\"api\",route=\"unmatched\"";
    assert_eq!(
        sample(
            &text,
            &format!("{unmatched},method=\"GET\",status=\"404\"}}")
        ),
        Some(20.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("{unmatched},method=\"other\",status=\"404\"}}")
        ),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with(unmatched)).count(),
        2,
        "random paths and methods must not make series:\n{text}"
    );
    for raw in ["/no/such", "BREW", "/pot/", "blocks/0", "blocks/999999"] {
        assert!(
            !text.contains(raw),
            "raw {raw:?} leaked into a label:\n{text}"
        );
    }
    assert_eq!(
        sample(
            &text,
            "accumen_http_request_duration_seconds_count{listener=\"health\",route=\"/health\",method=\"GET\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // The scrape itself is in flight while it is encoded.
    assert_eq!(
        sample(&text, "accumen_http_requests_in_flight"),
        Some(1.0),
        "{text}"
    );
    // Process metrics carry real values.
    assert!(
        sample(&text, "process_resident_memory_bytes").unwrap() > 1e6,
        "{text}"
    );
    assert!(sample(&text, "process_open_fds").unwrap() >= 3.0, "{text}");
    assert!(sample(&text, "process_threads").unwrap() >= 2.0, "{text}");
    let start = sample(&text, "process_start_time_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        start <= now + 1.0 && start > now - 3600.0,
        "{start} vs {now}"
    );
    // The runbook's `grep http` finds the HTTP series.
    assert!(text.lines().filter(|l| l.contains("http")).count() > 5);
}

const JSON_LOGGING: &str = "logging:\n  level: \"info\"\n  format: json\n";

#[test]
fn json_logging_writes_one_parseable_object_per_line() {
    let node = TestNode::start(JSON_LOGGING);
    // Every block, empty ones too, logs `block committed` with its fields.
    let committed = wait_for("a block committed line", Duration::from_secs(10), || {
        node.find_log("block committed")
    });
    let lines: Vec<String> = node.logs().lines().map(str::to_owned).collect();
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v[key].is_string(), "{key} missing: {line}");
        }
    }
    let v: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(v["level"], "INFO");
    assert!(v["target"].as_str().unwrap().starts_with("accumen"), "{v}");
    assert!(v["height"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["txs"].is_u64(), "{v}");
    let listening: Value = serde_json::from_str(&node.find_log("listening").unwrap()).unwrap();
    assert!(listening["api"].as_str().unwrap().starts_with("127.0.0.1:"));
}

/// Under journald (stderr is the stream `JOURNAL_STREAM` names) the node writes no timestamp of
/// its own; with `JOURNAL_STREAM` naming another file, it does.
#[test]
fn no_timestamp_when_stderr_is_the_journal() {
    use std::os::unix::fs::MetadataExt;
    for (format, journal) in [("json", true), ("text", true), ("json", false)] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let config = dir.join("node.yaml");
        let extra = format!("logging:\n  level: \"info\"\n  format: {format}\n");
        std::fs::write(&config, merge_yaml(&base_config(dir), &extra)).unwrap();
        let log_path = dir.join("stderr.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let meta = if journal {
            log.metadata().unwrap()
        } else {
            std::fs::metadata(&config).unwrap()
        };
        let mut child = std::process::Command::new(BIN)
            .arg("--role=sequencer")
            .arg(format!("--config={}", config.display()))
            .env_remove("RUST_LOG")
            .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let line = wait_for("the listening line", Duration::from_secs(60), || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("node exited early with {status}");
            }
            let text = std::fs::read_to_string(&log_path).unwrap();
            text.lines()
                .find(|l| l.contains("listening"))
                .map(str::to_owned)
        });
        let _ = child.kill();
        let _ = child.wait();
        let year = line.trim_start().starts_with("20");
        match (format, journal) {
            ("json", j) => {
                let v: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(v.get("timestamp").is_some(), !j, "{line}");
                assert_eq!(v["message"], "listening");
            }
            _ => {
                assert!(!year, "{line}");
                assert!(line.trim_start().starts_with("INFO"), "{line}");
            }
        }
    }
}
