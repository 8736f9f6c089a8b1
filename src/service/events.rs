//! Recording a ticket event (or message) once, and solving a conversation.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::intake::{self, ConversationBatch, Target};
use super::*;

/// What [`Intake::record_event`] did.
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

/// What became of an event of a batch, known once its transaction ends.
enum Outcome {
    Stored {
        recorded: Recorded,
        mismatch: Option<String>,
    },
    /// A key seen before, with its message when it was stored before the
    /// batch (else looked up after the commit).
    Duplicate(Option<(i64, Option<i64>)>),
    /// Stored alone after the batch was refused, and refused again.
    Failed(ServiceError),
}

/// What a batch of events wrote, in the batch's order.
#[derive(Default)]
struct Written {
    outcomes: Vec<Outcome>,
    effects: Effects,
    /// Clients whose rows the batch made sure of.
    ensured: Vec<String>,
    /// Slack acknowledgements enqueued, and those whose template failed.
    acknowledged: usize,
    ack_failed: usize,
}

impl Written {
    fn merge(&mut self, o: Written) {
        self.outcomes.extend(o.outcomes);
        self.effects.merge(o.effects);
        self.ensured.extend(o.ensured);
        self.acknowledged += o.acknowledged;
        self.ack_failed += o.ack_failed;
    }
}

impl intake::Refusal for RecordError {
    fn log(&self, items: usize) {
        if let RecordError::Service(e) = self {
            tracing::warn!(events = items, error = %e, "event batch refused; storing each alone");
        }
    }
}

impl Intake {
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
        self.event_writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One writer thread per shard, as many as the store says. A writer's
    /// intake holds no queue of its own, so it ends when the service's
    /// queues close (at shutdown, or when the service is dropped).
    fn start_writers(&self) -> EventWriters {
        let n = self.store().event_writers();
        let mut senders = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Queued>(EVENT_QUEUE);
            let writer = Intake {
                event_writers: Arc::new(Mutex::new(EventWriters::Stopped)),
                ..self.clone()
            };
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
                        writer.write_batch(batch);
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
        self.metrics()
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
        let current = self.contract().current();
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
            // The Slack front end decided already (a client, `unknown`, or
            // none: the team's and bots' messages open nothing).
            _ if super::slack::is_slack(contract, &ev.channel) => None,
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
    /// event is stored again alone, so one bad event fails only itself.
    /// Results are in order.
    fn record_checked(&self, batch: &[Checked]) -> Vec<Result<Recorded, ServiceError>> {
        let current = self.contract().current();
        let contract = &current.contract;
        let Some(now) = batch.iter().map(|c| c.now).max() else {
            return Vec::new();
        };
        let written = intake::store_each_on_refusal(
            self.store(),
            batch,
            |conn, part| self.store_events(conn, part, contract, now),
            |_, _, refused| {
                Ok(Written {
                    outcomes: vec![match refused {
                        RecordError::Duplicate => Outcome::Duplicate(None),
                        RecordError::Service(e) => Outcome::Failed(e),
                    }],
                    ..Written::default()
                })
            },
            Written::merge,
            |_| Ok(()),
        );
        let written = match written {
            Ok(w) => w,
            Err(e) if batch.len() == 1 => return vec![Err(e)],
            Err(e) => {
                let why = e.to_string();
                let database = matches!(e, ServiceError::Store(_) | ServiceError::Database(_));
                return batch
                    .iter()
                    .map(|_| {
                        Err(if database {
                            ServiceError::Database(why.clone())
                        } else {
                            ServiceError::Unavailable(why.clone())
                        })
                    })
                    .collect();
            }
        };
        self.clients_committed(contract, written.ensured);
        let m = self.metrics();
        m.count_acknowledgements(written.acknowledged, 0, written.ack_failed);
        let results = written
            .outcomes
            .into_iter()
            .zip(batch)
            .map(|(r, c)| match r {
                Outcome::Stored { recorded, mismatch } => {
                    let direction = c.ev.direction.map(Direction::as_str).unwrap_or("none");
                    m.messages
                        .with_label_values(&[&c.ev.channel, direction])
                        .inc();
                    if let Some(t) = mismatch {
                        m.channel_mismatches
                            .with_label_values(&[&t, &c.ev.channel])
                            .inc();
                    }
                    Ok(recorded)
                }
                Outcome::Duplicate(Some((message_id, conversation_id))) => Ok(Recorded {
                    message_id,
                    conversation_id,
                    duplicate: true,
                    conversation_created: false,
                    status_url: None,
                }),
                Outcome::Duplicate(None) => self.duplicate_of(c),
                Outcome::Failed(e) => Err(e),
            })
            .collect();
        self.after.apply(written.effects);
        results
    }

    /// The events front end of the intake: each new event's target is its
    /// thread's conversation (stored, or opened by an earlier event of the
    /// batch), a new one when it has a client, else none.
    fn store_events(
        &self,
        conn: &mut AnyConnection,
        batch: &[Checked],
        contract: &Contract,
        now: DateTime<Utc>,
    ) -> Result<Written, RecordError> {
        let keys: Vec<(&str, String)> = batch
            .iter()
            .map(|c| (c.ev.channel.as_str(), store::text(&c.ev.idempotency_key)))
            .collect();
        let lookup: Vec<(&str, &str)> = keys.iter().map(|(c, k)| (*c, k.as_str())).collect();
        let seen = store::messages_by_external_ids(conn, &lookup)?;
        let is_new = |(channel, key): &(&str, String)| {
            !seen.contains_key(&(channel.to_string(), key.clone()))
        };
        // Only the threads of new keys: a retry storm costs one query.
        let threads: Vec<(&str, &str)> = batch
            .iter()
            .zip(&keys)
            .filter(|(_, k)| is_new(k))
            .map(|(c, _)| (c.ev.channel.as_str(), c.ev.thread.as_str()))
            .collect();
        let mut intake = ConversationBatch::new();
        let mut stored: HashMap<(String, String), i64> = HashMap::new();
        for (thread, row) in store::conversations_by_threads(conn, &threads)? {
            stored.insert(thread, row.id);
            intake.know(row);
        }
        let mut opening_at: HashMap<(&str, &str), usize> = HashMap::new();
        // Per opening slot, the event of the batch that opened it.
        let mut opened_by: Vec<usize> = Vec::new();
        let mut in_batch = std::collections::HashSet::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        // Per event added to the intake: its place in `outcomes`, its target.
        let mut added: Vec<(usize, Target)> = Vec::new();
        for (c, (channel, key)) in batch.iter().zip(&keys) {
            if let Some(known) = seen.get(&(channel.to_string(), key.clone())) {
                outcomes.push(Outcome::Duplicate(Some(*known)));
                continue;
            }
            if !in_batch.insert((*channel, key.as_str())) {
                outcomes.push(Outcome::Duplicate(None));
                continue;
            }
            let thread = (c.ev.channel.as_str(), c.ev.thread.as_str());
            let target =
                if let Some(&id) = stored.get(&(thread.0.to_string(), thread.1.to_string())) {
                    Target::Stored(id)
                } else if let Some(&slot) = opening_at.get(&thread) {
                    Target::Opening(slot)
                } else if let Some(client_id) = &c.client_id {
                    let (new, mismatch) = classified(contract, &opening_of(c, client_id), c.now);
                    let slot = intake.open(new, mismatch);
                    opening_at.insert(thread, slot);
                    opened_by.push(outcomes.len());
                    Target::Opening(slot)
                } else {
                    Target::Untracked
                };
            intake.add(new_message(c, None), target);
            added.push((outcomes.len(), target));
            // Set once the batch is committed.
            outcomes.push(Outcome::Duplicate(None));
        }
        let mut committed = intake.commit(self, conn, contract, now)?;
        for ((at, target), stored) in added.into_iter().zip(&committed.messages) {
            // A key some concurrent writer stored since the lookup: the
            // batch rolls back and each event is stored alone.
            let stored = stored.ok_or(RecordError::Duplicate)?;
            let opening = match (target, stored.opened) {
                (Target::Opening(slot), true) => Some(&mut committed.opened[slot]),
                _ => None,
            };
            outcomes[at] = Outcome::Stored {
                recorded: Recorded {
                    message_id: stored.id,
                    conversation_id: stored.conversation_id,
                    duplicate: false,
                    conversation_created: stored.opened,
                    status_url: opening
                        .as_ref()
                        .and_then(|o| o.status_token.as_deref())
                        .map(|t| self.core.status_url(t)),
                },
                mismatch: opening.and_then(|o| o.mismatch.take()),
            };
        }
        let mut effects = Effects::default();
        let mut first_due: HashMap<i64, Option<DateTime<Utc>>> = HashMap::new();
        for (id, e) in committed.effects {
            first_due.insert(id, e.first_response_due);
            effects.merge(e);
        }
        // A client's new Slack conversation is acknowledged in its thread,
        // in this transaction: once, whatever retries follow.
        let mut acks = super::slack::SlackAcks::default();
        for (slot, o) in committed.opened.iter().enumerate() {
            let c = &batch[opened_by[slot]];
            if o.created && super::slack::is_slack(contract, &c.ev.channel) {
                let opening = super::slack::SlackOpening {
                    conversation: &o.row,
                    direction: c.ev.direction,
                    at: c.ev.at,
                    first_response_due: first_due.get(&o.row.id).copied().flatten(),
                    status_token: o.status_token.as_deref(),
                };
                self.slack_ack(contract, opening, now, &mut acks);
            }
        }
        let ack_failed = acks.failed;
        let acknowledged = self.store_slack_acks(conn, acks, now)?;
        effects.notified |= acknowledged > 0;
        Ok(Written {
            outcomes,
            effects,
            ensured: committed.ensured,
            acknowledged,
            ack_failed,
        })
    }

    /// The answer for a key seen before: the message it stored.
    fn duplicate_of(&self, c: &Checked) -> Result<Recorded, ServiceError> {
        let (message_id, conversation_id) = self
            .store()
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

    /// The client's row, unless this process saw it committed with the
    /// contract's name already: one query less per batch on PostgreSQL.
    pub(super) fn ensure_client_cached(
        &self,
        conn: &mut AnyConnection,
        contract: &Contract,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let name = contract.client_name(client_id);
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
            let name = contract.client_name(&id);
            known.insert(id, name);
        }
    }

    fn known_clients(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.known_clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Deadlines {
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
