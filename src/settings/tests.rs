//! Unit tests for settings loading. Tests pass an explicit environment, never the process one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// The runbook's "Key Configuration Parameters" block, verbatim: operators copy it.
const RUNBOOK_KEYS: &str = r#"
# Performance tuning
block_time: "10s"              # Block production interval
max_transactions: 1000         # Max txs per block
execution.workers: 8           # Worker threads
mempool.max_size: 50000       # Max pending transactions

# Resource limits
execution.gas_limit: 50000000  # Gas limit per transaction
wasm.max_memory_pages: 64     # WASM memory limit
execution.memory_limit: 128    # Engine memory limit

# Bridge configuration
bridge.enable_bridge: true     # Enable L0 integration
bridge.submitter.workers: 4    # Submission workers
bridge.stager.batch_size: 200  # Staging batch size

# Monitoring
metrics_addr: ":8081"          # Metrics endpoint
logging.level: "info"          # Log level
"#;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Writes `text` to `<tmp>/x.yaml`; returns the dir guard and the path.
fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn load_str(text: &str, env: Vec<(String, String)>) -> Result<Settings, SettingsError> {
    let (_dir, path) = write(text);
    Settings::load_from(&path, env)
}

/// The error text, with the temp path replaced by `config/x.yaml` so assertions read plainly.
fn err_text(text: &str, env: Vec<(String, String)>) -> String {
    let (_dir, path) = write(text);
    let err = Settings::load_from(&path, env).unwrap_err();
    err.to_string()
        .replace(&path.display().to_string(), "config/x.yaml")
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn addr(s: &str) -> ListenAddr {
    ListenAddr(s.parse::<SocketAddr>().unwrap())
}

#[test]
fn defaults_from_empty_file() {
    let s = load_str("", no_env()).unwrap();
    assert_eq!(s, Settings::default());
    assert_eq!(s.chain_id, "accumen-local");
    assert_eq!(s.block_time, Duration::from_secs(1));
    assert_eq!(s.max_transactions, 1000);
    assert_eq!(s.storage, StorageKind::Memory);
    assert_eq!(s.data_dir, PathBuf::from("data"));
    assert_eq!(s.sequencer_key, None);
    assert_eq!(s.api_addr, addr("127.0.0.1:8080"));
    assert_eq!(s.metrics_addr, addr("127.0.0.1:8081"));
    assert_eq!(s.health_addr, addr("127.0.0.1:8082"));
    assert_eq!(s.admin_addr, addr("127.0.0.1:8083"));
    assert!(!s.admin_allow_non_loopback);
    assert_eq!(s.api.max_body_bytes, 4 * 1024 * 1024);
    assert_eq!(s.api.max_batch, 10_000);
    assert_eq!(s.api.max_body_bytes_in_flight, 32 * 1024 * 1024);
    assert_eq!(s.api.max_connections, 512);
    assert_eq!(s.api.request_timeout, Duration::from_secs(5));
    assert_eq!(s.api.body_timeout, Duration::from_secs(20));
    assert_eq!(s.api.keep_alive, Duration::from_secs(5));
    assert_eq!(s.api.idle_timeout, Duration::from_secs(10));
    assert_eq!(s.api.query_gas_limit, 10_000_000);
    assert_eq!(s.execution.workers, 2);
    assert_eq!(s.execution.gas_limit, 50_000_000);
    assert_eq!(s.execution.memory_limit, 128);
    assert_eq!(s.execution.queue_size, 1000);
    assert_eq!(s.execution.timeout, Duration::from_secs(2));
    assert_eq!(s.wasm.max_memory_pages, 64);
    assert_eq!(s.mempool.max_size, 50_000);
    assert_eq!(s.mempool.account_limit, 1000);
    assert_eq!(s.mempool.max_bytes, 128 * 1024 * 1024);
    assert_eq!(s.mempool.future_limit, 16);
    assert_eq!(s.mempool.future_ttl, Duration::from_secs(60));
    assert!(!s.mempool.persist);
    assert!(!s.bridge.enable_bridge);
    assert_eq!(s.bridge.submitter.workers, 4);
    assert_eq!(s.bridge.stager.batch_size, 200);
    assert_eq!(s.bridge.stager.flush_interval, Duration::from_secs(1));
    assert_eq!(s.logging.level, "info");
    assert_eq!(s.logging.format, LogFormat::Text);
    assert_eq!(s.supervisor.heartbeat_interval, Duration::from_secs(1));
    assert_eq!(s.supervisor.heartbeat_timeout, Duration::from_secs(10));
    assert_eq!(s.supervisor.max_restarts, 5);
    assert_eq!(s.supervisor.restart_window, Duration::from_secs(60));
    Settings::default().validate().unwrap();
}

#[test]
fn comment_only_file_and_empty_sections_are_defaults() {
    let s = load_str("# nothing yet\nexecution:\nbridge:\n  stager:\n", no_env()).unwrap();
    assert_eq!(s, Settings::default());
}

/// The runbook block plus the `bridge.l0.*` keys an anchoring node needs (issue 8), with the key
/// file at `key`.
fn runbook_keys_with_l0(key: &Path) -> String {
    format!(
        "{RUNBOOK_KEYS}\nbridge.l0.endpoint: \"https://mainnet.accumulatenetwork.io/v3\"\n\
         bridge.l0.data_account: \"acc://accumen.acme/anchors\"\n\
         bridge.l0.key_page: \"acc://accumen.acme/book/1\"\n\
         bridge.l0.key_file: {:?}\n",
        key.display().to_string()
    )
}

#[test]
fn runbook_key_block_loads_as_written() {
    // The block enables the bridge, which now needs to know where and as whom to anchor: alone
    // it is refused, naming exactly the four missing keys.
    let err = load_str(RUNBOOK_KEYS, no_env()).unwrap_err();
    let keys: Vec<String> = err
        .errors()
        .iter()
        .map(|e| match e {
            SettingsError::Invalid { key, .. } => key.clone(),
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(
        keys,
        [
            "bridge.l0.endpoint",
            "bridge.l0.data_account",
            "bridge.l0.key_page",
            "bridge.l0.key_file"
        ]
    );
    let (_dir, key) = key_file();
    let s = load_str(&runbook_keys_with_l0(&key), no_env()).unwrap();
    assert_eq!(s.block_time, Duration::from_secs(10));
    assert_eq!(s.max_transactions, 1000);
    assert_eq!(s.execution.workers, 8);
    assert_eq!(s.mempool.max_size, 50_000);
    assert_eq!(s.execution.gas_limit, 50_000_000);
    assert_eq!(s.wasm.max_memory_pages, 64);
    assert_eq!(s.execution.memory_limit, 128);
    assert!(s.bridge.enable_bridge);
    assert_eq!(s.bridge.submitter.workers, 4);
    assert_eq!(s.bridge.stager.batch_size, 200);
    assert_eq!(s.metrics_addr, addr("0.0.0.0:8081"));
    assert_eq!(s.logging.level, "info");
    // Keys the block does not mention keep their defaults.
    assert_eq!(s.execution.queue_size, 1000);
    assert_eq!(s.api_addr, addr("127.0.0.1:8080"));
}

#[test]
fn dotted_and_nested_keys_mix() {
    let s = load_str(
        "execution.workers: 3\nexecution:\n  queue_size: 7\nbridge:\n  stager.batch_size: 9\n",
        no_env(),
    )
    .unwrap();
    assert_eq!(s.execution.workers, 3);
    assert_eq!(s.execution.queue_size, 7);
    assert_eq!(s.bridge.stager.batch_size, 9);
}

#[test]
fn same_key_dotted_and_nested_is_an_error() {
    let text = err_text(
        "execution.workers: 8\nexecution:\n  workers: 16\n",
        no_env(),
    );
    assert_eq!(
        text,
        "config/x.yaml: `execution.workers` is given more than once \
         (nested and dotted forms name the same key)"
    );
}

#[test]
fn profiles_load() {
    let high =
        Settings::load_from(&repo_file("config/profiles/high-throughput.yaml"), no_env()).unwrap();
    assert_eq!(high.block_time, Duration::from_secs(1));
    assert_eq!(high.max_transactions, 5000);
    assert_eq!(high.execution.workers, 16);
    assert_eq!(high.execution.queue_size, 10_000);
    assert_eq!(high.mempool.max_size, 100_000);
    assert_eq!(high.mempool.account_limit, 5000);

    let low =
        Settings::load_from(&repo_file("config/profiles/low-latency.yaml"), no_env()).unwrap();
    assert_eq!(low.block_time, Duration::from_millis(500));
    assert_eq!(low.max_transactions, 100);
    assert_eq!(low.execution.workers, 4);
    assert_eq!(low.execution.timeout, Duration::from_secs(5));
    assert_eq!(low.bridge.stager.flush_interval, Duration::from_millis(100));

    let small = Settings::load_from(
        &repo_file("config/profiles/resource-constrained.yaml"),
        no_env(),
    )
    .unwrap();
    assert_eq!(small.execution.workers, 2);
    assert_eq!(small.execution.memory_limit, 16);
    assert_eq!(small.wasm.max_memory_pages, 8);
    assert_eq!(small.mempool.max_size, 5000);
}

#[test]
fn environment_configs_load() {
    let local = Settings::load_from(&repo_file("config/local.yaml"), no_env()).unwrap();
    assert_eq!(local.block_time, Duration::from_secs(1));
    assert_eq!(local.logging.level, "debug");
    assert!(!local.bridge.enable_bridge);
    assert_eq!(local.storage, StorageKind::Memory);
    assert_eq!(local.api_addr, addr("127.0.0.1:8080"));
    assert_eq!(local.metrics_addr, addr("127.0.0.1:8081"));
    assert_eq!(local.health_addr, addr("127.0.0.1:8082"));
    assert_eq!(local.sequencer_key_path(), None);

    // The profiles that anchor need their L0 key file, which lives on the server: point it at
    // a real key here (the refusal without it is `l0_profiles_need_their_key_file`).
    let (_dir, key) = key_file();
    let key_env = || env(&[("ACCUMEN_BRIDGE__L0__KEY_FILE", key.to_str().unwrap())]);
    let staging = Settings::load_from(&repo_file("config/staging.yaml"), key_env()).unwrap();
    assert_eq!(staging.block_time, Duration::from_secs(5));
    assert_eq!(staging.logging.level, "info");
    assert!(staging.bridge.enable_bridge);
    assert_eq!(staging.storage, StorageKind::Persistent);
    assert_eq!(staging.data_dir, PathBuf::from("/var/lib/accumen"));

    assert_eq!(
        staging.bridge.l0.endpoint.as_deref(),
        Some("https://kermit.accumulatenetwork.io/v3"),
        "staging anchors on the testnet"
    );
    let prod = Settings::load_from(&repo_file("config/production.yaml"), key_env()).unwrap();
    assert_eq!(
        prod.bridge.l0.endpoint.as_deref(),
        Some("https://mainnet.accumulatenetwork.io/v3"),
        "production anchors on mainnet"
    );
    for s in [&staging, &prod] {
        assert_eq!(
            s.bridge.l0.data_account.as_deref(),
            Some("acc://accumen.acme/anchors")
        );
        assert_eq!(
            s.bridge.l0.key_page.as_deref(),
            Some("acc://accumen.acme/book/1")
        );
        assert_eq!(s.bridge.max_backlog, 1000);
    }
    assert_eq!(prod.block_time, Duration::from_secs(10));
    assert_eq!(prod.logging.level, "warn");
    assert!(prod.bridge.enable_bridge);
    assert_eq!(prod.storage, StorageKind::Persistent);
    assert_eq!(prod.api_addr, addr("0.0.0.0:8080"));
    assert_eq!(prod.metrics_addr, addr("0.0.0.0:8081"));
    assert_eq!(prod.health_addr, addr("0.0.0.0:8082"));
    assert_eq!(
        prod.sequencer_key_path(),
        Some(PathBuf::from("/var/lib/accumen/sequencer.key"))
    );
}

#[test]
fn environment_overrides_file() {
    let file = "block_time: 2s\nexecution:\n  workers: 3\nmetrics_addr: \"127.0.0.1:8081\"\n";
    let s = load_str(
        file,
        env(&[
            ("ACCUMEN_EXECUTION__WORKERS", "4"),
            ("ACCUMEN_BLOCK_TIME", "500ms"),
            ("ACCUMEN_METRICS_ADDR", ":9999"),
            ("ACCUMEN_MEMPOOL__MAX_SIZE", "10"),
            ("ACCUMEN_MEMPOOL__ACCOUNT_LIMIT", "10"),
            ("ACCUMEN_BRIDGE__STAGER__BATCH_SIZE", "7"),
            ("ACCUMEN_MEMPOOL__PERSIST", "true"),
            // Not ours: ignored.
            ("PATH", "/usr/bin"),
            ("ACCUMENX", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(s.execution.workers, 4);
    assert_eq!(s.block_time, Duration::from_millis(500));
    assert_eq!(s.metrics_addr, addr("0.0.0.0:9999"));
    assert_eq!(s.mempool.max_size, 10);
    assert_eq!(s.bridge.stager.batch_size, 7);
    assert!(s.mempool.persist);
}

#[test]
fn environment_overrides_a_dotted_file_key() {
    let s = load_str(
        "execution.workers: 8\n",
        env(&[("ACCUMEN_EXECUTION__WORKERS", "5")]),
    )
    .unwrap();
    assert_eq!(s.execution.workers, 5);
}

#[test]
fn single_underscore_section_separator_is_an_unknown_key() {
    // ACCUMEN_EXECUTION_WORKERS (one "_") is a typo for ACCUMEN_EXECUTION__WORKERS; it must not
    // be silently ignored.
    let text = err_text("", env(&[("ACCUMEN_EXECUTION_WORKERS", "4")]));
    assert_eq!(
        text,
        "environment variable ACCUMEN_EXECUTION_WORKERS: unknown key `execution_workers`"
    );
}

#[test]
fn environment_type_error_names_the_variable() {
    let text = err_text("", env(&[("ACCUMEN_EXECUTION__WORKERS", "many")]));
    assert_eq!(
        text,
        "environment variable ACCUMEN_EXECUTION__WORKERS: execution.workers: invalid type: \
         string \"many\", expected an integer"
    );
    let text = err_text("", env(&[("ACCUMEN_EXECUTION__TIMEOUT", "forever")]));
    assert!(
        text.starts_with("environment variable ACCUMEN_EXECUTION__TIMEOUT: execution.timeout: "),
        "{text}"
    );
}

#[test]
fn unknown_top_level_key_names_key_and_file() {
    assert_eq!(
        err_text("blocktime: 1s\n", no_env()),
        "config/x.yaml: unknown key `blocktime`"
    );
}

#[test]
fn unknown_nested_key_names_full_path_and_file() {
    assert_eq!(
        err_text("mempool:\n  maxsize: 10\n", no_env()),
        "config/x.yaml: unknown key `mempool.maxsize`"
    );
    assert_eq!(
        err_text("mempool.maxsize: 10\n", no_env()),
        "config/x.yaml: unknown key `mempool.maxsize`"
    );
    assert_eq!(
        err_text("bridge:\n  stager:\n    flush: 1s\n", no_env()),
        "config/x.yaml: unknown key `bridge.stager.flush`"
    );
}

#[test]
fn every_unknown_key_is_reported() {
    let (_dir, path) = write("blocktime: 1s\nexecution:\n  worker: 2\nwasm.pages: 3\n");
    let err = Settings::load_from(&path, no_env()).unwrap_err();
    let keys: Vec<String> = err
        .errors()
        .iter()
        .map(|e| match e {
            SettingsError::UnknownKey { key, origin } => {
                assert_eq!(*origin, Origin::File(path.clone()));
                key.clone()
            }
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(keys, ["blocktime", "execution.worker", "wasm.pages"]);
}

#[test]
fn wrong_type_names_key_and_file() {
    assert_eq!(
        err_text("execution:\n  workers: many\n", no_env()),
        "config/x.yaml: execution.workers: invalid type: string \"many\", expected an integer"
    );
    assert_eq!(
        err_text("execution.workers: 1.5\n", no_env()),
        "config/x.yaml: execution.workers: invalid type: floating point `1.5`, expected an integer"
    );
    assert_eq!(
        err_text("mempool:\n  persist: 1\n", no_env()),
        "config/x.yaml: mempool.persist: invalid type: integer `1`, expected a boolean"
    );
    assert_eq!(
        err_text("storage: disk\n", no_env()),
        "config/x.yaml: storage: unknown storage \"disk\", expected \"memory\" or \"persistent\""
    );
    assert_eq!(
        err_text("logging:\n  format: xml\n", no_env()),
        "config/x.yaml: logging.format: unknown format \"xml\", expected \"text\" or \"json\""
    );
    assert_eq!(
        err_text("execution: 5\n", no_env()),
        "config/x.yaml: execution: invalid type: integer `5`, expected a section of nested keys"
    );
}

#[test]
fn listen_addr_forms() {
    let parse = |s: &str| s.parse::<ListenAddr>();
    assert_eq!(parse(":8081").unwrap(), addr("0.0.0.0:8081"));
    assert_eq!(parse("127.0.0.1:8080").unwrap(), addr("127.0.0.1:8080"));
    assert_eq!(parse("[::1]:8080").unwrap(), addr("[::1]:8080"));
    assert_eq!(parse("localhost:8080").unwrap(), addr("127.0.0.1:8080"));
    assert_eq!(parse("LOCALHOST:1").unwrap(), addr("127.0.0.1:1"));
    assert_eq!(parse("127.0.0.1:0").unwrap(), addr("127.0.0.1:0"));
    for bad in [
        "",
        ":",
        "8080",
        ":http",
        ":70000",
        "example.com:80",
        "::1:8080",
        "127.0.0.1",
    ] {
        assert!(parse(bad).is_err(), "{bad:?} should not parse");
    }
    assert_eq!(parse(":8081").unwrap().to_string(), "0.0.0.0:8081");
    assert_eq!(
        serde_json::to_string(&parse("[::1]:80").unwrap()).unwrap(),
        "\"[::1]:80\""
    );

    let s = load_str("metrics_addr: \":8081\"\napi_addr: \"[::1]:0\"\n", no_env()).unwrap();
    assert_eq!(s.metrics_addr, addr("0.0.0.0:8081"));
    assert_eq!(s.api_addr, addr("[::1]:0"));
    let text = err_text("health_addr: \"example.com:80\"\n", no_env());
    assert!(
        text.starts_with("config/x.yaml: health_addr: invalid listen address \"example.com:80\""),
        "{text}"
    );
}

#[test]
fn bad_durations() {
    assert_eq!(
        err_text("block_time: soon\n", no_env()),
        "config/x.yaml: block_time: invalid value: string \"soon\", expected a duration \
         such as \"1s\", \"500ms\" or \"1m 30s\""
    );
    // A bare number has no unit: refused rather than guessed.
    let text = err_text("execution:\n  timeout: 5\n", no_env());
    assert!(
        text.starts_with("config/x.yaml: execution.timeout: "),
        "{text}"
    );
    let text = err_text("bridge.stager.flush_interval: -1s\n", no_env());
    assert!(
        text.starts_with("config/x.yaml: bridge.stager.flush_interval: "),
        "{text}"
    );
    // Well-formed but too short: a validation error naming the key.
    assert_eq!(
        err_text("block_time: 5ms\n", no_env()),
        "config/x.yaml: block_time must be at least 10ms, got 5ms"
    );
}

#[test]
fn memory_limit_rule_is_reported_at_load() {
    assert_eq!(
        err_text(
            "execution.workers: 16\nexecution.memory_limit: 16\n",
            no_env()
        ),
        "config/x.yaml: execution.memory_limit = 16 MB cannot hold execution.workers = 16 calls \
         of wasm.max_memory_pages = 64 pages (64 KiB each): needs at least 64 MB"
    );
    // Blamed on the variable when the variable set the key.
    let text = err_text("", env(&[("ACCUMEN_EXECUTION__MEMORY_LIMIT", "1")]));
    assert!(
        text.starts_with(
            "environment variable ACCUMEN_EXECUTION__MEMORY_LIMIT: execution.memory_limit = 1 MB"
        ),
        "{text}"
    );
}

#[test]
fn all_broken_rules_are_reported() {
    let (_dir, path) = write(
        "max_transactions: 0\nchain_id: \"\"\nmempool:\n  max_size: 10\n  account_limit: 20\n\
         logging.level: verbose\nwasm.max_memory_pages: 0\n",
    );
    let err = Settings::load_from(&path, no_env()).unwrap_err();
    let keys: Vec<&str> = err
        .errors()
        .iter()
        .map(|e| match e {
            SettingsError::Invalid { key, origin, .. } => {
                assert_eq!(*origin, Origin::File(path.clone()));
                key.as_str()
            }
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(
        keys,
        [
            "chain_id",
            "max_transactions",
            "wasm.max_memory_pages",
            "mempool.account_limit",
            "logging.level",
        ]
    );
}

#[test]
fn logging_format_from_file_and_env() {
    let (_dir, path) = write("logging.format: json\n");
    let s = Settings::load_from(&path, no_env()).unwrap();
    assert_eq!(s.logging.format, LogFormat::Json);
    let s = Settings::load_from(&path, env(&[("ACCUMEN_LOGGING__FORMAT", "text")])).unwrap();
    assert_eq!(s.logging.format, LogFormat::Text);
    let err = Settings::load_from(&path, env(&[("ACCUMEN_LOGGING__FORMAT", "JSON ")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("logging.format"), "{err}");
    assert!(err.contains("expected \"text\" or \"json\""), "{err}");
}

#[test]
fn logging_levels() {
    for ok in [
        "info",
        "WARN",
        "off",
        "trace",
        "info,accumen=debug",
        "accumen::node=trace",
    ] {
        let s = Settings {
            logging: LoggingSettings {
                level: ok.to_owned(),
                ..LoggingSettings::default()
            },
            ..Settings::default()
        };
        // "accumen::node=trace" contains '=', so it goes to EnvFilter.
        assert!(s.validate().is_ok(), "{ok:?} should be accepted");
    }
    for bad in ["", "verbose", "accumen=loud", "info,"] {
        let s = Settings {
            logging: LoggingSettings {
                level: bad.to_owned(),
                ..LoggingSettings::default()
            },
            ..Settings::default()
        };
        let err = s.validate();
        if bad == "info," {
            // EnvFilter accepts a trailing comma; documented here so a change is noticed.
            assert!(err.is_ok());
            continue;
        }
        let text = err.unwrap_err().to_string();
        assert!(
            text.starts_with("settings: logging.level"),
            "{bad:?}: {text}"
        );
    }
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yaml");
    let err = Settings::load_from(&path, no_env()).unwrap_err();
    assert!(matches!(err, SettingsError::NotFound { .. }));
    assert_eq!(err.to_string(), format!("{}: not found", path.display()));
}

#[test]
fn config_check_fails_on_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(config_check(&dir.path().join("nope.yaml")), 1);
}

#[test]
fn yaml_syntax_error_names_file() {
    let text = err_text("execution: [1, 2\n", no_env());
    assert!(text.starts_with("config/x.yaml: invalid YAML: "), "{text}");
}

#[test]
fn vm_config_follows_settings() {
    let mut s = Settings::default();
    let vm = s.vm_config();
    assert_eq!(vm.workers, 2);
    assert_eq!(vm.memory_limit_mb, 128);
    assert_eq!(vm.max_memory_pages, 64);
    assert_eq!(vm.timeout, Duration::from_secs(2));
    assert_eq!(vm.cache_dir, None);
    s.storage = StorageKind::Persistent;
    s.data_dir = PathBuf::from("/srv/acc");
    assert_eq!(
        s.vm_config().cache_dir,
        Some(PathBuf::from("/srv/acc/modules"))
    );
    assert_eq!(
        s.sequencer_key_path(),
        Some(PathBuf::from("/srv/acc/sequencer.key"))
    );
    s.sequencer_key = Some(PathBuf::from("/etc/accumen/key"));
    assert_eq!(
        s.sequencer_key_path(),
        Some(PathBuf::from("/etc/accumen/key"))
    );
}

#[test]
fn pretty_json_round_trips() {
    let (_dir, key) = key_file();
    let s = load_str(&runbook_keys_with_l0(&key), no_env()).unwrap();
    let json = s.to_pretty_json();
    assert!(json.contains("\"block_time\": \"10s\""), "{json}");
    assert!(
        json.contains("\"metrics_addr\": \"0.0.0.0:8081\""),
        "{json}"
    );
    let back: Settings = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

/// Documents what config 0.15 itself does with a dotted key in a YAML file, the reason
/// `source.rs` nests keys itself: config nests a dotted key only at the top level of the file
/// (when the builder merges the file's map), and keeps a dotted key below that as one literal
/// key.
#[test]
fn config_crate_dotted_key_behaviour() {
    use config::{Config, File, FileFormat, Source as _};

    let text = "execution.workers: 8\nbridge:\n  stager.batch_size: 3\n";
    // The file source alone keeps the dotted key as written.
    let raw = File::from_str(text, FileFormat::Yaml).collect().unwrap();
    assert!(raw.contains_key("execution.workers"));

    let built = Config::builder()
        .add_source(File::from_str(text, FileFormat::Yaml))
        .build()
        .unwrap();
    assert_eq!(built.get::<u64>("execution.workers").unwrap(), 8);
    let bridge = built.get_table("bridge").unwrap();
    assert!(bridge.contains_key("stager.batch_size"));
    assert!(!bridge.contains_key("stager"));
}

#[test]
fn duplicate_yaml_key_is_an_error() {
    let text = err_text("block_time: 1s\nblock_time: 2s\n", no_env());
    assert!(text.starts_with("config/x.yaml: invalid YAML: "), "{text}");
    assert!(text.contains("duplicated key"), "{text}");
}

/// The keys a config file is refused for (empty: it loads).
fn invalid_keys(text: &str) -> Vec<String> {
    let (_dir, path) = write(text);
    match Settings::load_from(&path, no_env()) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .errors()
            .iter()
            .map(|e| match e {
                SettingsError::Invalid { key, .. } => key.clone(),
                other => panic!("unexpected {other}"),
            })
            .collect(),
    }
}

#[test]
fn storage_cache_rule() {
    let keys = invalid_keys;
    assert_eq!(Settings::default().storage_cache_mb, 64);
    assert_eq!(keys("storage_cache_mb: 0"), ["storage_cache_mb"]);
    assert_eq!(keys("storage_cache_mb: 3"), ["storage_cache_mb"]);
    assert_eq!(keys("storage_cache_mb: 4097"), ["storage_cache_mb"]);
    assert!(keys("storage_cache_mb: 4").is_empty());
    assert!(keys("storage_cache_mb: 4096").is_empty());
    assert!(keys("storage: persistent\nstorage_cache_mb: 16\n").is_empty());
    let (_dir, path) = write("storage_cache_mb: 16\n");
    let loaded = Settings::load_from(&path, no_env()).unwrap();
    assert_eq!(loaded.storage_cache_mb, 16);
}

#[test]
fn api_limit_rules() {
    let keys = invalid_keys;
    assert!(keys("api:\n  max_connections: 1\n  query_gas_limit: 1\n").is_empty());
    assert_eq!(keys("api.max_body_bytes: 0"), ["api.max_body_bytes"]);
    assert_eq!(
        keys("api:\n  max_body_bytes: 67108865\n  max_body_bytes_in_flight: 200000000\n"),
        ["api.max_body_bytes"]
    );
    assert_eq!(
        keys("api:\n  max_body_bytes: 2000\n  max_batch: 1\n  max_body_bytes_in_flight: 2639\n"),
        ["api.max_body_bytes_in_flight"],
        "2000 + 1 × 640 does not fit"
    );
    assert!(
        keys("api:\n  max_body_bytes: 2000\n  max_batch: 1\n  max_body_bytes_in_flight: 2640\n")
            .is_empty()
    );
    assert_eq!(keys("api.max_connections: 0"), ["api.max_connections"]);
    assert_eq!(keys("api.body_timeout: 1ms"), ["api.body_timeout"]);
    assert_eq!(
        keys("api:\n  keep_alive: 30s\n  idle_timeout: 20s\n"),
        ["api.idle_timeout"]
    );
    assert_eq!(
        keys("api:\n  request_timeout: 30s\n"),
        ["api.idle_timeout"],
        "the 10s default watchdog would preempt a 30s request timeout"
    );
    assert_eq!(keys("api.query_gas_limit: 0"), ["api.query_gas_limit"]);
    assert_eq!(
        keys("api.max_queued_queries: 0"),
        ["api.max_queued_queries"]
    );
    assert!(keys("api.max_queued_queries: 1").is_empty());
    assert_eq!(keys("api.admission_nice: -1"), ["api.admission_nice"]);
    assert_eq!(keys("api.admission_nice: 20"), ["api.admission_nice"]);
    assert!(keys("api.admission_nice: 0").is_empty());
    assert!(keys("api.admission_nice: 19").is_empty());
    assert_eq!(
        keys("api.rate_limit.max_clients: 0"),
        ["api.rate_limit.max_clients"]
    );
    assert_eq!(
        keys("api:\n  rate_limit:\n    writes:\n      per_second: 5\n      burst: 0\n"),
        ["api.rate_limit.writes.burst"]
    );
    assert!(
        keys("api.rate_limit.reads.burst: 0").is_empty(),
        "off: burst unused"
    );
    assert!(
        keys("api:\n  rate_limit:\n    reads:\n      per_second: 5\n      burst: 1\n").is_empty()
    );
    assert_eq!(
        keys("api.query_gas_limit: 50000001"),
        ["api.query_gas_limit"],
        "above execution.gas_limit"
    );
    assert!(keys("execution.gas_limit: 100\napi.query_gas_limit: 100\n").is_empty());
}

/// `api.tls.*`: both files or neither, the missing one named; files are read at start, not here.
#[test]
fn api_tls_keys() {
    let keys = |yaml: &str| -> Vec<String> {
        match load_str(yaml, no_env()) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .errors()
                .into_iter()
                .filter_map(|e| match e {
                    SettingsError::Invalid { key, .. } => Some(key.clone()),
                    _ => None,
                })
                .collect(),
        }
    };
    let s = load_str("", no_env()).unwrap();
    assert!(!s.api.tls.enabled(), "plain HTTP by default");
    let s = load_str(
        "api:\n  tls:\n    cert_file: /etc/accumen/tls/cert.pem\n    key_file: \
         /etc/accumen/tls/key.pem\n    handshake_timeout: 2s\n",
        no_env(),
    )
    .unwrap();
    assert!(s.api.tls.enabled());
    assert_eq!(s.api.tls.handshake_timeout, Duration::from_secs(2));
    assert_eq!(keys("api.tls.cert_file: c.pem"), ["api.tls.key_file"]);
    assert_eq!(keys("api.tls.key_file: k.pem"), ["api.tls.cert_file"]);
    let e = err_text("api.tls.cert_file: c.pem", no_env());
    assert!(e.contains("api.tls.key_file is not"), "{e}");
    assert_eq!(
        keys("api.tls.cert_file: \"\"\napi.tls.key_file: k.pem\n"),
        ["api.tls.cert_file"]
    );
    assert_eq!(
        keys("api.tls.handshake_timeout: 1ms"),
        ["api.tls.handshake_timeout"]
    );
    let e = err_text("api.tls.cert: c.pem", no_env());
    assert!(e.contains("api.tls.cert"), "{e}");
}

#[test]
fn mempool_byte_and_future_keys() {
    let s = load_str(
        "mempool:\n  max_bytes: 1000000\n  future_limit: 0\n  future_ttl: 500ms\n",
        no_env(),
    )
    .unwrap();
    assert_eq!(s.mempool.max_bytes, 1_000_000);
    assert_eq!(s.mempool.future_limit, 0);
    assert_eq!(s.mempool.future_ttl, Duration::from_millis(500));
    // The pool must hold at least one largest transaction.
    assert_eq!(
        err_text("mempool.max_bytes: 1000\n", no_env()),
        "config/x.yaml: mempool.max_bytes = 1000 is below the largest transaction (528384 \
         bytes)"
    );
    assert_eq!(
        err_text("mempool.future_ttl: 1ms\n", no_env()),
        "config/x.yaml: mempool.future_ttl must be at least 10ms, got 1ms"
    );
    let text = err_text("mempool.future_ttl: 5\n", no_env());
    assert!(
        text.starts_with("config/x.yaml: mempool.future_ttl: "),
        "{text}"
    );
}

#[test]
fn execution_timeout_must_be_below_the_heartbeat_deadline() {
    for (timeout, heartbeat) in [("5s", "5s"), ("6s", "5s")] {
        let text = err_text(
            &format!(
                "execution:\n  timeout: \"{timeout}\"\nsupervisor:\n  heartbeat_timeout: \"{heartbeat}\"\n"
            ),
            no_env(),
        );
        assert!(
            text.starts_with(&format!(
                "config/x.yaml: execution.timeout = {timeout} must be below \
                 supervisor.heartbeat_timeout = {heartbeat}"
            )),
            "{text}"
        );
    }
    // Either key may come from the environment; the rule still holds across sources.
    let text = err_text(
        "execution:\n  timeout: \"3s\"\n",
        env(&[("ACCUMEN_SUPERVISOR__HEARTBEAT_TIMEOUT", "3s")]),
    );
    assert!(
        text.contains("must be below supervisor.heartbeat_timeout = 3s"),
        "{text}"
    );
    // The dotted runbook form and a margin of any size are fine.
    let s = load_str(
        "execution.timeout: \"4s\"\nsupervisor.heartbeat_timeout: \"4500ms\"\n",
        no_env(),
    )
    .unwrap();
    assert_eq!(s.execution.timeout, Duration::from_secs(4));
    // The seed runbook's low-latency profile (execution.timeout 5s) loads on the default deadline.
    assert!(
        Settings::default().execution.timeout < Settings::default().supervisor.heartbeat_timeout
    );
}

#[test]
fn execution_gas_limit_cannot_exceed_the_block_gas_limit() {
    let block = accumen_actors::vm::gas::MAX_BLOCK_GAS;
    let text = err_text(&format!("execution.gas_limit: {}\n", block + 1), no_env());
    assert_eq!(
        text,
        format!(
            "config/x.yaml: execution.gas_limit = {} exceeds the chain's per-block gas limit {block}",
            block + 1
        )
    );
    let s = load_str(&format!("execution.gas_limit: {block}\n"), no_env()).unwrap();
    assert_eq!(s.execution.gas_limit, block);
}

/// `supervisor.*` is the supervisor's own `SupervisorConfig` (no copy in the shell): the keys
/// load from the file and the environment straight into the value the supervisor runs with,
/// unknown keys in the section are named, and too-short durations are refused as before.
#[test]
fn supervisor_section_is_the_supervisor_config() {
    let s = load_str(
        "supervisor:\n  heartbeat_interval: \"250ms\"\n  max_restarts: 9\n",
        env(&[("ACCUMEN_SUPERVISOR__RESTART_WINDOW", "2m")]),
    )
    .unwrap();
    let want = accumen_actors::supervisor::SupervisorConfig {
        heartbeat_interval: Duration::from_millis(250),
        max_restarts: 9,
        restart_window: Duration::from_secs(120),
        ..Default::default()
    };
    assert_eq!(s.supervisor, want);
    assert_eq!(
        Settings::default().supervisor,
        accumen_actors::supervisor::SupervisorConfig::default()
    );

    let text = err_text("supervisor:\n  heartbeat_intervall: \"1s\"\n", no_env());
    assert!(
        text.contains("supervisor.heartbeat_intervall"),
        "unknown key named: {text}"
    );
    let text = err_text("supervisor.heartbeat_interval: \"1ms\"\n", no_env());
    assert!(text.contains("supervisor.heartbeat_interval"), "{text}");
}

#[test]
fn a_new_chain_takes_its_params_from_the_config_an_existing_one_keeps_its_own() {
    let s = load_str(
        "chain_id: c\nexecution.gas_limit: 1234567\napi.query_gas_limit: 1000\nwasm.max_memory_pages: 32\n",
        no_env(),
    )
    .unwrap();
    let new = s.chain_params();
    assert_eq!(new, ChainParams::new("c", 1_234_567, 32));
    // A new chain: nothing overridden.
    assert_eq!(s.reconcile_chain(&new).unwrap().overrides, Vec::new());

    // An existing chain created with other values: they rule, the VM runs them.
    let chain = ChainParams::new("c", 7_000_000, 16);
    let r = s.reconcile_chain(&chain).unwrap();
    assert_eq!(r.params, chain);
    let keys: Vec<_> = r
        .overrides
        .iter()
        .map(|o| (o.key, o.config, o.chain))
        .collect();
    assert_eq!(
        keys,
        [
            ("execution.gas_limit", 1_234_567, 7_000_000),
            ("wasm.max_memory_pages", 32, 16)
        ]
    );
    let vm = s.vm_config_for(&r.params);
    assert_eq!(vm.max_memory_pages, 16);
    assert_eq!(vm.workers, s.execution.workers);
    assert_eq!(vm.memory_limit_mb, s.execution.memory_limit);

    // One whose pages do not fit this node's memory limit and workers is refused.
    let huge = ChainParams::new("c", 7_000_000, 65_536);
    assert!(matches!(
        s.reconcile_chain(&huge),
        Err(ParamsError::Memory { pages: 65_536, .. })
    ));
}

// ---- bridge.* ----

/// A valid key file (as `accumen key generate` writes it) in a temp dir.
fn key_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l0.key");
    crate::keyfile::create(&path, &accumen_actors::types::Keypair::from_seed([5; 32])).unwrap();
    (dir, path)
}

/// A config enabling the bridge with every L0 key valid except what `lines` overrides (dotted
/// keys, which win over nothing since each is given once).
fn bridge_yaml(key: &Path, overrides: &[(&str, &str)]) -> String {
    let mut keys = vec![
        ("bridge.enable_bridge", "true".to_owned()),
        (
            "bridge.l0.endpoint",
            "\"https://mainnet.accumulatenetwork.io/v3\"".to_owned(),
        ),
        (
            "bridge.l0.data_account",
            "\"acc://accumen.acme/anchors\"".to_owned(),
        ),
        (
            "bridge.l0.key_page",
            "\"acc://accumen.acme/book/1\"".to_owned(),
        ),
        (
            "bridge.l0.key_file",
            format!("{:?}", key.display().to_string()),
        ),
    ];
    for (k, v) in overrides {
        keys.retain(|(key, _)| key != k);
        if !v.is_empty() {
            keys.push((k, (*v).to_owned()));
        }
    }
    keys.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}

/// Every error of loading `text`, each as its text with the temp paths made readable.
fn all_errors(text: &str, env: Vec<(String, String)>) -> Vec<String> {
    let (_dir, path) = write(text);
    let err = Settings::load_from(&path, env).unwrap_err();
    err.errors()
        .iter()
        .map(|e| {
            e.to_string()
                .replace(&path.display().to_string(), "config/x.yaml")
        })
        .collect()
}

#[test]
fn bridge_keys_default_and_load_nested_dotted_and_from_the_environment() {
    let d = Settings::default().bridge;
    assert_eq!(d.max_backlog, 1000);
    assert_eq!(d.l0, L0Settings::default());
    assert_eq!(
        (
            d.l0.endpoint,
            d.l0.data_account,
            d.l0.key_page,
            d.l0.key_file
        ),
        (None, None, None, None)
    );

    let (_dir, key) = key_file();
    let nested = format!(
        "bridge:\n  enable_bridge: true\n  max_backlog: 500\n  l0:\n    endpoint: \
         \"http://127.0.0.1:26660/v3\"\n    data_account: \"acc://a.acme/anchors\"\n    \
         key_page: \"acc://a.acme/book/1\"\n    key_file: {:?}\n",
        key.display().to_string()
    );
    let s = load_str(&nested, no_env()).unwrap();
    assert!(s.bridge.enable_bridge);
    assert_eq!(s.bridge.max_backlog, 500);
    assert_eq!(
        s.bridge.l0.endpoint.as_deref(),
        Some("http://127.0.0.1:26660/v3")
    );
    assert_eq!(
        s.bridge.l0.endpoint_url().map(|u| u.to_string()),
        Some("http://127.0.0.1:26660/v3".to_owned())
    );
    assert_eq!(
        s.bridge.l0.data_account.as_deref(),
        Some("acc://a.acme/anchors")
    );
    assert_eq!(s.bridge.l0.key_page.as_deref(), Some("acc://a.acme/book/1"));
    assert_eq!(s.bridge.l0.key_file.as_deref(), Some(key.as_path()));
    let read = s.bridge.l0.read_key().unwrap().unwrap();
    assert_eq!(
        read.public(),
        accumen_actors::types::Keypair::from_seed([5; 32]).public()
    );

    // The runbook's dotted form, and the environment over the file.
    let s = load_str(
        &bridge_yaml(&key, &[("bridge.max_backlog", "300")]),
        env(&[
            (
                "ACCUMEN_BRIDGE__L0__ENDPOINT",
                "https://l0.example:8443/api/v3",
            ),
            ("ACCUMEN_BRIDGE__L0__KEY_PAGE", "acc://b.acme/book/2"),
            ("ACCUMEN_BRIDGE__MAX_BACKLOG", "400"),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.bridge.l0.endpoint.as_deref(),
        Some("https://l0.example:8443/api/v3")
    );
    assert_eq!(s.bridge.l0.key_page.as_deref(), Some("acc://b.acme/book/2"));
    assert_eq!(s.bridge.max_backlog, 400);
    // Unknown keys under bridge.l0 are refused like any other.
    assert_eq!(
        err_text("bridge.l0.endpont: \"x\"\n", no_env()),
        "config/x.yaml: unknown key `bridge.l0.endpont`"
    );
    // The effective settings print the new keys.
    let json: serde_json::Value = serde_json::from_str(&s.to_pretty_json()).unwrap();
    assert_eq!(
        json["bridge"]["l0"]["endpoint"],
        "https://l0.example:8443/api/v3"
    );
    assert_eq!(json["bridge"]["max_backlog"], 400);
}

#[test]
fn an_enabled_bridge_needs_every_l0_key() {
    let errors = all_errors("bridge.enable_bridge: true\n", no_env());
    assert_eq!(errors.len(), 4, "{errors:#?}");
    for (e, key) in errors.iter().zip([
        "bridge.l0.endpoint",
        "bridge.l0.data_account",
        "bridge.l0.key_page",
        "bridge.l0.key_file",
    ]) {
        assert!(
            e.starts_with(&format!(
                "config/x.yaml: {key} must be set when bridge.enable_bridge is true (such as "
            )),
            "{e}"
        );
    }
    // Disabled, none of them is needed, and malformed values are not looked at: a node that
    // does not anchor never uses them.
    let s = load_str(
        "bridge:\n  enable_bridge: false\n  l0:\n    endpoint: \"ftp://x\"\n    data_account: \
         \"nope\"\n    key_page: \"acc://\"\n    key_file: \"/nonexistent/l0.key\"\n",
        no_env(),
    )
    .unwrap();
    assert!(!s.bridge.enable_bridge);
    assert_eq!(s.bridge.l0.endpoint_url(), None);
}

#[test]
fn a_follower_reads_the_l0_without_a_key() {
    let follower = "follower:\n  sequencer_api: \"http://127.0.0.1:8080\"\n";
    let l0 = "  l0:\n    endpoint: \"http://127.0.0.1:26660/v3\"\n    data_account: \
              \"acc://accumen.acme/anchors\"\n";
    // Enabled or not, a follower's L0 settings need no key page or key file.
    for enable in ["false", "true"] {
        let s = load_str(
            &format!("{follower}bridge:\n  enable_bridge: {enable}\n{l0}"),
            no_env(),
        )
        .unwrap();
        assert!(s.bridge.l0.key_file.is_none());
    }
    // A sequencer with the same settings and the bridge on still needs both.
    let errors = all_errors(&format!("bridge:\n  enable_bridge: true\n{l0}"), no_env());
    assert_eq!(errors.len(), 2, "{errors:#?}");
    // A follower's L0 values are checked: it uses them.
    let errors = all_errors(
        &format!(
            "{follower}bridge:\n  l0:\n    endpoint: \"ftp://x\"\n    data_account: \"nope\"\n"
        ),
        no_env(),
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].contains("bridge.l0.endpoint"), "{errors:#?}");
    assert!(errors[1].contains("bridge.l0.data_account"), "{errors:#?}");
}

#[test]
fn a_malformed_endpoint_is_refused_with_the_key_name() {
    let (_dir, key) = key_file();
    for (bad, why) in [
        ("not a url", "not a URL"),
        ("mainnet.accumulatenetwork.io/v3", "not a URL"),
        (
            "ftp://mainnet.accumulatenetwork.io/v3",
            "scheme \"ftp\" is not http or https",
        ),
        (
            "acc://accumen.acme/v3",
            "scheme \"acc\" is not http or https",
        ),
        (
            "https://mainnet.accumulatenetwork.io",
            "path \"/\" does not end in /v3",
        ),
        (
            "https://mainnet.accumulatenetwork.io/v2",
            "does not end in /v3",
        ),
        (
            "https://mainnet.accumulatenetwork.io/v3/",
            "does not end in /v3",
        ),
        (
            "https://mainnet.accumulatenetwork.io/v3?x=1",
            "query or fragment",
        ),
        (
            "https://mainnet.accumulatenetwork.io/v3#top",
            "query or fragment",
        ),
        (
            "https://user:pw@mainnet.accumulatenetwork.io/v3",
            "credentials",
        ),
    ] {
        let errors = all_errors(
            &bridge_yaml(&key, &[("bridge.l0.endpoint", &format!("{bad:?}"))]),
            no_env(),
        );
        assert_eq!(errors.len(), 1, "{bad}: {errors:#?}");
        let e = &errors[0];
        assert!(
            e.starts_with(&format!(
                "config/x.yaml: bridge.l0.endpoint {bad:?} is not an L0 JSON-RPC URL: "
            )) && e.contains(why)
                && e.contains("https://mainnet.accumulatenetwork.io/v3"),
            "{bad}: {e}"
        );
    }
    // From the environment, the variable is blamed.
    let errors = all_errors(
        &bridge_yaml(&key, &[]),
        env(&[("ACCUMEN_BRIDGE__L0__ENDPOINT", "http://127.0.0.1:26660")]),
    );
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with(
            "environment variable ACCUMEN_BRIDGE__L0__ENDPOINT: bridge.l0.endpoint \
             \"http://127.0.0.1:26660\" is not an L0 JSON-RPC URL"
        ),
        "{}",
        errors[0]
    );
    // Good forms: http on loopback with a port, https with a path prefix.
    for good in [
        "http://127.0.0.1:26660/v3",
        "http://[::1]:26660/v3",
        "https://kermit.accumulatenetwork.io/v3",
        "https://gw.example/accumulate/v3",
    ] {
        assert!(check_endpoint(good).is_ok(), "{good}");
        load_str(
            &bridge_yaml(&key, &[("bridge.l0.endpoint", &format!("{good:?}"))]),
            no_env(),
        )
        .unwrap();
    }
}

#[test]
fn malformed_account_urls_are_refused_with_the_key_name() {
    let (_dir, key) = key_file();
    for (bad, why) in [
        ("accumen.acme/anchors", "does not start with acc://"),
        ("https://accumen.acme/anchors", "does not start with acc://"),
        ("acc://", "names no identity"),
        ("acc:///anchors", "names no identity"),
        (
            "acc://accumen.acme",
            "names the identity \"accumen.acme\" itself",
        ),
        (
            "acc://accumen.acme/",
            "empty path segment or a trailing slash",
        ),
        ("acc://accumen.acme/anchors/", "trailing slash"),
        ("acc://accumen.acme//anchors", "empty path segment"),
        ("acc://Accumen.acme/anchors", "character 'A' is not allowed"),
        (
            "acc://accumen.acme/an chors",
            "character ' ' is not allowed",
        ),
        (
            "acc://accumen.acme/anchors?x",
            "character '?' is not allowed",
        ),
        (
            "acc://abc@accumen.acme/anchors",
            "character '@' is not allowed",
        ),
        ("acc://.acme/anchors", "starts or ends with a dot"),
    ] {
        assert!(check_acc_url(bad).is_err(), "{bad}");
        for key_name in ["bridge.l0.data_account", "bridge.l0.key_page"] {
            let errors = all_errors(
                &bridge_yaml(&key, &[(key_name, &format!("{bad:?}"))]),
                no_env(),
            );
            assert_eq!(errors.len(), 1, "{bad}: {errors:#?}");
            let e = &errors[0];
            assert!(
                e.starts_with(&format!(
                    "config/x.yaml: {key_name} {bad:?} is not an Accumulate account URL: "
                )) && e.contains(why),
                "{bad}: {e}"
            );
        }
    }
    for good in [
        "acc://accumen.acme/anchors",
        "acc://accumen.acme/book/1",
        "acc://my-org_2.acme/data.v1/x",
    ] {
        assert_eq!(check_acc_url(good), Ok(()), "{good}");
    }
}

#[test]
fn a_missing_or_bad_key_file_is_refused_with_the_key_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.key");
    let errors = all_errors(&bridge_yaml(&missing, &[]), no_env());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("config/x.yaml: bridge.l0.key_file: cannot read key file ")
            && errors[0].contains("missing.key"),
        "{}",
        errors[0]
    );

    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let errors = all_errors(&bridge_yaml(&garbage, &[]), no_env());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("config/x.yaml: bridge.l0.key_file: key file ")
            && errors[0].contains("garbage.key")
            && errors[0].contains("does not hold a valid key"),
        "{}",
        errors[0]
    );

    // A directory is not a key file either.
    let errors = all_errors(&bridge_yaml(dir.path(), &[]), no_env());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with("config/x.yaml: bridge.l0.key_file: cannot read key file "),
        "{}",
        errors[0]
    );
}

#[test]
fn every_bad_l0_key_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let errors = all_errors(
        &bridge_yaml(
            &dir.path().join("none.key"),
            &[
                ("bridge.l0.endpoint", "\"http://127.0.0.1/v2\""),
                ("bridge.l0.data_account", "\"acc://x.acme\""),
                ("bridge.l0.key_page", "\"book/1\""),
            ],
        ),
        no_env(),
    );
    let keys: Vec<&str> = errors
        .iter()
        .map(|e| {
            e.trim_start_matches("config/x.yaml: ")
                .split([' ', ':'])
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        keys,
        [
            "bridge.l0.endpoint",
            "bridge.l0.data_account",
            "bridge.l0.key_page",
            "bridge.l0.key_file"
        ],
        "{errors:#?}"
    );
}

#[test]
fn max_backlog_must_hold_a_batch() {
    assert_eq!(
        err_text("bridge.max_backlog: 0\n", no_env()),
        "config/x.yaml: bridge.max_backlog = 0 must be at least 1 and at least \
         bridge.stager.batch_size = 200: a batch filling up is normal, not a backlog"
    );
    assert_eq!(
        err_text(
            "bridge:\n  max_backlog: 50\n  stager:\n    batch_size: 51\n",
            no_env()
        ),
        "config/x.yaml: bridge.max_backlog = 50 must be at least 1 and at least \
         bridge.stager.batch_size = 51: a batch filling up is normal, not a backlog"
    );
    let s = load_str(
        "bridge:\n  max_backlog: 51\n  stager:\n    batch_size: 51\n",
        no_env(),
    )
    .unwrap();
    assert_eq!(s.bridge.max_backlog, 51);
    let text = err_text("bridge.max_backlog: -1\n", no_env());
    assert!(
        text.starts_with("config/x.yaml: bridge.max_backlog: "),
        "{text}"
    );
}

#[test]
fn l0_profiles_need_their_key_file() {
    // Without /var/lib/accumen/l0.key (not on a build machine), staging and production fail
    // config check, naming the key and only that.
    for file in ["config/staging.yaml", "config/production.yaml"] {
        let path = repo_file(file);
        if Path::new("/var/lib/accumen/l0.key").exists() {
            return;
        }
        let err = Settings::load_from(&path, no_env()).unwrap_err();
        let errors = err.errors();
        assert_eq!(errors.len(), 1, "{file}: {errors:#?}");
        let text = errors[0].to_string();
        assert!(
            text.contains("bridge.l0.key_file: cannot read key file /var/lib/accumen/l0.key"),
            "{text}"
        );
        assert_eq!(config_check(&path), 1, "{file}");
    }
}

#[test]
fn devnet_profile_anchors_on_a_loopback_l0() {
    let path = repo_file("config/devnet.yaml");
    // Its key file is made by `accumen key generate` before the first run.
    let err = Settings::load_from(&path, no_env()).unwrap_err();
    assert!(
        err.to_string()
            .contains("bridge.l0.key_file: cannot read key file data/devnet/l0.key"),
        "{err}"
    );
    let (_dir, key) = key_file();
    let s = Settings::load_from(
        &path,
        env(&[("ACCUMEN_BRIDGE__L0__KEY_FILE", key.to_str().unwrap())]),
    )
    .unwrap();
    assert!(s.bridge.enable_bridge);
    let url = s.bridge.l0.endpoint_url().unwrap();
    assert_eq!(url.host_str(), Some("127.0.0.1"));
    assert_eq!(url.path(), "/v3");
    assert_eq!(s.storage, StorageKind::Persistent);
    for a in [s.api_addr, s.metrics_addr, s.health_addr] {
        assert!(a.0.ip().is_loopback(), "{a}");
    }
    assert!(s.bridge.max_backlog >= s.bridge.stager.batch_size as u64);
}

#[test]
fn follower_keys_load_and_bad_values_name_their_key() {
    let key = "11".repeat(32);
    let s = load_str(
        &format!(
            "follower:\n  sequencer_api: \"http://10.0.0.1:8080\"\n  sequencer_key: \"{key}\"\n  batch_size: 8\n  long_poll: \"2s\"\n"
        ),
        no_env(),
    )
    .unwrap();
    assert_eq!(
        s.follower.sequencer_api.as_deref(),
        Some("http://10.0.0.1:8080")
    );
    assert!(matches!(s.follower.pinned_key(), Some(Ok(_))));
    assert_eq!(s.follower.batch_size, 8);
    assert_eq!(s.follower.long_poll, Duration::from_secs(2));
    // An https sequencer (one with api.tls), with its private CA.
    let s = load_str(
        "follower:\n  sequencer_api: \"https://seq.example:8080\"\n  ca_cert_file: ca.pem\n",
        no_env(),
    )
    .unwrap();
    assert_eq!(s.follower.ca_cert_file, Some(PathBuf::from("ca.pem")));
    // Unset by default: a sequencer needs neither.
    let d = load_str("", no_env()).unwrap();
    assert_eq!(
        (d.follower.sequencer_api, d.follower.sequencer_key),
        (None, None)
    );

    for (yaml, key, says) in [
        (
            "follower:\n  sequencer_api: \"ftp://x\"\n",
            "follower.sequencer_api",
            "http://HOST:PORT",
        ),
        (
            "follower:\n  sequencer_key: \"abc\"\n",
            "follower.sequencer_key",
            "64 hex digits",
        ),
        (
            "follower:\n  sequencer_api: \"http://x:1\"\n  ca_cert_file: ca.pem\n",
            "follower.ca_cert_file",
            "not an https:// URL",
        ),
        (
            "follower:\n  batch_size: 0\n",
            "follower.batch_size",
            "between 1 and 256",
        ),
        (
            "follower:\n  batch_size: 1000\n",
            "follower.batch_size",
            "between 1 and 256",
        ),
        (
            "follower:\n  long_poll: \"1m\"\n",
            "follower.long_poll",
            "at most",
        ),
        (
            "follower:\n  long_poll: \"5s\"\n  request_timeout: \"5s\"\n",
            "follower.request_timeout",
            "exceed",
        ),
        (
            "follower:\n  retry_min: \"1ms\"\n",
            "follower.retry_min",
            "follower.retry_min",
        ),
        (
            "follower:\n  retry_min: \"2s\"\n  retry_max: \"1s\"\n",
            "follower.retry_max",
            "at least",
        ),
    ] {
        let e = err_text(yaml, no_env());
        assert!(e.contains(key) && e.contains(says), "{yaml}: {e}");
    }
    let e = err_text("", env(&[("ACCUMEN_FOLLOWER__BATCH_SIZE", "0")]));
    assert!(e.contains("follower.batch_size"), "{e}");

    // The development follower's profile loads and follows config/local.yaml's sequencer.
    let f = Settings::load_from(&repo_file("config/follower-local.yaml"), no_env()).unwrap();
    assert_eq!(
        f.follower.sequencer_api.as_deref(),
        Some("http://127.0.0.1:8080")
    );
    assert_eq!(f.api_addr, addr("127.0.0.1:8090"));
}

/// The admin listener can restart actors without authentication: beyond loopback only by an
/// explicit opt-in.
#[test]
fn admin_addr_must_be_loopback_unless_explicitly_allowed() {
    let text = err_text("admin_addr: \":8083\"\n", no_env());
    assert!(
        text.contains("admin_addr 0.0.0.0:8083 is not a loopback address")
            && text.contains("admin_allow_non_loopback"),
        "{text}"
    );
    let s = load_str("admin_addr: \"[::1]:0\"\n", no_env()).unwrap();
    assert_eq!(s.admin_addr, addr("[::1]:0"));
    let s = load_str(
        "admin_addr: \"10.0.0.5:8083\"\nadmin_allow_non_loopback: true\n",
        no_env(),
    )
    .unwrap();
    assert_eq!(s.admin_addr, addr("10.0.0.5:8083"));
    let s = load_str(
        "",
        env(&[
            ("ACCUMEN_ADMIN_ADDR", "0.0.0.0:9000"),
            ("ACCUMEN_ADMIN_ALLOW_NON_LOOPBACK", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(s.admin_addr, addr("0.0.0.0:9000"));
}

/// The client's own variables may be exported in the shell a node starts from; a near miss is
/// still refused as a typo.
#[test]
fn client_variables_are_not_node_settings() {
    load_str(
        "",
        env(&[
            ("ACCUMEN_API", "http://127.0.0.1:8080"),
            ("ACCUMEN_TOKEN", "secret"),
            ("ACCUMEN_ADMIN", "http://127.0.0.1:8083"),
            ("ACCUMEN_CA_CERT", "/etc/accumen/ca.pem"),
        ]),
    )
    .unwrap();
    let e = err_text("", env(&[("ACCUMEN_ADMINN", "x")]));
    assert!(e.contains("ACCUMEN_ADMINN"), "{e}");
}
