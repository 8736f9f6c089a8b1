//! keepword holds a client-facing team to its written communication contract.
//!
//! Pure core (no IO, time comes in as an argument):
//! - [`calendar`]: business time — open intervals, `add`, `between`.
//! - [`contract`]: the written contract — parsing with spans, validation, rendering.
//!
//! Adapters around it:
//! - [`store`]: diesel over SQLite or PostgreSQL, migrations embedded.
//! - [`web`]: actix-web — health, metrics, the public contract page.
//! - [`config`]: service settings from defaults, file and `KEEPWORD_*` env.
//! - [`app`]: wiring — builds the running service from settings.

pub mod calendar;
pub mod contract;
