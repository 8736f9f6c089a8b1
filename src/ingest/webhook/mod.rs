//! Ticket webhooks → [`IncomingEvent`] (README, "HTTP API").
//!
//! Five sources, one result:
//! - [`parse_generic`]: the body of `POST /api/v1/events`.
//! - [`parse_github`]: a GitHub `issues` / `issue_comment` delivery, after
//!   [`verify_github_signature`] has accepted its `X-Hub-Signature-256`.
//! - [`parse_jira`], [`parse_linear`], [`parse_basecamp`]: ticket systems,
//!   each after its own check ([`verify_jira_signature`], [`verify_linear`],
//!   [`verify_basecamp_secret`]); their mapping is in their modules' docs.
//! - [`parse_slack`]: a Slack Events API `message`, after [`verify_slack`]
//!   (README, "Slack"); a front end like the ticket systems.
//!
//! A bad body is never half-read: either every field is good and the caller
//! gets an [`IncomingEvent`], or it gets [`EventError::Invalid`] listing
//! *every* bad field by its JSON name (a dotted path for GitHub's nested
//! payloads), so one round trip tells the sender all it got wrong (README, "HTTP API").
//! A body that is not a JSON object at all is [`EventError::Malformed`].
//!
//! # GitHub mapping
//! - thread = `repository.full_name + "#" + issue.number`; idempotency key =
//!   the payload's own identity (`github:issue|comment:ID:ACTION:UPDATED_AT`,
//!   so a signed body replayed under a new `X-GitHub-Delivery` is one
//!   event), else the `X-GitHub-Delivery` id; from = `sender.login`; subject = the issue
//!   title; `client` = none, `client_hint` = `repository.owner.login`.
//! - `issues` `opened` → an inbound message: body = the issue body (null is
//!   empty), at = `issue.created_at`.
//! - `issues` `closed` → status `solved` at `issue.closed_at` (else
//!   `issue.updated_at`); `reopened` → status `open` at `issue.updated_at`.
//!   Neither is a message: direction none, body empty.
//! - `issue_comment` `created` → a message at `comment.created_at`, body = the
//!   comment: `outbound` when `comment.author_association` is `OWNER`,
//!   `MEMBER` or `COLLABORATOR` (the repository's people), `inbound`
//!   otherwise — except that a comment by a GitHub App or bot (`user.type`
//!   `Bot`) is `auto`: automatic mail never moves a timer, and a bot's
//!   comment is no human answer.
//! - priority: the first label named `priority: X` or `priority/X` gives `x`
//!   (lower-cased); `P0`…`P3` (alone or as `X`) give `urgent`, `high`,
//!   `normal`, `low` — the four levels help desks use and contracts list.
//! - Ignored, with a reason: any other event (`ping`, `push`…), any other
//!   `issues` action (`edited`, `labeled`, `deleted`, `transferred`…), comment
//!   edits and deletions, and anything on a pull request (`issue.pull_request`
//!   present): keepword tracks issues, not code review.
//!
//! Every instant must be RFC 3339 and at most [`MAX_FUTURE_SECS`] after `now`:
//! a timestamp from the future would start a timer that cannot run yet.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::sla::{Direction, TicketStatus};

/// Longest idempotency key (`id`, or the GitHub delivery id), in characters.
pub const MAX_ID_CHARS: usize = 200;
/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 1_000;
/// Longest message body, in bytes of UTF-8 (1 MiB). The HTTP layer's request
/// limit must leave room for this plus the JSON around it.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// How far after `now` an event's instant may be (one day): enough for
/// clock skew between systems, not enough to hide a wrong date.
pub const MAX_FUTURE_SECS: i64 = 86_400;

/// The instants an event may carry: the calendar covers local years
/// 1900..=2199 in the contract's zone, so a day is kept clear at each end for
/// any zone's offset. Outside it no due can be computed, and a timer would
/// run "on track" forever.
pub fn instant_range() -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .expect("valid literal")
            .to_utc()
    };
    (at("1900-01-02T00:00:00Z"), at("2199-12-30T23:59:59Z"))
}

const MAX_CHANNEL_CHARS: usize = 200;
const MAX_THREAD_CHARS: usize = 500;
// An email address can be 320 characters; a client id fits in the same.
const MAX_NAME_CHARS: usize = 320;
const MAX_PRIORITY_CHARS: usize = 100;

/// One conversation event from a ticket channel, checked and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingEvent {
    /// The sender's id for this event: the same key twice is one event.
    pub idempotency_key: String,
    /// The contract channel the event came through.
    pub channel: String,
    /// The conversation within the channel (GitHub: `owner/repo#123`).
    pub thread: String,
    /// `None` for a pure status change.
    pub direction: Option<Direction>,
    /// Sender login or address; empty when the generic event names none.
    pub from: String,
    /// The client id, when the event names one.
    pub client: Option<String>,
    /// A name that may identify the client (GitHub: the repository owner),
    /// for the caller to resolve against the contract's clients.
    pub client_hint: Option<String>,
    pub subject: String,
    pub body: String,
    pub priority: Option<String>,
    pub status: Option<TicketStatus>,
    /// An outbound message that asks the client something (pauses
    /// `resolution`, README, "The contract"). Only ever true with direction outbound.
    pub awaiting_client: bool,
    pub at: DateTime<Utc>,
}

/// One thing wrong with one field: `field` is the JSON name (or dotted path,
/// or header name), `problem` says what is wrong and what is expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or not a JSON object (HTTP 400).
    #[error("malformed body: {0}")]
    Malformed(String),
    /// JSON, but with bad fields, all of them listed (HTTP 422).
    #[error("invalid event: {}", summary(.0))]
    Invalid(Vec<FieldError>),
}

/// "field: problem; field: problem" — the one wording of a list of bad fields.
pub fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.problem))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a GitHub delivery means for keepword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubOutcome {
    Event(IncomingEvent),
    /// A well-formed delivery keepword has no use for: answer 2xx, so GitHub
    /// does not retry it, and log the reason.
    Ignored {
        event: String,
        action: Option<String>,
        reason: String,
    },
}

mod basecamp;
mod fields;
mod generic;
mod github;
mod jira;
mod linear;
mod signature;
mod slack;
#[cfg(test)]
mod tests;
mod ticket;

use fields::*;
pub use generic::parse_generic;
pub use github::parse_github;
pub use signature::{SignatureError, github_signature, signature_digest, verify_github_signature};

pub use basecamp::{basecamp_event_label, parse_basecamp, verify_basecamp_secret};
pub use jira::{JIRA_SIGNATURE_HEADER, jira_event_label, parse_jira, verify_jira_signature};
pub use linear::{
    LINEAR_SIGNATURE_HEADER, LINEAR_TIMESTAMP_WINDOW_MS, linear_event_label, parse_linear,
    verify_linear,
};
pub use slack::{
    SLACK_RETRY_HEADER, SLACK_SIGNATURE_HEADER, SLACK_TIMESTAMP_HEADER,
    SLACK_TIMESTAMP_WINDOW_SECS, SlackTeam, parse_slack, slack_challenge, slack_event_label,
    slack_instant, slack_signature, slack_signature_digest, slack_text, verify_slack,
};
pub use ticket::{
    TicketOutcome, WebhookAuthError, hmac_header_digest, hmac_sha256_hex, verify_hmac_header,
};
