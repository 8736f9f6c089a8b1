//! keepword holds a client-facing team to its written communication contract.
//!
//! Pure core (no IO, no tokio, no diesel; time comes in as an argument):
//! - [`calendar`]: business time — open intervals, `add`, `between`.
//! - [`contract`]: the written contract — parsing with spans, validation,
//!   version hash, rendering.
//! - [`sla`]: conversation events → timers, health, typed due actions (with
//!   their recipients); classification.
//! - [`ingest::email`] and [`ingest::webhook`]: raw MIME, generic events and
//!   GitHub deliveries → typed values; the routing and threading rules.
//!
//! Where the core meets storage and notification:
//! - [`service`]: the use cases (events, email, refresh, due work, the
//!   contract in force and its reload, read models for the API); the
//!   mailbox port the IMAP poller feeds.
//! - [`backtest`]: replays an mbox or Maildir through the same routing,
//!   threading, classification and engine, in memory (reads files).
//!
//! Adapters, depending inward:
//! - [`store`]: diesel over SQLite or PostgreSQL, one file per aggregate;
//!   enums and UTC instants at its boundary, backend differences inside.
//! - [`imap`]: the IMAP poller (connection, poller loop, the mailbox lease),
//!   feeding the service's mail port.
//! - [`notify`]: the transactional outbox's worker and senders — SMTP,
//!   webhooks, Teams, PagerDuty, Opsgenie, Slack — delivering what use cases
//!   queued in the message model of [`outbox`] (rows and templates).
//! - [`scheduler`]: sleeps until the earliest due, or until woken or the clock
//!   moves; runs one due-work step.
//! - [`retention`]: the daily job removing bodies past `[retention] bodies`.
//! - [`web`]: actix-web — API, webhooks, OpenAPI, health, metrics, contract
//!   page; one error mapping.
//! - [`tls`]: TLS roots (public plus a private CA file) for IMAP and SMTP.
//!
//! Around them: [`clock`] (the only reader of the system clock, but for an
//! OAuth token's expiry, which is the provider's wall time), [`config`]
//! (settings from defaults, file and `KEEPWORD_*` env), [`metrics`] (one
//! registry the app owns) and [`app`] (wiring; only `main` uses it).

pub mod app;
pub mod backtest;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod contract;
pub mod imap;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod oauth;
pub mod outbox;
pub mod retention;
pub mod scheduler;
pub mod service;
pub mod sla;
pub mod store;
pub mod tally;
pub mod tls;
pub mod web;
