//! Email use case: a batch of raw messages from one IMAP folder → stored,
//! threaded, classified, timed, acknowledged — and the folder's checkpoint
//! moved — in one transaction, so a crash at any point loses nothing and
//! duplicates nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::intake::{self, ConversationBatch, Target};
use super::mailbox::{FetchedMail, FolderCheckpoint, MailSink};
use super::{Effects, Intake, Opening, ServiceError};
use crate::contract::{Contract, UNKNOWN_CLIENT};
use crate::ingest::email::FolderKind;
use crate::ingest::email::{self, MemoryThreadIndex, ParsedEmail, Route, Team, is_team_address};
use crate::outbox::{self, EmailDraft};
use crate::sla::Direction;
use crate::store::{self, AnyConnection, Checkpoint, ConversationRow, NewMessage, StoreError};

/// Acknowledge only fresh mail: a first start on a mailbox with last year's
/// history must not answer it all.
const ACK_MAX_AGE: Duration = Duration::hours(1);
/// One acknowledgement per sender per hour (README, "Email").
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
    /// A rule of acknowledgements (README, "Email") says not to send one.
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
struct Ingested {
    report: MailBatchReport,
    directions: BTreeMap<&'static str, u64>,
    mismatches: Vec<String>,
    effects: Effects,
    /// Clients whose rows this made sure of, for the cache once committed.
    ensured: Vec<String>,
}

impl Ingested {
    fn merge(&mut self, o: Ingested) {
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

/// The id a batch's thread index gives the conversation in opening slot
/// `k` until it is stored: negative, so never a row's.
fn placeholder(k: usize) -> i64 {
    -(k as i64) - 1
}

/// The opening slot of a placeholder id, or `None` for a stored row's id.
fn placeholder_slot(id: i64) -> Option<usize> {
    (id < 0).then(|| (-(id + 1)) as usize)
}

/// Makes `row` findable by the threading rule: by its subject, among its
/// client's and its opener's conversations, with its latest mail.
fn index_row(index: &mut MemoryThreadIndex<i64>, row: &ConversationRow) {
    index_opening(
        index,
        row.id,
        &row.client_id,
        &row.opener,
        &row.subject_key,
        // No mail yet: never within a subject window until one arrives.
        row.last_message_at.unwrap_or(DateTime::<Utc>::MIN_UTC),
    );
}

fn index_opening(
    index: &mut MemoryThreadIndex<i64>,
    id: i64,
    client: &str,
    opener: &str,
    subject_key: &str,
    last: DateTime<Utc>,
) {
    index.open_with_key(
        id,
        (client != UNKNOWN_CLIENT).then_some(client),
        (!opener.is_empty()).then_some(opener),
        (!subject_key.is_empty()).then_some(subject_key),
        last,
    );
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

/// The batch's thread index, read in two queries before it threads: the
/// conversations of the Message-IDs its mails' headers name, and those a
/// reply without headers may join by subject (same subject key, of the
/// same client or opener, with mail in the window). The batch adds its own
/// mail and openings as it goes, so no lookup writes anything.
fn thread_index(
    conn: &mut AnyConnection,
    mails: &[(&Prepared, &ParsedEmail, &Route)],
) -> Result<(MemoryThreadIndex<i64>, HashMap<i64, ConversationRow>), StoreError> {
    let mut header_ids: Vec<String> = mails
        .iter()
        .flat_map(|(_, parsed, _)| parsed.in_reply_to.iter().chain(&parsed.references))
        .cloned()
        .collect();
    header_ids.sort_unstable();
    header_ids.dedup();
    let by_header = store::conversations_of_message_ids(conn, &header_ids)?;
    let mut wanted: Vec<i64> = by_header.values().copied().collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut rows = store::conversations_by_ids(conn, &wanted)?;

    let replies: Vec<(&Prepared, &Route, String)> = mails
        .iter()
        .filter(|(_, parsed, _)| email::looks_like_reply(parsed))
        .map(|(p, parsed, route)| (*p, *route, email::normalize_subject(&parsed.subject)))
        .filter(|(_, _, key)| !key.is_empty())
        .collect();
    if let Some(earliest) = replies.iter().map(|(p, _, _)| p.at).min() {
        let mut keys: Vec<&str> = replies.iter().map(|(_, _, k)| k.as_str()).collect();
        let mut clients: Vec<&str> = replies
            .iter()
            .filter_map(|(_, r, _)| r.known_client())
            .collect();
        let mut openers: Vec<&str> = replies
            .iter()
            .flat_map(|(_, r, _)| r.client_addresses())
            .collect();
        for v in [&mut keys, &mut clients, &mut openers] {
            v.sort_unstable();
            v.dedup();
        }
        let since = earliest - email::SUBJECT_WINDOW;
        for row in store::conversations_by_subject_keys(conn, &keys, &clients, &openers, since)? {
            rows.entry(row.id).or_insert(row);
        }
    }

    let mut index = MemoryThreadIndex::new();
    for row in rows.values() {
        index_row(&mut index, row);
    }
    for (message_id, id) in by_header {
        index.record_message_id(&message_id, id);
    }
    Ok((index, rows))
}

impl Intake {
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
        let current = self.contract().current();
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
            .map_err(ServiceError::from)
        };
        let stored = intake::store_each_on_refusal(
            self.store(),
            &prepared,
            |conn, mails| self.store_mails(conn, mb, mails, contract, now),
            |conn, p, e| {
                tracing::error!(mailbox = %mb.name, folder, uid = p.fetched.uid, error = %e, "message kept raw: cannot store it");
                store::reject_input(
                    conn,
                    &mb.channel,
                    "store",
                    &e.to_string(),
                    &p.fetched.raw,
                    now,
                )?;
                let mut one = Ingested::default();
                one.report.rejected = 1;
                Ok(one)
            },
            Ingested::merge,
            checkpoint,
        )?;
        let Ingested {
            report,
            directions,
            mismatches,
            effects,
            ensured,
        } = stored;
        self.clients_committed(contract, ensured);
        let m = self.metrics();
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
        m.count_acknowledgements(report.acknowledged, report.suppressed, report.ack_failed);
        let acked = report.acknowledged > 0;
        self.after.apply(effects);
        if acked {
            self.after.outbox_wake.notify_one();
        }
        Ok(report)
    }

    /// The email front end of the intake: stores `mails` (in order) inside
    /// the caller's transaction. Each fresh mail is threaded (headers, then
    /// the subject for replies without them) over an index read once for the
    /// batch, and goes to its conversation, to a new one (inbound mail of a
    /// client), or nowhere; the batch is written as one, and the new
    /// conversations are acknowledged.
    fn store_mails(
        &self,
        conn: &mut AnyConnection,
        mb: &MailboxContext,
        mails: &[Prepared],
        contract: &Contract,
        now: DateTime<Utc>,
    ) -> Result<Ingested, ServiceError> {
        let mut out = Ingested::default();
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
        let fresh_mails: Vec<(&Prepared, &ParsedEmail, &Route)> = mails
            .iter()
            .zip(&fresh)
            .filter(|(_, fresh)| **fresh)
            .filter_map(|(p, _)| p.mail.as_ref().ok().map(|(m, r)| (p, m, r)))
            .collect();
        let (mut index, rows) = thread_index(conn, &fresh_mails)?;
        let mut intake = ConversationBatch::new();
        for row in rows.into_values() {
            intake.know(row);
        }

        // Per mail added to the intake: its place in `mails` and direction.
        let mut added: Vec<(usize, Direction)> = Vec::new();
        // Per opening slot: the mail that opened it.
        let mut opened_by: Vec<usize> = Vec::new();
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
            let thread = email::find_thread(&mut index, parsed, route, p.at);
            let (target, id) = match thread {
                Some(id) => match placeholder_slot(id) {
                    Some(slot) => (Target::Opening(slot), Some(id)),
                    None => (Target::Stored(id), Some(id)),
                },
                None => match (&route.client, direction) {
                    (Some(client_id), Direction::Inbound) => {
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
                        let id = placeholder(opened_by.len());
                        index_opening(
                            &mut index,
                            id,
                            &new.client_id,
                            &new.opener,
                            &new.subject_key,
                            p.at,
                        );
                        opened_by.push(i);
                        (Target::Opening(intake.open(new, mismatch)), Some(id))
                    }
                    _ => (Target::Untracked, None),
                },
            };
            if let Some(id) = id {
                index.touch(id, p.at);
                if let Some(mid) = &parsed.message_id {
                    index.record_message_id(mid, id);
                }
            }
            intake.add(
                NewMessage {
                    conversation_id: None,
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
                },
                target,
            );
            added.push((i, direction));
            out.report.stored += 1;
            *out.directions.entry(direction.as_str()).or_default() += 1;
        }
        if intake.is_empty() {
            return Ok(out);
        }

        let committed = intake.commit(self, conn, contract, now)?;
        out.ensured = committed.ensured;
        // A key another process stored between the check and the insert
        // (PostgreSQL, two mailboxes receiving one mail): a duplicate.
        for ((_, direction), stored) in added.iter().zip(&committed.messages) {
            if stored.is_none() {
                out.report.stored -= 1;
                out.report.duplicates += 1;
                if let Some(n) = out.directions.get_mut(direction.as_str()) {
                    *n -= 1;
                }
            }
        }
        let mut first_due: HashMap<i64, Option<DateTime<Utc>>> = HashMap::new();
        for (id, e) in committed.effects {
            first_due.insert(id, e.first_response_due);
            out.effects.merge(e);
        }
        let opened: Vec<(&intake::OpenedConversation, usize)> = committed
            .opened
            .iter()
            .zip(opened_by)
            .filter(|(o, _)| o.created)
            .collect();
        out.mismatches
            .extend(opened.iter().filter_map(|(o, _)| o.mismatch.clone()));

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
        for (o, i) in opened {
            let p = &mails[i];
            let Ok((parsed, route)) = &p.mail else {
                continue;
            };
            let conv = &o.row;
            let link = Link {
                due: first_due.get(&conv.id).copied().flatten(),
                status_token: o.status_token.as_deref(),
            };
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
        let stored = super::store_acknowledgements(conn, &acks.outbox, acks.copies, now)?;
        let refused = acks.outbox.len() - stored;
        out.report.acknowledged -= refused;
        out.report.suppressed += refused;
        Ok(out)
    }

    /// Builds the acknowledgement of a new conversation unless a rule of
    /// acknowledgements (README, "Email") says not to, for the batch to
    /// enqueue with the others. It is also stored as an `auto` message of the conversation, with its
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
        let contract_url = self.core.contract_url(contract);
        let client = (conv.client_id != UNKNOWN_CLIENT).then_some(conv.client_id.as_str());
        let mut cx = outbox::templates::ack_context(
            contract,
            &conv.request_type,
            client,
            &conv.channel,
            &mail.subject,
            due,
            &contract_url,
            &contract.info().name,
        );
        let status_url = link.status_token.map(|t| self.core.status_url(t));
        cx.status_url = status_url.clone();
        if let Some(name) = mail
            .from
            .as_ref()
            .and_then(|a| outbox::templates::greeting_name(a.name.as_deref()))
        {
            cx.greeting_name = Some(name);
        }
        let rendered = match self.core.templates().render(&cx) {
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
        let (row, message_id) = match outbox::new_email_with_id(
            EmailDraft {
                to: vec![from.to_string()],
                subject: rendered.subject.clone(),
                text: rendered.text.clone(),
                html: Some(rendered.html),
                headers,
            },
            self.core.message_id_domain(),
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
            // The token is kept only as a hash (README, "HTTP API"): the team's copy
            // of the acknowledgement names the link without it.
            body: match &status_url {
                Some(url) => rendered.text.replace(url, &self.core.status_url("…")),
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
    pub service: Intake,
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
