//! Ticket webhooks → [`IncomingEvent`] (SPEC 5, "Tickets").
//!
//! Two sources, one result:
//! - [`parse_generic`]: the body of `POST /api/v1/events`.
//! - [`parse_github`]: a GitHub `issues` / `issue_comment` delivery, after
//!   [`verify_github_signature`] has accepted its `X-Hub-Signature-256`.
//!
//! A bad body is never half-read: either every field is good and the caller
//! gets an [`IncomingEvent`], or it gets [`EventError::Invalid`] listing
//! *every* bad field by its JSON name (a dotted path for GitHub's nested
//! payloads), so one round trip tells the sender all it got wrong (SPEC 10).
//! A body that is not a JSON object at all is [`EventError::Malformed`].
//!
//! # GitHub mapping
//! - thread = `repository.full_name + "#" + issue.number`; idempotency key =
//!   the `X-GitHub-Delivery` id; from = `sender.login`; subject = the issue
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

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

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
    /// `resolution`, SPEC 4). Only ever true with direction outbound.
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

fn summary(errors: &[FieldError]) -> String {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// An empty secret would make every forged signature valid.
    #[error("no GitHub webhook secret is configured")]
    NoSecret,
    #[error("the X-Hub-Signature-256 header is missing")]
    Missing,
    #[error("the X-Hub-Signature-256 header is not \"sha256=\" and 64 hex digits")]
    Malformed,
    #[error("the X-Hub-Signature-256 signature does not match the body")]
    Mismatch,
}

/// Checks GitHub's `X-Hub-Signature-256` (`sha256=<hex HMAC-SHA256 of the
/// body>`). The comparison is constant-time (`Mac::verify_slice`), so the
/// response time does not tell a forger how many bytes were right.
pub fn verify_github_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digits = header
        .strip_prefix("sha256=")
        .filter(|h| h.len() == 64)
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(hex_digits).map_err(|_| SignatureError::Malformed)?;
    mac(secret, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` value GitHub would send for `body`: for tests
/// and for tools that replay deliveries.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac
}

const GENERIC_FIELDS: [&str; 12] = [
    "id",
    "channel",
    "thread",
    "direction",
    "from",
    "client",
    "subject",
    "body",
    "priority",
    "status",
    "at",
    "awaiting_client",
];

/// Parses the body of `POST /api/v1/events` (SPEC 5).
///
/// Required: `id`, `channel`, `thread`, and `direction` or `status` (or
/// both: a reply that also sets the ticket pending). Optional: `from`,
/// `client`, `subject`, `body`, `priority`, `at` (default `now`),
/// `awaiting_client` (default false; outbound only). `null` counts as absent.
pub fn parse_generic(body: &[u8], now: DateTime<Utc>) -> Result<IncomingEvent, EventError> {
    let root = parse_object(body)?;
    let mut p = Problems::default();

    let id = p.text(&root, "id", Rule::required(MAX_ID_CHARS));
    let channel = p.text(&root, "channel", Rule::required(MAX_CHANNEL_CHARS));
    let thread = p.text(&root, "thread", Rule::required(MAX_THREAD_CHARS));
    let direction = p.direction(&root);
    if lookup(&root, "direction").is_none() && lookup(&root, "status").is_none() {
        p.push(
            "direction",
            "is required when \"status\" is absent: an event is a message (direction), \
             a status change (status), or both",
        );
    }
    let from = p.text(&root, "from", Rule::optional(Limit::Chars(MAX_NAME_CHARS)));
    let client = p.text(&root, "client", Rule::optional_non_empty(MAX_NAME_CHARS));
    let subject = p.text(
        &root,
        "subject",
        Rule::optional(Limit::Chars(MAX_SUBJECT_CHARS)),
    );
    let text = p.text(&root, "body", Rule::optional(Limit::Bytes(MAX_BODY_BYTES)));
    let priority = p.text(
        &root,
        "priority",
        Rule::optional_non_empty(MAX_PRIORITY_CHARS),
    );
    let status = p.status(&root);
    let at = p.instant(&root, "at", false, now);
    let awaiting_client = p.awaiting_client(&root, direction);
    if let Value::Object(map) = &root {
        for key in map.keys().filter(|k| !GENERIC_FIELDS.contains(&k.as_str())) {
            p.push(
                clip(key, 100),
                format!(
                    "is not a known field (known: {})",
                    GENERIC_FIELDS.join(", ")
                ),
            );
        }
    }

    match (p.0.is_empty(), id, channel, thread) {
        (true, Some(id), Some(channel), Some(thread)) => Ok(IncomingEvent {
            idempotency_key: id.to_owned(),
            channel: channel.to_owned(),
            thread: thread.to_owned(),
            direction,
            from: from.unwrap_or_default().to_owned(),
            client: client.map(str::to_owned),
            client_hint: None,
            subject: subject.unwrap_or_default().to_owned(),
            body: text.unwrap_or_default().to_owned(),
            priority: priority.map(str::to_owned),
            status,
            awaiting_client,
            at: at.unwrap_or(now),
        }),
        _ => Err(EventError::Invalid(p.0)),
    }
}

/// What a handled GitHub delivery becomes.
enum GithubKind {
    Opened,
    Status(TicketStatus),
    Comment,
}

const MEMBER_ASSOCIATIONS: [&str; 3] = ["OWNER", "MEMBER", "COLLABORATOR"];

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
    if lookup(&root, "issue.pull_request").is_some() {
        return ignored("the issue is a pull request; keepword tracks issues, not code review");
    }

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

    match (p.0.is_empty(), repo, owner, number, title, sender, at) {
        (true, Some(repo), Some(owner), Some(number), Some(title), Some(sender), Some(at)) => {
            Ok(GithubOutcome::Event(IncomingEvent {
                idempotency_key: delivery.to_owned(),
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

/// The first label that names a priority (see the module doc).
fn priority_from_labels(root: &Value) -> Option<String> {
    // Labels only refine classification: a label we cannot read is skipped,
    // not an error that would lose the whole event.
    lookup(root, "issue.labels")?
        .as_array()?
        .iter()
        .filter_map(|label| label.get("name")?.as_str())
        .find_map(label_priority)
}

fn label_priority(name: &str) -> Option<String> {
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

fn parse_object(body: &[u8]) -> Result<Value, EventError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| EventError::Malformed(format!("the body is not JSON: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(EventError::Malformed(format!(
            "the body must be a JSON object, not {}",
            kind(&value)
        )))
    }
}

/// The value at a dotted path; `null` counts as absent, as GitHub sends
/// `null` for empty optional fields.
fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(root, |value, key| value.get(key))
        .filter(|value| !value.is_null())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expected_string(value: Option<&Value>) -> String {
    match value.filter(|v| !v.is_null()) {
        None => "is required".to_owned(),
        Some(other) => format!("must be a string (got {})", kind(other)),
    }
}

/// `s` quoted for a problem message, cut short: the message names the value,
/// it does not echo a megabyte back.
fn quote(s: &str) -> String {
    let cut = clip(s, 60);
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

fn clip(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[derive(Clone, Copy)]
enum Limit {
    Chars(usize),
    Bytes(usize),
}

#[derive(Clone, Copy)]
struct Rule {
    required: bool,
    non_empty: bool,
    limit: Limit,
}

impl Rule {
    fn required(max_chars: usize) -> Self {
        Rule {
            required: true,
            non_empty: true,
            limit: Limit::Chars(max_chars),
        }
    }
    /// Present or not; empty is fine.
    fn optional(limit: Limit) -> Self {
        Rule {
            required: false,
            non_empty: false,
            limit,
        }
    }
    /// Absent is fine, but an empty value is a mistake (omit the field).
    fn optional_non_empty(max_chars: usize) -> Self {
        Rule {
            required: false,
            non_empty: true,
            limit: Limit::Chars(max_chars),
        }
    }
    /// Must be present, may be empty.
    fn and_required(self) -> Self {
        Rule {
            required: true,
            ..self
        }
    }
}

/// Every problem found so far, in the order the fields are read.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn push(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            problem: problem.into(),
        });
    }

    /// `None` when absent, and when wrong (then recorded).
    fn string<'v>(&mut self, root: &'v Value, path: &str, required: bool) -> Option<&'v str> {
        match lookup(root, path) {
            Some(Value::String(s)) => Some(s),
            None if !required => None,
            other => {
                self.push(path, expected_string(other));
                None
            }
        }
    }

    fn text<'v>(&mut self, root: &'v Value, path: &str, rule: Rule) -> Option<&'v str> {
        let s = self.string(root, path, rule.required)?;
        let problem = match rule.limit {
            _ if rule.non_empty && s.trim().is_empty() => "must not be empty".to_owned(),
            Limit::Chars(max) if s.chars().count() > max => format!(
                "must be at most {max} characters (got {})",
                s.chars().count()
            ),
            Limit::Bytes(max) if s.len() > max => {
                format!("must be at most {max} bytes of UTF-8 (got {})", s.len())
            }
            _ => return Some(s),
        };
        self.push(path, problem);
        None
    }

    fn instant(
        &mut self,
        root: &Value,
        path: &str,
        required: bool,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let s = self.string(root, path, required)?;
        let Ok(at) = DateTime::parse_from_rfc3339(s) else {
            self.push(
                path,
                format!(
                    "must be an RFC 3339 date-time such as \"2025-03-01T09:30:00Z\" (got {})",
                    quote(s)
                ),
            );
            return None;
        };
        let at = at.to_utc();
        let latest = now.checked_add_signed(TimeDelta::seconds(MAX_FUTURE_SECS));
        if latest.is_some_and(|latest| at > latest) {
            self.push(
                path,
                format!(
                    "must not be more than 1 day in the future (got {}, server time {})",
                    at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                    now.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
            );
            return None;
        }
        Some(at)
    }

    fn direction(&mut self, root: &Value) -> Option<Direction> {
        let s = self.string(root, "direction", false)?;
        let parsed = s.parse().ok();
        if parsed.is_none() {
            self.push(
                "direction",
                format!(
                    "must be one of inbound, outbound, internal, auto (got {})",
                    quote(s)
                ),
            );
        }
        parsed
    }

    fn status(&mut self, root: &Value) -> Option<TicketStatus> {
        let s = self.string(root, "status", false)?;
        let parsed = s.parse().ok();
        if parsed.is_none() {
            self.push(
                "status",
                format!("must be one of open, pending, solved (got {})", quote(s)),
            );
        }
        parsed
    }

    fn awaiting_client(&mut self, root: &Value, direction: Option<Direction>) -> bool {
        match lookup(root, "awaiting_client") {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => match direction {
                Some(Direction::Outbound) => true,
                // An invalid direction is reported already; one problem is enough.
                None if lookup(root, "direction").is_some() => false,
                other => {
                    let got = other.map_or("absent".to_owned(), |d| format!("{:?}", d.as_str()));
                    self.push(
                        "awaiting_client",
                        format!("can be true only on an outbound message (direction is {got})"),
                    );
                    false
                }
            },
            Some(other) => {
                self.push(
                    "awaiting_client",
                    format!("must be true or false (got {})", kind(other)),
                );
                false
            }
        }
    }

    fn issue_number(&mut self, root: &Value) -> Option<u64> {
        let path = "issue.number";
        match lookup(root, path) {
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => n.as_u64(),
            None => {
                self.push(path, "is required");
                None
            }
            Some(Value::Number(n)) => {
                self.push(path, format!("must be a positive whole number (got {n})"));
                None
            }
            Some(other) => {
                self.push(
                    path,
                    format!("must be a positive whole number (got {})", kind(other)),
                );
                None
            }
        }
    }

    fn comment_direction(&mut self, root: &Value) -> Option<Direction> {
        let association = self.string(root, "comment.author_association", true)?;
        let user_type = lookup(root, "comment.user.type")
            .or_else(|| lookup(root, "sender.type"))
            .and_then(Value::as_str);
        Some(if user_type == Some("Bot") {
            Direction::Auto
        } else if MEMBER_ASSOCIATIONS.contains(&association) {
            Direction::Outbound
        } else {
            Direction::Inbound
        })
    }
}
