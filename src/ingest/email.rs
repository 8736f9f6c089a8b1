//! INTERFACE STUB — the email helper replaces the bodies; signatures are what
//! the service, the IMAP poller and the backtest call.

use chrono::{DateTime, Utc};

/// A mail address, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub name: Option<String>,
    pub address: String,
}

/// Why a message is automatic mail (SPEC 5), for the record and the UI.
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

pub fn parse_email(_raw: &[u8]) -> Result<ParsedEmail, ParseFailure> {
    Err(ParseFailure("stub".into()))
}

pub fn normalize_subject(s: &str) -> String {
    s.trim().to_lowercase()
}

/// `team` entries are full addresses or `@domain` suffixes.
pub fn is_team_address(address: &str, team: &[String]) -> bool {
    team.iter().any(|t| t.eq_ignore_ascii_case(address))
}

/// Where the threading rule looks things up: the database in the service,
/// memory in the backtest.
pub trait ThreadIndex {
    type Conversation: Copy;
    fn by_message_id(&mut self, message_id: &str) -> Option<Self::Conversation>;
    /// The most recent conversation of `client` with this normalised subject
    /// whose last activity is at or after `since`.
    fn by_subject(
        &mut self,
        client: &str,
        subject_key: &str,
        since: DateTime<Utc>,
    ) -> Option<Self::Conversation>;
}

/// SPEC 5 threading: In-Reply-To, then References (newest first), then the
/// normalised subject with the same client within 14 days of `at`.
pub fn find_thread<I: ThreadIndex>(
    _index: &mut I,
    _mail: &ParsedEmail,
    _client: Option<&str>,
    _at: DateTime<Utc>,
) -> Option<I::Conversation> {
    None
}
