//! What keepword sends, as use cases queue it: the kinds of outbox row, the
//! message each carries (fixed at enqueue, so a retry sends the same bytes),
//! email drafts with their Message-ID, and the templates of what clients
//! receive ([`templates`]). Use cases build a row here and insert it with
//! [`crate::store::enqueue`] in their own transaction; the worker and the
//! senders that deliver it are [`crate::notify`], which depends on this
//! model and not the other way round.

pub mod templates;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::NewOutbox;

/// A notification that cannot be queued as asked: what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid notification: {0}")]
pub struct Invalid(pub String);

/// A header a caller may add: a printable-ASCII name, and a value without
/// line breaks (which would let it inject further headers).
pub fn check_header(name: &str, value: &str) -> Result<(), Invalid> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(Invalid(format!("`{name}` is not a valid header name")));
    }
    lettre::message::header::HeaderName::new_from_ascii(name.to_string())
        .map_err(|_| Invalid(format!("`{name}` is not a valid header name")))?;
    if value.contains(['\r', '\n']) {
        return Err(Invalid(format!(
            "header `{name}` has a line break in its value"
        )));
    }
    Ok(())
}

/// What an outbox row is, as `outbox.kind` stores it and the
/// notification metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Email,
    Webhook,
    /// A Microsoft Teams message.
    Teams,
    /// A PagerDuty event.
    PagerDuty,
    /// An Opsgenie request.
    Opsgenie,
    /// A reply in a Slack thread (`chat.postMessage`).
    Slack,
    /// A warning waiting for its digest: never sent alone.
    Digest,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Email,
        Kind::Webhook,
        Kind::Teams,
        Kind::PagerDuty,
        Kind::Opsgenie,
        Kind::Slack,
        Kind::Digest,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Webhook => "webhook",
            Kind::Teams => "teams",
            Kind::PagerDuty => "pagerduty",
            Kind::Opsgenie => "opsgenie",
            Kind::Slack => "slack",
            Kind::Digest => "digest",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Kind, Invalid> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Invalid(format!("unknown outbox kind `{s}`")))
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `outbox.kind` of each row, as stored (the names are the database's).
pub const KIND_EMAIL: &str = Kind::Email.as_str();
pub const KIND_WEBHOOK: &str = Kind::Webhook.as_str();
pub const KIND_TEAMS: &str = Kind::Teams.as_str();
pub const KIND_PAGERDUTY: &str = Kind::PagerDuty.as_str();
pub const KIND_OPSGENIE: &str = Kind::Opsgenie.as_str();
pub const KIND_SLACK: &str = Kind::Slack.as_str();

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
    pub fn kind(&self) -> Kind {
        match self {
            OutboxMessage::Email { .. } => Kind::Email,
            OutboxMessage::Webhook { .. } => Kind::Webhook,
            OutboxMessage::Teams { .. } => Kind::Teams,
            OutboxMessage::PagerDuty { .. } => Kind::PagerDuty,
            OutboxMessage::Opsgenie { .. } => Kind::Opsgenie,
            OutboxMessage::Slack { .. } => Kind::Slack,
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

/// Builds an email outbox row; insert it with [`crate::store::enqueue`] in
/// the caller's transaction. The Message-ID is generated here and stored in
/// the payload, so every retry (and the `References` of later replies) uses
/// the same one.
pub fn new_email(
    draft: EmailDraft,
    message_id_domain: &str,
    dedupe_key: impl Into<String>,
    now: DateTime<Utc>,
) -> Result<NewOutbox, Invalid> {
    new_email_with_id(draft, message_id_domain, dedupe_key, now).map(|(row, _)| row)
}

/// [`new_email`], also returning the Message-ID it generated (a caller that
/// records the mail, as the acknowledgement does, needs it).
pub fn new_email_with_id(
    draft: EmailDraft,
    message_id_domain: &str,
    dedupe_key: impl Into<String>,
    now: DateTime<Utc>,
) -> Result<(NewOutbox, String), Invalid> {
    if draft.to.is_empty() {
        return Err(Invalid("an email needs a recipient".into()));
    }
    for addr in &draft.to {
        addr.parse::<lettre::message::Mailbox>()
            .map_err(|e| Invalid(format!("recipient `{addr}`: {e}")))?;
    }
    for (name, value) in &draft.headers {
        check_header(name, value)?;
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(Invalid(format!(
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
) -> Result<NewOutbox, Invalid> {
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
) -> Result<NewOutbox, Invalid> {
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
) -> Result<NewOutbox, Invalid> {
    let parsed = reqwest::Url::parse(url).map_err(|e| Invalid(format!("webhook url: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Invalid(format!(
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
        kind: message.kind().as_str().into(),
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
            assert!(matches!(e, Err(Invalid(_))), "{draft:?}");
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
    fn kinds_read_back_as_stored() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
        }
        assert!("fax".parse::<Kind>().is_err());
    }
}
