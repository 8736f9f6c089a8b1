//! One intake for every channel. A front end (email, ticket events, and
//! whatever channel comes next) decides, for each message it accepts, the
//! conversation it belongs to — one stored before, one the batch opens, or
//! none — and hands it to a [`ConversationBatch`]. The batch writes it the
//! same way for all of them, inside the caller's transaction:
//!
//! 1. the clients of the new conversations are made sure of (once per
//!    process and client);
//! 2. each new conversation's first state is derived from the batch's
//!    messages of it, and all are inserted with it in one statement (one a
//!    concurrent writer opened first is read back instead);
//! 3. their status links are issued in one statement;
//! 4. the messages are inserted in one statement (multi-row on PostgreSQL);
//! 5. every touched conversation is evaluated once, after its last message.
//!
//! [`store_each_on_refusal`] is the one fallback when the database refuses a
//! batch: the same items again, each alone in a savepoint of one
//! transaction, so one bad item fails only itself.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::refresh::{Effects, FirstState, Opened};
use super::{Intake, ServiceError};
use crate::contract::Contract;
use crate::store::{self, AnyConnection, ConversationRow, EventRow, NewConversation, NewMessage};

/// Where a message of a batch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    /// Nowhere: kept, not tracked (an ignored sender, the team writing
    /// first, automatic mail outside a thread).
    Untracked,
    /// A conversation stored before the batch, by id. Its row must be given
    /// to the batch with [`ConversationBatch::know`].
    Stored(i64),
    /// One the batch opens, by the slot [`ConversationBatch::open`] gave.
    Opening(usize),
}

/// A conversation the batch opens.
struct Opening {
    new: NewConversation,
    /// The request type, when classified for a channel that does not list it.
    mismatch: Option<String>,
    /// Places in the batch of its messages; the first opened it.
    messages: Vec<usize>,
}

/// Messages with their conversations, written together by [`Self::commit`].
#[derive(Default)]
pub(super) struct ConversationBatch {
    openings: Vec<Opening>,
    messages: Vec<(NewMessage, Target)>,
    rows: HashMap<i64, ConversationRow>,
}

/// A conversation the batch opened (or found opened by a concurrent writer).
pub(super) struct OpenedConversation {
    pub row: ConversationRow,
    /// False when some concurrent writer opened it first.
    pub created: bool,
    /// The client's status page token, issued only for one created here: the
    /// only time it is known in clear.
    pub status_token: Option<String>,
    pub mismatch: Option<String>,
}

/// A message the batch stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoredMessage {
    pub id: i64,
    pub conversation_id: Option<i64>,
    /// It opened a conversation this batch created.
    pub opened: bool,
}

/// What [`ConversationBatch::commit`] wrote.
pub(super) struct Committed {
    /// Per message, in the order added; `None` where a concurrent writer
    /// stored the same key since the front end looked (a duplicate).
    pub messages: Vec<Option<StoredMessage>>,
    /// Per opening, in slot order.
    pub opened: Vec<OpenedConversation>,
    /// Each touched conversation's refresh, in the order first touched.
    pub effects: Vec<(i64, Effects)>,
    /// Clients whose rows the batch made sure of, for
    /// [`Intake::clients_committed`] once the transaction commits.
    pub ensured: Vec<String>,
}

impl ConversationBatch {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// A conversation to open; its messages are added with
    /// [`Target::Opening`] and the slot returned here.
    pub(super) fn open(&mut self, new: NewConversation, mismatch: Option<String>) -> usize {
        self.openings.push(Opening {
            new,
            mismatch,
            messages: Vec::new(),
        });
        self.openings.len() - 1
    }

    /// The row of a stored conversation a message of this batch joins, as
    /// the front end read it.
    pub(super) fn know(&mut self, row: ConversationRow) {
        self.rows.entry(row.id).or_insert(row);
    }

    /// A message for `target`; its `conversation_id` is set by the batch.
    pub(super) fn add(&mut self, message: NewMessage, target: Target) {
        if let Target::Opening(slot) = target {
            self.openings[slot].messages.push(self.messages.len());
        }
        self.messages.push((message, target));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Writes the batch inside the caller's transaction (see the module's
    /// steps) and evaluates each touched conversation once at `now`.
    pub(super) fn commit(
        self,
        service: &Intake,
        conn: &mut AnyConnection,
        contract: &Contract,
        now: DateTime<Utc>,
    ) -> Result<Committed, ServiceError> {
        let ConversationBatch {
            openings,
            mut messages,
            mut rows,
        } = self;
        let mut ensured = Vec::new();
        let mut seen_clients = HashSet::new();
        for o in &openings {
            if seen_clients.insert(o.new.client_id.as_str()) {
                service.ensure_client_cached(conn, contract, &o.new.client_id, now)?;
                ensured.push(o.new.client_id.clone());
            }
        }

        // Each opening's first state from its messages, in the engine's
        // order (by time, then as stored: batch order), then all inserted
        // with it in one statement.
        let mut firsts: Vec<(Vec<EventRow>, FirstState)> = Vec::with_capacity(openings.len());
        for o in &openings {
            let mut events: Vec<(usize, EventRow)> = o
                .messages
                .iter()
                .map(|&i| (i, event_row(&messages[i].0)))
                .collect();
            events.sort_by_key(|(i, e)| (e.sent_at, *i));
            let events: Vec<EventRow> = events.into_iter().map(|(_, e)| e).collect();
            let first = service
                .deadlines
                .initial_state(conn, &o.new, &events, now)?;
            firsts.push((events, first));
        }
        let new: Vec<(NewConversation, store::DerivedState)> = openings
            .iter()
            .zip(&firsts)
            .map(|(o, (_, first))| (o.new.clone(), first.row.clone()))
            .collect();
        let inserted = store::open_or_find_conversations(conn, &new)?;
        let created: Vec<i64> = inserted
            .iter()
            .filter(|(_, created)| *created)
            .map(|(row, _)| row.id)
            .collect();
        let mut token_of = super::status::issue_links(conn, &created, now)?;
        let mut known: HashMap<i64, Opened> = HashMap::new();
        let mut opened = Vec::with_capacity(openings.len());
        for ((o, (events, first)), (row, created)) in openings.iter().zip(firsts).zip(inserted) {
            if created {
                known.insert(row.id, Opened { events, first });
            }
            opened.push(OpenedConversation {
                status_token: created.then(|| token_of.remove(&row.id)).flatten(),
                mismatch: created.then(|| o.mismatch.clone()).flatten(),
                row,
                created,
            });
        }

        let mut touched: Vec<i64> = Vec::new();
        let mut in_touched = HashSet::new();
        for (m, target) in &mut messages {
            m.conversation_id = match *target {
                Target::Untracked => None,
                Target::Stored(id) => Some(id),
                Target::Opening(slot) => Some(opened[slot].row.id),
            };
            if let Some(id) = m.conversation_id
                && in_touched.insert(id)
            {
                touched.push(id);
            }
        }
        let new_messages: Vec<NewMessage> = messages.into_iter().map(|(m, _)| m).collect();
        let ids = store::insert_messages(conn, &new_messages)?;
        let first_of: HashMap<usize, usize> = openings
            .iter()
            .enumerate()
            .filter_map(|(slot, o)| Some((*o.messages.first()?, slot)))
            .collect();
        let stored: Vec<Option<StoredMessage>> = ids
            .iter()
            .zip(&new_messages)
            .enumerate()
            .map(|(i, (id, m))| {
                let Some(id) = *id else {
                    // Not stored: the conversation holds other events than
                    // its first state was derived from; read it back whole.
                    if let Some(c) = m.conversation_id {
                        known.remove(&c);
                    }
                    return None;
                };
                Some(StoredMessage {
                    id,
                    conversation_id: m.conversation_id,
                    opened: first_of.get(&i).is_some_and(|&slot| opened[slot].created),
                })
            })
            .collect();
        drop(new_messages);

        for o in &opened {
            rows.entry(o.row.id).or_insert_with(|| o.row.clone());
        }
        let missing: Vec<i64> = touched
            .iter()
            .copied()
            .filter(|id| !rows.contains_key(id))
            .collect();
        if !missing.is_empty() {
            rows.extend(store::conversations_by_ids(conn, &missing)?);
        }
        let convs = touched
            .iter()
            .map(|id| {
                rows.get(id)
                    .ok_or_else(|| ServiceError::NotFound(format!("conversation {id}")))
            })
            .collect::<Result<Vec<&ConversationRow>, _>>()?;
        let effects = service.deadlines.refresh_many(conn, &convs, known, now)?;
        Ok(Committed {
            messages: stored,
            opened,
            effects: touched.into_iter().zip(effects).collect(),
            ensured,
        })
    }
}

/// A message as the SLA engine reads it back from the store: its instant
/// to the microsecond, as both backends keep it.
fn event_row(m: &NewMessage) -> EventRow {
    EventRow {
        direction: m.direction,
        status: m.status,
        awaiting_client: m.awaiting_client,
        sent_at: store::from_db(store::to_db(m.sent_at)),
    }
}

/// Stores `items` with `whole` in one transaction; should that fail, stores
/// them again one at a time, each with `whole` in a savepoint of a single
/// transaction, and hands an item that still fails to `rescue` (which keeps
/// it raw, or answers its sender with the error). `finish` runs last in
/// whichever transaction commits (a mail folder's checkpoint). One bad item
/// never blocks the rest.
pub(super) fn store_each_on_refusal<T, R, E>(
    store: &store::Store,
    items: &[T],
    whole: impl Fn(&mut AnyConnection, &[T]) -> Result<R, E>,
    rescue: impl Fn(&mut AnyConnection, &T, E) -> Result<R, ServiceError>,
    merge: impl Fn(&mut R, R),
    finish: impl Fn(&mut AnyConnection) -> Result<(), ServiceError>,
) -> Result<R, ServiceError>
where
    R: Default,
    E: From<ServiceError> + From<store::StoreError> + From<diesel::result::Error> + Refusal,
{
    let refused = match store.transaction(|conn| {
        let r = whole(conn, items)?;
        finish(conn)?;
        Ok::<_, E>(r)
    }) {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    // No connection within the pool's wait: each item alone would wait as
    // long again and fail the same way, so the caller hears it now.
    if let Some(e) = refused.unreachable() {
        tracing::warn!(items = items.len(), error = %e, "batch not stored: the database is unreachable");
        return Err(e);
    }
    refused.log(items.len());
    store.transaction(|conn| {
        let mut all = R::default();
        for item in items {
            let one = match store::savepoint(conn, |conn| whole(conn, std::slice::from_ref(item))) {
                Ok(r) => r,
                Err(e) => rescue(conn, item, e)?,
            };
            merge(&mut all, one);
        }
        finish(conn)?;
        Ok(all)
    })
}

/// An error a whole batch can be refused with, for
/// [`store_each_on_refusal`].
pub(super) trait Refusal {
    /// Says why, before the batch is stored item by item.
    fn log(&self, items: usize);
    /// The error to answer every item with when the database could not be
    /// reached at all (no item was the cause).
    fn unreachable(&self) -> Option<ServiceError>;
}

impl Refusal for ServiceError {
    fn log(&self, items: usize) {
        tracing::warn!(items, error = %self, "batch refused; storing it one item at a time");
    }

    fn unreachable(&self) -> Option<ServiceError> {
        match self {
            ServiceError::Store(
                e @ (store::StoreError::Pool(_) | store::StoreError::Connect { .. }),
            ) => Some(ServiceError::Database(e.to_string())),
            _ => None,
        }
    }
}
