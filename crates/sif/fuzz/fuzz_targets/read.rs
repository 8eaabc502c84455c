//! Fuzzes the reader and verifier: any byte string must be handled
//! without panicking or unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sreg_sif::fuzz::read_all(data);
});
