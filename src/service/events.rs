//! Recording a ticket event (or message) once, and solving a conversation.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::*;

/// What [`Service::record_event`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub message_id: i64,
    pub conversation_id: Option<i64>,
    /// The idempotency key was seen before: nothing changed.
    pub duplicate: bool,
    pub conversation_created: bool,
    /// The client's status page of a conversation this event opened
    /// (`{public_url}/status/{token}`): the only time the token is known.
    pub status_url: Option<String>,
}

/// Events a writer takes into one transaction at most. A burst of events
/// shares one commit (SQLite: one WAL append; PostgreSQL: one flush) instead
/// of paying one each; an idle service still commits each event at once.
pub const EVENT_BATCH: usize = 128;

/// Events waiting for their writer, per writer. Bounded: a client faster than
/// the database waits for room (back-pressure) rather than growing memory.
const EVENT_QUEUE: usize = 4 * EVENT_BATCH;

/// An event checked against the contract, waiting to be stored.
pub(super) struct Checked {
    ev: IncomingEvent,
    raw: Option<Vec<u8>>,
    now: DateTime<Utc>,
    /// `None`: the contract ignores this sender (kept, not tracked).
    client_id: Option<String>,
}

/// The event writers: started on the first submitted event, stopped once at
/// shutdown.
pub(super) enum EventWriters {
    NotStarted,
    Running {
        senders: Vec<tokio::sync::mpsc::Sender<Queued>>,
        threads: Vec<std::thread::JoinHandle<()>>,
    },
    Stopped,
}

/// An event queued for its writer, with where its answer goes.
pub(super) struct Queued {
    checked: Checked,
    reply: tokio::sync::oneshot::Sender<Result<Recorded, ServiceError>>,
}

/// What a batch knows so far: conversations by `(channel, thread)` (looked
/// up at its start, plus those it opened) and clients it made sure of.
struct Found {
    conversations: std::collections::HashMap<(String, String), ConversationRow>,
    clients: std::collections::HashSet<String>,
}

/// The message of a new event.
fn new_message(c: &Checked, conversation_id: Option<i64>) -> NewMessage {
    let ev = &c.ev;
    NewMessage {
        conversation_id,
        channel: ev.channel.clone(),
        external_id: ev.idempotency_key.clone(),
        direction: ev.direction,
        sender: ev.from.clone(),
        recipients: String::new(),
        subject: ev.subject.clone(),
        body: ev.body.clone(),
        message_id: None,
        in_reply_to: None,
        refs: String::new(),
        raw: c.raw.clone(),
        sent_at: ev.at,
        received_at: c.now,
        status: ev.status,
        awaiting_client: ev.awaiting_client,
    }
}

/// What storing one event inside a batch did, before the batch's refresh.
struct StoredEvent {
    recorded: Recorded,
    conversation: Option<ConversationRow>,
    mismatch: Option<String>,
}

impl Service {
    /// Stores an event once and brings its conversation up to date, in a
    /// transaction of its own.
    pub fn record_event(
        &self,
        ev: IncomingEvent,
        raw: Option<Vec<u8>>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, ServiceError> {
        let checked = self.check_event(ev, raw, now)?;
        self.record_checked(std::slice::from_ref(&checked))
            .pop()
            .unwrap_or_else(|| Err(ServiceError::Unavailable("no result for the event".into())))
    }

    /// [`Self::record_event`] through the event writers (group commit): the
    /// event joins whatever else is waiting and commits with it, and the
    /// answer comes after that commit. Events of one thread always go to the
    /// same writer, so writers never contend for a conversation and a
    /// thread's events keep their order.
    pub async fn submit_event(
        &self,
        ev: IncomingEvent,
        raw: Option<Vec<u8>>,
        now: DateTime<Utc>,
    ) -> Result<Recorded, ServiceError> {
        let checked = self.check_event(ev, raw, now)?;
        let shard = |n: usize| {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            (&checked.ev.channel, &checked.ev.thread).hash(&mut h);
            (h.finish() % n as u64) as usize
        };
        let sender = {
            let mut state = self.writers();
            if matches!(*state, EventWriters::NotStarted) {
                *state = self.start_writers();
            }
            match &*state {
                EventWriters::Running { senders, .. } if !senders.is_empty() => {
                    Some(senders[shard(senders.len())].clone())
                }
                EventWriters::Stopped => {
                    return Err(ServiceError::Unavailable("shutting down".into()));
                }
                _ => None,
            }
        };
        let Some(sender) = sender else {
            // No writer thread could start: store it on a blocking thread.
            let service = self.clone();
            return tokio::task::spawn_blocking(move || {
                service.record_checked(std::slice::from_ref(&checked)).pop()
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| Err(ServiceError::Unavailable("the event task failed".into())));
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || ServiceError::Unavailable("the event writer stopped".into());
        sender
            .send(Queued { checked, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// At shutdown, after the HTTP server has drained: no event is taken any
    /// more, the writers store what is queued (a client that went away still
    /// had its event accepted) and end. Blocking; waits for them.
    pub fn stop_event_writers(&self) {
        let was = std::mem::replace(&mut *self.writers(), EventWriters::Stopped);
        if let EventWriters::Running { senders, threads } = was {
            drop(senders);
            for t in threads {
                if t.join().is_err() {
                    tracing::error!("an event writer panicked at shutdown");
                }
            }
        }
    }

    fn writers(&self) -> std::sync::MutexGuard<'_, EventWriters> {
        self.inner
            .event_writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// One writer thread per shard: one on SQLite (it has one writer
    /// anyway), four on PostgreSQL. A writer holds the service weakly, so it
    /// also ends when the service is dropped (its queue closes).
    fn start_writers(&self) -> EventWriters {
        let n = match self.inner.store.backend() {
            store::Backend::Sqlite => 1,
            store::Backend::Postgres => 4,
        };
        let mut senders = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Queued>(EVENT_QUEUE);
            let weak = Arc::downgrade(&self.inner);
            let spawned = std::thread::Builder::new()
                .name(format!("keepword-events-{i}"))
                .spawn(move || {
                    while let Some(first) = rx.blocking_recv() {
                        let mut batch = vec![first];
                        while batch.len() < EVENT_BATCH {
                            match rx.try_recv() {
                                Ok(q) => batch.push(q),
                                Err(_) => break,
                            }
                        }
                        let Some(inner) = weak.upgrade() else { break };
                        Service { inner }.write_batch(batch);
                    }
                });
            match spawned {
                Ok(t) => {
                    senders.push(tx);
                    threads.push(t);
                }
                Err(e) => tracing::error!(error = %e, "cannot start an event writer"),
            }
        }
        EventWriters::Running { senders, threads }
    }

    fn write_batch(&self, batch: Vec<Queued>) {
        let (checked, replies): (Vec<Checked>, Vec<_>) =
            batch.into_iter().map(|q| (q.checked, q.reply)).unzip();
        self.inner
            .metrics
            .event_batch_size
            .observe(checked.len() as f64);
        // A panic fails this batch's requests, not the writer: the next
        // batch is served.
        let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.record_checked(&checked)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(events = checked.len(), "the event writer panicked");
            checked
                .iter()
                .map(|_| Err(ServiceError::Unavailable("the event writer failed".into())))
                .collect()
        });
        for (reply, r) in replies.into_iter().zip(results) {
            // The client went away: its event is stored all the same.
            let _ = reply.send(r);
        }
    }

    /// What can be refused without the database: an unknown channel or
    /// client.
    fn check_event(
        &self,
        ev: IncomingEvent,
        raw: Option<Vec<u8>>,
        now: DateTime<Utc>,
    ) -> Result<Checked, ServiceError> {
        let current = self.inner.contract.current();
        let contract = &current.contract;
        if contract.channel(&ev.channel).is_none() {
            let known: Vec<&str> = contract.channels().iter().map(|c| c.id.as_str()).collect();
            return Err(invalid(
                "channel",
                format!(
                    "`{}` is not a channel of the contract (declared: {})",
                    ev.channel,
                    known.join(", ")
                ),
            ));
        }
        let client_id: Option<String> = match (&ev.client, &ev.client_hint) {
            (Some(c), _) if c == UNKNOWN_CLIENT || contract.client(c).is_some() => Some(c.clone()),
            (Some(c), _) => {
                return Err(invalid(
                    "client",
                    format!("`{c}` is not a client of the contract"),
                ));
            }
            (None, Some(h)) if contract.client(h).is_some() => Some(h.clone()),
            _ => contract.client_id_for_email(&ev.from).map(str::to_string),
        };
        Ok(Checked {
            ev,
            raw,
            now,
            client_id,
        })
    }

    /// Stores `batch` in one transaction and evaluates each touched
    /// conversation once. Keys seen before (stored, or earlier in the batch)
    /// are found in one query and answered as duplicates, leaving no trace.
    /// Should anything else go wrong — a database error, or a concurrent
    /// writer storing one of the keys first — the batch rolls back and each
    /// event is stored again in a transaction of its own, so one bad event
    /// fails only itself. Results are in order.
    fn record_checked(&self, batch: &[Checked]) -> Vec<Result<Recorded, ServiceError>> {
        enum Outcome {
            Stored(Box<StoredEvent>),
            /// With its message when it was stored before the batch.
            Duplicate(Option<(i64, Option<i64>)>),
        }
        let current = self.inner.contract.current();
        let contract = &current.contract;
        let Some(now) = batch.iter().map(|c| c.now).max() else {
            return Vec::new();
        };
        let keys: Vec<(&str, String)> = batch
            .iter()
            .map(|c| (c.ev.channel.as_str(), store::text(&c.ev.idempotency_key)))
            .collect();
        let outcome = self.inner.store.transaction(|conn| {
            let lookup: Vec<(&str, &str)> = keys.iter().map(|(c, k)| (*c, k.as_str())).collect();
            let seen = store::messages_by_external_ids(conn, &lookup)?;
            // Only the threads of new keys: a retry storm costs one query.
            let threads: Vec<(&str, &str)> = batch
                .iter()
                .zip(&keys)
                .filter(|(_, (channel, key))| {
                    !seen.contains_key(&(channel.to_string(), key.clone()))
                })
                .map(|(c, _)| (c.ev.channel.as_str(), c.ev.thread.as_str()))
                .collect();
            let mut found = Found {
                conversations: store::conversations_by_threads(conn, &threads)?,
                clients: std::collections::HashSet::new(),
            };
            let mut in_batch = std::collections::HashSet::new();
            let mut each = Vec::with_capacity(batch.len());
            let mut messages = Vec::new();
            for (c, (channel, key)) in batch.iter().zip(&keys) {
                let known = seen.get(&(channel.to_string(), key.clone())).copied();
                if known.is_some() || !in_batch.insert((*channel, key.as_str())) {
                    each.push(Outcome::Duplicate(known));
                } else {
                    let stored = self.store_event(conn, contract, c, &mut found)?;
                    messages.push(new_message(c, stored.recorded.conversation_id));
                    each.push(Outcome::Stored(Box::new(stored)));
                }
            }
            // The messages in one go (multi-row on PostgreSQL). A key some
            // concurrent writer stored since the lookup rolls all back.
            let mut ids = store::insert_messages(conn, &messages)?.into_iter();
            for o in &mut each {
                if let Outcome::Stored(stored) = o {
                    stored.recorded.message_id =
                        ids.next().flatten().ok_or(RecordError::Duplicate)?;
                }
            }
            // The last row read of each conversation, each once.
            let mut convs: Vec<&ConversationRow> = Vec::new();
            for s in &each {
                if let Outcome::Stored(stored) = s
                    && let Some(c) = &stored.conversation
                {
                    match convs.iter_mut().find(|x| x.id == c.id) {
                        Some(x) => *x = c,
                        None => convs.push(c),
                    }
                }
            }
            let effects = self.refresh_many(conn, &convs, now)?;
            Ok::<_, RecordError>((each, effects))
        });
        let (each, effects) = match outcome {
            Ok(done) => done,
            Err(e) if batch.len() == 1 => {
                return vec![match e {
                    RecordError::Service(e) => Err(e),
                    RecordError::Duplicate => self.duplicate_of(&batch[0]),
                }];
            }
            Err(e) => {
                if let RecordError::Service(e) = &e {
                    tracing::warn!(events = batch.len(), error = %e, "event batch refused; storing each alone");
                }
                return batch
                    .iter()
                    .flat_map(|c| self.record_checked(std::slice::from_ref(c)))
                    .collect();
            }
        };
        let mut all = Effects::default();
        for e in effects {
            all.merge(e);
        }
        let m = &self.inner.metrics;
        let results = each
            .into_iter()
            .zip(batch)
            .map(|(r, c)| match r {
                Outcome::Stored(s) => {
                    let direction = c.ev.direction.map(Direction::as_str).unwrap_or("none");
                    m.messages
                        .with_label_values(&[&c.ev.channel, direction])
                        .inc();
                    if let Some(t) = s.mismatch {
                        m.channel_mismatches
                            .with_label_values(&[&t, &c.ev.channel])
                            .inc();
                    }
                    Ok(s.recorded)
                }
                Outcome::Duplicate(Some((message_id, conversation_id))) => Ok(Recorded {
                    message_id,
                    conversation_id,
                    duplicate: true,
                    conversation_created: false,
                    status_url: None,
                }),
                Outcome::Duplicate(None) => self.duplicate_of(c),
            })
            .collect();
        self.apply(all);
        results
    }

    /// The answer for a key seen before: the message it stored.
    fn duplicate_of(&self, c: &Checked) -> Result<Recorded, ServiceError> {
        let (message_id, conversation_id) = self
            .inner
            .store
            .with(|conn| store::message_by_external_id(conn, &c.ev.channel, &c.ev.idempotency_key))?
            .ok_or_else(|| ServiceError::NotFound("the duplicate's message".into()))?;
        Ok(Recorded {
            message_id,
            conversation_id,
            duplicate: true,
            conversation_created: false,
            status_url: None,
        })
    }

    /// One new event of a batch: its conversation found or opened (its
    /// message is stored with the batch's). Its key was not seen when the
    /// batch began.
    fn store_event(
        &self,
        conn: &mut AnyConnection,
        contract: &Contract,
        c: &Checked,
        found: &mut Found,
    ) -> Result<StoredEvent, RecordError> {
        let ev = &c.ev;
        let mut mismatch = None;
        let mut conversation_created = false;
        let mut status_token = None;
        let thread = (ev.channel.clone(), ev.thread.clone());
        let conversation = match found.conversations.get(&thread) {
            Some(c) => Some(c.clone()),
            None => match &c.client_id {
                // The contract says to ignore this sender: keep the
                // message (nothing is lost) but track nothing.
                None => None,
                Some(client_id) => {
                    if found.clients.insert(client_id.clone()) {
                        ensure_client(conn, contract, client_id, c.now)?;
                    }
                    let (row, created, mismatched) = open_classified(
                        conn,
                        contract,
                        &Opening {
                            channel: &ev.channel,
                            thread_key: &ev.thread,
                            client_id,
                            subject: &ev.subject,
                            body: &ev.body,
                            priority: ev.priority.as_deref(),
                            recipients: &[],
                            opener: &ev.from,
                            at: ev.at,
                        },
                        c.now,
                    )?;
                    conversation_created = created;
                    mismatch = mismatched;
                    if created {
                        status_token = super::status::issue_link(conn, row.id, c.now)?;
                    }
                    found.conversations.insert(thread, row.clone());
                    Some(row)
                }
            },
        };
        Ok(StoredEvent {
            recorded: Recorded {
                // Set when the batch's messages are stored.
                message_id: 0,
                conversation_id: conversation.as_ref().map(|c| c.id),
                duplicate: false,
                conversation_created,
                status_url: status_token.map(|t| self.status_url(&t)),
            },
            conversation,
            mismatch,
        })
    }

    /// Marks a conversation solved (the API's action).
    pub fn solve(&self, id: i64, now: DateTime<Utc>) -> Result<(), ServiceError> {
        self.set_status(id, TicketStatus::Solved, "api", now)
    }
}

/// What a new conversation is opened from.
pub(crate) struct Opening<'a> {
    pub channel: &'a str,
    pub thread_key: &'a str,
    pub client_id: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub priority: Option<&'a str>,
    pub recipients: &'a [String],
    /// The opening sender's address, lower-case; empty when there is none.
    pub opener: &'a str,
    pub at: DateTime<Utc>,
}

/// Classifies and opens the conversation of `(channel, thread_key)` under the
/// contract version in force, or finds the one a concurrent writer opened:
/// `(row, created, request type when created through a channel it does not
/// list)`.
pub(crate) fn open_conversation(
    conn: &mut AnyConnection,
    contract: &Contract,
    o: &Opening<'_>,
    now: DateTime<Utc>,
) -> Result<(ConversationRow, bool, Option<String>), ServiceError> {
    ensure_client(conn, contract, o.client_id, now)?;
    open_classified(conn, contract, o, now)
}

/// The client's row, with the contract's name for it.
fn ensure_client(
    conn: &mut AnyConnection,
    contract: &Contract,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<(), ServiceError> {
    let name = contract
        .client(client_id)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "Unknown senders".into());
    store::upsert_client(conn, client_id, &name, now)?;
    Ok(())
}

/// [`open_conversation`] once its client's row is there.
fn open_classified(
    conn: &mut AnyConnection,
    contract: &Contract,
    o: &Opening<'_>,
    now: DateTime<Utc>,
) -> Result<(ConversationRow, bool, Option<String>), ServiceError> {
    let class = sla::classify(
        contract,
        &ClassifyInput {
            channel: o.channel,
            subject: o.subject,
            body: o.body,
            priority: o.priority,
            recipients: o.recipients,
            client_id: Some(o.client_id),
        },
    );
    let (row, created) = store::open_conversation(
        conn,
        &NewConversation {
            channel: o.channel.to_string(),
            thread_key: o.thread_key.to_string(),
            client_id: o.client_id.to_string(),
            subject: o.subject.to_string(),
            request_type: class.request_type.clone(),
            classification: class.rule,
            contract_version: contract.version().to_string(),
            status: TicketStatus::Open,
            channel_mismatch: class.channel_mismatch,
            opened_at: o.at,
            updated_at: now,
            subject_key: crate::ingest::email::normalize_subject(o.subject),
            opener: o.opener.to_lowercase(),
            last_message_at: Some(o.at),
        },
    )?;
    let mismatch = (created && class.channel_mismatch).then_some(class.request_type);
    Ok((row, created, mismatch))
}
