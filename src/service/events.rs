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

/// Where a new event of a batch goes.
enum Target {
    /// Nowhere: the contract ignores its sender (kept, not tracked).
    Untracked,
    /// A conversation stored before the batch, by `(channel, thread)`.
    Stored(usize),
    /// One the batch opens, by its place in the batch's openings.
    Opening(usize),
}

/// A conversation a batch opens, with the events of the batch it holds.
struct ToOpen {
    new: NewConversation,
    /// The request type, when classified for a channel that does not list it.
    mismatch: Option<String>,
    /// Places in the batch of its events; the first opened it.
    events: Vec<usize>,
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
    /// anyway), [`postgres_writers`] on PostgreSQL. A writer holds the service weakly, so it
    /// also ends when the service is dropped (its queue closes).
    fn start_writers(&self) -> EventWriters {
        let n = match self.inner.store.backend() {
            store::Backend::Sqlite => 1,
            store::Backend::Postgres => postgres_writers(),
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
            let (threads_found, stored): (Vec<(String, String)>, Vec<ConversationRow>) =
                store::conversations_by_threads(conn, &threads)?
                    .into_iter()
                    .unzip();
            let stored_at: std::collections::HashMap<(&str, &str), usize> = threads_found
                .iter()
                .enumerate()
                .map(|(i, (channel, thread))| ((channel.as_str(), thread.as_str()), i))
                .collect();
            let mut ensured = std::collections::HashSet::new();
            let mut openings: Vec<ToOpen> = Vec::new();
            let mut opening_at: std::collections::HashMap<(&str, &str), usize> =
                std::collections::HashMap::new();
            let mut in_batch = std::collections::HashSet::new();
            let mut targets: Vec<Option<Target>> = Vec::with_capacity(batch.len());
            for (i, (c, (channel, key))) in batch.iter().zip(&keys).enumerate() {
                let known = seen.get(&(channel.to_string(), key.clone())).copied();
                if known.is_some() || !in_batch.insert((*channel, key.as_str())) {
                    targets.push(None);
                    continue;
                }
                let thread = (c.ev.channel.as_str(), c.ev.thread.as_str());
                let target = if let Some(&at) = stored_at.get(&thread) {
                    Target::Stored(at)
                } else if let Some(&at) = opening_at.get(&thread) {
                    openings[at].events.push(i);
                    Target::Opening(at)
                } else if let Some(client_id) = &c.client_id {
                    if ensured.insert(client_id.as_str()) {
                        self.ensure_client_cached(conn, contract, client_id, c.now)?;
                    }
                    let (new, mismatch) = classified(contract, &opening_of(c, client_id), c.now);
                    opening_at.insert(thread, openings.len());
                    openings.push(ToOpen {
                        new,
                        mismatch,
                        events: vec![i],
                    });
                    Target::Opening(openings.len() - 1)
                } else {
                    Target::Untracked
                };
                targets.push(Some(target));
            }
            let (opened, mut written_states) = self.open_all(conn, batch, &openings, now)?;
            let created: Vec<i64> = opened
                .iter()
                .filter(|(_, created)| *created)
                .map(|(row, _)| row.id)
                .collect();
            let mut token_of = super::status::issue_links(conn, &created, now)?;
            let mut each = Vec::with_capacity(batch.len());
            let mut messages = Vec::new();
            for ((i, c), target) in batch.iter().enumerate().zip(&targets) {
                let Some(target) = target else {
                    let (channel, key) = &keys[i];
                    each.push(Outcome::Duplicate(
                        seen.get(&(channel.to_string(), key.clone())).copied(),
                    ));
                    continue;
                };
                let (conversation_id, created, mismatch) = match target {
                    Target::Untracked => (None, false, None),
                    Target::Stored(at) => (Some(stored[*at].id), false, None),
                    Target::Opening(at) => {
                        let (row, created) = &opened[*at];
                        let first = openings[*at].events[0] == i && *created;
                        let mismatch = if first {
                            openings[*at].mismatch.clone()
                        } else {
                            None
                        };
                        (Some(row.id), first, mismatch)
                    }
                };
                let status_url = match created {
                    true => conversation_id
                        .and_then(|id| token_of.remove(&id))
                        .map(|t| self.status_url(&t)),
                    false => None,
                };
                messages.push(new_message(c, conversation_id));
                each.push(Outcome::Stored(Box::new(StoredEvent {
                    recorded: Recorded {
                        // Set when the batch's messages are stored.
                        message_id: 0,
                        conversation_id,
                        duplicate: false,
                        conversation_created: created,
                        status_url,
                    },
                    mismatch,
                })));
            }
            // The messages in one go (multi-row on PostgreSQL). A key some
            // concurrent writer stored since the lookup rolls all back.
            let mut ids = store::insert_messages(conn, &messages)?.into_iter();
            let mut id_of = vec![0i64; batch.len()];
            for (i, o) in each.iter_mut().enumerate() {
                if let Outcome::Stored(stored) = o {
                    stored.recorded.message_id =
                        ids.next().flatten().ok_or(RecordError::Duplicate)?;
                    id_of[i] = stored.recorded.message_id;
                }
            }
            // Each touched conversation once: those stored before are read
            // back with their new messages; those this batch created are
            // known already.
            let mut convs: Vec<&ConversationRow> = Vec::new();
            let mut known = std::collections::HashMap::new();
            for t in targets.iter().flatten() {
                match t {
                    Target::Stored(at) if !convs.iter().any(|c| c.id == stored[*at].id) => {
                        convs.push(&stored[*at]);
                    }
                    Target::Opening(at) if !convs.iter().any(|c| c.id == opened[*at].0.id) => {
                        let (row, created) = &opened[*at];
                        convs.push(row);
                        if let (true, Some(first)) = (*created, written_states[*at].take()) {
                            let mut events: Vec<(i64, EventRow)> = openings[*at]
                                .events
                                .iter()
                                .map(|&i| (id_of[i], event_row(&batch[i])))
                                .collect();
                            events.sort_by_key(|(id, e)| (e.sent_at, *id));
                            known.insert(
                                row.id,
                                super::refresh::Opened {
                                    events: events.into_iter().map(|(_, e)| e).collect(),
                                    first,
                                },
                            );
                        }
                    }
                    _ => {}
                }
            }
            let effects = self.refresh_many(conn, &convs, known, now)?;
            let ensured: Vec<String> = ensured.into_iter().map(str::to_string).collect();
            Ok::<_, RecordError>((each, effects, ensured))
        });
        let (each, effects) = match outcome {
            Ok((each, effects, ensured)) => {
                self.clients_committed(contract, ensured);
                (each, effects)
            }
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

    /// Opens a batch's new conversations: each one's first state derived
    /// from the batch's events of it, then all inserted with that state in
    /// one statement. A conversation some concurrent opener created first is
    /// looked up instead (`created` false, no state written). In
    /// `openings` order: `((row, created), state written)`.
    #[allow(clippy::type_complexity)]
    fn open_all(
        &self,
        conn: &mut AnyConnection,
        batch: &[Checked],
        openings: &[ToOpen],
        now: DateTime<Utc>,
    ) -> Result<
        (
            Vec<(ConversationRow, bool)>,
            Vec<Option<super::refresh::FirstState>>,
        ),
        RecordError,
    > {
        let mut new = Vec::with_capacity(openings.len());
        let mut firsts = Vec::with_capacity(openings.len());
        for o in openings {
            let mut events: Vec<(usize, EventRow)> = o
                .events
                .iter()
                .map(|&i| (i, event_row(&batch[i])))
                .collect();
            // The engine's order: by time, then as stored (batch order).
            events.sort_by_key(|(i, e)| (e.sent_at, *i));
            let events: Vec<EventRow> = events.into_iter().map(|(_, e)| e).collect();
            let first = self.initial_state(conn, &o.new, &events, now)?;
            new.push((o.new.clone(), first.row.clone()));
            firsts.push(first);
        }
        let opened = store::open_or_find_conversations(conn, &new)?;
        let written = opened
            .iter()
            .zip(firsts)
            .map(|((_, created), first)| created.then_some(first))
            .collect();
        Ok((opened, written))
    }

    /// The client's row, unless this process saw it committed with the
    /// contract's name already: one query less per batch on PostgreSQL.
    pub(super) fn ensure_client_cached(
        &self,
        conn: &mut AnyConnection,
        contract: &Contract,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let name = client_name(contract, client_id);
        if self.known_clients().get(client_id) == Some(&name) {
            return Ok(());
        }
        store::upsert_client(conn, client_id, &name, now)?;
        Ok(())
    }

    /// Remembers clients whose rows a committed batch made sure of.
    pub(super) fn clients_committed(&self, contract: &Contract, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let mut known = self.known_clients();
        for id in ids {
            let name = client_name(contract, &id);
            known.insert(id, name);
        }
    }

    fn known_clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.inner
            .known_clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a conversation solved (the API's action).
    pub fn solve(&self, id: i64, now: DateTime<Utc>) -> Result<(), ServiceError> {
        self.set_status(id, TicketStatus::Solved, "api", now)
    }
}

/// Event writers on PostgreSQL: one per core, at least two. More writers
/// than cores made things worse, not better: each batch is smaller, so each
/// event pays more of a batch's statements, and the database's backends
/// contend for the same index pages. Measured with `wrk -c16` of new
/// threads on 2 cores (PostgreSQL on the same cores): 1 writer 898, 2
/// writers 1,505–1,667, 3 writers 1,319, 4 writers 1,079 events/s.
fn postgres_writers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
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

/// The name a client's row carries: the contract's.
fn client_name(contract: &Contract, client_id: &str) -> String {
    contract
        .client(client_id)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "Unknown senders".into())
}

/// The conversation `o` opens, classified under the contract in force, and
/// its request type when that came through a channel it does not list.
pub(super) fn classified(
    contract: &Contract,
    o: &Opening<'_>,
    now: DateTime<Utc>,
) -> (NewConversation, Option<String>) {
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
    let mismatch = class.channel_mismatch.then(|| class.request_type.clone());
    let new = NewConversation {
        channel: o.channel.to_string(),
        thread_key: o.thread_key.to_string(),
        client_id: o.client_id.to_string(),
        subject: o.subject.to_string(),
        request_type: class.request_type,
        classification: class.rule,
        contract_version: contract.version().to_string(),
        status: TicketStatus::Open,
        channel_mismatch: class.channel_mismatch,
        opened_at: o.at,
        updated_at: now,
        subject_key: crate::ingest::email::normalize_subject(o.subject),
        opener: o.opener.to_lowercase(),
        last_message_at: Some(o.at),
    };
    (new, mismatch)
}

/// What an event opens a conversation from.
fn opening_of<'a>(c: &'a Checked, client_id: &'a str) -> Opening<'a> {
    let ev = &c.ev;
    Opening {
        channel: &ev.channel,
        thread_key: &ev.thread,
        client_id,
        subject: &ev.subject,
        body: &ev.body,
        priority: ev.priority.as_deref(),
        recipients: &[],
        opener: &ev.from,
        at: ev.at,
    }
}

/// An event as the SLA engine reads it back from the store: its instant
/// to the microsecond, as both backends keep it.
fn event_row(c: &Checked) -> EventRow {
    EventRow {
        direction: c.ev.direction,
        status: c.ev.status,
        awaiting_client: c.ev.awaiting_client,
        sent_at: store::from_db(store::to_db(c.ev.at)),
    }
}
