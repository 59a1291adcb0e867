//! Chain parameters belong to the chain: a persistent chain keeps the values it was created
//! with whatever a later configuration says (WARN and `/v1/chain` say which value rules), and a
//! chain this node cannot honour is refused at start.

use accumen_actors::types::{Action, Bytes};

use crate::harness::*;

const PERSISTENT: &str = "storage: persistent";

/// Environment that sets the per-transaction gas cap (and a query cap below it, which the
/// configuration requires).
fn gas_env(gas_limit: &str) -> [(&'static str, &str); 2] {
    [
        ("ACCUMEN_EXECUTION__GAS_LIMIT", gas_limit),
        ("ACCUMEN_API__QUERY_GAS_LIMIT", "1000000"),
    ]
}

#[test]
fn a_restarted_node_keeps_the_chains_gas_limit_over_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = TestNode::start_in(dir.path(), PERSISTENT, &gas_env("2000000"));
    let (code, chain) = node.get("/v1/chain");
    assert_eq!(code, 200, "{chain}");
    assert_eq!(chain["params"]["max_tx_gas"], 2_000_000, "{chain}");
    assert_eq!(chain["overridden"], serde_json::json!([]), "{chain}");
    let genesis = chain["genesis_hash"].clone();
    let params_hash = chain["params_hash"].clone();
    assert_eq!(node.terminate().code(), Some(0));

    // The same data dir under a config with a higher cap: the chain's value rules.
    let node = TestNode::start_in(dir.path(), PERSISTENT, &gas_env("5000000"));
    let warn = node
        .find_log("execution.gas_limit = 5000000 in the config differs from this chain's 2000000")
        .unwrap_or_else(|| panic!("no override warning:\n{}", node.logs()));
    assert!(
        warn.contains("WARN") && warn.contains("the chain's value rules"),
        "{warn}"
    );
    let (_, chain) = node.get("/v1/chain");
    assert_eq!(chain["genesis_hash"], genesis, "{chain}");
    assert_eq!(chain["params_hash"], params_hash, "{chain}");
    assert_eq!(chain["params"]["max_tx_gas"], 2_000_000, "{chain}");
    assert_eq!(
        chain["overridden"],
        serde_json::json!([
            {"key": "execution.gas_limit", "config": 5_000_000u64, "chain": 2_000_000u64}
        ]),
        "{chain}"
    );

    let (_, stats) = node.get("/execution/stats");
    assert_eq!(stats["gas_limit"], 2_000_000, "{stats}");

    // A deploy within the chain's cap runs.
    let mut s = Sender::new(60);
    let deploy = s.sign(
        Action::Deploy {
            code: Bytes(fixture("counter")),
        },
        2_000_000,
    );
    let counter = deploy.tx.target();
    let v = node.wait_included(&submit_ok(&node, &deploy));
    assert_eq!(v["receipt"]["status"], "success", "{v}");
    // Over the chain's cap but under the config's: refused, naming the chain's cap.
    let call = Action::Call {
        contract: counter,
        entry: "increment".into(),
        args: Bytes::default(),
    };
    let (code, v) = submit(&node, &s.sign(call.clone(), 3_000_000));
    assert_eq!(code, 400, "{v}");
    assert_eq!(error_code(&v), "gas_limit", "{v}");
    assert!(v.to_string().contains("2000000"), "{v}");
    // At the chain's cap it is admitted (with the nonce the refused one did not use).
    s.nonce -= 1;
    let v = node.wait_included(&submit_ok(&node, &s.sign(call, 2_000_000)));
    assert_eq!(v["receipt"]["status"], "success", "{v}");
}

#[test]
fn a_chain_this_node_cannot_honour_is_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // 1024 pages (64 MiB) per call: the two workers need 128 MB of the 256 given here.
    let big = [
        ("ACCUMEN_WASM__MAX_MEMORY_PAGES", "1024"),
        ("ACCUMEN_EXECUTION__MEMORY_LIMIT", "256"),
    ];
    let mut node = TestNode::start_in(dir.path(), PERSISTENT, &big);
    let (_, chain) = node.get("/v1/chain");
    assert_eq!(chain["params"]["max_memory_pages"], 1024, "{chain}");
    assert_eq!(node.terminate().code(), Some(0));

    // A config that is valid on its own (64 pages in 64 MB) but cannot hold the chain's pages.
    let config = dir.path().join("small.yaml");
    std::fs::write(
        &config,
        base_config(dir.path()).replace("storage: memory", "storage: persistent")
            + "wasm:\n  max_memory_pages: 64\n",
    )
    .unwrap();
    let out = run_to_exit(
        "sequencer",
        &config,
        &[("ACCUMEN_EXECUTION__MEMORY_LIMIT", "64")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for part in [
        "wasm.max_memory_pages = 1024 cannot run on this node",
        "needs at least 128 MB",
        "raise execution.memory_limit",
    ] {
        assert!(err.contains(part), "{part:?} missing from:\n{err}");
    }
    // Refusing changed nothing: the chain still opens under a config that can hold it.
    let node = TestNode::start_in(dir.path(), PERSISTENT, &big);
    assert_eq!(node.get("/v1/chain").1["params"]["max_memory_pages"], 1024);
}
