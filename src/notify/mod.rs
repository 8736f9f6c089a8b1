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

    /// Retrying cannot help: the payload or the address is wrong, or the
    /// receiver refused for good. Such rows are retried at the longest
    /// back-off only, so an operator can still fix and replay them.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            NotifyError::Invalid(_)
                | NotifyError::Payload { .. }
                | NotifyError::NoSmtp
                | NotifyError::NoSlack
                | NotifyError::Rejected(_)
        )
    }
}

impl From<crate::outbox::Invalid> for NotifyError {
    fn from(e: crate::outbox::Invalid) -> Self {
        NotifyError::Invalid(e.0)
    }
}
