//! Notifications: a transactional outbox and the worker that delivers it.
//!
//! Use cases never talk to SMTP or HTTP. They build a row with
//! [`crate::outbox::new_email`] / [`crate::outbox::new_webhook`] and insert it with
//! [`crate::store::enqueue`] inside their own transaction, so a notification
//! exists exactly when the state change that caused it committed. After the
//! commit they call `wake.notify_one()` so the [`OutboxWorker`] picks it up
//! within milliseconds instead of at its next timed wake-up.
//!
//! Delivery guarantee: at least once, never concurrently twice. A row is
//! claimed under a lease (committed before sending), sent, then marked sent.
//! The only window for a duplicate is a crash after the receiver accepted the
//! message and before `sent_at` is committed; the email then goes again with
//! the same `Message-ID`, which lets receiving clients fold the two.
//!
//! - [`smtp`]: email over SMTP (lettre, rustls).
//! - [`webhook`]: JSON POSTs (reqwest, rustls), Slack-compatible bodies.
//! - [`slack`]: replies in Slack threads (`chat.postMessage`, bot token).
//! - [`worker`]: claim → send → record, as one testable step and a loop.

pub mod slack;
pub mod smtp;
pub mod webhook;
pub mod worker;

use chrono::{DateTime, Utc};

use crate::store::StoreError;

pub use crate::outbox::{
    EmailDraft, KIND_EMAIL, KIND_OPSGENIE, KIND_PAGERDUTY, KIND_SLACK, KIND_TEAMS, KIND_WEBHOOK,
    OutboxMessage,
};
pub use slack::SlackSender;
pub use smtp::SmtpSender;
pub use webhook::{Endpoints, WebhookSender};
pub use worker::{OutboxWorker, Senders, StepReport, WorkerConfig, backoff};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid notification: {0}")]
    Invalid(String),
    #[error("outbox row {id} has an unreadable payload: {reason}")]
    Payload { id: i64, reason: String },
    #[error("smtp: {0}")]
    Smtp(String),
    #[error("webhook: {0}")]
    Webhook(String),
    /// The receiver refused for good (SMTP 5xx, HTTP 4xx other than 408/429).
    #[error("rejected by {0}")]
    Rejected(String),
    #[error("no SMTP sender is configured")]
    NoSmtp,
    /// `[slack]` is not configured: nothing to post with.
    #[error("no Slack bot token is configured: add [slack] to the config")]
    NoSlack,
    /// The receiver asked to be called again later (Slack's `ratelimited`
    /// with `Retry-After`): retried then, not on the back-off schedule.
    #[error("{message} (retry after {secs} s)")]
    RetryAfter { message: String, secs: u64 },
    #[error("{what} timed out after {secs} s")]
    Timeout { what: &'static str, secs: u64 },
    /// The request went out and no answer came (a timeout after it was
    /// sent, the connection lost before the reply): the receiver may have
    /// it. Retried with the same identity.
    #[error("outcome unknown: {0}")]
    Uncertain(String),
    #[error("background task failed: {0}")]
    Task(String),
}

impl NotifyError {
    /// The receiver may have the notification although the attempt failed:
    /// the next attempt may deliver it a second time (with the same
    /// identity: Message-ID, `webhook-id`, `dedup_key`).
    pub fn is_uncertain(&self) -> bool {
        matches!(
            self,
            NotifyError::Uncertain(_) | NotifyError::Timeout { .. }
        )
    }

    /// Refused for good: the receiver said no (SMTP 5xx, HTTP 4xx other
    /// than 408/429) or the payload cannot be sent. Retrying would get the
    /// same answer, so the row is parked and shown; an operator sends it
    /// again after fixing the cause.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            NotifyError::Invalid(_) | NotifyError::Payload { .. } | NotifyError::Rejected(_)
        )
    }

    /// Waits for configuration (no SMTP server, no Slack token): retried at
    /// the longest back-off, so adding the setting lets it through without
    /// anyone replaying it.
    pub fn is_permanent(&self) -> bool {
        self.is_refused() || matches!(self, NotifyError::NoSmtp | NotifyError::NoSlack)
    }
}

/// A `Retry-After` longer than this is capped: the row is looked at again
/// then, and the receiver says again how long to wait.
pub const MAX_RETRY_AFTER_SECS: u64 = 300;

/// Seconds to wait from a `Retry-After` value (delta-seconds, or an
/// HTTP-date compared with `now`), at least 1 and at most
/// [`MAX_RETRY_AFTER_SECS`]; `None` when absent or unreadable.
pub fn retry_after_secs(value: Option<&str>, now: DateTime<Utc>) -> Option<u64> {
    let value = value?.trim();
    let secs = match value.parse::<u64>() {
        Ok(secs) => secs,
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value).ok()?;
            u64::try_from((at.with_timezone(&Utc) - now).num_seconds()).unwrap_or(0)
        }
    };
    Some(secs.clamp(1, MAX_RETRY_AFTER_SECS))
}

impl From<crate::outbox::Invalid> for NotifyError {
    fn from(e: crate::outbox::Invalid) -> Self {
        NotifyError::Invalid(e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        assert_eq!(retry_after_secs(Some("7"), now), Some(7));
        assert_eq!(retry_after_secs(Some(" 0 "), now), Some(1));
        assert_eq!(
            retry_after_secs(Some("86400"), now),
            Some(MAX_RETRY_AFTER_SECS)
        );
        // 2026-11-24T10:00:00Z is a Tuesday.
        assert_eq!(
            retry_after_secs(Some("Tue, 24 Nov 2026 10:02:00 GMT"), now),
            Some(120)
        );
        assert_eq!(
            retry_after_secs(Some("Tue, 24 Nov 2026 09:00:00 GMT"), now),
            Some(1)
        );
        assert_eq!(retry_after_secs(Some("soon"), now), None);
        assert_eq!(retry_after_secs(None, now), None);
    }
}
