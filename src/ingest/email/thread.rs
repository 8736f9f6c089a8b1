//! The threading rule (SPEC 5) and an in-memory [`ThreadIndex`].

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use super::{ParsedEmail, normalize_subject};

/// How far back a same-client, same-subject conversation still counts.
pub const SUBJECT_WINDOW: TimeDelta = TimeDelta::days(14);

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
///
/// Headers win over subjects because they are exact; the subject fallback
/// exists for clients that strip headers (web forms, some mobile clients),
/// and is limited to one client so two clients asking "Invoice" never share
/// a conversation. The window is inclusive: activity exactly 14 days before
/// `at` still threads. Without a known client there is no subject fallback.
pub fn find_thread<I: ThreadIndex>(
    index: &mut I,
    mail: &ParsedEmail,
    client: Option<&str>,
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
    let client = client?;
    let key = normalize_subject(&mail.subject);
    if key.is_empty() {
        return None;
    }
    index.by_subject(client, &key, at - SUBJECT_WINDOW)
}

/// [`ThreadIndex`] in memory, for the backtest and tests. Message-IDs map to
/// conversations; each (client, subject key) keeps only its latest
/// conversation and last activity, which is all `by_subject` can return.
#[derive(Debug, Clone)]
pub struct MemoryThreadIndex<C = u64> {
    by_id: HashMap<String, C>,
    by_subject: HashMap<(String, String), (C, DateTime<Utc>)>,
}

impl<C> Default for MemoryThreadIndex<C> {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            by_subject: HashMap::new(),
        }
    }
}

impl<C: Copy> MemoryThreadIndex<C> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `mail` as part of `conversation` at `at`: its Message-ID
    /// becomes findable, and so does its subject for `client` (when known
    /// and the subject is not empty once normalised).
    pub fn record(
        &mut self,
        conversation: C,
        mail: &ParsedEmail,
        client: Option<&str>,
        at: DateTime<Utc>,
    ) {
        if let Some(id) = &mail.message_id {
            self.record_message_id(id, conversation);
        }
        if let Some(client) = client {
            self.record_subject(client, &mail.subject, conversation, at);
        }
    }

    pub fn record_message_id(&mut self, message_id: &str, conversation: C) {
        self.by_id.insert(message_id.to_string(), conversation);
    }

    /// Marks activity on `conversation` under `subject` (raw; normalised
    /// here). Older activity never replaces newer, so replaying mail out of
    /// order keeps the latest conversation.
    pub fn record_subject(
        &mut self,
        client: &str,
        subject: &str,
        conversation: C,
        at: DateTime<Utc>,
    ) {
        let key = normalize_subject(subject);
        if key.is_empty() {
            return;
        }
        let slot = self
            .by_subject
            .entry((client.to_string(), key))
            .or_insert((conversation, at));
        if at >= slot.1 {
            *slot = (conversation, at);
        }
    }
}

impl<C: Copy> ThreadIndex for MemoryThreadIndex<C> {
    type Conversation = C;

    fn by_message_id(&mut self, message_id: &str) -> Option<C> {
        self.by_id.get(message_id).copied()
    }

    fn by_subject(&mut self, client: &str, subject_key: &str, since: DateTime<Utc>) -> Option<C> {
        self.by_subject
            .get(&(client.to_string(), subject_key.to_string()))
            .filter(|(_, last)| *last >= since)
            .map(|(c, _)| *c)
    }
}
