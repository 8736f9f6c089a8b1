//! Notifications the receiver refused for good (SMTP 5xx, HTTP 4xx other
//! than 408/429, a payload that cannot be sent): parked by the outbox worker
//! instead of retried, listed on the dashboard's Rejected page and on their
//! conversation's timeline, and sent again by an operator once the cause is
//! fixed (the address, the receiver, the config).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Deadlines, Reads, ServiceError};
use crate::store::{self, outbox};

/// One parked notification, as the Rejected page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedNotification {
    pub id: i64,
    /// `email`, `webhook`, `teams`, `pagerduty`, `opsgenie`, `slack`.
    pub kind: String,
    /// What it was: "acknowledgement", "alert", "client report", …
    pub what: &'static str,
    /// Where it went, without secrets (scheme and host, or the addresses).
    pub target: String,
    /// The contract contact an alert was for.
    pub contact: Option<String>,
    pub conversation_id: Option<i64>,
    /// The receiver's answer.
    pub error: String,
    pub attempts: i32,
    pub refused_at: DateTime<Utc>,
}

impl RefusedNotification {
    fn of(r: store::OutboxRow) -> Option<RefusedNotification> {
        Some(RefusedNotification {
            what: what_of(&r.dedupe_key, r.step.is_some()),
            conversation_id: r
                .conversation_id
                .or_else(|| conversation_of_ack(&r.dedupe_key)),
            refused_at: r.refused_at?,
            error: r.last_error.unwrap_or_default(),
            id: r.id,
            kind: r.kind,
            target: r.target,
            contact: r.contact,
            attempts: r.attempts,
        })
    }
}

/// An acknowledgement's outbox key names its conversation (`ack:{id}`).
pub(crate) fn conversation_of_ack(dedupe_key: &str) -> Option<i64> {
    dedupe_key.strip_prefix("ack:")?.parse().ok()
}

fn what_of(dedupe_key: &str, is_step: bool) -> &'static str {
    let prefix = dedupe_key.split(':').next().unwrap_or_default();
    match prefix {
        _ if is_step => "alert",
        "ack" => "acknowledgement",
        "client-report" => "client report",
        "weekly-digest" => "weekly digest",
        "digest" => "alert digest",
        _ => "notification",
    }
}

impl Reads {
    /// Refused notifications, newest first (at most `limit`).
    pub fn refused_notifications(
        &self,
        limit: i64,
    ) -> Result<Vec<RefusedNotification>, ServiceError> {
        let rows = self.store().with(|c| outbox::refused(c, limit))?;
        Ok(rows
            .into_iter()
            .filter_map(RefusedNotification::of)
            .collect())
    }
}

impl Deadlines {
    /// Sends a refused notification again: due at once, with the same
    /// payload and identity (Message-ID, `webhook-id`, `dedup_key`).
    pub fn send_again(&self, id: i64, now: DateTime<Utc>) -> Result<(), ServiceError> {
        if !self
            .store()
            .transaction(|c| outbox::send_again(c, id, now))?
        {
            return Err(ServiceError::NotFound(format!("refused notification {id}")));
        }
        tracing::info!(
            outbox.id = id,
            "refused notification sent again by an operator"
        );
        self.after.outbox_wake.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_what_it_was() {
        assert_eq!(what_of("ack:12", false), "acknowledgement");
        assert_eq!(
            what_of("esc:12:first_response/0:alice:webhook", true),
            "alert"
        );
        assert_eq!(
            what_of("client-report:acme:2026-11", false),
            "client report"
        );
        assert_eq!(what_of("something", false), "notification");
        assert_eq!(conversation_of_ack("ack:12"), Some(12));
        assert_eq!(conversation_of_ack("ack:slack:12"), None);
    }
}
