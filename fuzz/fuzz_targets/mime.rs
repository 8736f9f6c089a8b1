#![no_main]
//! Arbitrary bytes as a mail from IMAP (`fuzz/checks.rs`, `mime`).

use std::sync::Once;

#[path = "../checks.rs"]
mod checks;

static HOOK: Once = Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // libFuzzer's hook aborts on every panic, even one parse_email catches;
    // let the one known dependency panic through to that catch, and abort
    // on anything else exactly as before.
    HOOK.call_once(|| {
        let libfuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            let file = info.location().map_or("", |l| l.file());
            if !checks::is_known_dependency_panic(file, message) {
                libfuzzer_hook(info);
            }
        }));
    });
    checks::mime(data);
});
