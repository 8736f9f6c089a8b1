//! Notifications: a transactional outbox and the worker that delivers it.
//!
//! Use cases never talk to SMTP or HTTP. They build a row with
//! [`new_email`] / [`new_webhook`] and insert it with
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

pub mod ack;
pub mod slack;
pub mod smtp;
pub mod webhook;
pub mod worker;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::{NewOutbox, StoreError};

pub use slack::SlackSender;
pub use smtp::SmtpSender;
pub use webhook::{Endpoints, WebhookSender};
pub use worker::{OutboxWorker, Senders, StepReport, WorkerConfig, backoff};

/// `outbox.kind` of an email row.
pub const KIND_EMAIL: &str = "email";
/// `outbox.kind` of a webhook row.
pub const KIND_WEBHOOK: &str = "webhook";
/// `outbox.kind` of a Microsoft Teams row.
pub const KIND_TEAMS: &str = "teams";
/// `outbox.kind` of a PagerDuty event.
pub const KIND_PAGERDUTY: &str = "pagerduty";
/// `outbox.kind` of an Opsgenie request.
pub const KIND_OPSGENIE: &str = "opsgenie";
/// `outbox.kind` of a reply in a Slack thread (`chat.postMessage`).
pub const KIND_SLACK: &str = "slack";

/// What an outbox row delivers; serialized as JSON into `outbox.payload`.
/// Everything the sender needs is in here, fixed at enqueue time, so a retry
/// sends byte-for-byte the same notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboxMessage {
    Email {
        to: Vec<String>,
        subject: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        html: Option<String>,
        /// Extra headers in order, e.g. `Auto-Submitted`, `In-Reply-To`,
        /// `References`, `X-Auto-Response-Suppress`.
        #[serde(default)]
        headers: Vec<(String, String)>,
        /// `<uuid@domain>`, generated once at enqueue time.
        message_id: String,
    },
    Webhook {
        url: String,
        body: serde_json::Value,
        /// The `webhook-id` header, fixed at enqueue time. Rows enqueued
        /// before it existed use their outbox id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        webhook_id: Option<String>,
    },
    /// A Teams Workflows message with one Adaptive Card.
    Teams {
        url: String,
        body: serde_json::Value,
    },
    /// A PagerDuty Events API v2 event; its routing key is inside.
    #[serde(rename = "pagerduty")]
    PagerDuty { event: serde_json::Value },
    /// Opsgenie: create the alert `alias`, or close it.
    Opsgenie {
        key: String,
        alias: String,
        close: bool,
        body: serde_json::Value,
    },
    /// A reply in a Slack thread. The bot token is not in here: the sender
    /// holds it, so the database never does.
    Slack {
        channel: String,
        thread_ts: String,
        /// Slack mrkdwn, escaped.
        text: String,
    },
}

impl OutboxMessage {
    pub fn kind(&self) -> &'static str {
        match self {
            OutboxMessage::Email { .. } => KIND_EMAIL,
            OutboxMessage::Webhook { .. } => KIND_WEBHOOK,
            OutboxMessage::Teams { .. } => KIND_TEAMS,
            OutboxMessage::PagerDuty { .. } => KIND_PAGERDUTY,
            OutboxMessage::Opsgenie { .. } => KIND_OPSGENIE,
            OutboxMessage::Slack { .. } => KIND_SLACK,
        }
    }
}

/// An email to enqueue; [`new_email`] adds the `Message-ID`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmailDraft {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// Headers the sender sets itself from the payload; a caller-supplied copy
/// would contradict them (two `To:` lines, a second `Message-ID`).
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "message-id",
    "date",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

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

/// The bare address of a `Name <address>` or plain address, lower-cased.
pub fn address_of(from: &str) -> String {
    match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => &from[a + 1..b],
        _ => from,
    }
    .trim()
    .to_ascii_lowercase()
}

/// The domain for generated Message-IDs: the domain of the configured
/// `From:` address (`Support <support@example.com>` → `example.com`).
pub fn message_id_domain(from: &str) -> String {
    address_of(from)
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "keepword.invalid".into())
}

/// Builds an email outbox row; insert it with [`crate::store::enqueue`] in
/// the caller's transaction. The Message-ID is generated here and stored in
/// the payload, so every retry (and the `References` of later replies) uses
/// the same one.
pub fn new_email(
    draft: EmailDraft,
    message_id_domain: &str,
    dedupe_key: impl Into<String>,
    now: DateTime<Utc>,
) -> Result<NewOutbox, NotifyError> {
    new_email_with_id(draft, message_id_domain, dedupe_key, now).map(|(row, _)| row)
}

/// [`new_email`], also returning the Message-ID it generated (a caller that
/// records the mail, as the acknowledgement does, needs it).
pub fn new_email_with_id(
    draft: EmailDraft,
    message_id_domain: &str,
    dedupe_key: impl Into<String>,
    now: DateTime<Utc>,
) -> Result<(NewOutbox, String), NotifyError> {
    if draft.to.is_empty() {
        return Err(NotifyError::Invalid("an email needs a recipient".into()));
    }
    for addr in &draft.to {
        addr.parse::<lettre::message::Mailbox>()
            .map_err(|e| NotifyError::Invalid(format!("recipient `{addr}`: {e}")))?;
    }
    for (name, value) in &draft.headers {
        smtp::check_header(name, value)?;
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(NotifyError::Invalid(format!(
                "header `{name}` is set by the sender, not by the caller"
            )));
        }
    }
    let message_id = format!("<{}@{}>", uuid::Uuid::new_v4().simple(), message_id_domain);
    let target = draft.to.join(", ");
    let message = OutboxMessage::Email {
        to: draft.to,
        subject: draft.subject,
        text: draft.text,
        html: draft.html,
        headers: draft.headers,
        message_id: message_id.clone(),
    };
    Ok((row(&message, target, dedupe_key.into(), now), message_id))
}

/// Builds a webhook outbox row (a JSON POST to `url`). Slack-compatible
/// receivers read `body.text`; other receivers read the structured fields.
pub fn new_webhook(
    url: &str,
    body: serde_json::Value,
    dedupe_key: impl Into<String>,
    now: DateTime<Utc>,
) -> Result<NewOutbox, NotifyError> {
    url_row(url, dedupe_key.into(), now, |url| OutboxMessage::Webhook {
        url,
        body,
        webhook_id: Some(format!("msg_{}", uuid::Uuid::new_v4().simple())),
    })
}

/// Builds a Teams Workflows row: `body` is the message with its card.
pub fn new_teams(
    url: &str,
    body: serde_json::Value,
    dedupe_key: impl Into<String>,
    now: DateTime<Utc>,
) -> Result<NewOutbox, NotifyError> {
    url_row(url, dedupe_key.into(), now, |url| OutboxMessage::Teams {
        url,
        body,
    })
}

/// Builds a reply in the Slack thread `thread_ts` of `channel`.
pub fn new_slack(
    channel: &str,
    thread_ts: &str,
    text: String,
    dedupe_key: impl Into<String>,
    now: DateTime<Utc>,
) -> NewOutbox {
    let message = OutboxMessage::Slack {
        channel: channel.to_string(),
        thread_ts: thread_ts.to_string(),
        text,
    };
    row(&message, format!("slack:{channel}"), dedupe_key.into(), now)
}

/// Builds a PagerDuty row (`event` holds the routing key).
pub fn new_pagerduty(
    event: serde_json::Value,
    dedupe_key: impl Into<String>,
    now: DateTime<Utc>,
) -> NewOutbox {
    let message = OutboxMessage::PagerDuty { event };
    row(&message, KIND_PAGERDUTY.into(), dedupe_key.into(), now)
}

/// Builds an Opsgenie row: create the alert `alias` with `body`, or close it.
pub fn new_opsgenie(
    key: &str,
    alias: &str,
    close: bool,
    body: serde_json::Value,
    dedupe_key: impl Into<String>,
    now: DateTime<Utc>,
) -> NewOutbox {
    let message = OutboxMessage::Opsgenie {
        key: key.to_string(),
        alias: alias.to_string(),
        close,
        body,
    };
    row(&message, KIND_OPSGENIE.into(), dedupe_key.into(), now)
}

/// A row POSTed to `url`. The outbox's `target` column is shown on the
/// dashboard, so it keeps only scheme and host: secrets in the path or query
/// (Slack and Teams put their token there) stay out of it.
fn url_row(
    url: &str,
    dedupe_key: String,
    now: DateTime<Utc>,
    message: impl FnOnce(String) -> OutboxMessage,
) -> Result<NewOutbox, NotifyError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| NotifyError::Invalid(format!("webhook url: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(NotifyError::Invalid(format!(
            "webhook url must be http(s), not {}",
            parsed.scheme()
        )));
    }
    let target = format!(
        "{}://{}",
        parsed.scheme(),
        parsed.host_str().unwrap_or_default()
    );
    Ok(row(&message(url.to_string()), target, dedupe_key, now))
}

fn row(
    message: &OutboxMessage,
    target: String,
    dedupe_key: String,
    now: DateTime<Utc>,
) -> NewOutbox {
    NewOutbox {
        kind: message.kind().into(),
        target,
        payload: serde_json::to_string(message).expect("an OutboxMessage always serializes"),
        dedupe_key,
        created_at: now,
        available_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-24T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn email_rows_keep_their_message_id_and_headers() {
        let draft = EmailDraft {
            to: vec!["Ann <ann@client.test>".into()],
            subject: "Re: help".into(),
            text: "hello".into(),
            html: Some("<p>hello</p>".into()),
            headers: vec![("Auto-Submitted".into(), "auto-replied".into())],
        };
        let row = new_email(draft, "example.com", "ack:1", now()).unwrap();
        assert_eq!(row.kind, "email");
        assert_eq!(row.dedupe_key, "ack:1");
        assert_eq!(row.available_at, now());
        let msg: OutboxMessage = serde_json::from_str(&row.payload).unwrap();
        let OutboxMessage::Email {
            message_id,
            headers,
            ..
        } = msg
        else {
            panic!("not an email: {msg:?}");
        };
        assert!(message_id.starts_with('<') && message_id.ends_with("@example.com>"));
        assert_eq!(headers[0].0, "Auto-Submitted");
    }

    #[test]
    fn bad_emails_are_refused_at_enqueue() {
        let ok = EmailDraft {
            to: vec!["ann@client.test".into()],
            ..Default::default()
        };
        let cases = [
            EmailDraft {
                to: vec![],
                ..ok.clone()
            },
            EmailDraft {
                to: vec!["not an address".into()],
                ..ok.clone()
            },
            EmailDraft {
                headers: vec![("Message-ID".into(), "<x@y>".into())],
                ..ok.clone()
            },
            EmailDraft {
                headers: vec![("X-Bad".into(), "a\r\nBcc: evil@x.test".into())],
                ..ok.clone()
            },
            EmailDraft {
                headers: vec![("Bad Name".into(), "v".into())],
                ..ok.clone()
            },
        ];
        for draft in cases {
            let e = new_email(draft.clone(), "example.com", "k", now());
            assert!(matches!(e, Err(NotifyError::Invalid(_))), "{draft:?}");
        }
        assert!(new_email(ok, "example.com", "k", now()).is_ok());
    }

    #[test]
    fn webhook_targets_hide_url_secrets() {
        let row = new_webhook(
            "https://hooks.slack.test/services/T0/B0/secret",
            serde_json::json!({"text": "breach"}),
            "esc:1",
            now(),
        )
        .unwrap();
        assert_eq!(row.kind, "webhook");
        assert_eq!(row.target, "https://hooks.slack.test");
        assert!(new_webhook("ftp://x", serde_json::json!({}), "k", now()).is_err());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = now();
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

    #[test]
    fn message_id_domain_comes_from_the_from_address() {
        assert_eq!(
            message_id_domain("Northwind Support <support@Example.com>"),
            "example.com"
        );
        assert_eq!(message_id_domain("ops@team.test"), "team.test");
        assert_eq!(message_id_domain("nobody"), "keepword.invalid");
    }
}
