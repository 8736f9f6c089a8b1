#![no_main]
//! Arbitrary UTF-8 as a contract file (`fuzz/checks.rs`, `contract`).

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Contracts are read with read_to_string: non-UTF-8 never reaches the
    // parser.
    if let Ok(source) = std::str::from_utf8(data) {
        checks::contract(source);
    }
});
