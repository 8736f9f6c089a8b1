//! GitHub `issues` and `issue_comment` deliveries (the mapping is in the
//! module doc of [`super`]).

use crate::sla::{Direction, TicketStatus};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::*;

/// What a handled GitHub delivery becomes.
pub(super) enum GithubKind {
    Opened,
    Status(TicketStatus),
    Comment,
}

pub(super) const MEMBER_ASSOCIATIONS: [&str; 3] = ["OWNER", "MEMBER", "COLLABORATOR"];

/// Parses a GitHub delivery: `event` is `X-GitHub-Event`, `delivery` is
/// `X-GitHub-Delivery`, `channel` the contract channel this webhook feeds.
/// Verify the signature first; this trusts the body. See the module doc for
/// the mapping.
pub fn parse_github(
    event: &str,
    delivery: &str,
    body: &[u8],
    channel: &str,
    now: DateTime<Utc>,
) -> Result<GithubOutcome, EventError> {
    if body.starts_with(b"payload=") {
        return Err(EventError::Malformed(
            "the body is form-encoded; set the GitHub webhook's content type to application/json"
                .to_owned(),
        ));
    }
    let root = parse_object(body)?;
    let action = root.get("action");
    let ignored = |reason: &str| {
        Ok(GithubOutcome::Ignored {
            event: event.to_owned(),
            action: action.and_then(Value::as_str).map(str::to_owned),
            reason: reason.to_owned(),
        })
    };
    let kind = match (event, action) {
        ("issues" | "issue_comment", Some(Value::String(action))) => {
            // Checked first so that any pull request activity reads as such.
            if lookup(&root, "issue.pull_request").is_some() {
                return ignored(
                    "the issue is a pull request; keepword tracks issues, not code review",
                );
            }
            match (event, action.as_str()) {
                ("issues", "opened") => GithubKind::Opened,
                ("issues", "closed") => GithubKind::Status(TicketStatus::Solved),
                ("issues", "reopened") => GithubKind::Status(TicketStatus::Open),
                ("issue_comment", "created") => GithubKind::Comment,
                ("issues", _) => {
                    return ignored(
                        "only opened, closed and reopened issues change a conversation",
                    );
                }
                _ => {
                    return ignored(
                        "only new comments are messages; editing or deleting one moves no timer",
                    );
                }
            }
        }
        ("issues" | "issue_comment", other) => {
            let mut p = Problems::default();
            p.push("action", expected_string(other));
            return Err(EventError::Invalid(p.0));
        }
        ("ping", _) => return ignored("ping: GitHub checking that the webhook answers"),
        _ => return ignored("keepword tracks only issues and issue_comment events"),
    };

    let mut p = Problems::default();
    if delivery.trim().is_empty() {
        p.push(
            "X-GitHub-Delivery",
            "is required: the delivery id is the event's idempotency key",
        );
    } else if delivery.chars().count() > MAX_ID_CHARS {
        p.push(
            "X-GitHub-Delivery",
            format!("must be at most {MAX_ID_CHARS} characters"),
        );
    }
    let repo = p.text(
        &root,
        "repository.full_name",
        Rule::required(MAX_CHANNEL_CHARS),
    );
    let owner = p.text(
        &root,
        "repository.owner.login",
        Rule::required(MAX_NAME_CHARS),
    );
    let number = p.issue_number(&root);
    let title = p.text(
        &root,
        "issue.title",
        Rule::optional(Limit::Chars(MAX_SUBJECT_CHARS)).and_required(),
    );
    let sender = p.text(&root, "sender.login", Rule::required(MAX_NAME_CHARS));
    let body_rule = Rule::optional(Limit::Bytes(MAX_BODY_BYTES));

    let (direction, status, text, at) = match kind {
        GithubKind::Opened => (
            Some(Direction::Inbound),
            None,
            p.text(&root, "issue.body", body_rule),
            p.instant(&root, "issue.created_at", true, now),
        ),
        GithubKind::Status(status) => {
            let path = match status {
                TicketStatus::Solved if lookup(&root, "issue.closed_at").is_some() => {
                    "issue.closed_at"
                }
                _ => "issue.updated_at",
            };
            (None, Some(status), None, p.instant(&root, path, true, now))
        }
        GithubKind::Comment => (
            p.comment_direction(&root),
            None,
            p.text(&root, "comment.body", body_rule.and_required()),
            p.instant(&root, "comment.created_at", true, now),
        ),
    };

    let identity = match kind {
        GithubKind::Comment => payload_identity(&root, "comment", action_name(&root)),
        _ => payload_identity(&root, "issue", action_name(&root)),
    };
    match (p.0.is_empty(), repo, owner, number, title, sender, at) {
        (true, Some(repo), Some(owner), Some(number), Some(title), Some(sender), Some(at)) => {
            Ok(GithubOutcome::Event(IncomingEvent {
                idempotency_key: identity.unwrap_or_else(|| delivery.to_owned()),
                channel: channel.to_owned(),
                thread: format!("{repo}#{number}"),
                direction,
                from: sender.to_owned(),
                client: None,
                client_hint: Some(owner.to_owned()),
                subject: title.to_owned(),
                body: text.unwrap_or_default().to_owned(),
                priority: priority_from_labels(&root),
                status,
                awaiting_client: false,
                at,
            }))
        }
        _ => Err(EventError::Invalid(p.0)),
    }
}

pub(super) fn action_name(root: &Value) -> &str {
    root.get("action")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// What the payload itself says it is: the issue's or comment's id, the
/// action and the object's `updated_at`. A correctly signed body replayed
/// under a new `X-GitHub-Delivery` (or redelivered under the old one) has
/// the same identity, so it is one event. `None` when the payload lacks
/// them; the delivery id is the key then.
pub(super) fn payload_identity(root: &Value, object: &str, action: &str) -> Option<String> {
    let id = lookup(root, &format!("{object}.id"))?.as_u64()?;
    let updated = lookup(root, &format!("{object}.updated_at"))?.as_str()?;
    let updated = DateTime::parse_from_rfc3339(updated).ok()?.to_utc();
    let action = clip(action, 40);
    Some(format!(
        "github:{object}:{id}:{action}:{}",
        updated.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    ))
}

/// The first label that names a priority (see the module doc).
pub(super) fn priority_from_labels(root: &Value) -> Option<String> {
    // Labels only refine classification: a label we cannot read is skipped,
    // not an error that would lose the whole event.
    lookup(root, "issue.labels")?
        .as_array()?
        .iter()
        .filter_map(|label| label.get("name")?.as_str())
        .find_map(label_priority)
}

pub(super) fn label_priority(name: &str) -> Option<String> {
    let lower = name.trim().to_lowercase();
    let value = match lower.strip_prefix("priority") {
        Some(rest) => {
            let rest = rest.trim_start();
            rest.strip_prefix(':')
                .or_else(|| rest.strip_prefix('/'))?
                .trim()
        }
        None => lower.as_str(),
    };
    let level = match value {
        "p0" => "urgent",
        "p1" => "high",
        "p2" => "normal",
        "p3" => "low",
        "" => return None,
        other if lower.starts_with("priority") => other,
        _ => return None,
    };
    Some(clip(level, MAX_PRIORITY_CHARS))
}
