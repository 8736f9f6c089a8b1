//! The generic ticket event of `POST /api/v1/events`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::*;

pub(super) const GENERIC_FIELDS: [&str; 12] = [
    "id",
    "channel",
    "thread",
    "direction",
    "from",
    "client",
    "subject",
    "body",
    "priority",
    "status",
    "at",
    "awaiting_client",
];

/// Parses the body of `POST /api/v1/events` (README, "HTTP API").
///
/// Required: `id`, `channel`, `thread`, and `direction` or `status` (or
/// both: a reply that also sets the ticket pending). Optional: `from`,
/// `client`, `subject`, `body`, `priority`, `at` (default `now`),
/// `awaiting_client` (default false; outbound only). `null` counts as absent.
pub fn parse_generic(body: &[u8], now: DateTime<Utc>) -> Result<IncomingEvent, EventError> {
    let root = parse_object(body)?;
    let mut p = Problems::default();

    let id = p.text(&root, "id", Rule::required(MAX_ID_CHARS));
    let channel = p.text(&root, "channel", Rule::required(MAX_CHANNEL_CHARS));
    let thread = p.text(&root, "thread", Rule::required(MAX_THREAD_CHARS));
    let direction = p.direction(&root);
    if lookup(&root, "direction").is_none() && lookup(&root, "status").is_none() {
        p.push(
            "direction",
            "is required when \"status\" is absent: an event is a message (direction), \
             a status change (status), or both",
        );
    }
    let from = p.text(&root, "from", Rule::optional(Limit::Chars(MAX_NAME_CHARS)));
    let client = p.text(&root, "client", Rule::optional_non_empty(MAX_NAME_CHARS));
    let subject = p.text(
        &root,
        "subject",
        Rule::optional(Limit::Chars(MAX_SUBJECT_CHARS)),
    );
    let text = p.text(&root, "body", Rule::optional(Limit::Bytes(MAX_BODY_BYTES)));
    let priority = p.text(
        &root,
        "priority",
        Rule::optional_non_empty(MAX_PRIORITY_CHARS),
    );
    let status = p.status(&root);
    let at = p.instant(&root, "at", false, now);
    let awaiting_client = p.awaiting_client(&root, direction);
    if let Value::Object(map) = &root {
        for key in map.keys().filter(|k| !GENERIC_FIELDS.contains(&k.as_str())) {
            p.push(
                clip(key, 100),
                format!(
                    "is not a known field (known: {})",
                    GENERIC_FIELDS.join(", ")
                ),
            );
        }
    }

    match (p.0.is_empty(), id, channel, thread) {
        (true, Some(id), Some(channel), Some(thread)) => Ok(IncomingEvent {
            idempotency_key: id.to_owned(),
            channel: channel.to_owned(),
            thread: thread.to_owned(),
            direction,
            from: from.unwrap_or_default().to_owned(),
            client: client.map(str::to_owned),
            client_hint: None,
            subject: subject.unwrap_or_default().to_owned(),
            body: text.unwrap_or_default().to_owned(),
            priority: priority.map(str::to_owned),
            status,
            awaiting_client,
            at: at.unwrap_or(now),
        }),
        _ => Err(EventError::Invalid(p.0)),
    }
}
