//! libFuzzer target: `accumen_actors::fuzz_tests::check_tx_binary` (see that module's doc).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| accumen_actors::fuzz_tests::check_tx_binary(data));
