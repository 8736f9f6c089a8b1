//! The threading rule (README, "Email") and an in-memory [`ThreadIndex`].

use std::borrow::Borrow;
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
/// sender can join: strangers are never grouped together). `K` is how the
/// index names clients and addresses: `str` in the service, interned ids in
/// the backtest.
#[derive(Debug, PartialEq, Eq)]
pub enum Party<'a, K: ?Sized = str> {
    Client(&'a K),
    Opener(&'a K),
}

impl<K: ?Sized> Clone for Party<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: ?Sized> Copy for Party<'_, K> {}

/// Where the threading rule looks things up: the database in the service,
/// memory in the backtest.
pub trait ThreadIndex {
    type Conversation: Copy;
    /// How Message-IDs, subject keys, clients and addresses are named:
    /// `str`, or the backtest's interned ids.
    type Key: ?Sized;
    fn by_message_id(&mut self, message_id: &Self::Key) -> Option<Self::Conversation>;
    /// The conversation of `party` opened with this normalised subject whose
    /// latest mail is at or after `since` (the most recent such).
    fn by_subject(
        &mut self,
        party: Party<'_, Self::Key>,
        subject_key: &Self::Key,
        since: DateTime<Utc>,
    ) -> Option<Self::Conversation>;
}

/// The threading rule: In-Reply-To, then References
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
pub fn find_thread<I: ThreadIndex<Key = str>>(
    index: &mut I,
    mail: &ParsedEmail,
    route: &Route,
    at: DateTime<Utc>,
) -> Option<I::Conversation> {
    let header_ids = mail
        .in_reply_to
        .iter()
        .chain(mail.references.iter().rev())
        .map(String::as_str);
    let reply_subject = || {
        looks_like_reply(mail)
            .then(|| normalize_subject(&mail.subject))
            .filter(|key| !key.is_empty())
    };
    thread_rule(
        index,
        header_ids,
        reply_subject,
        route.client_addresses(),
        route.known_client(),
        at,
    )
}

/// [`find_thread`] over what it reads of a mail, for an index with its own
/// names (the backtest keeps interned ids, not mail): `header_ids` are
/// In-Reply-To then References newest first; `reply_subject` gives the
/// normalised subject of a mail that looks like a reply (`None` otherwise,
/// or when it normalises to nothing), asked only when no header matched;
/// `openers` are [`Route::client_addresses`] and `client` the
/// [`Route::known_client`].
pub fn thread_rule<'k, I, S>(
    index: &mut I,
    header_ids: impl IntoIterator<Item = &'k I::Key>,
    reply_subject: impl FnOnce() -> Option<S>,
    openers: impl IntoIterator<Item = &'k I::Key>,
    client: Option<&I::Key>,
    at: DateTime<Utc>,
) -> Option<I::Conversation>
where
    I: ThreadIndex,
    I::Key: 'k,
    S: Borrow<I::Key>,
{
    let by_header = header_ids
        .into_iter()
        .find_map(|id| index.by_message_id(id));
    if by_header.is_some() {
        return by_header;
    }
    let key = reply_subject()?;
    let key = key.borrow();
    // The sender's own conversations first: a colleague's request with the
    // same subject is the less likely home of a reply.
    let since = at - SUBJECT_WINDOW;
    openers
        .into_iter()
        .find_map(|a| index.by_subject(Party::Opener(a), key, since))
        .or_else(|| index.by_subject(Party::Client(client?), key, since))
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

/// How a [`MemoryThreadIndex`] owns its keys: `String` (looked up by
/// `str`) or a copyable interned id (looked up by itself).
pub trait IndexKey: Hash + Eq + Borrow<Self::Ref> {
    type Ref: ?Sized + Hash + Eq + ToOwned<Owned = Self>;
}

impl IndexKey for String {
    type Ref = str;
}

/// [`ThreadIndex`] in memory, for the backtest and tests: the same lookups
/// the database answers, over conversations opened with [`Self::open`] and
/// kept current with [`Self::touch`].
#[derive(Debug, Clone)]
pub struct MemoryThreadIndex<C = u64, K = String> {
    by_id: HashMap<K, C>,
    /// (party, subject key) → conversations opened under it.
    by_subject: HashMap<(PartyKey<K>, K), Vec<C>>,
    last_message: HashMap<C, DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PartyKey<K> {
    Client(K),
    Opener(K),
}

impl<K: IndexKey> PartyKey<K> {
    fn of(p: Party<'_, K::Ref>) -> Self {
        match p {
            Party::Client(c) => PartyKey::Client(c.to_owned()),
            Party::Opener(a) => PartyKey::Opener(a.to_owned()),
        }
    }
}

impl<C, K> Default for MemoryThreadIndex<C, K> {
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
        self.open_with_key(
            conversation,
            client,
            (!opener.is_empty()).then_some(opener),
            (!key.is_empty()).then_some(key.as_str()),
            at,
        );
    }
}

impl<C: Copy + Eq + Hash, K: IndexKey> MemoryThreadIndex<C, K> {
    /// [`Self::open`] with the subject already normalised (`None` when it
    /// normalises to nothing, which never threads) and `None` for a mail
    /// without a sender.
    pub fn open_with_key(
        &mut self,
        conversation: C,
        client: Option<&K::Ref>,
        opener: Option<&K::Ref>,
        subject_key: Option<&K::Ref>,
        at: DateTime<Utc>,
    ) {
        if let Some(key) = subject_key {
            let parties = client
                .map(Party::Client)
                .into_iter()
                .chain(opener.map(Party::Opener));
            for party in parties {
                self.by_subject
                    .entry((PartyKey::of(party), key.to_owned()))
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

    pub fn record_message_id(&mut self, message_id: &K::Ref, conversation: C) {
        self.by_id.insert(message_id.to_owned(), conversation);
    }
}

impl<C: Copy + Eq + Hash, K: IndexKey> ThreadIndex for MemoryThreadIndex<C, K> {
    type Conversation = C;
    type Key = K::Ref;

    fn by_message_id(&mut self, message_id: &K::Ref) -> Option<C> {
        self.by_id.get(message_id).copied()
    }

    fn by_subject(
        &mut self,
        party: Party<'_, K::Ref>,
        subject_key: &K::Ref,
        since: DateTime<Utc>,
    ) -> Option<C> {
        self.by_subject
            .get(&(PartyKey::of(party), subject_key.to_owned()))?
            .iter()
            .filter_map(|c| Some((*c, *self.last_message.get(c)?)))
            .filter(|(_, last)| *last >= since)
            .max_by_key(|(_, last)| *last)
            .map(|(c, _)| c)
    }
}
