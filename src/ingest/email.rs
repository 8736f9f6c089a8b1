//! Raw MIME → [`ParsedEmail`]: the pure email side of ingest (README, "Email").
//!
//! Nothing here does IO. The IMAP poller hands bytes to [`parse_email`], the
//! service decides what to do with the typed result, and threading asks a
//! [`ThreadIndex`] (the database in the service, [`MemoryThreadIndex`] in the
//! backtest). Submodules: `auto` (automatic-mail rules), `route` (direction
//! and client of a mail: the one routing rule of the service and the
//! backtest), `subject` (normalisation), `thread` (the threading rule and the
//! in-memory index).

mod auto;
mod route;
mod subject;
mod thread;

use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, Utc};
use mail_parser::{HeaderValue, Message, MessageParser, PartType};

pub use route::{FolderKind, Route, Team, route};
pub use subject::{has_reply_prefix, normalize_subject};
pub use thread::{
    IndexKey, MemoryThreadIndex, Party, SUBJECT_WINDOW, ThreadIndex, find_thread, looks_like_reply,
    thread_rule,
};

/// A mail address, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub name: Option<String>,
    pub address: String,
}

/// Why a message is automatic mail (README, "Email"), for the record and the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoReason(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEmail {
    /// With angle brackets: `<abc@example.com>`.
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    /// Oldest first, with angle brackets.
    pub references: Vec<String>,
    pub from: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    /// Plain-text body (text/plain, or HTML reduced to text).
    pub text: String,
    pub html: Option<String>,
    /// `Some` when the message is automatic mail.
    pub auto: Option<AutoReason>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unparseable message: {0}")]
pub struct ParseFailure(pub String);

/// Parses one raw message. Never panics: the poller must survive any mail a
/// stranger can send, so the parser runs under `catch_unwind` and a panic
/// becomes a [`ParseFailure`] (the message is then kept raw, README, "Email").
///
/// A message with a header block but broken MIME still parses as far as
/// mail-parser gets; only input with no header block at all fails.
pub fn parse_email(raw: &[u8]) -> Result<ParsedEmail, ParseFailure> {
    // The closure only reads `raw` and builds owned data, so no broken
    // invariant can leak out of an unwound parse.
    match catch_unwind(AssertUnwindSafe(|| parse_inner(raw))) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(ParseFailure(format!("MIME parser panicked: {what}")))
        }
    }
}

fn parse_inner(raw: &[u8]) -> Result<ParsedEmail, ParseFailure> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseFailure("empty message".into()));
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| ParseFailure("no header block".into()))?;
    if !has_header_block(&message) {
        return Err(ParseFailure("no header block".into()));
    }

    let first_address =
        |a: Option<&mail_parser::Address>| a.and_then(|a| a.iter().find_map(address));
    let all_addresses = |a: Option<&mail_parser::Address>| {
        a.map(|a| a.iter().filter_map(address).collect())
            .unwrap_or_default()
    };

    let (text, html) = bodies(&message);
    let mut parsed = ParsedEmail {
        message_id: message.message_id().and_then(bracket_id),
        in_reply_to: ids(message.in_reply_to()).into_iter().next(),
        references: ids(message.references()),
        from: first_address(message.from()),
        to: all_addresses(message.to()),
        cc: all_addresses(message.cc()),
        subject: message.subject().unwrap_or_default().trim().to_string(),
        date: message
            .date()
            .filter(|d| d.is_valid())
            .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)),
        text,
        html,
        auto: None,
    };
    parsed.auto = auto::detect(&message, parsed.from.as_ref());
    Ok(parsed)
}

/// mail-parser accepts anything; a "message" whose first line is not a
/// header field (`Name: value`) is junk, not mail with broken MIME.
fn has_header_block(message: &Message) -> bool {
    message.root_part().headers.iter().any(|h| {
        let name = h.name();
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
    })
}

fn address(a: &mail_parser::Addr) -> Option<Address> {
    let address = a.address()?.trim().to_lowercase();
    if address.is_empty() {
        return None;
    }
    let name = a
        .name()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    Some(Address { name, address })
}

/// mail-parser strips the angle brackets; everything downstream (our own
/// outgoing `In-Reply-To`, the database) keeps them, so add them back.
fn bracket_id(id: &str) -> Option<String> {
    let bare = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!bare.is_empty()).then(|| format!("<{bare}>"))
}

fn ids(value: &HeaderValue) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => bracket_id(t).into_iter().collect(),
        HeaderValue::TextList(list) => list.iter().filter_map(|t| bracket_id(t)).collect(),
        _ => Vec::new(),
    }
}

fn bodies(message: &Message) -> (String, Option<String>) {
    // body_text falls back to the HTML part reduced to text when there is no
    // text/plain alternative; html_part points at the text part when there
    // is no HTML, so keep it only when it really is HTML.
    let text = message
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default();
    let html = message.html_part(0).and_then(|p| match &p.body {
        PartType::Html(h) => Some(h.to_string()),
        _ => None,
    });
    (text, html)
}

/// Whether `address` belongs to the team. `team` entries are full addresses
/// or `@domain` entries; both compare case-insensitively. A domain entry
/// matches that exact domain only: `@example.com` does not match
/// `a@sub.example.com` (list `@sub.example.com` too if it should), because a
/// subdomain is often a different party (a client's tenant, a relay).
pub fn is_team_address(address: &str, team: &[String]) -> bool {
    let address = address.trim().to_lowercase();
    let domain = address.rsplit_once('@').map(|(_, d)| d);
    team.iter().any(|entry| {
        let entry = entry.trim().to_lowercase();
        match entry.strip_prefix('@') {
            Some(team_domain) => domain == Some(team_domain),
            None => entry == address,
        }
    })
}

#[cfg(test)]
mod tests;
