//! Basecamp deliveries.
//!
//! - Basecamp signs nothing: the webhook's URL ends in a secret, compared in
//!   constant time by [`verify_basecamp_secret`].
//! - `message_created`, `todo_created` and `question_answer_created` open a
//!   conversation whose thread is `BUCKET/RECORDING` (project id and the
//!   recording's id): subject the title, body the content as text (Basecamp
//!   sends HTML), at the event's `created_at`.
//! - `comment_created` is a message in its parent's conversation
//!   (`BUCKET/PARENT`); `todo_completed` solves the to-do's conversation,
//!   `todo_uncompleted` reopens it.
//! - Who wrote it (`creator`): the team when `creator.company.id` is one of
//!   `[basecamp] company_ids`, or `creator.client` is false where the
//!   payload has it; the client otherwise. A recording not visible to
//!   clients (`visible_to_clients: false`) is `internal`.
//! - The client: the contract client whose `basecamp_projects` lists the
//!   bucket id, else the author's domain.
//! - The idempotency key is the event's own id, kind and `created_at`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ticket::*;
use super::*;
use crate::contract::{Client, Contract};
use crate::sla::TicketStatus;

/// Compares the URL's secret with the configured one in constant time:
/// both are hashed first, so neither their contents nor their lengths show
/// in the time taken.
pub fn verify_basecamp_secret(configured: &[u8], presented: &str) -> Result<(), WebhookAuthError> {
    if configured.is_empty() {
        return Err(WebhookAuthError::NoSecret);
    }
    let (a, b) = (
        Sha256::digest(configured),
        Sha256::digest(presented.as_bytes()),
    );
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    if diff == 0 {
        Ok(())
    } else {
        Err(WebhookAuthError::WrongSecret)
    }
}

/// The kinds Basecamp sends, by recording type, for the bounded `event`
/// label of ignored deliveries; anything else is `other`.
pub fn basecamp_event_label(kind: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "message_created",
        "message_content_changed",
        "message_title_changed",
        "message_archived",
        "message_unarchived",
        "message_trashed",
        "comment_created",
        "comment_content_changed",
        "comment_trashed",
        "todo_created",
        "todo_completed",
        "todo_uncompleted",
        "todo_assignment_changed",
        "todo_due_date_changed",
        "todo_content_changed",
        "todo_trashed",
        "todolist_created",
        "todolist_name_changed",
        "todolist_description_changed",
        "question_created",
        "question_answer_created",
        "question_answer_content_changed",
        "question_answer_trashed",
        "document_created",
        "document_content_changed",
        "upload_created",
        "schedule_entry_created",
        "vault_created",
    ];
    bounded_label(KNOWN, kind)
}

enum Kind {
    Opened,
    Comment,
    Status(TicketStatus),
}

/// Parses a Basecamp delivery whose URL secret was checked. `company_ids`
/// are the team's companies (`[basecamp] company_ids`).
pub fn parse_basecamp(
    body: &[u8],
    channel: &str,
    company_ids: &[u64],
    contract: &Contract,
    now: DateTime<Utc>,
) -> Result<TicketOutcome, EventError> {
    let root = parse_object(body)?;
    let mut p = Problems::default();
    let [kind] = required_names(&root, ["kind"])?;
    let what = match kind {
        "message_created" | "todo_created" | "question_answer_created" => Kind::Opened,
        "comment_created" => Kind::Comment,
        "todo_completed" => Kind::Status(TicketStatus::Solved),
        "todo_uncompleted" => Kind::Status(TicketStatus::Open),
        _ => {
            return Ok(ignored(
                kind,
                None,
                "keepword tracks new messages, to-dos, answers and comments, and to-dos completed",
            ));
        }
    };

    let bucket = id_text(&root, "recording.bucket.id");
    if bucket.is_none() {
        p.push(
            "recording.bucket.id",
            "is required: the project the recording is in",
        );
    }
    let thread_field = match what {
        Kind::Comment => "recording.parent.id",
        _ => "recording.id",
    };
    let recording = id_text(&root, thread_field);
    if recording.is_none() {
        p.push(thread_field, "is required: it names the conversation");
    }
    let thread = bucket
        .as_ref()
        .zip(recording)
        .map(|(b, r)| format!("{b}/{r}"));
    let at = p.instant(&root, "created_at", true, now);
    let key = match (id_text(&root, "id"), at) {
        (Some(id), Some(at)) => Some(identity("basecamp", "event", &id, kind, &stamp(at))),
        (None, _) => {
            p.push("id", "is required: the event's id is its idempotency key");
            None
        }
        _ => None,
    };
    let person = if lookup(&root, "creator").is_some() {
        "creator"
    } else {
        "recording.creator"
    };
    let who = author(&root, person, "email_address", "name", "id");
    let team_side = lookup(&root, &format!("{person}.company.id"))
        .and_then(Value::as_u64)
        .is_some_and(|c| company_ids.contains(&c))
        || lookup(&root, &format!("{person}.client")).and_then(Value::as_bool) == Some(false);
    let internal =
        lookup(&root, "recording.visible_to_clients").and_then(Value::as_bool) == Some(false);
    let bucket_id = bucket.as_deref().and_then(|b| b.parse::<u64>().ok());
    let claims = |c: &Client| bucket_id.is_some_and(|b| c.basecamp_projects.contains(&b));
    let subject_path = match what {
        Kind::Comment => "recording.parent.title",
        _ => "recording.title",
    };
    let (direction, status, text) = match what {
        Kind::Status(status) => (None, Some(status), String::new()),
        _ => {
            let content = p.text(
                &root,
                "recording.content",
                Rule::optional(Limit::Bytes(6 * MAX_BODY_BYTES)),
            );
            (
                Some(direction(!team_side, internal)),
                None,
                html_text(content.unwrap_or_default()),
            )
        }
    };
    Draft {
        key,
        channel: channel.to_owned(),
        thread,
        thread_field,
        direction,
        from: who.label(),
        client: client_for(contract, claims, &who),
        subject: lookup(&root, subject_path)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        body: text,
        priority: None,
        status,
        at,
    }
    .finish(p)
}
