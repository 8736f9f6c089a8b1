//! Linear deliveries.
//!
//! - Verified first: `Linear-Signature` is the hex HMAC-SHA256 of the body,
//!   and the body's `webhookTimestamp` must be within 60 s of the server's
//!   clock, so a captured delivery cannot be replayed later.
//! - `Issue` `create` opens the conversation whose thread is the id
//!   (comments name their issue by it): subject the title, body the
//!   description (Markdown, kept as written), at `createdAt`.
//! - `Comment` `create` on an issue is a message at `createdAt`; comments on
//!   documents or project updates are ignored.
//! - `Issue` `update` that changes the state (`updatedFrom.stateId`): a
//!   state of type `completed` or `canceled` → `solved`, any other → `open`.
//! - Who wrote it (`actor`, else the comment's `user` or the issue's
//!   `creator`): guests and people whose address is in a client's domains
//!   are the client (`inbound`); an actor that is not a person (an
//!   integration, an OAuth app) is `auto`; members are the team
//!   (`outbound`).
//! - The client: the contract client whose `linear_teams` lists the issue's
//!   team key, else the author's domain.
//! - The idempotency key: type, the object's id, the action and its
//!   `updatedAt`, so a redelivery is one event.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ticket::*;
use super::*;
use crate::contract::{Client, Contract};
use crate::sla::{Direction, TicketStatus};

pub const LINEAR_SIGNATURE_HEADER: &str = "Linear-Signature";
/// How far `webhookTimestamp` may be from the server's clock (Linear's own
/// SDK uses the same minute).
pub const LINEAR_TIMESTAMP_WINDOW_MS: i64 = 60_000;

/// The signature, then the timestamp: a body is trusted only when both hold.
pub fn verify_linear(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), WebhookAuthError> {
    verify_hmac_header(secret, body, LINEAR_SIGNATURE_HEADER, "", header)?;
    let sent = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("webhookTimestamp").and_then(Value::as_i64))
        .ok_or(WebhookAuthError::NoTimestamp)?;
    let skew = now.timestamp_millis().saturating_sub(sent);
    if skew.abs() > LINEAR_TIMESTAMP_WINDOW_MS {
        return Err(WebhookAuthError::Stale(skew));
    }
    Ok(())
}

/// The `type`s Linear sends, for the bounded `event` label of ignored
/// deliveries; anything else is `other`.
pub fn linear_event_label(kind: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "Issue",
        "Comment",
        "IssueLabel",
        "Reaction",
        "Project",
        "ProjectUpdate",
        "Cycle",
        "Attachment",
        "IssueSLA",
        "Document",
        "Initiative",
        "Customer",
        "CustomerNeed",
        "User",
    ];
    bounded_label(KNOWN, kind)
}

enum Kind {
    Opened,
    Comment,
    Status(TicketStatus),
}

/// Parses a Linear delivery [`verify_linear`] accepted.
pub fn parse_linear(
    body: &[u8],
    channel: &str,
    contract: &Contract,
    now: DateTime<Utc>,
) -> Result<TicketOutcome, EventError> {
    let root = parse_object(body)?;
    let mut p = Problems::default();
    let [kind, action] = required_names(&root, ["type", "action"])?;
    let skip = |reason: &str| Ok(ignored(kind, Some(action), reason));
    let what = match (kind, action) {
        ("Issue", "create") => Kind::Opened,
        ("Comment", "create") if lookup(&root, "data.issueId").is_some() => Kind::Comment,
        ("Comment", "create") => {
            return skip("a comment on a document or project update is not on an issue");
        }
        ("Issue", "update") if lookup(&root, "updatedFrom.stateId").is_some() => {
            let state = p.string(&root, "data.state.type", true);
            Kind::Status(match state {
                Some("completed" | "canceled") => TicketStatus::Solved,
                _ => TicketStatus::Open,
            })
        }
        ("Issue", _) => return skip("only new issues and state changes move a conversation"),
        ("Comment", _) => {
            return skip("only new comments are messages; editing or removing one moves no timer");
        }
        _ => return skip("keepword tracks Issue and Comment events"),
    };

    let object_id = id_text(&root, "data.id");
    let updated = p.instant(&root, "data.updatedAt", true, now);
    let key = match (&object_id, updated) {
        (Some(id), Some(updated)) => Some(identity(
            "linear",
            &kind.to_lowercase(),
            id,
            action,
            &stamp(updated),
        )),
        (None, _) => {
            p.push("data.id", "is required");
            None
        }
        _ => None,
    };
    let (thread_field, person) = match what {
        Kind::Comment => ("data.issueId", "data.user"),
        _ => ("data.id", "data.creator"),
    };
    let thread = p
        .text(&root, thread_field, Rule::required(MAX_THREAD_CHARS))
        .map(str::to_owned);
    let person = if lookup(&root, "actor").is_some() {
        "actor"
    } else {
        person
    };
    let who = author(&root, person, "email", "name", "id");
    let team = lookup(&root, "data.team.key")
        .or_else(|| lookup(&root, "data.issue.team.key"))
        .and_then(Value::as_str);
    let claims =
        |c: &Client| team.is_some_and(|k| c.linear_teams.iter().any(|t| t.eq_ignore_ascii_case(k)));
    let (direction, status, text, subject, at) = match what {
        Kind::Opened => (
            Some(linear_direction(&root, person, &who, contract)),
            None,
            text_of(&root, "data.description"),
            p.text(&root, "data.title", Rule::required(MAX_SUBJECT_CHARS)),
            p.instant(&root, "data.createdAt", true, now),
        ),
        Kind::Comment => {
            if lookup(&root, "data.body").is_none() {
                p.push("data.body", "is required");
            }
            (
                Some(linear_direction(&root, person, &who, contract)),
                None,
                text_of(&root, "data.body"),
                lookup(&root, "data.issue.title").and_then(Value::as_str),
                p.instant(&root, "data.createdAt", true, now),
            )
        }
        Kind::Status(status) => (
            None,
            Some(status),
            String::new(),
            lookup(&root, "data.title").and_then(Value::as_str),
            updated,
        ),
    };
    Draft {
        key,
        channel: channel.to_owned(),
        thread,
        thread_field,
        direction,
        from: who.label(),
        client: client_for(contract, claims, &who),
        subject: subject.unwrap_or_default().to_owned(),
        body: text,
        priority: match what {
            Kind::Opened => priority(&root),
            _ => None,
        },
        status,
        at,
    }
    .finish(p)
}

fn text_of(root: &Value, path: &str) -> String {
    lookup(root, path)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn linear_direction(
    root: &Value,
    person: &str,
    who: &super::ticket::Author<'_>,
    contract: &Contract,
) -> Direction {
    let field = |key: &str| lookup(root, &format!("{person}.{key}"));
    // Linear's actor `type` is "user" for people; integrations and OAuth
    // apps act under other types.
    if field("type")
        .and_then(Value::as_str)
        .is_some_and(|t| t != "user")
    {
        return Direction::Auto;
    }
    let guest = field("guest").and_then(Value::as_bool) == Some(true);
    direction(guest || who.in_client_domain(contract), false)
}

/// Linear's priorities 1–4 (urgent, high, medium, low); 0 is none.
fn priority(root: &Value) -> Option<String> {
    let level = match lookup(root, "data.priority")?.as_i64()? {
        1 => "urgent",
        2 => "high",
        3 => "normal",
        4 => "low",
        _ => return None,
    };
    Some(level.to_owned())
}
