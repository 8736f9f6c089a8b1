#![no_main]
//! Arbitrary bytes as the settings file (`fuzz/checks.rs`, `config`).

use std::path::PathBuf;
use std::sync::OnceLock;

#[path = "../checks.rs"]
mod checks;

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::config(data, SCRATCH.get_or_init(checks::scratch_config_path));
});
