//! Jira Cloud and Jira Service Management deliveries.
//!
//! - `jira:issue_created` opens the conversation whose thread is the issue
//!   key (`SUP-12`): subject the summary, body the description, at
//!   `fields.created`, from the reporter (else the webhook's `user`).
//! - `comment_created` is a message at `comment.created`. `jsdPublic: false`
//!   (an agent's internal note in Service Management) is `internal`.
//! - Who wrote it: portal customers (`accountType: "customer"`) and people
//!   whose address is in a client's domains are the client (`inbound`);
//!   apps (`accountType: "app"`) are `auto`; everyone else (agents,
//!   `atlassian` accounts) is the team (`outbound`). An issue created by the
//!   team opens an outbound conversation.
//! - `jira:issue_updated` with a status change in its changelog: to a status
//!   of the "done" category → `solved`; to "Waiting for customer" →
//!   `pending`; to any other → `open` (a reopen, or work resumed).
//! - The client: the contract client whose `jira_projects` lists the
//!   issue's project key, else the author's domain.
//! - The idempotency key is the payload's own identity: the comment's id and
//!   `updated`, or the issue's id and the delivery's `timestamp`, with the
//!   event name. A redelivered body is one event.
//! - Anything else (edits, deletions, worklogs, other fields changing) is
//!   ignored with a reason.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ticket::*;
use super::*;
use crate::contract::Contract;
use crate::sla::{Direction, TicketStatus};

/// The header Jira signs deliveries in (`sha256=` and hex).
pub const JIRA_SIGNATURE_HEADER: &str = "X-Hub-Signature";

/// Checks `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`.
pub fn verify_jira_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), WebhookAuthError> {
    verify_hmac_header(secret, body, JIRA_SIGNATURE_HEADER, "sha256=", header)
}

/// The events Jira sends to a webhook, for the bounded `event` label of
/// ignored deliveries; anything else is `other`.
pub fn jira_event_label(event: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "jira:issue_created",
        "jira:issue_updated",
        "jira:issue_deleted",
        "comment_created",
        "comment_updated",
        "comment_deleted",
        "worklog_created",
        "worklog_updated",
        "worklog_deleted",
        "attachment_created",
        "attachment_deleted",
        "issuelink_created",
        "issuelink_deleted",
        "project_created",
        "project_updated",
        "project_deleted",
        "jira:version_released",
        "jira:version_created",
        "sprint_started",
        "sprint_closed",
        "board_created",
        "user_created",
    ];
    bounded_label(KNOWN, event)
}

enum Kind {
    Opened,
    Comment,
    Status,
}

/// Parses a Jira delivery whose signature was checked. `webhook_id` is the
/// `X-Atlassian-Webhook-Identifier` header, the key when the payload lacks
/// its own identity.
pub fn parse_jira(
    body: &[u8],
    webhook_id: Option<&str>,
    channel: &str,
    contract: &Contract,
    now: DateTime<Utc>,
) -> Result<TicketOutcome, EventError> {
    let root = parse_object(body)?;
    let mut p = Problems::default();
    let [event] = required_names(&root, ["webhookEvent"])?;
    let kind = match event {
        "jira:issue_created" => Kind::Opened,
        "comment_created" => Kind::Comment,
        "jira:issue_updated" if status_change(&root).is_some() => Kind::Status,
        "jira:issue_updated" => {
            return Ok(ignored(
                event,
                None,
                "only a status change of an issue moves a conversation",
            ));
        }
        "comment_updated" | "comment_deleted" => {
            return Ok(ignored(
                event,
                None,
                "only new comments are messages; editing or deleting one moves no timer",
            ));
        }
        _ => {
            return Ok(ignored(
                event,
                None,
                "keepword tracks issues created, comments created and status changes",
            ));
        }
    };

    let thread = p
        .text(&root, "issue.key", Rule::required(MAX_THREAD_CHARS))
        .map(str::to_owned);
    let project = lookup(&root, "issue.fields.project.key").and_then(Value::as_str);
    let subject = lookup(&root, "issue.fields.summary")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let issue_id = id_text(&root, "issue.id");
    let claims = |c: &crate::contract::Client| {
        project.is_some_and(|k| c.jira_projects.iter().any(|j| j.eq_ignore_ascii_case(k)))
    };

    let (person, status, text, at, key) = match kind {
        Kind::Opened => {
            let person = if lookup(&root, "issue.fields.reporter").is_some() {
                "issue.fields.reporter"
            } else {
                "user"
            };
            let at = p.offset_instant(&root, "issue.fields.created", true, now);
            let key = issue_key(&mut p, &root, event, issue_id.as_deref(), webhook_id);
            let text = plain_text(lookup(&root, "issue.fields.description"));
            (person, None, text, at, key)
        }
        Kind::Comment => {
            let at = p.offset_instant(&root, "comment.created", true, now);
            let key = match (id_text(&root, "comment.id"), comment_stamp(&root)) {
                (Some(id), Some(updated)) => {
                    Some(identity("jira", "comment", &id, event, &stamp(updated)))
                }
                _ => fallback_key(&mut p, event, webhook_id, "comment.id"),
            };
            if lookup(&root, "comment.body").is_none() {
                p.push("comment.body", "is required");
            }
            let text = plain_text(lookup(&root, "comment.body"));
            ("comment.author", None, text, at, key)
        }
        Kind::Status => {
            let status = status_change(&root);
            let at = p.offset_instant(&root, "issue.fields.updated", true, now);
            let key = issue_key(&mut p, &root, event, issue_id.as_deref(), webhook_id);
            ("user", status, String::new(), at, key)
        }
    };
    let who = author(&root, person, "emailAddress", "displayName", "accountId");
    let direction = match kind {
        Kind::Status => None,
        _ => Some(jira_direction(&root, person, &who, contract, &kind)),
    };
    Draft {
        key,
        channel: channel.to_owned(),
        thread,
        thread_field: "issue.key",
        direction,
        from: who.label(),
        client: client_for(contract, claims, &who),
        subject,
        body: text,
        priority: match kind {
            Kind::Opened => priority(&root),
            _ => None,
        },
        status,
        at,
    }
    .finish(p)
}

fn jira_direction(
    root: &Value,
    person: &str,
    who: &super::ticket::Author<'_>,
    contract: &Contract,
    kind: &Kind,
) -> Direction {
    let account_type = lookup(root, &format!("{person}.accountType")).and_then(Value::as_str);
    let public = lookup(root, "comment.jsdPublic").and_then(Value::as_bool);
    if account_type == Some("app") {
        return Direction::Auto;
    }
    let client_side = account_type == Some("customer") || who.in_client_domain(contract);
    let internal = matches!(kind, Kind::Comment) && public == Some(false);
    direction(client_side, internal)
}

/// The status an `issue_updated` delivery moves the conversation to, when
/// its changelog changes the status.
fn status_change(root: &Value) -> Option<TicketStatus> {
    let items = lookup(root, "changelog.items")?.as_array()?;
    let change = items
        .iter()
        .find(|i| i.get("field").and_then(Value::as_str) == Some("status"))?;
    let category = lookup(root, "issue.fields.status.statusCategory.key").and_then(Value::as_str);
    let name = change
        .get("toString")
        .and_then(Value::as_str)
        .or_else(|| lookup(root, "issue.fields.status.name").and_then(Value::as_str))
        .unwrap_or_default();
    Some(if category == Some("done") {
        TicketStatus::Solved
    } else if name.trim().eq_ignore_ascii_case("waiting for customer") {
        TicketStatus::Pending
    } else {
        TicketStatus::Open
    })
}

fn comment_stamp(root: &Value) -> Option<DateTime<Utc>> {
    let s = lookup(root, "comment.updated")
        .or_else(|| lookup(root, "comment.created"))?
        .as_str()?;
    parse_offset_instant(s)
}

fn issue_key(
    p: &mut Problems,
    root: &Value,
    event: &str,
    issue_id: Option<&str>,
    webhook_id: Option<&str>,
) -> Option<String> {
    match (issue_id, lookup(root, "timestamp").and_then(Value::as_i64)) {
        (Some(id), Some(ms)) => Some(identity("jira", "issue", id, event, &ms.to_string())),
        _ => fallback_key(p, event, webhook_id, "timestamp"),
    }
}

/// The delivery's webhook identifier, when the payload lacks its identity.
fn fallback_key(
    p: &mut Problems,
    event: &str,
    webhook_id: Option<&str>,
    field: &str,
) -> Option<String> {
    match webhook_id.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) => Some(identity("jira", "delivery", w, event, "")),
        None => {
            p.push(
                field,
                "is required: with the issue or comment id it is the event's idempotency key",
            );
            None
        }
    }
}

/// Jira's default priorities in the four levels contracts list.
fn priority(root: &Value) -> Option<String> {
    let name = lookup(root, "issue.fields.priority.name")?.as_str()?;
    let level = match name.trim().to_lowercase().as_str() {
        "highest" | "blocker" | "critical" => "urgent",
        "high" | "major" => "high",
        "medium" => "normal",
        "low" | "lowest" | "minor" | "trivial" => "low",
        "" => return None,
        other => return Some(clip(other, 100)),
    };
    Some(level.to_owned())
}
