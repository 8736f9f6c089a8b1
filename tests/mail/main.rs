//! Email against a real Dovecot and a real SMTP server: end to end, the IMAP
//! poller, and TLS with a private CA.
//!
//! One test binary per group (each links the whole app), a module per area.

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/mod.rs"]
mod support;

mod email_e2e;
mod imap_poller;
mod oauth;
mod status_link;
mod tls;
