#![no_main]
//! Arbitrary bytes as a mail from IMAP (`fuzz/checks.rs`, `mime`).

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::mime(data));
