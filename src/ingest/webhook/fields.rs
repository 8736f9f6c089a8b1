//! Reading JSON fields with every problem collected: the rules a field must
//! meet and the list of what was wrong, by JSON name.

use crate::sla::{Direction, TicketStatus};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::Value;

use super::github::MEMBER_ASSOCIATIONS;
use super::*;

pub(super) fn parse_object(body: &[u8]) -> Result<Value, EventError> {
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
pub(super) fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .try_fold(root, |value, key| value.get(key))
        .filter(|value| !value.is_null())
}

/// RFC 3339, or Jira's spelling of it with an offset without a colon.
pub(super) fn parse_offset_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|at| at.to_utc())
}

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn expected_string(value: Option<&Value>) -> String {
    match value.filter(|v| !v.is_null()) {
        None => "is required".to_owned(),
        Some(other) => format!("must be a string (got {})", kind(other)),
    }
}

/// `s` quoted for a problem message, cut short: the message names the value,
/// it does not echo a megabyte back.
pub(super) fn quote(s: &str) -> String {
    let cut = clip(s, 60);
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

pub(super) fn clip(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[derive(Clone, Copy)]
pub(super) enum Limit {
    Chars(usize),
    Bytes(usize),
}

#[derive(Clone, Copy)]
pub(super) struct Rule {
    required: bool,
    non_empty: bool,
    /// An identifier (id, thread, channel, client…): NUL is refused. The
    /// store writes NUL as U+FFFD (PostgreSQL text cannot hold it), so
    /// `a\0b` and `a\u{FFFD}b` would become one key and merge two threads.
    no_nul: bool,
    limit: Limit,
}

impl Rule {
    pub(super) fn required(max_chars: usize) -> Self {
        Rule {
            required: true,
            non_empty: true,
            no_nul: true,
            limit: Limit::Chars(max_chars),
        }
    }
    /// Present or not; empty is fine.
    pub(super) fn optional(limit: Limit) -> Self {
        Rule {
            required: false,
            non_empty: false,
            no_nul: false,
            limit,
        }
    }
    /// Absent is fine, but an empty value is a mistake (omit the field).
    pub(super) fn optional_non_empty(max_chars: usize) -> Self {
        Rule {
            required: false,
            non_empty: true,
            no_nul: true,
            limit: Limit::Chars(max_chars),
        }
    }
    /// Must be present, may be empty.
    pub(super) fn and_required(self) -> Self {
        Rule {
            required: true,
            ..self
        }
    }
}

/// Every problem found so far, in the order the fields are read.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<FieldError>);

impl Problems {
    pub(super) fn push(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            problem: problem.into(),
        });
    }

    /// `None` when absent, and when wrong (then recorded).
    pub(super) fn string<'v>(
        &mut self,
        root: &'v Value,
        path: &str,
        required: bool,
    ) -> Option<&'v str> {
        match lookup(root, path) {
            Some(Value::String(s)) => Some(s),
            None if !required => None,
            other => {
                self.push(path, expected_string(other));
                None
            }
        }
    }

    pub(super) fn text<'v>(&mut self, root: &'v Value, path: &str, rule: Rule) -> Option<&'v str> {
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

    pub(super) fn instant(
        &mut self,
        root: &Value,
        path: &str,
        required: bool,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.instant_as(root, path, required, now, false)
    }

    /// An instant as Jira writes it (`2019-01-07T16:55:51.184-0330`, an
    /// offset without a colon) or as RFC 3339.
    pub(super) fn offset_instant(
        &mut self,
        root: &Value,
        path: &str,
        required: bool,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.instant_as(root, path, required, now, true)
    }

    fn instant_as(
        &mut self,
        root: &Value,
        path: &str,
        required: bool,
        now: DateTime<Utc>,
        colonless_offset: bool,
    ) -> Option<DateTime<Utc>> {
        let s = self.string(root, path, required)?;
        let parsed = if colonless_offset {
            parse_offset_instant(s)
        } else {
            DateTime::parse_from_rfc3339(s).ok().map(|at| at.to_utc())
        };
        let Some(at) = parsed else {
            let example = if colonless_offset {
                "a date-time such as \"2025-03-01T09:30:00.000+0000\""
            } else {
                "an RFC 3339 date-time such as \"2025-03-01T09:30:00Z\""
            };
            self.push(path, format!("must be {example} (got {})", quote(s)));
            return None;
        };
        self.instant_in_range(path, at, now)
    }

    pub(super) fn instant_in_range(
        &mut self,
        path: &str,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
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

    pub(super) fn direction(&mut self, root: &Value) -> Option<Direction> {
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

    pub(super) fn status(&mut self, root: &Value) -> Option<TicketStatus> {
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

    pub(super) fn awaiting_client(&mut self, root: &Value, direction: Option<Direction>) -> bool {
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

    pub(super) fn issue_number(&mut self, root: &Value) -> Option<u64> {
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

    pub(super) fn comment_direction(&mut self, root: &Value) -> Option<Direction> {
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
