//! A follower checking the sequencer against its L0 anchors, with real binaries and
//! `accumen devnet-l0`: an honest sequencer anchoring to the L0 is confirmed (`anchored_height`
//! reaches what the sequencer anchored) and an L0 outage only delays the checks; an anchor that
//! contradicts verified blocks (written by the test with the page's key, as a lying sequencer
//! would) halts the follower with nothing more committed.

use std::time::Duration;

use accumen_actors::bridge::codec::{WriteDataRequest, sign_write_data};
use accumen_actors::bridge::{AccUrl, Anchor, L0Api};
use accumen_actors::types::{Block, Hash, Keypair};
use serde_json::{Value, json};

use crate::devnet::{DATA, L0, PAGE, key, rt, wait_delivered};
use crate::follower::{sequencer_key, start_follower, stats, wait_state};
use crate::harness::*;

/// A follower's `bridge.l0.*`: endpoint and data account only (no key: it only reads).
fn follower_l0(l0: &L0) -> String {
    format!(
        "bridge:\n  l0:\n    endpoint: \"{}\"\n    data_account: \"{DATA}\"\n    request_timeout: \"1s\"\n",
        l0.v3
    )
}

fn anchored(f: &TestNode) -> u64 {
    let s = stats(f);
    assert_ne!(s["state"], "halted", "{s}\n{}", f.logs());
    s["anchored_height"].as_u64().unwrap_or(0)
}

#[test]
fn a_follower_confirms_the_sequencers_anchors_and_rides_out_an_l0_outage() {
    let l0 = L0::start(None, &[]);
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("l0.key");
    accumen::keyfile::create(&key_file, &Keypair::from_seed([11; 32])).unwrap();
    let config = format!(
        "block_time: \"100ms\"\nbridge:\n  enable_bridge: true\n  stager:\n    batch_size: 3\n    \
         flush_interval: \"300ms\"\n  l0:\n    endpoint: \"{}\"\n    data_account: \"{DATA}\"\n    \
         key_page: \"{PAGE}\"\n    key_file: {:?}\n    request_timeout: \"1s\"\n",
        l0.v3,
        key_file.display().to_string()
    );
    let mut seq = TestNode::start_in(tmp.path(), &config, &[]);
    let seq_anchored = |seq: &TestNode| seq.get("/bridge/stats").1["last_anchored_height"].as_u64();
    wait_for("10 blocks anchored", Duration::from_secs(60), || {
        (seq_anchored(&seq)? >= 10).then_some(())
    });

    let dir = tempfile::tempdir().unwrap();
    let f = start_follower(
        dir.path(),
        &seq.api,
        &sequencer_key(&seq),
        &follower_l0(&l0),
    );
    // At 0 from the start, before the first check.
    let text = f.metrics_text();
    for result in ["ok", "contradiction", "skipped"] {
        assert!(
            text.contains(&format!(
                "accumen_follower_anchor_checks_total{{result=\"{result}\"}}"
            )),
            "{text}"
        );
    }
    assert!(text.contains("accumen_follower_anchored_height"), "{text}");
    let target = seq_anchored(&seq).unwrap();
    wait_for(
        "the follower to confirm the sequencer's anchors",
        Duration::from_secs(60),
        || (anchored(&f) >= target).then_some(()),
    );
    let s = stats(&f);
    assert!(
        s["anchored_height"].as_u64().unwrap() <= s["height"].as_u64().unwrap(),
        "anchored beyond verified: {s}"
    );
    let text = f.metrics_text();
    assert!(
        text.contains("accumen_follower_anchor_checks_total{result=\"contradiction\"} 0"),
        "{text}"
    );
    assert!(
        !text.contains("accumen_follower_anchor_checks_total{result=\"ok\"} 0\n"),
        "{text}"
    );

    // The L0 goes away: the follower keeps syncing, anchored_height lags, no halt.
    l0.control("/faults", json!({"refuse": true}));
    wait_for(
        "the follower to see the outage",
        Duration::from_secs(30),
        || f.find_log("cannot check the L0 anchors"),
    );
    let sync_on = |from: u64| {
        wait_for("the follower to sync on", Duration::from_secs(30), || {
            (stats(&f)["height"].as_u64().unwrap() >= from + 10).then_some(())
        });
    };
    let at = stats(&f)["height"].as_u64().unwrap();
    // Anchors read before the outage but ahead of sync are checked as sync reaches them (no L0
    // needed); after that nothing more can be confirmed.
    sync_on(at);
    let frozen = anchored(&f);
    let further = stats(&f)["height"].as_u64().unwrap();
    sync_on(further);
    let s = stats(&f);
    assert_eq!(s["anchored_height"], frozen, "{s}");
    assert!(frozen + 10 <= s["height"].as_u64().unwrap(), "no lag: {s}");
    assert_ne!(s["state"], "halted", "{s}");
    assert_eq!(f.get("/health").0, 200);

    // Back: the sequencer anchors its backlog and the follower confirms it.
    l0.control("/faults", json!({"refuse": false}));
    let target = wait_for(
        "the sequencer's backlog anchored",
        Duration::from_secs(60),
        || {
            let a = seq_anchored(&seq)?;
            (a >= further + 10).then_some(a)
        },
    );
    wait_for(
        "the follower to confirm the backlog",
        Duration::from_secs(60),
        || (anchored(&f) >= target).then_some(()),
    );
    assert_eq!(seq.terminate().code(), Some(0), "{}", seq.logs());
}

/// Signs and delivers a `WriteData` of `anchor` to the devnet's data account with the page key.
fn write_anchor(l0: &L0, anchor: &Anchor, timestamp: u64) {
    let (rt, c) = (rt(), l0.client());
    let req = WriteDataRequest {
        principal: AccUrl::parse(DATA).unwrap(),
        signer: AccUrl::parse(PAGE).unwrap(),
        signer_version: 1,
        timestamp,
        memo: String::new(),
        metadata: Vec::new(),
        parts: anchor.parts(),
    };
    let signed = sign_write_data(&key(), &req).unwrap();
    rt.block_on(c.submit(&signed.envelope())).unwrap();
    wait_delivered(&rt, &c, &signed);
}

fn header(node: &TestNode, height: u64) -> accumen_actors::types::BlockHeader {
    let (code, v) = node.get(&format!("/v1/sync/blocks?from={height}&limit=1"));
    assert_eq!(code, 200, "{v}");
    let bytes = hex::decode(v["blocks"][0].as_str().unwrap()).unwrap();
    Block::decode(&bytes).unwrap().header
}

#[test]
fn an_anchor_contradicting_verified_blocks_halts_the_follower() {
    // The sequencer does not anchor: the data account holds only what this test writes, like a
    // sequencer anchoring one chain and serving another.
    let l0 = L0::start(None, &[]);
    let seq = TestNode::start("block_time: \"100ms\"\n");
    let dir = tempfile::tempdir().unwrap();
    let f = start_follower(
        dir.path(),
        &seq.api,
        &sequencer_key(&seq),
        &follower_l0(&l0),
    );
    wait_for("the follower at height 6", Duration::from_secs(60), || {
        (stats(&f)["height"].as_u64().unwrap() >= 6).then_some(())
    });

    // A true anchor of 1..=2, then one of 3..=4 naming another block 4.
    let headers: Vec<_> = (1..=4).map(|h| header(&f, h)).collect();
    let good = Anchor::from_headers(CHAIN, &headers[..2]).unwrap();
    let mut lie = Anchor::from_headers(CHAIN, &headers[2..]).unwrap();
    lie.last_block_hash = Hash([0x5a; 32]);
    let ts = 1_735_689_600_000;
    write_anchor(&l0, &good, ts);
    wait_for("the true anchor confirmed", Duration::from_secs(30), || {
        (anchored(&f) >= 2).then_some(())
    });
    write_anchor(&l0, &lie, ts + 1);

    let s = wait_state(&f, "halted");
    let halted_at = s["height"].as_u64().unwrap();
    assert_eq!(s["anchored_height"], 2, "{s}");
    assert!(
        s["follower"]["halt_reason"]
            .as_str()
            .unwrap()
            .contains("contradicts"),
        "{s}"
    );
    let line = f.find_log("follower halted").expect("no halt line");
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("height=4"), "{line}");
    assert!(line.contains(&Hash([0x5a; 32]).to_string()), "{line}");
    assert!(line.contains(&headers[3].hash().to_string()), "{line}");
    let (code, v) = f.get("/health");
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["checks"]["sync"], false, "{v}");
    let text = f.metrics_text();
    assert!(
        text.contains("accumen_follower_anchor_checks_total{result=\"contradiction\"} 1"),
        "{text}"
    );
    assert!(text.contains("accumen_follower_halted 1"), "{text}");

    // Nothing more is committed while the sequencer goes on.
    let seq_at = seq.height();
    wait_for(
        "the sequencer 5 blocks further",
        Duration::from_secs(30),
        || (seq.height() >= seq_at + 5).then_some(()),
    );
    let s: Value = stats(&f);
    assert_eq!(s["state"], "halted", "{s}");
    assert_eq!(s["height"], halted_at, "{s}");
}
