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
    let expected = signature_digest(header)?;
    mac(secret, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The digest an `X-Hub-Signature-256` header carries. Needs no body, so the
/// HTTP edge can refuse a missing or malformed header before reading one.
pub fn signature_digest(header: Option<&str>) -> Result<Vec<u8>, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digits = header
        .strip_prefix("sha256=")
        .filter(|h| h.len() == 64)
        .ok_or(SignatureError::Malformed)?;
    hex::decode(hex_digits).map_err(|_| SignatureError::Malformed)
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

fn action_name(root: &Value) -> &str {
    root.get("action")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// What the payload itself says it is: the issue's or comment's id, the
/// action and the object's `updated_at`. A correctly signed body replayed
/// under a new `X-GitHub-Delivery` (or redelivered under the old one) has
/// the same identity, so it is one event. `None` when the payload lacks
/// them; the delivery id is the key then.
fn payload_identity(root: &Value, object: &str, action: &str) -> Option<String> {
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
    /// An identifier (id, thread, channel, client…): NUL is refused. The
    /// store writes NUL as U+FFFD (PostgreSQL text cannot hold it), so
    /// `a\0b` and `a\u{FFFD}b` would become one key and merge two threads.
    no_nul: bool,
    limit: Limit,
}

impl Rule {
    fn required(max_chars: usize) -> Self {
        Rule {
            required: true,
            non_empty: true,
            no_nul: true,
            limit: Limit::Chars(max_chars),
        }
    }
    /// Present or not; empty is fine.
    fn optional(limit: Limit) -> Self {
        Rule {
            required: false,
            non_empty: false,
            no_nul: false,
            limit,
        }
    }
    /// Absent is fine, but an empty value is a mistake (omit the field).
    fn optional_non_empty(max_chars: usize) -> Self {
        Rule {
            required: false,
            non_empty: true,
            no_nul: true,
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
            _ if rule.no_nul && s.contains('\0') => {
                "must not contain the NUL character (U+0000)".to_owned()
            }
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
        let (earliest, last) = instant_range();
        if at < earliest || at > last {
            self.push(
                path,
                format!(
                    "must be between {} and {}, the years the business calendar covers (got {})",
                    earliest.to_rfc3339_opts(SecondsFormat::Secs, true),
                    last.to_rfc3339_opts(SecondsFormat::Secs, true),
                    at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                ),
            );
            return None;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2025-03-03T10:00:00Z".parse().unwrap()
    }

    fn generic(value: Value) -> Result<IncomingEvent, EventError> {
        parse_generic(value.to_string().as_bytes(), now())
    }

    fn problems(result: Result<impl std::fmt::Debug, EventError>) -> Vec<FieldError> {
        match result {
            Err(EventError::Invalid(errors)) => errors,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn fields(result: Result<impl std::fmt::Debug, EventError>) -> Vec<String> {
        problems(result).into_iter().map(|e| e.field).collect()
    }

    fn problem(result: Result<impl std::fmt::Debug, EventError>, field: &str) -> String {
        problems(result)
            .into_iter()
            .find(|e| e.field == field)
            .unwrap_or_else(|| panic!("no problem reported for {field}"))
            .problem
    }

    fn minimal() -> Value {
        json!({"id": "e1", "channel": "tickets", "thread": "T-1", "direction": "inbound"})
    }

    fn with(mut value: Value, key: &str, field: Value) -> Value {
        value[key] = field;
        value
    }

    #[test]
    fn minimal_event_gets_defaults() {
        let event = generic(minimal()).unwrap();
        assert_eq!(
            event,
            IncomingEvent {
                idempotency_key: "e1".into(),
                channel: "tickets".into(),
                thread: "T-1".into(),
                direction: Some(Direction::Inbound),
                from: String::new(),
                client: None,
                client_hint: None,
                subject: String::new(),
                body: String::new(),
                priority: None,
                status: None,
                awaiting_client: false,
                at: now(),
            }
        );
    }

    #[test]
    fn full_event_keeps_every_field() {
        let event = generic(json!({
            "id": "e2", "channel": "tickets", "thread": "T-2", "direction": "outbound",
            "from": "ann@team.example", "client": "acme", "subject": "Re: outage",
            "body": "Can you send the logs?", "priority": "urgent", "status": "pending",
            "at": "2025-03-03T11:30:00+01:00", "awaiting_client": true
        }))
        .unwrap();
        assert_eq!(event.direction, Some(Direction::Outbound));
        assert_eq!(event.status, Some(TicketStatus::Pending));
        assert_eq!(event.from, "ann@team.example");
        assert_eq!(event.client.as_deref(), Some("acme"));
        assert_eq!(event.subject, "Re: outage");
        assert_eq!(event.body, "Can you send the logs?");
        assert_eq!(event.priority.as_deref(), Some("urgent"));
        assert!(event.awaiting_client);
        assert_eq!(
            event.at,
            "2025-03-03T10:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn status_alone_is_a_status_change() {
        let mut value = minimal();
        value.as_object_mut().unwrap().remove("direction");
        let event = generic(with(value, "status", json!("solved"))).unwrap();
        assert_eq!(event.direction, None);
        assert_eq!(event.status, Some(TicketStatus::Solved));
    }

    #[test]
    fn every_direction_and_status_parses() {
        for (name, direction) in [
            ("inbound", Direction::Inbound),
            ("outbound", Direction::Outbound),
            ("internal", Direction::Internal),
            ("auto", Direction::Auto),
        ] {
            let event = generic(with(minimal(), "direction", json!(name))).unwrap();
            assert_eq!(event.direction, Some(direction));
        }
        for (name, status) in [
            ("open", TicketStatus::Open),
            ("pending", TicketStatus::Pending),
            ("solved", TicketStatus::Solved),
        ] {
            let event = generic(with(minimal(), "status", json!(name))).unwrap();
            assert_eq!(event.status, Some(status));
        }
    }

    #[test]
    fn not_a_json_object_is_malformed() {
        for body in [
            &b""[..],
            b"{",
            b"not json",
            b"[1,2]",
            b"\"id\"",
            b"null",
            b"\xff\xfe",
        ] {
            assert!(
                matches!(parse_generic(body, now()), Err(EventError::Malformed(_))),
                "{body:?}"
            );
        }
        let Err(EventError::Malformed(message)) = parse_generic(b"[]", now()) else {
            unreachable!()
        };
        assert_eq!(message, "the body must be a JSON object, not an array");
    }

    #[test]
    fn empty_object_names_every_required_field() {
        let result = generic(json!({}));
        assert_eq!(fields(result), ["id", "channel", "thread", "direction"]);
        assert_eq!(problem(generic(json!({})), "id"), "is required");
    }

    #[test]
    fn null_is_absent() {
        let value = json!({"id": null, "channel": "c", "thread": "t", "status": "open",
            "direction": null, "client": null, "at": null, "awaiting_client": null});
        assert_eq!(fields(generic(value)), ["id"]);
    }

    #[test]
    fn bad_direction_and_at_are_both_reported() {
        let value = with(
            with(minimal(), "direction", json!("sideways")),
            "at",
            json!("yesterday"),
        );
        assert_eq!(
            serde_json::to_value(problems(generic(value))).unwrap(),
            json!([
                {"field": "direction",
                 "problem": "must be one of inbound, outbound, internal, auto (got \"sideways\")"},
                {"field": "at",
                 "problem": "must be an RFC 3339 date-time such as \"2025-03-01T09:30:00Z\" (got \"yesterday\")"},
            ])
        );
    }

    #[test]
    fn bad_status_is_reported() {
        let value = with(minimal(), "status", json!("closed"));
        assert_eq!(fields(generic(value.clone())), ["status"]);
        assert_eq!(
            problem(generic(value), "status"),
            "must be one of open, pending, solved (got \"closed\")"
        );
    }

    #[test]
    fn wrong_types_name_each_field() {
        let value = json!({"id": 5, "channel": ["c"], "thread": {"a": 1}, "direction": true,
            "from": 1, "client": 2, "subject": 3, "body": 4, "priority": 1, "status": 0,
            "at": 1700000000});
        assert_eq!(
            fields(generic(value.clone())),
            [
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
                "at"
            ]
        );
        assert_eq!(
            problem(generic(value.clone()), "id"),
            "must be a string (got a number)"
        );
        assert_eq!(
            problem(generic(value.clone()), "channel"),
            "must be a string (got an array)"
        );
        assert_eq!(
            problem(generic(value.clone()), "thread"),
            "must be a string (got an object)"
        );
        assert_eq!(
            problem(generic(value), "direction"),
            "must be a string (got a boolean)"
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let value = with(with(minimal(), "Direction", json!("x")), "tags", json!([]));
        assert_eq!(fields(generic(value.clone())), ["Direction", "tags"]);
        assert!(problem(generic(value), "tags").starts_with("is not a known field (known: id, "));
    }

    #[test]
    fn required_strings_must_not_be_blank() {
        let value = json!({"id": "", "channel": " ", "thread": "\t", "direction": "inbound"});
        assert_eq!(fields(generic(value.clone())), ["id", "channel", "thread"]);
        assert_eq!(problem(generic(value), "id"), "must not be empty");
    }

    #[test]
    fn optional_names_must_not_be_empty_when_given() {
        let value = with(with(minimal(), "client", json!("")), "priority", json!(" "));
        assert_eq!(fields(generic(value)), ["client", "priority"]);
        // Empty text is a real message (an attachment-only reply).
        let value = with(with(minimal(), "subject", json!("")), "body", json!(""));
        assert!(generic(value).is_ok());
    }

    #[test]
    fn id_length_limit() {
        let ok = with(minimal(), "id", json!("é".repeat(MAX_ID_CHARS)));
        assert!(generic(ok).is_ok());
        let long = with(minimal(), "id", json!("x".repeat(MAX_ID_CHARS + 1)));
        assert_eq!(fields(generic(long.clone())), ["id"]);
        assert_eq!(
            problem(generic(long), "id"),
            "must be at most 200 characters (got 201)"
        );
    }

    #[test]
    fn subject_and_body_limits() {
        let ok = with(
            with(minimal(), "subject", json!("s".repeat(MAX_SUBJECT_CHARS))),
            "body",
            json!("b".repeat(MAX_BODY_BYTES)),
        );
        assert!(generic(ok).is_ok());
        let long = with(
            with(
                minimal(),
                "subject",
                json!("s".repeat(MAX_SUBJECT_CHARS + 1)),
            ),
            "body",
            json!("é".repeat(MAX_BODY_BYTES / 2 + 1)),
        );
        assert_eq!(fields(generic(long.clone())), ["subject", "body"]);
        assert_eq!(
            problem(generic(long.clone()), "subject"),
            "must be at most 1000 characters (got 1001)"
        );
        assert_eq!(
            problem(generic(long), "body"),
            "must be at most 1048576 bytes of UTF-8 (got 1048578)"
        );
    }

    #[test]
    fn other_length_limits() {
        let value = json!({"id": "e", "channel": "c".repeat(201), "thread": "t".repeat(501),
            "direction": "inbound", "from": "f".repeat(321), "client": "c".repeat(321),
            "priority": "p".repeat(101)});
        assert_eq!(
            fields(generic(value)),
            ["channel", "thread", "from", "client", "priority"]
        );
    }

    #[test]
    fn at_is_converted_to_utc_and_may_be_in_the_past() {
        let event = generic(with(minimal(), "at", json!("2024-12-31T23:59:59.5-05:00"))).unwrap();
        assert_eq!(event.at.to_rfc3339(), "2025-01-01T04:59:59.500+00:00");
    }

    #[test]
    fn at_more_than_a_day_ahead_is_rejected() {
        let edge = with(minimal(), "at", json!("2025-03-04T10:00:00Z"));
        assert!(generic(edge).is_ok());
        let ahead = with(minimal(), "at", json!("2025-03-04T10:00:01Z"));
        assert_eq!(
            problem(generic(ahead), "at"),
            "must not be more than 1 day in the future (got 2025-03-04T10:00:01Z, \
             server time 2025-03-03T10:00:00Z)"
        );
    }

    #[test]
    fn at_without_zone_is_rejected() {
        let value = with(minimal(), "at", json!("2025-03-03 10:00:00"));
        assert_eq!(fields(generic(value)), ["at"]);
    }

    #[test]
    fn awaiting_client_only_on_outbound() {
        let inbound = with(minimal(), "awaiting_client", json!(true));
        assert_eq!(
            problem(generic(inbound), "awaiting_client"),
            "can be true only on an outbound message (direction is \"inbound\")"
        );
        let mut status_only = with(minimal(), "status", json!("pending"));
        status_only.as_object_mut().unwrap().remove("direction");
        let status_only = with(status_only, "awaiting_client", json!(true));
        assert_eq!(
            problem(generic(status_only), "awaiting_client"),
            "can be true only on an outbound message (direction is absent)"
        );
        let not_bool = with(minimal(), "awaiting_client", json!("yes"));
        assert_eq!(
            problem(generic(not_bool), "awaiting_client"),
            "must be true or false (got a string)"
        );
        let off = with(minimal(), "awaiting_client", json!(false));
        assert!(!generic(off).unwrap().awaiting_client);
    }

    #[test]
    fn bad_direction_does_not_also_blame_awaiting_client() {
        let value = with(
            with(minimal(), "direction", json!("out")),
            "awaiting_client",
            json!(true),
        );
        assert_eq!(fields(generic(value)), ["direction"]);
    }

    #[test]
    fn long_values_are_quoted_short() {
        let value = with(minimal(), "direction", json!("x".repeat(5000)));
        let message = problem(generic(value), "direction");
        assert!(message.len() < 200, "{message}");
        assert!(message.ends_with("…)"));
    }

    #[test]
    fn error_display_lists_fields() {
        let error = generic(json!({"id": "e"})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid event: channel: is required; thread: is required; direction: is required \
             when \"status\" is absent: an event is a message (direction), a status change \
             (status), or both"
        );
    }

    // --- GitHub ---

    fn issue_payload(action: &str) -> Value {
        json!({
            "action": action,
            "issue": {
                "number": 7, "title": "Export fails", "body": "Since Monday.",
                "created_at": "2025-03-01T09:00:00Z", "updated_at": "2025-03-02T09:00:00Z",
                "closed_at": null,
                "labels": [{"name": "bug"}, {"name": "priority: High"}],
            },
            "repository": {"full_name": "acme/portal", "owner": {"login": "acme"}},
            "sender": {"login": "carol", "type": "User"},
        })
    }

    fn comment_payload(association: &str) -> Value {
        let mut value = issue_payload("created");
        value["comment"] = json!({
            "body": "Any news?", "created_at": "2025-03-02T12:00:00Z",
            "author_association": association, "user": {"login": "carol", "type": "User"},
        });
        value
    }

    fn github(event: &str, value: &Value) -> Result<GithubOutcome, EventError> {
        parse_github(event, "d-1", value.to_string().as_bytes(), "github", now())
    }

    fn github_event(event: &str, value: &Value) -> IncomingEvent {
        match github(event, value) {
            Ok(GithubOutcome::Event(event)) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    fn ignored_reason(event: &str, value: &Value) -> String {
        match github(event, value) {
            Ok(GithubOutcome::Ignored { reason, .. }) => reason,
            other => panic!("expected Ignored, got {other:?}"),
        }
    }

    #[test]
    fn nul_is_refused_in_ids_and_keys_but_kept_in_text() {
        for field in ["id", "channel", "thread", "client", "priority"] {
            let value = with(minimal(), field, json!("a\u{0}b"));
            let problem = problem(generic(value), field);
            assert!(problem.contains("NUL"), "{field}: {problem}");
        }
        // U+FFFD is an ordinary character: the id NUL would have become.
        assert!(generic(with(minimal(), "id", json!("nul\u{FFFD}id"))).is_ok());
        let text = generic(with(minimal(), "body", json!("a\u{0}b"))).unwrap();
        assert_eq!(text.body, "a\u{0}b");
    }

    #[test]
    fn instants_outside_the_calendar_years_are_refused_naming_the_range() {
        for at in [
            "0000-01-01T00:00:00Z",
            "1677-09-20T00:00:00Z",
            "1899-12-31T23:59:59Z",
            "1900-01-01T12:00:00+05:00",
        ] {
            let problem = problem(generic(with(minimal(), "at", json!(at))), "at");
            assert!(
                problem.contains("1900-01-02T00:00:00Z") && problem.contains("2199-12-30"),
                "{at}: {problem}"
            );
        }
        let ok = generic(with(minimal(), "at", json!("1900-01-02T00:00:00Z"))).unwrap();
        assert_eq!(ok.at, instant_range().0);
        let mut value = issue_payload("opened");
        value["issue"]["created_at"] = json!("1677-09-20T00:00:00Z");
        assert_eq!(fields(github("issues", &value)), ["issue.created_at"]);
    }

    #[test]
    fn github_key_is_the_payload_identity_whatever_the_delivery() {
        let mut value = issue_payload("opened");
        value["issue"]["id"] = json!(9001);
        let body = value.to_string();
        let key_of = |event: &str, delivery: &str, body: &str| match parse_github(
            event,
            delivery,
            body.as_bytes(),
            "github",
            now(),
        ) {
            Ok(GithubOutcome::Event(e)) => e.idempotency_key,
            other => panic!("{other:?}"),
        };
        let key = |delivery: &str, body: &str| key_of("issues", delivery, body);
        assert_eq!(
            key("d-1", &body),
            "github:issue:9001:opened:2025-03-02T09:00:00Z"
        );
        assert_eq!(
            key("d-1", &body),
            key("d-2", &body),
            "a replay is one event"
        );
        let mut closed = value.clone();
        closed["action"] = json!("closed");
        assert_ne!(key("d-3", &closed.to_string()), key("d-1", &body));
        let mut later = value.clone();
        later["issue"]["updated_at"] = json!("2025-03-03T09:00:00Z");
        assert_ne!(key("d-4", &later.to_string()), key("d-1", &body));

        let mut comment = comment_payload("NONE");
        comment["issue"]["id"] = json!(9001);
        comment["comment"]["id"] = json!(77);
        comment["comment"]["updated_at"] = json!("2025-03-02T12:00:00Z");
        assert_eq!(
            key_of("issue_comment", "d-5", &comment.to_string()),
            "github:comment:77:created:2025-03-02T12:00:00Z"
        );
        // Without the payload's ids the delivery is all there is.
        assert_eq!(key("d-6", &issue_payload("opened").to_string()), "d-6");
    }

    #[test]
    fn opened_issue_is_an_inbound_message() {
        assert_eq!(
            github_event("issues", &issue_payload("opened")),
            IncomingEvent {
                idempotency_key: "d-1".into(),
                channel: "github".into(),
                thread: "acme/portal#7".into(),
                direction: Some(Direction::Inbound),
                from: "carol".into(),
                client: None,
                client_hint: Some("acme".into()),
                subject: "Export fails".into(),
                body: "Since Monday.".into(),
                priority: Some("high".into()),
                status: None,
                awaiting_client: false,
                at: "2025-03-01T09:00:00Z".parse().unwrap(),
            }
        );
    }

    #[test]
    fn opened_issue_with_null_body_has_empty_body() {
        let mut value = issue_payload("opened");
        value["issue"]["body"] = Value::Null;
        assert_eq!(github_event("issues", &value).body, "");
    }

    #[test]
    fn closed_issue_is_solved_at_closed_at() {
        let mut value = issue_payload("closed");
        value["issue"]["closed_at"] = json!("2025-03-02T10:00:00Z");
        let event = github_event("issues", &value);
        assert_eq!(
            (event.direction, event.status),
            (None, Some(TicketStatus::Solved))
        );
        assert_eq!(
            event.at,
            "2025-03-02T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(event.body, "");
        // Without closed_at, the update time is when it closed.
        let event = github_event("issues", &issue_payload("closed"));
        assert_eq!(
            event.at,
            "2025-03-02T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn reopened_issue_is_open_at_updated_at() {
        let mut value = issue_payload("reopened");
        // A reopened issue keeps its old closed_at; it must not be used.
        value["issue"]["closed_at"] = json!("2025-02-01T00:00:00Z");
        let event = github_event("issues", &value);
        assert_eq!(
            (event.direction, event.status),
            (None, Some(TicketStatus::Open))
        );
        assert_eq!(
            event.at,
            "2025-03-02T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn comment_direction_follows_author_association() {
        for (association, direction) in [
            ("OWNER", Direction::Outbound),
            ("MEMBER", Direction::Outbound),
            ("COLLABORATOR", Direction::Outbound),
            ("CONTRIBUTOR", Direction::Inbound),
            ("FIRST_TIMER", Direction::Inbound),
            ("FIRST_TIME_CONTRIBUTOR", Direction::Inbound),
            ("MANNEQUIN", Direction::Inbound),
            ("NONE", Direction::Inbound),
        ] {
            let event = github_event("issue_comment", &comment_payload(association));
            assert_eq!(event.direction, Some(direction), "{association}");
            assert_eq!(event.body, "Any news?");
            assert_eq!(event.subject, "Export fails");
            assert_eq!(event.thread, "acme/portal#7");
            assert_eq!(
                event.at,
                "2025-03-02T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
            );
        }
    }

    #[test]
    fn bot_comment_is_auto() {
        let mut value = comment_payload("MEMBER");
        value["comment"]["user"]["type"] = json!("Bot");
        assert_eq!(
            github_event("issue_comment", &value).direction,
            Some(Direction::Auto)
        );
    }

    #[test]
    fn pull_request_activity_is_ignored() {
        let mut value = comment_payload("NONE");
        value["issue"]["pull_request"] = json!({"url": "https://api.github.com/x"});
        assert!(ignored_reason("issue_comment", &value).contains("pull request"));
        let mut value = issue_payload("closed");
        value["issue"]["pull_request"] = json!({});
        assert!(ignored_reason("issues", &value).contains("pull request"));
    }

    #[test]
    fn other_actions_and_events_are_ignored() {
        for action in ["edited", "labeled", "deleted", "transferred", "assigned"] {
            ignored_reason("issues", &issue_payload(action));
        }
        for action in ["edited", "deleted"] {
            let value = with(comment_payload("NONE"), "action", json!(action));
            ignored_reason("issue_comment", &value);
        }
        for event in ["ping", "push", "pull_request", ""] {
            ignored_reason(event, &json!({"zen": "Keep it logically awesome."}));
        }
        assert_eq!(
            github("issues", &issue_payload("edited")).unwrap(),
            GithubOutcome::Ignored {
                event: "issues".into(),
                action: Some("edited".into()),
                reason: "only opened, closed and reopened issues change a conversation".into(),
            }
        );
    }

    #[test]
    fn ignoring_does_not_need_the_rest_of_the_payload() {
        assert!(matches!(
            github("issues", &json!({"action": "labeled"})),
            Ok(GithubOutcome::Ignored { .. })
        ));
    }

    #[test]
    fn missing_action_is_invalid() {
        assert_eq!(fields(github("issues", &json!({}))), ["action"]);
        assert_eq!(
            problem(github("issue_comment", &json!({"action": 1})), "action"),
            "must be a string (got a number)"
        );
    }

    #[test]
    fn missing_issue_fields_are_named_by_path() {
        let value = json!({"action": "opened", "issue": {}});
        let result = parse_github("issues", "", value.to_string().as_bytes(), "gh", now());
        assert_eq!(
            fields(result),
            [
                "X-GitHub-Delivery",
                "repository.full_name",
                "repository.owner.login",
                "issue.number",
                "issue.title",
                "sender.login",
                "issue.created_at",
            ]
        );
    }

    #[test]
    fn missing_comment_fields_are_named_by_path() {
        let mut value = comment_payload("NONE");
        value["comment"] = json!({"body": 3});
        assert_eq!(
            fields(github("issue_comment", &value)),
            [
                "comment.author_association",
                "comment.body",
                "comment.created_at"
            ]
        );
    }

    #[test]
    fn closed_issue_needs_a_time() {
        let mut value = issue_payload("closed");
        value["issue"]["updated_at"] = Value::Null;
        assert_eq!(fields(github("issues", &value)), ["issue.updated_at"]);
    }

    #[test]
    fn issue_number_must_be_a_positive_integer() {
        for (number, message) in [
            (json!("7"), "must be a positive whole number (got a string)"),
            (json!(0), "must be a positive whole number (got 0)"),
            (json!(-1), "must be a positive whole number (got -1)"),
            (json!(1.5), "must be a positive whole number (got 1.5)"),
        ] {
            let mut value = issue_payload("opened");
            value["issue"]["number"] = number;
            assert_eq!(problem(github("issues", &value), "issue.number"), message);
        }
    }

    #[test]
    fn github_instants_from_the_future_are_rejected() {
        let mut value = issue_payload("opened");
        value["issue"]["created_at"] = json!("2025-03-05T00:00:00Z");
        assert_eq!(fields(github("issues", &value)), ["issue.created_at"]);
    }

    #[test]
    fn form_encoded_github_body_is_malformed_with_a_hint() {
        let result = parse_github("issues", "d", b"payload=%7B%7D", "gh", now());
        let Err(EventError::Malformed(message)) = result else {
            panic!("{result:?}")
        };
        assert!(message.contains("application/json"));
    }

    #[test]
    fn label_priorities() {
        for (label, priority) in [
            ("priority: High", Some("high")),
            ("Priority/urgent", Some("urgent")),
            ("priority : low ", Some("low")),
            ("priority: P1", Some("high")),
            ("P0", Some("urgent")),
            ("p1", Some("high")),
            ("P2", Some("normal")),
            ("P3", Some("low")),
            ("P4", None),
            ("priority:", None),
            ("priority", None),
            ("priorityhigh", None),
            ("bug", None),
        ] {
            assert_eq!(label_priority(label).as_deref(), priority, "{label}");
        }
    }

    #[test]
    fn first_priority_label_wins_and_odd_labels_are_skipped() {
        let mut value = issue_payload("opened");
        value["issue"]["labels"] = json!([{"name": 3}, "P0", {"name": "P3"}, {"name": "P0"}]);
        assert_eq!(
            github_event("issues", &value).priority.as_deref(),
            Some("low")
        );
        value["issue"]["labels"] = json!({"name": "P0"});
        assert_eq!(github_event("issues", &value).priority, None);
    }

    // --- signatures ---

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";

    #[test]
    fn github_documented_example_signature() {
        // The example from GitHub's "Validating webhook deliveries" docs.
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(github_signature(SECRET, BODY), expected);
        assert_eq!(
            verify_github_signature(SECRET, BODY, Some(expected)),
            Ok(())
        );
        let upper = format!("sha256={}", expected[7..].to_uppercase());
        assert_eq!(verify_github_signature(SECRET, BODY, Some(&upper)), Ok(()));
    }

    #[test]
    fn signature_rejections() {
        let good = github_signature(SECRET, BODY);
        let check = |secret: &[u8], body: &[u8], header: Option<&str>| {
            verify_github_signature(secret, body, header)
        };
        assert_eq!(
            check(SECRET, b"Hello, World?", Some(&good)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(b"other", BODY, Some(&good)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check(SECRET, BODY, None), Err(SignatureError::Missing));
        assert_eq!(check(b"", BODY, Some(&good)), Err(SignatureError::NoSecret));
        let sha1 = good.replace("sha256=", "sha1=");
        let short = &good[..good.len() - 2];
        let not_hex = format!("sha256={}", "g".repeat(64));
        let spaced = format!(" {good}");
        for header in [
            &sha1[..],
            short,
            &not_hex,
            &spaced,
            "",
            "sha256=",
            &good[7..],
        ] {
            assert_eq!(
                check(SECRET, BODY, Some(header)),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
    }
}
