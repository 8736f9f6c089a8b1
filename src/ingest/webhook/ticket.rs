//! What the Jira, Linear and Basecamp front ends share: checking a
//! delivery's credential, deciding who wrote it and which client it is for,
//! and turning the result into one [`IncomingEvent`] with every bad field
//! listed. Each source's own module only reads its payload's shape.

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::Mac;
use serde_json::Value;

use super::signature::{mac, sha256_hex};
use super::*;
use crate::contract::{Client, Contract};
use crate::sla::{Direction, TicketStatus};

/// What a ticket system's delivery means for keepword: an event, or a
/// well-formed delivery it has no use for (answered 202, counted).
pub type TicketOutcome = GithubOutcome;

/// Why a delivery's credential was refused (HTTP 401, or 404 for a wrong
/// Basecamp URL). The body is never parsed before this passes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookAuthError {
    /// An empty secret would make every forged signature valid.
    #[error("no webhook secret is configured for this source")]
    NoSecret,
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is not {1}")]
    Malformed(&'static str, &'static str),
    #[error("the {0} signature does not match the body")]
    Mismatch(&'static str),
    #[error(
        "webhookTimestamp is {0} ms away from the server's clock; a delivery more than 60 s old may be a replay"
    )]
    Stale(i64),
    #[error(
        "X-Slack-Request-Timestamp is {0} s away from the server's clock; a request more than 5 minutes old may be a replay"
    )]
    SlackStale(i64),
    #[error("webhookTimestamp is missing or not milliseconds since 1970")]
    NoTimestamp,
    #[error("the webhook URL's secret is wrong")]
    WrongSecret,
}

/// An HMAC-SHA256 signature header: `prefix` then 64 hex digits. Only the
/// header's shape, so the HTTP edge can refuse before reading the body.
pub fn hmac_header_digest(
    name: &'static str,
    prefix: &'static str,
    header: Option<&str>,
) -> Result<Vec<u8>, WebhookAuthError> {
    let shape = if prefix.is_empty() {
        "64 hex digits"
    } else {
        "\"sha256=\" and 64 hex digits"
    };
    header
        .ok_or(WebhookAuthError::Missing(name))?
        .trim()
        .strip_prefix(prefix)
        .and_then(sha256_hex)
        .ok_or(WebhookAuthError::Malformed(name, shape))
}

/// Checks an HMAC-SHA256 signature header over the raw body in constant
/// time (`Mac::verify_slice`): the response time tells a forger nothing.
pub fn verify_hmac_header(
    secret: &[u8],
    body: &[u8],
    name: &'static str,
    prefix: &'static str,
    header: Option<&str>,
) -> Result<(), WebhookAuthError> {
    if secret.is_empty() {
        return Err(WebhookAuthError::NoSecret);
    }
    let expected = hmac_header_digest(name, prefix, header)?;
    mac(secret, body)
        .verify_slice(&expected)
        .map_err(|_| WebhookAuthError::Mismatch(name))
}

/// The hex HMAC-SHA256 of `body`: what Jira (after `sha256=`) and Linear
/// send, for tests and tools that replay deliveries.
pub fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    hex::encode(mac(secret, body).finalize().into_bytes())
}

/// A payload's author as far as keepword cares.
#[derive(Default)]
pub(super) struct Author<'v> {
    pub email: Option<&'v str>,
    pub name: Option<&'v str>,
    pub id: Option<&'v str>,
}

impl Author<'_> {
    /// The sender recorded on the message: the address when the product
    /// shares it (it is what the contract's domains match), else a name.
    pub fn label(&self) -> String {
        let s = self.email.or(self.name).or(self.id).unwrap_or_default();
        clip(s.trim(), MAX_NAME_CHARS)
    }

    /// Whether the address is one of a declared client's.
    pub fn in_client_domain(&self, contract: &Contract) -> bool {
        self.email
            .is_some_and(|e| contract.client_for_email(e).is_some())
    }
}

/// Reads `name`, `email` and `id` style keys of a person object.
pub(super) fn author<'v>(
    root: &'v Value,
    path: &str,
    email: &str,
    name: &str,
    id: &str,
) -> Author<'v> {
    let field = |key: &str| {
        lookup(root, &format!("{path}.{key}"))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    Author {
        email: field(email),
        name: field(name),
        id: field(id),
    }
}

/// The client a new conversation is for: the one whose contract entry
/// claims the product's project (`claims`), else the author's declared
/// client. `None` leaves it to the service, which files the sender under
/// `unknown` or ignores them as the contract says.
pub(super) fn client_for(
    contract: &Contract,
    claims: impl Fn(&Client) -> bool,
    author: &Author<'_>,
) -> Option<String> {
    contract
        .clients()
        .iter()
        .find(|c| claims(c))
        .or_else(|| author.email.and_then(|e| contract.client_for_email(e)))
        .map(|c| c.id.clone())
}

/// The direction of a message by who wrote it and who may see it.
pub(super) fn direction(client_side: bool, internal: bool) -> Direction {
    match (internal, client_side) {
        (true, _) => Direction::Internal,
        (false, true) => Direction::Inbound,
        (false, false) => Direction::Outbound,
    }
}

/// The idempotency key from what the payload says it is, so a redelivery
/// (same body) is one event: `source:object:id:event:stamp`.
pub(super) fn identity(source: &str, object: &str, id: &str, event: &str, stamp: &str) -> String {
    let key = format!(
        "{source}:{object}:{}:{}:{}",
        clip(id, 80),
        clip(event, 40),
        clip(stamp, 40)
    );
    clip(&key, MAX_ID_CHARS)
}

/// An instant written back the one way, so the same moment spelled
/// differently by two deliveries is one key.
pub(super) fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An id the products send as a number or a string.
pub(super) fn id_text(root: &Value, path: &str) -> Option<String> {
    match lookup(root, path)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The fields that name what a delivery is (its event, type, action): all
/// strings, or the delivery cannot be read at all.
pub(super) fn required_names<'v, const N: usize>(
    root: &'v Value,
    paths: [&str; N],
) -> Result<[&'v str; N], EventError> {
    let mut p = Problems::default();
    let found = paths.map(|path| p.string(root, path, true).unwrap_or_default());
    if p.0.is_empty() {
        Ok(found)
    } else {
        Err(EventError::Invalid(p.0))
    }
}

/// `event` if it is one of `known`, else `other`: metric labels come from
/// outside input and must not grow without bound.
pub(super) fn bounded_label(known: &[&'static str], event: &str) -> &'static str {
    known
        .iter()
        .find(|k| **k == event)
        .copied()
        .unwrap_or("other")
}

pub(super) fn ignored(event: &str, action: Option<&str>, reason: &str) -> TicketOutcome {
    GithubOutcome::Ignored {
        event: clip(event, 100),
        action: action.map(|a| clip(a, 100)),
        reason: reason.to_owned(),
    }
}

/// A delivery read into what an event needs; [`Draft::finish`] checks the
/// parts every source shares.
pub(super) struct Draft {
    pub key: Option<String>,
    pub channel: String,
    pub thread: Option<String>,
    /// The field the thread was read from, for its problem.
    pub thread_field: &'static str,
    pub direction: Option<Direction>,
    pub from: String,
    pub client: Option<String>,
    pub subject: String,
    pub body: String,
    pub priority: Option<String>,
    pub status: Option<TicketStatus>,
    pub at: Option<DateTime<Utc>>,
}

impl Draft {
    pub fn finish(self, mut p: Problems) -> Result<TicketOutcome, EventError> {
        if self.body.len() > MAX_BODY_BYTES {
            p.push(
                "body",
                format!(
                    "the message text must be at most {MAX_BODY_BYTES} bytes of UTF-8 (got {})",
                    self.body.len()
                ),
            );
        }
        let thread = self.thread.filter(|t| {
            let ok = t.chars().count() <= MAX_THREAD_CHARS && !t.contains('\0');
            if !ok {
                p.push(
                    self.thread_field,
                    format!("must be at most {MAX_THREAD_CHARS} characters, without NUL"),
                );
            }
            ok
        });
        match (p.0.is_empty(), self.key, thread, self.at) {
            (true, Some(key), Some(thread), Some(at)) => Ok(GithubOutcome::Event(IncomingEvent {
                idempotency_key: key,
                channel: self.channel,
                thread,
                direction: self.direction,
                from: self.from,
                client: self.client,
                client_hint: None,
                subject: clip(&self.subject, MAX_SUBJECT_CHARS),
                body: self.body,
                priority: self.priority,
                status: self.status,
                awaiting_client: false,
                at,
            })),
            _ => Err(EventError::Invalid(p.0)),
        }
    }
}

/// Text of a field that may be plain text (Markdown, wiki markup) or an
/// Atlassian Document Format tree (Jira's REST v3): a tree is reduced to its
/// text nodes, a paragraph to a line.
pub(super) fn plain_text(value: Option<&Value>) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(t)) = map.get("text") {
                    out.push_str(t);
                }
                if map.get("type").and_then(Value::as_str) == Some("hardBreak") {
                    out.push('\n');
                }
                if let Some(children) = map.get("content") {
                    walk(children, out);
                }
                if matches!(
                    map.get("type").and_then(Value::as_str),
                    Some("paragraph" | "heading" | "listItem" | "codeBlock" | "blockquote")
                ) && !out.ends_with('\n')
                {
                    out.push('\n');
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(tree @ (Value::Object(_) | Value::Array(_))) => {
            let mut out = String::new();
            walk(tree, &mut out);
            out.trim_end().to_owned()
        }
        _ => String::new(),
    }
}

/// HTML (Basecamp's rich text) as the text a person reads.
pub(super) fn html_text(html: &str) -> String {
    mail_parser::decoders::html::html_to_text(html)
        .trim()
        .to_owned()
}
