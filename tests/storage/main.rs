//! The store and the service on SQLite and PostgreSQL: queries, a moved-clock
//! week, email through the service, the outbox against real receivers.
//!
//! One test binary per group (each links the whole app), a module per area.

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/mod.rs"]
mod support;

mod compliance;
mod email_ingest;
mod erasure;
mod event_batches;
mod focus;
mod notify_outbox;
mod record_days;
mod retention;
mod scenario;
mod store;
mod tally;
