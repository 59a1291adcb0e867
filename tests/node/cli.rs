//! The `accumen` binary as a newcomer following the README uses it: make a key, deploy the
//! counter, call it, read it back; and the exit codes and messages when something is wrong.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::*;

/// Runs `accumen args...` from the crate root, with `ACCUMEN_API` set to `api` (or unset).
fn accumen(api: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .env_remove("ACCUMEN_API");
    if let Some(api) = api {
        cmd.env("ACCUMEN_API", api);
    }
    cmd.output().unwrap()
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command that must succeed and print JSON; returns the JSON.
fn ok_json(api: Option<&str>, args: &[&str]) -> Value {
    let out = accumen(api, args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", describe(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {}", describe(&out)))
}

/// Runs a command that must fail with `code`; returns its stderr.
fn fails(api: Option<&str>, args: &[&str], code: i32) -> String {
    let out = accumen(api, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}",
        describe(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?}: a failure printed to stdout: {}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn le(n: u64) -> String {
    hex::encode(n.to_le_bytes())
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn newcomer_walkthrough_key_deploy_call_query() {
    let mut node = TestNode::start("");
    let api = Some(node.api.as_str());

    // A key, readable only by its owner, never overwritten.
    let key = node.dir.join("me.key");
    let k = path_str(&key);
    let v = ok_json(None, &["key", "generate", "--out", k]);
    let public_key = v["public_key"].as_str().unwrap().to_string();
    assert_eq!(public_key.len(), 64, "{v}");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key file mode {mode:o}");
    let secret = std::fs::read(&key).unwrap();
    let err = fails(None, &["key", "generate", "--out", k], 1);
    assert!(
        err.contains("refusing to overwrite") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        secret,
        "the key was overwritten"
    );

    // Deploy the counter from its WebAssembly text.
    let v = ok_json(
        api,
        &[
            "tx",
            "deploy",
            "--key",
            k,
            "--code",
            "tests/fixtures/counter.wat",
            "--wait",
        ],
    );
    let deploy_hash = v["tx_hash"].as_str().unwrap().to_string();
    let contract = v["contract"].as_str().unwrap().to_string();
    assert_eq!(v["receipt"]["status"], "success", "{v}");
    assert_eq!(v["receipt"]["contract"], contract.as_str(), "{v}");

    // Two increments: outputs 1 then 2, little endian.
    for want in 1..=2u64 {
        let v = ok_json(
            api,
            &[
                "tx",
                "call",
                "--key",
                k,
                "--contract",
                &contract,
                "--entry",
                "increment",
                "--wait",
            ],
        );
        assert_eq!(v["receipt"]["status"], "success", "{v}");
        assert_eq!(v["receipt"]["output"], le(want), "{v}");
        assert_eq!(v["nonce"], want, "{v}");
    }

    // Reads.
    let count = hex::encode(b"count");
    let v = ok_json(
        api,
        &["query", "state", "--contract", &contract, "--key", &count],
    );
    assert_eq!(v["value"], le(2), "{v}");
    let v = ok_json(
        api,
        &["query", "call", "--contract", &contract, "--entry", "get"],
    );
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["output"], le(2), "{v}");
    let v = ok_json(api, &["query", "tx", &deploy_hash]);
    assert_eq!(v["status"], "included", "{v}");
    assert_eq!(v["receipt"]["status"], "success", "{v}");
    let height = v["block_height"].as_u64().unwrap();
    let v = ok_json(api, &["query", "block", &height.to_string()]);
    assert_eq!(v["height"], height, "{v}");
    assert!(
        v["txs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == deploy_hash.as_str()),
        "{v}"
    );
    let v = ok_json(api, &["query", "block"]);
    assert!(v["height"].as_u64().unwrap() >= height, "{v}");
    let v = ok_json(api, &["query", "contract", &contract]);
    assert_eq!(v["address"], contract.as_str(), "{v}");
    assert_eq!(v["deployer"], public_key.as_str(), "{v}");
    let v = ok_json(api, &["query", "account", &public_key]);
    assert_eq!(v["next_nonce"], 3, "{v}");
    let v = ok_json(api, &["status"]);
    assert!(v["block_height"].as_u64().unwrap() >= height, "{v}");

    // --api on the command line works as well as the environment.
    let v = ok_json(None, &["--api", &node.api, "status"]);
    assert!(v["block_height"].is_u64(), "{v}");

    // The node's errors reach the user with their code, on stderr, exit 1.
    let zero = "0".repeat(64);
    let err = fails(api, &["query", "tx", &zero], 1);
    assert!(
        err.contains("not found") && err.contains("not_found"),
        "{err}"
    );
    let err = fails(api, &["query", "block", "999999"], 1);
    assert!(err.contains("not found"), "{err}");
    // Bad arguments fail locally, without costing a nonce.
    let err = fails(
        api,
        &[
            "tx",
            "call",
            "--key",
            k,
            "--contract",
            &contract,
            "--entry",
            "not an entry",
        ],
        1,
    );
    assert!(err.contains("entry"), "{err}");
    let err = fails(
        api,
        &[
            "tx",
            "call",
            "--key",
            k,
            "--contract",
            "xyz",
            "--entry",
            "get",
        ],
        1,
    );
    assert!(err.contains("contract address"), "{err}");
    let v = ok_json(api, &["query", "account", &public_key]);
    assert_eq!(v["next_nonce"], 3, "{v}");
    assert_eq!(v["pending"], 0, "{v}");

    // And the node stops cleanly when asked.
    let status = node.terminate();
    assert!(status.success(), "node exited with {status}");
}

#[test]
fn closed_port_is_exit_1_cannot_reach() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = format!("http://127.0.0.1:{port}");
    let err = fails(None, &["--api", &api, "status"], 1);
    assert!(err.contains("cannot reach"), "{err}");
    let err = fails(Some(&api), &["query", "block"], 1);
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn config_check_prints_settings_or_names_the_bad_key() {
    let v = ok_json(None, &["config", "check", "--config", "config/local.yaml"]);
    assert_eq!(v["chain_id"], "accumen-local", "{v}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "chain_id: \"x\"\nblock_tiem: \"1s\"\n").unwrap();
    let out = accumen(None, &["config", "check", "--config", path_str(&bad)]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("block_tiem"), "{}", describe(&out));

    let missing = dir.path().join("missing.yaml");
    let out = accumen(None, &["config", "check", "--config", path_str(&missing)]);
    assert_ne!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(!out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn an_enabled_bridge_is_checked_by_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("l0.key");
    let yaml = |key_file: &Path, endpoint: &str| {
        format!(
            "bridge:\n  enable_bridge: true\n  l0:\n    endpoint: \"{endpoint}\"\n    \
             data_account: \"acc://accumen.acme/anchors\"\n    key_page: \
             \"acc://accumen.acme/book/1\"\n    key_file: {:?}\n",
            key_file.display().to_string()
        )
    };
    let cfg = dir.path().join("bridge.yaml");

    // A missing key file and a malformed endpoint: config check names both keys, exit 1.
    std::fs::write(&cfg, yaml(&key, "http://127.0.0.1:26660/v2")).unwrap();
    let out = accumen(None, &["config", "check", "--config", path_str(&cfg)]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bridge.l0.key_file: cannot read key file") && err.contains("l0.key"),
        "{}",
        describe(&out)
    );
    assert!(
        err.contains("bridge.l0.endpoint \"http://127.0.0.1:26660/v2\""),
        "{}",
        describe(&out)
    );

    // Valid: config check passes (the node starts with it: `tests/node/bridge.rs`).
    ok_json(None, &["key", "generate", "--out", path_str(&key)]);
    std::fs::write(&cfg, yaml(&key, "http://127.0.0.1:26660/v3")).unwrap();
    let v = ok_json(None, &["config", "check", "--config", path_str(&cfg)]);
    assert_eq!(
        v["bridge"]["l0"]["endpoint"], "http://127.0.0.1:26660/v3",
        "{v}"
    );
}

#[test]
fn follower_without_its_sequencer_and_missing_role_exit_2() {
    // config/local.yaml names no sequencer to follow: the follower says which key is missing.
    let err = fails(
        None,
        &["--role=follower", "--config", "config/local.yaml"],
        2,
    );
    assert!(err.contains("follower.sequencer_api must be set"), "{err}");
    let err = fails(
        None,
        &["--role=follower", "--config", "config/follower-local.yaml"],
        2,
    );
    assert!(err.contains("follower.sequencer_key must be set"), "{err}");

    let err = fails(None, &[], 2);
    assert!(err.contains("--role") && err.contains("--config"), "{err}");
    let err = fails(None, &["--config", "config/local.yaml"], 2);
    assert!(err.contains("--role"), "{err}");
}
