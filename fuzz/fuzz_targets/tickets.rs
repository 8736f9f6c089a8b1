#![no_main]
//! Source line (`jira`, `linear`, `basecamp`) + body (`fuzz/checks.rs`,
//! `tickets`).

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::tickets(data));
