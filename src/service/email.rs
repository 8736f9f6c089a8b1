//! Email use case: a batch of raw messages from one IMAP folder → stored,
//! threaded, classified, timed, acknowledged — and the folder's checkpoint
//! moved — in one transaction, so a crash at any point loses nothing and
//! duplicates nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::mailbox::{FetchedMail, FolderCheckpoint, MailSink};
use super::{Effects, Opening, Service, ServiceError, open_conversation};
use crate::contract::{Contract, UNKNOWN_CLIENT};
use crate::ingest::email::FolderKind;
use crate::ingest::email::{self, ParsedEmail, Party, Team, ThreadIndex, is_team_address};
use crate::notify::{self, EmailDraft};
use crate::sla::Direction;
use crate::store::{
    self, AnyConnection, Checkpoint, ConversationRow, Inserted, NewMessage, StoreError,
};

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

/// What storing one message did, for the batch's report and metrics.
#[derive(Default)]
struct OneMail {
    stored: usize,
    duplicate: usize,
    rejected: usize,
    acknowledged: usize,
    suppressed: usize,
    ack_failed: usize,
    direction: Option<&'static str>,
    mismatch: Option<String>,
    effects: Effects,
}

/// Threading lookups against the database. The trait cannot return errors,
/// so the first one is kept and checked after the lookup.
struct DbIndex<'a> {
    conn: &'a mut AnyConnection,
    error: Option<StoreError>,
}

impl ThreadIndex for DbIndex<'_> {
    type Conversation = i64;
    type Key = str;
    fn by_message_id(&mut self, message_id: &str) -> Option<i64> {
        store::conversation_of_message_id(self.conn, message_id)
            .map_err(|e| self.error.get_or_insert(e))
            .ok()
            .flatten()
    }
    fn by_subject(&mut self, party: Party<'_>, key: &str, since: DateTime<Utc>) -> Option<i64> {
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

fn content_id(raw: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw)))
}

fn addresses(list: &[email::Address]) -> String {
    list.iter()
        .map(|a| a.address.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Service {
    /// Stores a batch from one folder and moves its checkpoint to
    /// `(uidvalidity, highest uid)` in the same transaction.
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
        let mut directions: BTreeMap<&'static str, u64> = BTreeMap::new();
        let (report, effects, mismatches) = self.inner.store.transaction(|conn| {
            let mut report = MailBatchReport::default();
            let mut effects = Effects::default();
            let mut mismatches = Vec::new();
            for mail in &batch {
                // A savepoint per message: one that the database refuses is
                // kept raw instead, and the rest of the batch (and the
                // checkpoint) still commits — one bad message never blocks
                // the mailbox.
                let outcome = store::savepoint(conn, |conn| {
                    self.ingest_one(conn, mb, kind, mail, contract, now)
                });
                match outcome {
                    Ok(one) => {
                        report.stored += one.stored;
                        report.duplicates += one.duplicate;
                        report.rejected += one.rejected;
                        report.acknowledged += one.acknowledged;
                        report.suppressed += one.suppressed;
                        report.ack_failed += one.ack_failed;
                        if let Some(d) = one.direction {
                            *directions.entry(d).or_default() += 1;
                        }
                        if let Some(t) = one.mismatch {
                            mismatches.push(t);
                        }
                        effects.merge(one.effects);
                    }
                    Err(e) => {
                        tracing::error!(mailbox = %mb.name, folder, uid = mail.uid, error = %e, "message kept raw: cannot store it");
                        store::reject_input(conn, &mb.channel, "store", &e.to_string(), &mail.raw, now)?;
                        report.rejected += 1;
                    }
                }
            }
            store::save_checkpoint(
                conn,
                &mb.name,
                folder,
                Checkpoint {
                    uidvalidity: i64::from(uidvalidity),
                    last_uid: i64::from(last_uid),
                },
                now,
            )?;
            Ok::<_, ServiceError>((report, effects, mismatches))
        })?;
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

    /// One message of a batch, inside its own savepoint.
    fn ingest_one(
        &self,
        conn: &mut AnyConnection,
        mb: &MailboxContext,
        kind: FolderKind,
        mail: &FetchedMail,
        contract: &Contract,
        now: DateTime<Utc>,
    ) -> Result<OneMail, ServiceError> {
        let mut one = OneMail::default();
        let parsed = match email::parse_email(&mail.raw) {
            Ok(p) => p,
            Err(e) => {
                // Kept raw, listed, never blocks the mailbox.
                store::reject_input(conn, &mb.channel, "unparseable", &e.0, &mail.raw, now)?;
                one.rejected += 1;
                return Ok(one);
            }
        };
        let route = email::route(
            &parsed,
            contract,
            Team {
                members: &mb.team,
                own: &mb.own,
            },
            kind,
        );
        let direction = route.direction;
        let from = route.sender.clone();
        // A Date in the future is a broken clock, not a promise.
        let at = parsed
            .date
            .filter(|d| *d <= now + Duration::days(1))
            .unwrap_or(now);
        let mut index = DbIndex { conn, error: None };
        let thread = email::find_thread(&mut index, &parsed, &route, at);
        if let Some(e) = index.error {
            return Err(ServiceError::Store(e));
        }
        let external_id = parsed
            .message_id
            .clone()
            .unwrap_or_else(|| content_id(&mail.raw));
        let mut created = false;
        let conversation: Option<ConversationRow> = match thread {
            Some(id) => store::conversation(conn, id)?,
            None if direction == Direction::Inbound => match &route.client {
                Some(client_id) => {
                    let (row, new, mismatch) = open_conversation(
                        conn,
                        contract,
                        &Opening {
                            channel: &mb.channel,
                            thread_key: &external_id,
                            client_id,
                            subject: &parsed.subject,
                            body: &parsed.text,
                            priority: None,
                            recipients: &route.recipients,
                            opener: &route.sender,
                            at,
                        },
                        now,
                    )?;
                    created = new;
                    one.mismatch = mismatch;
                    Some(row)
                }
                None => None,
            },
            None => None,
        };
        let inserted = store::insert_message(
            conn,
            &NewMessage {
                conversation_id: conversation.as_ref().map(|c| c.id),
                channel: mb.channel.clone(),
                external_id,
                direction: Some(direction),
                sender: from.clone(),
                recipients: addresses(&parsed.to),
                subject: parsed.subject.clone(),
                body: parsed.text.clone(),
                message_id: parsed.message_id.clone(),
                in_reply_to: parsed.in_reply_to.clone(),
                refs: parsed.references.join(" "),
                raw: Some(mail.raw.clone()),
                sent_at: at,
                received_at: now,
                status: None,
                awaiting_client: false,
            },
        )?;
        if matches!(inserted, Inserted::Duplicate(_)) {
            one.duplicate += 1;
            return Ok(one);
        }
        one.stored += 1;
        one.direction = Some(direction.as_str());
        let Some(conv) = conversation else {
            return Ok(one);
        };
        one.effects = self.refresh(conn, &conv, now)?;
        if created && direction == Direction::Inbound {
            let due = one.effects.first_response_due;
            let token = super::status::issue_link(conn, conv.id, now)?;
            let link = Link {
                due,
                status_token: token.as_deref(),
            };
            match self.acknowledge(conn, mb, contract, &conv, &parsed, &from, link, at, now)? {
                Ack::Enqueued => one.acknowledged += 1,
                Ack::Suppressed => one.suppressed += 1,
                Ack::Failed => one.ack_failed += 1,
            }
        }

        Ok(one)
    }

    /// Enqueues the acknowledgement of a new conversation unless a rule of
    /// SPEC 6 says not to; `true` when enqueued. The acknowledgement is also
    /// stored as an `auto` message of the conversation, with its Message-ID,
    /// so a reply to it threads back in.
    #[allow(clippy::too_many_arguments)]
    fn acknowledge(
        &self,
        conn: &mut AnyConnection,
        mb: &MailboxContext,
        contract: &Contract,
        conv: &ConversationRow,
        mail: &ParsedEmail,
        from: &str,
        link: Link<'_>,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
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
        if store::acknowledged_since(conn, from, now - ACK_PER_SENDER)? {
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
        if !store::enqueue(conn, &row)? {
            return Ok(Ack::Suppressed);
        }
        store::insert_message(
            conn,
            &NewMessage {
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
            },
        )?;
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
