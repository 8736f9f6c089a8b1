//! TEMPORARY STUB on main — replaced by the ingest branch on merge.
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::sla::{Direction, TicketStatus};

#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub idempotency_key: String,
    pub channel: String,
    pub thread: String,
    pub direction: Option<Direction>,
    pub from: String,
    pub client: Option<String>,
    pub client_hint: Option<String>,
    pub subject: String,
    pub body: String,
    pub priority: Option<String>,
    pub status: Option<TicketStatus>,
    pub awaiting_client: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}
