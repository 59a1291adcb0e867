//! Starting, watching and stopping a node process; signing and sending transactions.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accumen::client::HttpClient;
use accumen_actors::types::{Address, SignedTx};
use serde_json::{Value, json};

/// Test transactions come from the shared builder; `Sender` is its name in these tests (a key
/// with its own nonce counter), and the test nodes serve its chain.
pub use accumen_actors::testkit::{CHAIN, Signer as Sender};
pub const BIN: &str = env!("CARGO_BIN_EXE_accumen");

/// Compiled WAT fixture.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/tests/fixtures/{name}.wat",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// Polls `ok` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut ok: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = ok() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Base configuration for tests: everything on 127.0.0.1 port 0, fast blocks, a short stuck
/// deadline (which must stay above `execution.timeout`).
pub fn base_config(data_dir: &Path) -> String {
    format!(
        r#"chain_id: "{CHAIN}"
block_time: "200ms"
max_transactions: 1000
storage: memory
data_dir: "{}"
api_addr: "127.0.0.1:0"
health_addr: "127.0.0.1:0"
metrics_addr: "127.0.0.1:0"
admin_addr: "127.0.0.1:0"
execution:
  workers: 2
  timeout: "500ms"
logging:
  level: "info"
supervisor:
  heartbeat_interval: "100ms"
  heartbeat_timeout: "1s"
"#,
        data_dir.display()
    )
}

/// The `key` address of the node's `listening` log line, as a URL: `key=ADDR` in a text line,
/// `"key":"ADDR"` in a JSON one (`logging.format: json`).
pub fn listening_addr(line: &str, key: &str) -> String {
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).unwrap();
        return format!("http://{}", v[key].as_str().unwrap());
    }
    let start = line.find(&format!("{key}=")).unwrap() + key.len() + 1;
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    format!("http://{}", &rest[..end])
}

/// A running node process.
pub struct TestNode {
    pub child: Child,
    pub api: String,
    pub health: String,
    pub metrics: String,
    pub admin: String,
    pub dir: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    _tmp: Option<tempfile::TempDir>,
}

impl TestNode {
    /// Starts a node on the base config with `extra` YAML lines appended (later keys win).
    pub fn start(extra: &str) -> TestNode {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut node = Self::start_in(&dir, extra, &[]);
        node._tmp = Some(tmp);
        node
    }

    /// Starts a node whose data lives in `dir` (kept by the caller across restarts).
    pub fn start_in(dir: &Path, extra: &str, env: &[(&str, &str)]) -> TestNode {
        Self::start_role_in(dir, "sequencer", extra, env)
    }

    /// [`TestNode::start_in`] with `--role=role`.
    pub fn start_role_in(dir: &Path, role: &str, extra: &str, env: &[(&str, &str)]) -> TestNode {
        let config = dir.join("node.yaml");
        std::fs::write(&config, merge_yaml(&base_config(dir), extra)).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg(format!("--role={role}"))
            .arg(format!("--config={}", config.display()))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut node = TestNode {
            child,
            api: String::new(),
            health: String::new(),
            metrics: String::new(),
            admin: String::new(),
            dir: dir.to_path_buf(),
            logs,
            _tmp: None,
        };
        let line = wait_for("the node to listen", Duration::from_secs(60), || {
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("node exited early with {status}:\n{}", node.logs());
            }
            node.find_log("listening")
        });
        node.api = listening_addr(&line, "api");
        node.health = listening_addr(&line, "health");
        node.metrics = listening_addr(&line, "metrics");
        node.admin = listening_addr(&line, "admin");
        node
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn find_log(&self, needle: &str) -> Option<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }

    pub fn client(&self) -> HttpClient {
        HttpClient::new(&self.api).unwrap()
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.client().get(path).unwrap()
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.client().post(path, body).unwrap()
    }

    pub fn height(&self) -> u64 {
        self.get("/stats").1["block_height"].as_u64().unwrap()
    }

    /// Waits until the transaction is included; returns the /v1/tx answer.
    pub fn wait_included(&self, hash: &str) -> Value {
        wait_for(
            &format!("tx {hash} to be included"),
            Duration::from_secs(30),
            || {
                let (code, v) = self.get(&format!("/v1/tx/{hash}"));
                (code == 200 && v["status"] == "included").then_some(v)
            },
        )
    }

    pub fn metrics_text(&self) -> String {
        let client = HttpClient::new(&self.metrics).unwrap();
        let (code, body) = client.get_raw("/metrics").unwrap();
        assert_eq!(code, 200);
        String::from_utf8(body).unwrap()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        wait_for("the node to exit", Duration::from_secs(30), || {
            self.child.try_wait().unwrap()
        })
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Runs the node with `--role=ROLE --config=CONFIG` (and `env`, without `RUST_LOG`) until it
/// exits: for a start the test expects to be refused, whose exit code and stderr it checks.
pub fn run_to_exit(role: &str, config: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg(format!("--role={role}"))
        .arg(format!("--config={}", config.display()))
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Appends `extra` to `base`, replacing top-level sections that `extra` redefines.
pub fn merge_yaml(base: &str, extra: &str) -> String {
    let redefined: Vec<&str> = extra
        .lines()
        .filter(|l| !l.starts_with(' ') && l.contains(':'))
        .filter_map(|l| l.split(':').next())
        .collect();
    let mut out = String::new();
    let mut skipping = false;
    for line in base.lines() {
        if !line.starts_with(' ') {
            let key = line.split(':').next().unwrap_or("");
            skipping = redefined.contains(&key);
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(extra);
    out.push('\n');
    out
}

/// POST /v1/tx; returns (status, body).
pub fn submit(node: &TestNode, tx: &SignedTx) -> (u16, Value) {
    node.post("/v1/tx", &serde_json::to_value(tx).unwrap())
}

/// POST /v1/tx expecting 202; returns the tx hash.
pub fn submit_ok(node: &TestNode, tx: &SignedTx) -> String {
    let (code, v) = submit(node, tx);
    assert_eq!(code, 202, "{v}");
    v["tx_hash"].as_str().unwrap().to_string()
}

/// Deploys `code` and waits for a successful receipt.
pub fn deploy(node: &TestNode, sender: &mut Sender, code: Vec<u8>) -> Address {
    let (tx, addr) = sender.deploy(code);
    let hash = submit_ok(node, &tx);
    let v = node.wait_included(&hash);
    assert_eq!(v["receipt"]["status"], "success", "{v}");
    addr
}

pub fn error_code(v: &Value) -> String {
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

pub fn json_txs(txs: &[SignedTx]) -> Value {
    json!(txs)
}
