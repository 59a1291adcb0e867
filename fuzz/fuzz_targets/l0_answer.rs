//! libFuzzer target: the L0 answers the bridge's JSON-RPC client parses
//! (`accumen_actors::fuzz_tests::check_l0_answer`).
#![no_main]

use std::sync::LazyLock;

use accumen_actors::bridge::json::Envelope;
use accumen_actors::fuzz_tests::{anchor_envelope, check_l0_answer};

static ENVELOPE: LazyLock<Envelope> = LazyLock::new(anchor_envelope);

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_l0_answer(&ENVELOPE, data));
