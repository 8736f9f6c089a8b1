#![no_main]
//! Arbitrary bytes as a `POST /api/v1/events` body (`fuzz/checks.rs`, `event`).

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::event(data));
