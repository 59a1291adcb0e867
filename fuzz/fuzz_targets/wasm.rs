//! libFuzzer target: contract validation and compilation of arbitrary bytes
//! (`accumen_actors::fuzz_tests::WasmChecker::check`). One engine per process, as in the node.
#![no_main]

use std::cell::RefCell;

use accumen_actors::fuzz_tests::WasmChecker;

thread_local! {
    static CHECKER: RefCell<WasmChecker> = RefCell::new(WasmChecker::new());
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    CHECKER.with(|c| {
        c.borrow_mut().check(data);
    })
});
