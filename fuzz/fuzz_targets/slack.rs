#![no_main]
//! A Slack Events API request body (`fuzz/checks.rs`, `slack`).

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::slack(data));
