#![no_main]
//! `X-GitHub-Event` line + body (`fuzz/checks.rs`, `github`).

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::github(data));
