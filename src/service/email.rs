//! Email use case: a batch of raw messages from one IMAP folder → stored,
//! threaded, classified, timed, acknowledged — and the folder's checkpoint
//! moved — in one transaction, so a crash at any point loses nothing and
//! duplicates nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::mailbox::{FetchedMail, FolderCheckpoint, MailSink};
use super::{Effects, Opening, Service, ServiceError};
use crate::contract::{Contract, UNKNOWN_CLIENT};
use crate::ingest::email::FolderKind;
use crate::ingest::email::{self, ParsedEmail, Party, Route, Team, ThreadIndex, is_team_address};
use crate::notify::{self, EmailDraft};
use crate::sla::Direction;
use crate::store::{self, AnyConnection, Checkpoint, ConversationRow, NewMessage, StoreError};

/// Acknowledge only fresh mail: a first start on a mailbox with last year's
/// history must not answer it all.
const ACK_MAX_AGE: Duration = Duration::hours(1);
/// One acknowledgement per sender per hour (SPEC 6).
const ACK_PER_SENDER: Duration = Duration::hours(1);

/// What one mailbox feeds and who counts as the team.
#[derive(Debug, Clone)]
pub struct MailboxContext {
    pub name: String,
    /// The contract channel this mailbox feeds.
    pub channel: String,
    /// Addresses or `@domain` entries whose mail is the team's.
    pub team: Vec<String>,
    /// Our own addresses (the `From:` of acknowledgements, the channel
    /// address): never acknowledged, never a client.
    pub own: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailBatchReport {
    pub stored: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub acknowledged: usize,
    pub suppressed: usize,
    /// Acknowledgements that could not be built (a broken template).
    pub ack_failed: usize,
}

/// What an acknowledgement links to: the due it names and the status page.
#[derive(Clone, Copy)]
struct Link<'a> {
    due: Option<DateTime<Utc>>,
    status_token: Option<&'a str>,
}

/// What became of an acknowledgement.
enum Ack {
    Enqueued,
    /// A rule of SPEC 6 says not to send one.
    Suppressed,
    /// The template or the mail could not be built (logged).
    Failed,
}

/// A mail of a batch, parsed and routed before the transaction: parsing is
/// the CPU-heavy part and needs no lock.
struct Prepared<'a> {
    fetched: &'a FetchedMail,
    mail: Result<(ParsedEmail, Route), String>,
    /// The Date header, or now when it is missing or in the future.
    at: DateTime<Utc>,
    /// The idempotency key: the Message-ID, or a hash of the bytes.
    external_id: String,
}

/// What storing a batch (or, after a failure, one message) did.
#[derive(Default)]
struct Stored {
    report: MailBatchReport,
    directions: BTreeMap<&'static str, u64>,
    mismatches: Vec<String>,
    effects: Effects,
    /// Clients whose rows this made sure of, for the cache once committed.
    ensured: Vec<String>,
}

impl Stored {
    fn merge(&mut self, o: Stored) {
        let (r, m) = (&mut self.report, o.report);
        r.stored += m.stored;
        r.duplicates += m.duplicates;
        r.rejected += m.rejected;
        r.acknowledged += m.acknowledged;
        r.suppressed += m.suppressed;
        r.ack_failed += m.ack_failed;
        for (d, n) in o.directions {
            *self.directions.entry(d).or_default() += n;
        }
        self.mismatches.extend(o.mismatches);
        self.effects.merge(o.effects);
        self.ensured.extend(o.ensured);
    }
}

/// Threading state of one batch: the headers' conversations read in one
/// query up front, and what the batch itself stored so far.
#[derive(Default)]
struct BatchIndex {
    /// Message-ID → conversation, stored before this batch.
    known: HashMap<String, i64>,
    /// Message-ID → conversation (or placeholder), stored by this batch.
    in_batch: HashMap<String, i64>,
    /// Conversations whose latest mail this batch moved forward; written
    /// by the batch's refresh, or before a subject lookup needs them.
    moved: HashMap<i64, DateTime<Utc>>,
    /// The conversations this batch opens, by placeholder slot.
    openings: Vec<ToOpen>,
    /// `openings[..flushed]` are in the database already.
    flushed: usize,
    /// Their rows, as inserted.
    flushed_rows: Vec<ConversationRow>,
}

/// A conversation a batch opens. The batch knows it by a placeholder id
/// until it is inserted: at the end of the batch, or earlier when a
/// subject lookup must find it in the database.
struct ToOpen {
    new: store::NewConversation,
    /// The request type, when classified for a channel that does not list it.
    mismatch: Option<String>,
    /// The mail that opened it.
    mail: usize,
    /// Its latest mail so far.
    last: DateTime<Utc>,
    /// `(id, created)` once inserted; `created` is false when a concurrent
    /// writer opened it first.
    stored: Option<(i64, bool)>,
}

/// The id a batch gives its `k`th opening until it is stored: negative,
/// so never a row's.
fn placeholder(k: usize) -> i64 {
    -(k as i64) - 1
}

fn is_placeholder(id: i64) -> bool {
    id < 0
}

fn placeholder_slot(id: i64) -> usize {
    (-(id + 1)) as usize
}

impl BatchIndex {
    /// The stored id for `id`, when it is a placeholder already stored.
    fn resolve(&self, id: i64) -> i64 {
        if !is_placeholder(id) {
            return id;
        }
        match self.openings[placeholder_slot(id)].stored {
            Some((stored, _)) => stored,
            None => id,
        }
    }

    /// Inserts the openings not stored yet, as they stand (their state is
    /// derived by the batch's refresh), so a lookup in the database sees
    /// them.
    fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        let pending = &mut self.openings[self.flushed..];
        if pending.is_empty() {
            return Ok(());
        }
        let new: Vec<(store::NewConversation, store::DerivedState)> = pending
            .iter()
            .map(|o| {
                let mut new = o.new.clone();
                new.last_message_at = Some(o.last);
                let state = store::DerivedState::unevaluated(&new);
                (new, state)
            })
            .collect();
        let rows = store::open_or_find_conversations(conn, &new)?;
        for (o, (row, created)) in pending.iter_mut().zip(rows) {
            o.stored = Some((row.id, created));
            self.flushed_rows.push(row);
        }
        self.flushed = self.openings.len();
        Ok(())
    }
}

/// [`ThreadIndex`] for one lookup: the batch's maps first, the database
/// for subjects. The trait cannot return errors, so the first one is kept
/// and checked after the lookup.
struct Lookup<'a> {
    conn: &'a mut AnyConnection,
    batch: &'a mut BatchIndex,
    error: Option<StoreError>,
}

impl ThreadIndex for Lookup<'_> {
    type Conversation = i64;
    type Key = str;
    fn by_message_id(&mut self, message_id: &str) -> Option<i64> {
        self.batch
            .in_batch
            .get(message_id)
            .or_else(|| self.batch.known.get(message_id))
            .copied()
    }
    fn by_subject(&mut self, party: Party<'_>, key: &str, since: DateTime<Utc>) -> Option<i64> {
        // The database answers: the conversations this batch opened must be
        // in it, and the window is compared with `last_message_at`, so the
        // rows this batch moved are brought up to date first (rare: only
        // header-less replies).
        if let Err(e) = self.batch.flush(self.conn) {
            self.error.get_or_insert(e);
            return None;
        }
        for (id, at) in std::mem::take(&mut self.batch.moved) {
            if let Err(e) = store::advance_last_message(self.conn, id, at) {
                self.error.get_or_insert(e);
                return None;
            }
        }
        match party {
            Party::Client(client) => store::conversation_by_subject(self.conn, client, key, since),
            Party::Opener(address) => {
                store::conversation_by_opener_subject(self.conn, address, key, since)
            }
        }
        .map_err(|e| self.error.get_or_insert(e))
        .ok()
        .flatten()
    }
}

/// A mail as the SLA engine reads it back from the store: its instant to
/// the microsecond, as both backends keep it.
fn event_row(m: &NewMessage) -> store::EventRow {
    store::EventRow {
        direction: m.direction,
        status: m.status,
        awaiting_client: m.awaiting_client,
        sent_at: store::from_db(store::to_db(m.sent_at)),
    }
}

/// Acknowledgement state of one batch: who was acknowledged within the hour
/// (read once for the batch's senders), and what to store once all are
/// built: the outbox rows and, at the same places, the team's copies.
struct Acks {
    recent: HashSet<String>,
    outbox: Vec<store::NewOutbox>,
    copies: Vec<NewMessage>,
}

fn content_id(raw: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw)))
}

fn addresses(list: &[email::Address]) -> String {
    list.iter()
        .map(|a| a.address.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn prepare<'a>(
    fetched: &'a FetchedMail,
    mb: &MailboxContext,
    kind: FolderKind,
    contract: &Contract,
    now: DateTime<Utc>,
) -> Prepared<'a> {
    let mail = email::parse_email(&fetched.raw)
        .map_err(|e| e.0)
        .map(|parsed| {
            let route = email::route(
                &parsed,
                contract,
                Team {
                    members: &mb.team,
                    own: &mb.own,
                },
                kind,
            );
            (parsed, route)
        });
    let (at, external_id) = match &mail {
        Ok((parsed, _)) => (
            // A Date in the future is a broken clock, not a promise.
            parsed
                .date
                .filter(|d| *d <= now + Duration::days(1))
                .unwrap_or(now),
            parsed
                .message_id
                .clone()
                .unwrap_or_else(|| content_id(&fetched.raw)),
        ),
        Err(_) => (now, String::new()),
    };
    Prepared {
        fetched,
        mail,
        at,
        external_id,
    }
}

/// [`prepare`] for a batch, on every core: parsing MIME (decoding
/// attachments included) is most of a batch's work outside the database,
/// and it needs no lock. Small batches, as IDLE delivers them, stay on the
/// caller's thread.
fn prepare_all<'a>(
    batch: &'a [FetchedMail],
    mb: &MailboxContext,
    kind: FolderKind,
    contract: &Contract,
    now: DateTime<Utc>,
) -> Vec<Prepared<'a>> {
    const PER_THREAD: usize = 32;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(batch.len() / PER_THREAD);
    if threads <= 1 {
        return batch
            .iter()
            .map(|m| prepare(m, mb, kind, contract, now))
            .collect();
    }
    let chunk = batch.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = batch
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|m| prepare(m, mb, kind, contract, now))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| match p.join() {
                Ok(prepared) => prepared,
                // `parse_email` catches the parser's panics; anything else
                // is a bug worth the same crash as on one thread.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

impl Service {
    /// Stores a batch from one folder and moves its checkpoint to
    /// `(uidvalidity, highest uid)` in the same transaction.
    ///
    /// The batch is stored as a batch: duplicates and the headers'
    /// conversations are looked up in one query each, messages are written
    /// in multi-row statements on PostgreSQL, and each conversation the
    /// batch touched is evaluated once, after its last message, so a
    /// message costs about the same in a 1-message thread and a 1,000-message
    /// one. Should the database refuse anything, the batch is stored again
    /// one message at a time, each in its own savepoint: a message that
    /// still fails is kept raw and the rest (and the checkpoint) commits —
    /// one bad message never blocks the mailbox.
    pub fn ingest_mail_batch(
        &self,
        mb: &MailboxContext,
        folder: &str,
        kind: FolderKind,
        uidvalidity: u32,
        batch: Vec<FetchedMail>,
        now: DateTime<Utc>,
    ) -> Result<MailBatchReport, ServiceError> {
        let Some(last_uid) = batch.iter().map(|m| m.uid).max() else {
            return Ok(MailBatchReport::default());
        };
        let current = self.inner.contract.current();
        let contract = &current.contract;
        let prepared = prepare_all(&batch, mb, kind, contract, now);
        let checkpoint = |conn: &mut AnyConnection| {
            store::save_checkpoint(
                conn,
                &mb.name,
                folder,
                Checkpoint {
                    uidvalidity: i64::from(uidvalidity),
                    last_uid: i64::from(last_uid),
                },
                now,
            )
        };
        let whole = self.inner.store.transaction(|conn| {
            let stored = self.store_mails(conn, mb, &prepared, contract, now)?;
            checkpoint(conn)?;
            Ok::<_, ServiceError>(stored)
        });
        let stored = match whole {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(mailbox = %mb.name, folder, error = %e, "batch refused; storing it one message at a time");
                self.inner.store.transaction(|conn| {
                    let mut all = Stored::default();
                    for p in &prepared {
                        let one = store::savepoint(conn, |conn| {
                            self.store_mails(conn, mb, std::slice::from_ref(p), contract, now)
                        });
                        match one {
                            Ok(one) => all.merge(one),
                            Err(e) => {
                                tracing::error!(mailbox = %mb.name, folder, uid = p.fetched.uid, error = %e, "message kept raw: cannot store it");
                                store::reject_input(conn, &mb.channel, "store", &e.to_string(), &p.fetched.raw, now)?;
                                all.report.rejected += 1;
                            }
                        }
                    }
                    checkpoint(conn)?;
                    Ok::<_, ServiceError>(all)
                })?
            }
        };
        let Stored {
            report,
            directions,
            mismatches,
            effects,
            ensured,
        } = stored;
        self.clients_committed(contract, ensured);
        let m = &self.inner.metrics;
        for (direction, n) in directions {
            m.messages
                .with_label_values(&[&mb.channel, direction])
                .inc_by(n);
        }
        if report.rejected > 0 {
            m.ingest_rejected
                .with_label_values(&[&mb.channel, "unparseable"])
                .inc_by(report.rejected as u64);
        }
        for t in mismatches {
            m.channel_mismatches
                .with_label_values(&[&t, &mb.channel])
                .inc();
        }
        m.acknowledgements
            .with_label_values(&["sent"])
            .inc_by(report.acknowledged as u64);
        m.acknowledgements
            .with_label_values(&["suppressed"])
            .inc_by(report.suppressed as u64);
        // Counted after the commit, like every metric here: a rolled-back
        // batch counts nothing.
        if report.ack_failed > 0 {
            m.acknowledgements
                .with_label_values(&["failed"])
                .inc_by(report.ack_failed as u64);
        }
        let acked = report.acknowledged > 0;
        self.apply(effects);
        if acked {
            self.inner.outbox_wake.notify_one();
        }
        Ok(report)
    }

    /// Stores `mails` (in order) inside the caller's transaction: threads
    /// them, opens conversations, writes the messages, evaluates each
    /// touched conversation once and acknowledges the new ones.
    ///
    /// New conversations are inserted after the batch is threaded, all in
    /// one statement and with their first state already in the row (as the
    /// events writer does): until then the batch knows each by a
    /// placeholder id. Only a subject lookup, which asks the database, makes
    /// them be inserted earlier.
    fn store_mails(
        &self,
        conn: &mut AnyConnection,
        mb: &MailboxContext,
        mails: &[Prepared],
        contract: &Contract,
        now: DateTime<Utc>,
    ) -> Result<Stored, ServiceError> {
        let mut out = Stored::default();
        let parsed_keys: Vec<(&str, &str)> = mails
            .iter()
            .filter(|p| p.mail.is_ok())
            .map(|p| (mb.channel.as_str(), p.external_id.as_str()))
            .collect();
        let stored_before = store::messages_by_external_ids(conn, &parsed_keys)?;
        let mut keys_in_batch: HashSet<&str> = HashSet::new();
        let fresh: Vec<bool> = mails
            .iter()
            .map(|p| {
                p.mail.is_ok()
                    && !stored_before.contains_key(&(mb.channel.clone(), p.external_id.clone()))
                    && keys_in_batch.insert(p.external_id.as_str())
            })
            .collect();
        let mut header_ids: Vec<String> = mails
            .iter()
            .zip(&fresh)
            .filter(|(_, fresh)| **fresh)
            .filter_map(|(p, _)| p.mail.as_ref().ok())
            .flat_map(|(parsed, _)| parsed.in_reply_to.iter().chain(&parsed.references))
            .cloned()
            .collect();
        header_ids.sort_unstable();
        header_ids.dedup();
        let mut index = BatchIndex {
            known: store::conversations_of_message_ids(conn, &header_ids)?,
            ..BatchIndex::default()
        };
        let mut wanted: Vec<i64> = index.known.values().copied().collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut rows: HashMap<i64, ConversationRow> = store::conversations_by_ids(conn, &wanted)?;

        let mut touched: Vec<i64> = Vec::new();
        let mut pending: Vec<NewMessage> = Vec::new();
        let mut ensured: HashSet<&str> = HashSet::new();
        for (i, p) in mails.iter().enumerate() {
            let (parsed, route) = match &p.mail {
                Ok(m) => m,
                Err(reason) => {
                    // Kept raw, listed, never blocks the mailbox.
                    store::reject_input(
                        conn,
                        &mb.channel,
                        "unparseable",
                        reason,
                        &p.fetched.raw,
                        now,
                    )?;
                    out.report.rejected += 1;
                    continue;
                }
            };
            if !fresh[i] {
                out.report.duplicates += 1;
                continue;
            }
            let direction = route.direction;
            let mut lookup = Lookup {
                conn,
                batch: &mut index,
                error: None,
            };
            let thread = email::find_thread(&mut lookup, parsed, route, p.at);
            if let Some(e) = lookup.error {
                return Err(ServiceError::Store(e));
            }
            let conversation = match thread.map(|id| index.resolve(id)) {
                Some(id) if is_placeholder(id) => {
                    let o = &mut index.openings[placeholder_slot(id)];
                    o.last = o.last.max(p.at);
                    Some(id)
                }
                Some(id) => {
                    if let std::collections::hash_map::Entry::Vacant(v) = rows.entry(id) {
                        match store::conversation(conn, id)? {
                            Some(row) => {
                                v.insert(row);
                            }
                            None => {
                                return Err(ServiceError::NotFound(format!("conversation {id}")));
                            }
                        }
                    }
                    let last = index.moved.get(&id).copied().or(rows[&id].last_message_at);
                    if last.is_none_or(|l| p.at > l) {
                        index.moved.insert(id, p.at);
                    }
                    Some(id)
                }
                None if direction == Direction::Inbound => match &route.client {
                    Some(client_id) => {
                        if ensured.insert(client_id.as_str()) {
                            self.ensure_client_cached(conn, contract, client_id, now)?;
                        }
                        let (new, mismatch) = super::events::classified(
                            contract,
                            &Opening {
                                channel: &mb.channel,
                                thread_key: &p.external_id,
                                client_id,
                                subject: &parsed.subject,
                                body: &parsed.text,
                                priority: None,
                                recipients: &route.recipients,
                                opener: &route.sender,
                                at: p.at,
                            },
                            now,
                        );
                        let id = placeholder(index.openings.len());
                        index.openings.push(ToOpen {
                            new,
                            mismatch,
                            mail: i,
                            last: p.at,
                            stored: None,
                        });
                        Some(id)
                    }
                    None => None,
                },
                None => None,
            };
            if let Some(id) = conversation {
                if !touched.contains(&id) {
                    touched.push(id);
                }
                if let Some(mid) = &parsed.message_id {
                    index.in_batch.insert(mid.clone(), id);
                }
            }
            pending.push(NewMessage {
                conversation_id: conversation,
                channel: mb.channel.clone(),
                external_id: p.external_id.clone(),
                direction: Some(direction),
                sender: route.sender.clone(),
                recipients: addresses(&parsed.to),
                subject: parsed.subject.clone(),
                body: parsed.text.clone(),
                message_id: parsed.message_id.clone(),
                in_reply_to: parsed.in_reply_to.clone(),
                refs: parsed.references.join(" "),
                raw: Some(p.fetched.raw.clone()),
                sent_at: p.at,
                received_at: now,
                status: None,
                awaiting_client: false,
            });
            out.report.stored += 1;
            *out.directions.entry(direction.as_str()).or_default() += 1;
        }
        out.ensured = ensured.into_iter().map(str::to_string).collect();
        for row in std::mem::take(&mut index.flushed_rows) {
            rows.entry(row.id).or_insert(row);
        }

        // The openings no subject lookup inserted: each one's first state
        // from the batch's mails of it, then all in one statement.
        let unflushed = index.flushed..index.openings.len();
        let mut firsts: Vec<(usize, super::refresh::FirstState, Vec<store::EventRow>)> = Vec::new();
        for k in unflushed.clone() {
            let id = placeholder(k);
            let events: Vec<store::EventRow> = pending
                .iter()
                .filter(|m| m.conversation_id == Some(id))
                .map(event_row)
                .collect();
            let mut order: Vec<usize> = (0..events.len()).collect();
            // The engine's order: by time, then as stored (batch order).
            order.sort_by_key(|&j| (events[j].sent_at, j));
            let events: Vec<store::EventRow> =
                order.into_iter().map(|j| events[j].clone()).collect();
            let first = self.initial_state(conn, &index.openings[k].new, &events, now)?;
            firsts.push((k, first, events));
        }
        let new: Vec<(store::NewConversation, store::DerivedState)> = firsts
            .iter()
            .map(|(k, first, _)| (index.openings[*k].new.clone(), first.row.clone()))
            .collect();
        let inserted = store::open_or_find_conversations(conn, &new)?;
        let mut known: HashMap<i64, super::refresh::Opened> = HashMap::new();
        // `created` is false where some concurrent writer opened it first
        // (the same mail, delivered to two mailboxes): theirs is read back.
        for ((k, first, events), (row, created)) in firsts.into_iter().zip(inserted) {
            let o = &mut index.openings[k];
            if created {
                known.insert(row.id, super::refresh::Opened { events, first });
            }
            o.stored = Some((row.id, created));
            rows.insert(row.id, row);
        }
        for m in &mut pending {
            m.conversation_id = m.conversation_id.map(|id| index.resolve(id));
        }
        let mut seen = HashSet::new();
        touched = touched
            .into_iter()
            .map(|id| index.resolve(id))
            .filter(|id| seen.insert(*id))
            .collect();
        let ids = store::insert_messages(conn, &pending)?;
        // A key another process stored between the check and the insert
        // (PostgreSQL, two mailboxes receiving one mail): a duplicate, and
        // its conversation is read back whole.
        for (id, m) in ids.iter().zip(&pending) {
            if id.is_none() {
                out.report.stored -= 1;
                out.report.duplicates += 1;
                if let Some(n) = out
                    .directions
                    .get_mut(m.direction.map_or("none", Direction::as_str))
                {
                    *n -= 1;
                }
                if let Some(c) = m.conversation_id {
                    known.remove(&c);
                }
            }
        }
        drop(pending);

        let convs: Vec<&ConversationRow> = touched.iter().map(|id| &rows[id]).collect();
        let effects = self.refresh_many(conn, &convs, known, now)?;
        let mut first_due: HashMap<i64, Option<DateTime<Utc>>> = HashMap::new();
        for (id, e) in touched.iter().zip(effects) {
            first_due.insert(*id, e.first_response_due);
            out.effects.merge(e);
        }

        let opened: Vec<(i64, usize)> = index
            .openings
            .iter()
            .filter_map(|o| match o.stored {
                Some((id, true)) => Some((id, o.mail)),
                _ => None,
            })
            .collect();
        out.mismatches.extend(
            index
                .openings
                .iter()
                .filter(|o| matches!(o.stored, Some((_, true))))
                .filter_map(|o| o.mismatch.clone()),
        );
        let ids: Vec<i64> = opened.iter().map(|(id, _)| *id).collect();
        let token_of = super::status::issue_links(conn, &ids, now)?;

        let senders: Vec<String> = opened
            .iter()
            .filter_map(|(_, i)| mails[*i].mail.as_ref().ok())
            .map(|(_, route)| route.sender.clone())
            .collect();
        let mut acks = Acks {
            recent: store::acknowledged_any_since(conn, &senders, now - ACK_PER_SENDER)?,
            outbox: Vec::new(),
            copies: Vec::new(),
        };
        for (id, i) in opened {
            let p = &mails[i];
            let Ok((parsed, route)) = &p.mail else {
                continue;
            };
            let link = Link {
                due: first_due.get(&id).copied().flatten(),
                status_token: token_of.get(&id).map(String::as_str),
            };
            let conv = &rows[&id];
            match self.acknowledge(
                mb,
                contract,
                conv,
                parsed,
                &route.sender,
                link,
                p.at,
                now,
                &mut acks,
            )? {
                Ack::Enqueued => out.report.acknowledged += 1,
                Ack::Suppressed => out.report.suppressed += 1,
                Ack::Failed => out.report.ack_failed += 1,
            }
        }
        // An existing dedupe key means this conversation was acknowledged
        // already: not again, and no second copy.
        let enqueued = store::enqueue_many(conn, &acks.outbox)?;
        let copies: Vec<NewMessage> = acks
            .copies
            .into_iter()
            .zip(&enqueued)
            .filter(|(_, enqueued)| **enqueued)
            .map(|(copy, _)| copy)
            .collect();
        let refused = enqueued.len() - copies.len();
        out.report.acknowledged -= refused;
        out.report.suppressed += refused;
        store::insert_messages(conn, &copies)?;
        Ok(out)
    }

    /// Builds the acknowledgement of a new conversation unless a rule of
    /// SPEC 6 says not to, for the batch to enqueue with the others. It is
    /// also stored as an `auto` message of the conversation, with its
    /// Message-ID, so a reply to it threads back in.
    #[allow(clippy::too_many_arguments)]
    fn acknowledge(
        &self,
        mb: &MailboxContext,
        contract: &Contract,
        conv: &ConversationRow,
        mail: &ParsedEmail,
        from: &str,
        link: Link<'_>,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
        acks: &mut Acks,
    ) -> Result<Ack, ServiceError> {
        let due = link.due;
        let suppressed = |why: &str| {
            tracing::info!(conversation.id = conv.id, sender = %from, reason = why, "acknowledgement suppressed");
            Ok(Ack::Suppressed)
        };
        if from.is_empty() || !from.contains('@') {
            return suppressed("no sender address");
        }
        if is_team_address(from, &mb.team) || is_team_address(from, &mb.own) {
            return suppressed("team or own address");
        }
        if at < now - ACK_MAX_AGE {
            return suppressed("old mail");
        }
        if acks.recent.contains(from) {
            return suppressed("already acknowledged this sender within the hour");
        }
        let Some(due) = due else {
            return suppressed("no first-response promise");
        };
        let contract_url = self.contract_url(contract);
        let client = (conv.client_id != UNKNOWN_CLIENT).then_some(conv.client_id.as_str());
        let mut cx = notify::ack::ack_context(
            contract,
            &conv.request_type,
            client,
            &conv.channel,
            &mail.subject,
            due,
            &contract_url,
            &contract.info().name,
        );
        let status_url = link.status_token.map(|t| self.status_url(t));
        cx.status_url = status_url.clone();
        if let Some(name) = mail
            .from
            .as_ref()
            .and_then(|a| notify::ack::greeting_name(a.name.as_deref()))
        {
            cx.greeting_name = Some(name);
        }
        let rendered = match self.inner.templates.render(&cx) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "acknowledgement template failed");
                return Ok(Ack::Failed);
            }
        };
        let mut headers = vec![
            ("Auto-Submitted".to_string(), "auto-replied".to_string()),
            ("X-Auto-Response-Suppress".to_string(), "All".to_string()),
            ("X-Keepword-Ack".to_string(), conv.id.to_string()),
        ];
        if let Some(id) = &mail.message_id {
            let mut refs = mail.references.clone();
            refs.push(id.clone());
            headers.push(("In-Reply-To".into(), id.clone()));
            headers.push(("References".into(), refs.join(" ")));
        }
        let (row, message_id) = match notify::new_email_with_id(
            EmailDraft {
                to: vec![from.to_string()],
                subject: rendered.subject.clone(),
                text: rendered.text.clone(),
                html: Some(rendered.html),
                headers,
            },
            &self.inner.message_id_domain,
            format!("ack:{}", conv.id),
            now,
        ) {
            Ok(built) => built,
            Err(e) => {
                tracing::warn!(error = %e, sender = %from, "cannot build acknowledgement");
                return Ok(Ack::Failed);
            }
        };
        acks.outbox.push(row);
        acks.recent.insert(from.to_string());
        acks.copies.push(NewMessage {
            conversation_id: Some(conv.id),
            channel: conv.channel.clone(),
            external_id: format!("ack:{message_id}"),
            direction: Some(Direction::Auto),
            sender: "keepword".into(),
            recipients: from.to_string(),
            subject: rendered.subject,
            // The token is kept only as a hash (SPEC 12): the team's copy
            // of the acknowledgement names the link without it.
            body: match &status_url {
                Some(url) => rendered.text.replace(url, &self.status_url("…")),
                None => rendered.text,
            },
            message_id: Some(message_id),
            in_reply_to: mail.message_id.clone(),
            refs: String::new(),
            raw: None,
            sent_at: now,
            received_at: now,
            status: None,
            awaiting_client: false,
        });
        Ok(Ack::Enqueued)
    }
}

/// The database side of one mailbox, for its IMAP poller.
pub struct EmailSink {
    pub service: Service,
    pub mailbox: MailboxContext,
}

impl MailSink for EmailSink {
    fn checkpoint(&self, mailbox: &str, folder: &str) -> Result<Option<FolderCheckpoint>, String> {
        let cp = self
            .service
            .store()
            .with(|c| store::checkpoint(c, mailbox, folder))
            .map_err(|e| e.to_string())?;
        Ok(cp.map(|c| FolderCheckpoint {
            uidvalidity: c.uidvalidity as u32,
            last_uid: c.last_uid as u32,
        }))
    }

    fn ingest(
        &self,
        _mailbox: &str,
        folder: &str,
        kind: FolderKind,
        uidvalidity: u32,
        batch: Vec<FetchedMail>,
    ) -> Result<(), String> {
        self.service
            .ingest_mail_batch(
                &self.mailbox,
                folder,
                kind,
                uidvalidity,
                batch,
                self.service.now(),
            )
            .map(|r| {
                tracing::info!(
                    mailbox = %self.mailbox.name,
                    folder,
                    stored = r.stored,
                    duplicates = r.duplicates,
                    rejected = r.rejected,
                    acknowledged = r.acknowledged,
                    "mail batch committed"
                );
            })
            .map_err(|e| e.to_string())
    }
}
