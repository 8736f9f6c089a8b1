//! keepword holds a client-facing team to its written communication contract.
//!
//! Pure core (no IO; time comes in as an argument):
//! - [`calendar`]: business time — open intervals, `add`, `between`.
//! - [`contract`]: the written contract — parsing with spans, validation, rendering.
//! - [`sla`]: conversation events → timers, health, due escalations; classification.
//!
//! Adapters around it:
//! - [`ingest`]: ticket webhooks (generic events, GitHub) → typed events; signatures.
//! - [`store`]: diesel over SQLite or PostgreSQL, migrations embedded.
//! - [`notify`]: the transactional outbox worker — SMTP and webhooks.
//! - [`web`]: actix-web — health, readiness, metrics, the public contract page.
//! - [`config`]: service settings from defaults, file and `KEEPWORD_*` env.
//! - [`metrics`]: every exported metric, in a registry the app owns.
//! - [`tls`]: TLS client trust (public roots plus `ca_file`) for IMAP and SMTP.
//! - [`app`]: wiring — builds the running service from settings.

pub mod app;
pub mod backtest;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod contract;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod scheduler;
pub mod service;
pub mod sla;
pub mod store;
pub mod tls;
pub mod web;
