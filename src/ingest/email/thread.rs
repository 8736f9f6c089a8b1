//! The threading rule (SPEC 5) and an in-memory [`ThreadIndex`].

use std::collections::HashMap;
use std::hash::Hash;

use chrono::{DateTime, TimeDelta, Utc};

use super::route::Route;
use super::subject::has_reply_prefix;
use super::{ParsedEmail, normalize_subject};

/// How far back a same-client, same-subject conversation still counts.
pub const SUBJECT_WINDOW: TimeDelta = TimeDelta::days(14);

/// Whose conversations a header-less reply may join: a declared client's,
/// or those its own address opened (the only ones of the `unknown` client a
/// sender can join: strangers are never grouped together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party<'a> {
    Client(&'a str),
    Opener(&'a str),
}

/// Where the threading rule looks things up: the database in the service,
/// memory in the backtest.
pub trait ThreadIndex {
    type Conversation: Copy;
    fn by_message_id(&mut self, message_id: &str) -> Option<Self::Conversation>;
    /// The conversation of `party` opened with this normalised subject whose
    /// latest mail is at or after `since` (the most recent such).
    fn by_subject(
        &mut self,
        party: Party<'_>,
        subject_key: &str,
        since: DateTime<Utc>,
    ) -> Option<Self::Conversation>;
}

/// SPEC 5 threading, tightened by issue 9: In-Reply-To, then References
/// (newest first); then, only for a mail that looks like a reply (a reply or
/// forward prefix, or a quoted-reply body), the normalised subject within 14
/// days of `at` among the conversations the same sender opened, then those
/// of the same declared client.
///
/// Headers win over subjects because they are exact. The subject fallback
/// exists for clients that strip headers (web forms, some mobile clients);
/// it never applies to a mail without reply signs, since two people asking
/// "Question about contract renewal" are two requests, and it never groups
/// different senders of the `unknown` client. The window is inclusive:
/// activity exactly 14 days before `at` still threads.
pub fn find_thread<I: ThreadIndex>(
    index: &mut I,
    mail: &ParsedEmail,
    route: &Route,
    at: DateTime<Utc>,
) -> Option<I::Conversation> {
    let by_header = mail
        .in_reply_to
        .iter()
        .chain(mail.references.iter().rev())
        .find_map(|id| index.by_message_id(id));
    if by_header.is_some() {
        return by_header;
    }
    if !looks_like_reply(mail) {
        return None;
    }
    let key = normalize_subject(&mail.subject);
    if key.is_empty() {
        return None;
    }
    // The sender's own conversations first: a colleague's request with the
    // same subject is the less likely home of a reply.
    let since = at - SUBJECT_WINDOW;
    route
        .client_addresses()
        .into_iter()
        .find_map(|a| index.by_subject(Party::Opener(a), &key, since))
        .or_else(|| {
            let client = route.known_client()?;
            index.by_subject(Party::Client(client), &key, since)
        })
}

/// A reply or forward prefix on the subject, or a quoted reply in the body.
pub fn looks_like_reply(mail: &ParsedEmail) -> bool {
    has_reply_prefix(&mail.subject) || has_quoted_reply(&mail.text)
}

/// Quoting conventions of common mail clients: `>` lines, an attribution
/// line ("On … wrote:", "Am … schrieb …:"), or an Outlook header block.
fn has_quoted_reply(text: &str) -> bool {
    text.lines().map(str::trim).any(|l| {
        let lower = l.to_lowercase();
        l.starts_with('>')
            || (lower.starts_with("on ") && lower.ends_with("wrote:"))
            || (lower.starts_with("am ") && lower.ends_with(':') && lower.contains("schrieb"))
            || (lower.starts_with("le ") && lower.ends_with("écrit :"))
            || lower.contains("-----original message-----")
            || lower.contains("-----ursprüngliche nachricht-----")
    })
}

/// [`ThreadIndex`] in memory, for the backtest and tests: the same lookups
/// the database answers, over conversations opened with [`Self::open`] and
/// kept current with [`Self::touch`].
#[derive(Debug, Clone)]
pub struct MemoryThreadIndex<C = u64> {
    by_id: HashMap<String, C>,
    /// (party, subject key) → conversations opened under it.
    by_subject: HashMap<(PartyKey, String), Vec<C>>,
    last_message: HashMap<C, DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PartyKey {
    Client(String),
    Opener(String),
}

impl From<Party<'_>> for PartyKey {
    fn from(p: Party<'_>) -> Self {
        match p {
            Party::Client(c) => PartyKey::Client(c.to_string()),
            Party::Opener(a) => PartyKey::Opener(a.to_string()),
        }
    }
}

impl<C> Default for MemoryThreadIndex<C> {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            by_subject: HashMap::new(),
            last_message: HashMap::new(),
        }
    }
}

impl<C: Copy + Eq + Hash> MemoryThreadIndex<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a conversation opened at `at` with `subject` by `opener`
    /// (an address, lower-case), of `client` when that is a declared one.
    pub fn open(
        &mut self,
        conversation: C,
        client: Option<&str>,
        opener: &str,
        subject: &str,
        at: DateTime<Utc>,
    ) {
        let key = normalize_subject(subject);
        if !key.is_empty() {
            let parties = client
                .map(Party::Client)
                .into_iter()
                .chain((!opener.is_empty()).then_some(Party::Opener(opener)));
            for party in parties {
                self.by_subject
                    .entry((party.into(), key.clone()))
                    .or_default()
                    .push(conversation);
            }
        }
        self.touch(conversation, at);
    }

    /// A message of `conversation` at `at`; older mail never moves its
    /// latest instant back, so replaying out of order keeps the latest.
    pub fn touch(&mut self, conversation: C, at: DateTime<Utc>) {
        let last = self.last_message.entry(conversation).or_insert(at);
        if at > *last {
            *last = at;
        }
    }

    pub fn record_message_id(&mut self, message_id: &str, conversation: C) {
        self.by_id.insert(message_id.to_string(), conversation);
    }
}

impl<C: Copy + Eq + Hash> ThreadIndex for MemoryThreadIndex<C> {
    type Conversation = C;

    fn by_message_id(&mut self, message_id: &str) -> Option<C> {
        self.by_id.get(message_id).copied()
    }

    fn by_subject(
        &mut self,
        party: Party<'_>,
        subject_key: &str,
        since: DateTime<Utc>,
    ) -> Option<C> {
        self.by_subject
            .get(&(party.into(), subject_key.to_string()))?
            .iter()
            .filter_map(|c| Some((*c, *self.last_message.get(c)?)))
            .filter(|(_, last)| *last >= since)
            .max_by_key(|(_, last)| *last)
            .map(|(c, _)| c)
    }
}
