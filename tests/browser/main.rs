//! The dashboard in a real headless Chromium, driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, installed by the test
//! command): what a person sees, that hostile input stays inert, live
//! updates without a reload, keys, and axe-core's accessibility check.
//! Screenshots of each page go to `target/browser-screenshots/`.

#[path = "../common/mod.rs"]
mod common;

#[allow(unused_imports)]
#[path = "../support/mod.rs"]
mod support;

mod browser;
mod client_page;
mod dashboard;
mod refused;
mod sign_in;
