//! The outbox worker's queries: claim due rows under a lease, record the
//! outcome of a send, and tell the worker when the next row falls due.
//!
//! Claiming is the one place where the backends differ. PostgreSQL may be
//! shared by several `keepword serve` processes, so due rows are selected
//! `FOR UPDATE SKIP LOCKED`: two claimers never get the same row and never
//! wait on each other. SQLite has one writer at a time; an immediate
//! transaction takes the write lock before the read, so a claim cannot
//! interleave with another one (in this process or another).
//!
//! A claim moves `available_at` to the end of a lease and counts the attempt
//! in the same transaction. The row is therefore invisible to other claimers
//! while it is being sent, and if the process dies mid-send it becomes due
//! again when the lease runs out (at-least-once, never lost).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::schema::outbox;
use super::{AnyConnection, StoreError, from_db, to_db};
use crate::on_backend;

type Result<T> = std::result::Result<T, StoreError>;

/// The second half of a claim, the same SQL on both backends (a macro
/// because the two arms hold different concrete connection types).
macro_rules! lease {
    ($c:expr, $rows:expr, $lease_until:expr) => {{
        let mut rows: Vec<Record> = $rows;
        if !rows.is_empty() {
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            diesel::update(outbox::table.filter(outbox::id.eq_any(&ids)))
                .set((
                    outbox::available_at.eq($lease_until),
                    outbox::attempts.eq(outbox::attempts + 1),
                ))
                .execute($c)?;
            for r in &mut rows {
                r.attempts += 1;
                r.available_at = $lease_until;
            }
        }
        Ok(rows.into_iter().map(OutboxRow::from).collect())
    }};
}

/// Claims up to `limit` due rows (`sent_at IS NULL AND available_at <= now`),
/// oldest due first, leasing each until `lease_until` and counting the
/// attempt. The returned rows carry the updated `attempts` and
/// `available_at`. Runs its own transaction: call it on a connection that is
/// not inside one, so the lease is committed before anything is sent.
pub fn claim_due(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    let now = to_db(now);
    let lease_until = to_db(lease_until);
    match conn {
        AnyConnection::Postgresql(c) => c.transaction(|c| claim_pg(c, now, lease_until, limit)),
        AnyConnection::Sqlite(c) => {
            c.immediate_transaction(|c| claim_sqlite(c, now, lease_until, limit))
        }
    }
}

/// [`claim_due`] inside the caller's transaction ([`crate::store::Store::transaction`],
/// which on SQLite queues on the process's writer lock instead of polling in
/// SQLite's busy handler). The lease holds once that transaction commits.
pub fn claim_due_in(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    let now = to_db(now);
    let lease_until = to_db(lease_until);
    match conn {
        AnyConnection::Postgresql(c) => claim_pg(c, now, lease_until, limit),
        AnyConnection::Sqlite(c) => claim_sqlite(c, now, lease_until, limit),
    }
}

/// How long an outbox statement waits for a lock another session holds
/// (PostgreSQL): past it the statement fails, the worker says so in its
/// log and metric and tries again, instead of hanging silently for as long
/// as someone holds a lock on the table.
pub const LOCK_TIMEOUT: &str = "5s";

/// Bounds this transaction's lock waits by [`LOCK_TIMEOUT`] (PostgreSQL;
/// SQLite's busy timeout already bounds its one lock).
pub fn bound_lock_waits(conn: &mut AnyConnection) -> Result<()> {
    if let AnyConnection::Postgresql(c) = conn {
        bound_pg_lock_waits(c)?;
    }
    Ok(())
}

fn bound_pg_lock_waits(c: &mut PgConnection) -> Result<()> {
    diesel::sql_query(format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")).execute(c)?;
    Ok(())
}

fn claim_pg(
    c: &mut PgConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    bound_pg_lock_waits(c)?;
    let rows: Vec<Record> = outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::refused_at.is_null())
        .filter(outbox::digest_key.is_null())
        .filter(outbox::available_at.le(now))
        .order((outbox::available_at, outbox::id))
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(Record::as_select())
        .load(c)?;
    lease!(c, rows, lease_until)
}

fn claim_sqlite(
    c: &mut SqliteConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    let rows: Vec<Record> = outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::refused_at.is_null())
        .filter(outbox::digest_key.is_null())
        .filter(outbox::available_at.le(now))
        .order((outbox::available_at, outbox::id))
        .limit(limit)
        .select(Record::as_select())
        .load(c)?;
    lease!(c, rows, lease_until)
}

/// Records delivered rows, all delivered by `now`, in one UPDATE per chunk
/// (a burst of dues is delivered in parallel and recorded in batches).
/// Clears `last_error` so a row reads as a clean success.
///
/// The lease is a fence: only rows still under this claimer's lease
/// (`available_at = lease_until`) are marked. A claimer that stalled past
/// its lease, whose rows another claimed meanwhile, records nothing; the
/// row stays the new claimer's, which sends it again with the same
/// identity (at least once). Returns how many rows it marked; the rest
/// were lost with the lease.
pub fn mark_delivered_many(
    conn: &mut AnyConnection,
    ids: &[i64],
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut marked = 0;
    // Bounded lists: SQLite limits the variables of one statement.
    for chunk in ids.chunks(ID_CHUNK) {
        marked += diesel::update(
            outbox::table
                .filter(outbox::id.eq_any(chunk))
                .filter(under_lease(lease_until)),
        )
        .set((
            outbox::sent_at.eq(Some(to_db(now))),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
        super::status::forget_delivered_tokens_of(conn, chunk)?;
    }
    Ok(marked)
}

/// Gives back leased rows that were never attempted (their receiver was busy
/// for as long as the lease allows a send to start): due again at `now`,
/// the attempt the claim counted taken back. Only rows still under this
/// claimer's lease (`available_at = lease_until`) are touched, so a row whose
/// lease ran out and was claimed by another process stays theirs.
pub fn release_unsent(
    conn: &mut AnyConnection,
    ids: &[i64],
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize> {
    let mut released = 0;
    for chunk in ids.chunks(ID_CHUNK) {
        released += diesel::update(
            outbox::table
                .filter(outbox::id.eq_any(chunk))
                .filter(under_lease(lease_until)),
        )
        .set((
            outbox::available_at.eq(to_db(now)),
            outbox::attempts.eq(outbox::attempts - 1),
        ))
        .execute(conn)?;
    }
    Ok(released)
}

/// Ids per statement in the batch writes.
const ID_CHUNK: usize = 500;

type UnderLease = diesel::dsl::And<
    diesel::dsl::IsNull<outbox::sent_at>,
    diesel::dsl::Eq<outbox::available_at, chrono::NaiveDateTime>,
>;

/// The fence every recording statement carries: the row is unsent and
/// still under the recorder's lease (a claim sets `available_at` to the
/// lease's end, and the next claim moves it), so a claimer that lost its
/// lease records nothing over the row's new claimer.
fn under_lease(lease_until: DateTime<Utc>) -> UnderLease {
    outbox::sent_at
        .is_null()
        .and(outbox::available_at.eq(to_db(lease_until)))
}

/// Records a failed attempt: the row is due again at `retry_at`. Fenced by
/// the lease like [`mark_delivered_many`]: a claimer that lost its lease
/// cannot move another claimer's row. Returns whether it was recorded.
pub fn mark_failed(
    conn: &mut AnyConnection,
    id: i64,
    lease_until: DateTime<Utc>,
    retry_at: DateTime<Utc>,
    error: &str,
) -> Result<bool> {
    let n = diesel::update(
        outbox::table
            .filter(outbox::id.eq(id))
            .filter(under_lease(lease_until)),
    )
    .set((
        outbox::available_at.eq(to_db(retry_at)),
        outbox::last_error.eq(Some(error)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Records a permanent refusal (SMTP 5xx, HTTP 4xx other than 408/429, a
/// payload that cannot be sent): the row is parked, never claimed again
/// until [`send_again`]. Fenced by the lease like [`mark_failed`]. Returns
/// whether it was recorded.
pub fn mark_refused(
    conn: &mut AnyConnection,
    id: i64,
    lease_until: DateTime<Utc>,
    at: DateTime<Utc>,
    error: &str,
) -> Result<bool> {
    let n = diesel::update(
        outbox::table
            .filter(outbox::id.eq(id))
            .filter(under_lease(lease_until)),
    )
    .set((
        outbox::refused_at.eq(Some(to_db(at))),
        outbox::available_at.eq(to_db(at)),
        outbox::last_error.eq(Some(error)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Parked (refused) rows, newest refusal first: the dashboard's list of
/// what was refused for good.
pub fn refused(conn: &mut AnyConnection, limit: i64) -> Result<Vec<OutboxRow>> {
    Ok(outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::refused_at.is_not_null())
        .order((outbox::refused_at.desc(), outbox::id.desc()))
        .limit(limit)
        .select(Record::as_select())
        .load::<Record>(conn)?
        .into_iter()
        .map(OutboxRow::from)
        .collect())
}

/// An operator's replay of a refused row (after fixing the address, the
/// receiver or the config): due again at `now`, with the same payload and
/// identity. `false` if the row is not refused (unknown, sent, or already
/// waiting again).
pub fn send_again(conn: &mut AnyConnection, id: i64, now: DateTime<Utc>) -> Result<bool> {
    let n = diesel::update(
        outbox::table
            .filter(outbox::id.eq(id))
            .filter(outbox::sent_at.is_null())
            .filter(outbox::refused_at.is_not_null()),
    )
    .set((
        outbox::refused_at.eq(None::<NaiveDateTime>),
        outbox::available_at.eq(to_db(now)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// The row enqueued under `dedupe_key`, if any (an acknowledgement's is
/// `ack:{conversation}`).
pub fn by_dedupe_key(conn: &mut AnyConnection, dedupe_key: &str) -> Result<Option<OutboxRow>> {
    Ok(outbox::table
        .filter(outbox::dedupe_key.eq(dedupe_key))
        .select(Record::as_select())
        .first::<Record>(conn)
        .optional()?
        .map(OutboxRow::from))
}

/// The backlog at `now`: unsent rows, apart from those held for a contact's
/// working hours or digest that may not go out yet (a night of held alerts
/// is not a backlog) and those refused for good. Reads every such row: the
/// worker counts a large backlog at most once a second.
pub fn backlog_count(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<i64> {
    Ok(outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::refused_at.is_null())
        .filter(
            outbox::not_before
                .is_null()
                .or(outbox::not_before.le(to_db(now))),
        )
        .count()
        .get_result(conn)?)
}

/// The earliest instant an unsent row the worker may send falls due
/// (including rows leased by a claimer, which fall due when the lease
/// ends). Warnings waiting for a digest are not among them: the scheduler,
/// not this worker, turns them into the digest's rows. The first entry of
/// `outbox_due`.
pub fn next_due(conn: &mut AnyConnection) -> Result<Option<DateTime<Utc>>> {
    let next: Option<NaiveDateTime> = outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::refused_at.is_null())
        .filter(outbox::digest_key.is_null())
        .select(diesel::dsl::min(outbox::available_at))
        .first(conn)?;
    Ok(next.map(from_db))
}

/// One row by id (tests and the dashboard).
pub fn get(conn: &mut AnyConnection, id: i64) -> Result<Option<OutboxRow>> {
    Ok(outbox::table
        .find(id)
        .select(Record::as_select())
        .first::<Record>(conn)
        .optional()?
        .map(OutboxRow::from))
}

/// Unsent rows of `kind` whose last attempt failed, newest first: what a
/// page shows of deliveries that wait.
pub fn failing(conn: &mut AnyConnection, kind: &str, limit: i64) -> Result<Vec<OutboxRow>> {
    Ok(outbox::table
        .filter(outbox::kind.eq(kind))
        .filter(outbox::sent_at.is_null())
        .filter(outbox::last_error.is_not_null())
        .order(outbox::id.desc())
        .limit(limit)
        .select(Record::as_select())
        .load::<Record>(conn)?
        .into_iter()
        .map(OutboxRow::from)
        .collect())
}

/// Every row, oldest first (tests and diagnostics on small tables).
pub fn all(conn: &mut AnyConnection) -> Result<Vec<OutboxRow>> {
    Ok(outbox::table
        .order(outbox::id)
        .select(Record::as_select())
        .load::<Record>(conn)?
        .into_iter()
        .map(OutboxRow::from)
        .collect())
}

/// Makes every unsent row due now. On SQLite one process owns all the work,
/// so at its start no lease can belong to a live sender: a lease left by a
/// crashed run (up to two minutes) would only delay its notifications.
pub fn release_all(conn: &mut AnyConnection, now: DateTime<Utc>) -> Result<usize> {
    // Rows held for working hours or a digest keep their instant.
    Ok(diesel::update(
        outbox::table
            .filter(outbox::sent_at.is_null())
            .filter(outbox::refused_at.is_null())
            .filter(outbox::available_at.gt(to_db(now)))
            .filter(
                outbox::not_before
                    .is_null()
                    .or(outbox::not_before.le(to_db(now))),
            ),
    )
    .set(outbox::available_at.eq(to_db(now)))
    .execute(conn)?)
}

/// One stored notification; instants are UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub kind: String,
    pub target: String,
    pub payload: String,
    pub dedupe_key: String,
    pub created_at: DateTime<Utc>,
    pub available_at: DateTime<Utc>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Held until then: the contact's working hours or digest time.
    pub not_before: Option<DateTime<Utc>>,
    /// Set on a warning waiting for a digest: the contact and digest time.
    pub digest_key: Option<String>,
    pub conversation_id: Option<i64>,
    /// The escalation step key (`first_response/0/at:75%`) it notifies.
    pub step: Option<String>,
    pub contact: Option<String>,
    /// Refused for good by the receiver: parked until an operator sends it
    /// again.
    pub refused_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = outbox)]
struct Record {
    id: i64,
    kind: String,
    target: String,
    payload: String,
    dedupe_key: String,
    created_at: NaiveDateTime,
    available_at: NaiveDateTime,
    attempts: i32,
    last_error: Option<String>,
    sent_at: Option<NaiveDateTime>,
    not_before: Option<NaiveDateTime>,
    digest_key: Option<String>,
    conversation_id: Option<i64>,
    step: Option<String>,
    contact: Option<String>,
    refused_at: Option<NaiveDateTime>,
}

impl From<Record> for OutboxRow {
    fn from(r: Record) -> OutboxRow {
        OutboxRow {
            id: r.id,
            kind: r.kind,
            target: r.target,
            payload: r.payload,
            dedupe_key: r.dedupe_key,
            created_at: from_db(r.created_at),
            available_at: from_db(r.available_at),
            attempts: r.attempts,
            last_error: r.last_error,
            sent_at: r.sent_at.map(from_db),
            not_before: r.not_before.map(from_db),
            digest_key: r.digest_key,
            conversation_id: r.conversation_id,
            step: r.step,
            contact: r.contact,
            refused_at: r.refused_at.map(from_db),
        }
    }
}

/// A notification to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbox {
    pub kind: String,
    pub target: String,
    pub payload: String,
    /// What makes this notification unique, so a retried use case cannot
    /// enqueue it twice.
    pub dedupe_key: String,
    pub created_at: DateTime<Utc>,
    pub available_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = outbox)]
struct Form<'a> {
    kind: &'a str,
    target: &'a str,
    payload: &'a str,
    dedupe_key: &'a str,
    created_at: NaiveDateTime,
    available_at: NaiveDateTime,
}

/// Enqueues a notification; `false` if one with the same dedupe key exists.
pub fn enqueue(conn: &mut AnyConnection, new: &NewOutbox) -> Result<bool> {
    let form = Form {
        kind: &new.kind,
        target: &new.target,
        payload: &new.payload,
        dedupe_key: &new.dedupe_key,
        created_at: to_db(new.created_at),
        available_at: to_db(new.available_at),
    };
    let n = on_backend!(conn, |c| diesel::insert_into(outbox::table)
        .values(&form)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// [`enqueue`] for several, in one statement per 500 on PostgreSQL: in
/// order, whether each was enqueued (`false`: its dedupe key exists).
pub fn enqueue_many(conn: &mut AnyConnection, new: &[NewOutbox]) -> Result<Vec<bool>> {
    let forms: Vec<Form> = new
        .iter()
        .map(|n| Form {
            kind: &n.kind,
            target: &n.target,
            payload: &n.payload,
            dedupe_key: &n.dedupe_key,
            created_at: to_db(n.created_at),
            available_at: to_db(n.available_at),
        })
        .collect();
    match conn {
        AnyConnection::Sqlite(c) => forms
            .iter()
            .map(|f| {
                let id: Option<i64> = super::Cached(
                    diesel::insert_into(outbox::table)
                        .values(f)
                        .on_conflict_do_nothing()
                        .returning(outbox::id),
                )
                .get_result(c)
                .optional()?;
                Ok(id.is_some())
            })
            .collect(),
        AnyConnection::Postgresql(c) => {
            let mut out = Vec::with_capacity(forms.len());
            for chunk in forms.chunks(500) {
                let keys: std::collections::HashSet<String> = crate::pg_cached!(
                    chunk.len(),
                    diesel::insert_into(outbox::table)
                        .values(chunk)
                        .on_conflict_do_nothing()
                        .returning(outbox::dedupe_key),
                    |q| q.get_results::<String>(c)
                )?
                .into_iter()
                .collect();
                out.extend(chunk.iter().map(|f| keys.contains(f.dedupe_key)));
            }
            Ok(out)
        }
    }
}

pub fn outbox_pending(conn: &mut AnyConnection) -> Result<i64> {
    Ok(outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::refused_at.is_null())
        .count()
        .get_result(conn)?)
}

// ---- urgency and focus (README) ------------------------------------------------

/// Where an escalation notification belongs and when it may go out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    pub conversation_id: Option<i64>,
    pub step: Option<String>,
    pub contact: Option<String>,
    /// Held until then (the row is also not available before it).
    pub not_before: Option<DateTime<Utc>>,
    /// A warning for a digest: never sent alone, collected by
    /// [`claim_digest_items`] at `not_before`.
    pub digest_key: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = outbox)]
struct RoutedForm<'a> {
    kind: &'a str,
    target: &'a str,
    payload: &'a str,
    dedupe_key: &'a str,
    created_at: NaiveDateTime,
    available_at: NaiveDateTime,
    not_before: Option<NaiveDateTime>,
    digest_key: Option<&'a str>,
    conversation_id: Option<i64>,
    step: Option<&'a str>,
    contact: Option<&'a str>,
}

/// [`enqueue`] with its routing; a row with `not_before` becomes available
/// then. `false` if one with the same dedupe key exists.
pub fn enqueue_routed(conn: &mut AnyConnection, new: &NewOutbox, r: &Routing) -> Result<bool> {
    let available = match r.not_before {
        Some(t) if t > new.available_at => t,
        _ => new.available_at,
    };
    let form = RoutedForm {
        kind: &new.kind,
        target: &new.target,
        payload: &new.payload,
        dedupe_key: &new.dedupe_key,
        created_at: to_db(new.created_at),
        available_at: to_db(available),
        not_before: r.not_before.map(to_db),
        digest_key: r.digest_key.as_deref(),
        conversation_id: r.conversation_id,
        step: r.step.as_deref(),
        contact: r.contact.as_deref(),
    };
    let n = on_backend!(conn, |c| diesel::insert_into(outbox::table)
        .values(&form)
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(n == 1)
}

/// Warnings whose digest time has come, by digest then id. On PostgreSQL
/// they are locked `FOR UPDATE SKIP LOCKED`, so of several processes each
/// warning goes into one digest; call inside the transaction that enqueues
/// the digest and marks them with [`mark_digested`].
pub fn claim_digest_items(
    conn: &mut AnyConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<OutboxRow>> {
    macro_rules! due {
        () => {
            outbox::table
                .filter(outbox::sent_at.is_null())
                .filter(outbox::digest_key.is_not_null())
                .filter(outbox::available_at.le(to_db(now)))
                .order((outbox::digest_key, outbox::id))
                .limit(limit)
                .select(Record::as_select())
        };
    }
    let rows: Vec<Record> = match conn {
        AnyConnection::Postgresql(c) => {
            // One assembler at a time: row locks alone keep each warning in
            // one digest, but two processes scanning at the same instant
            // could split one contact's digest in two. Whoever does not get
            // the lock leaves the digests to the one that did.
            #[derive(QueryableByName)]
            struct Granted {
                #[diesel(sql_type = diesel::sql_types::Bool)]
                granted: bool,
            }
            let granted = diesel::sql_query(
                "SELECT pg_try_advisory_xact_lock(hashtext('keepword-digests')) AS granted",
            )
            .get_result::<Granted>(c)?
            .granted;
            if !granted {
                return Ok(Vec::new());
            }
            due!().for_update().skip_locked().load(c)?
        }
        AnyConnection::Sqlite(c) => due!().load(c)?,
    };
    Ok(rows.into_iter().map(OutboxRow::from).collect())
}

/// Records that warnings went into a digest (its own rows carry the delivery).
pub fn mark_digested(conn: &mut AnyConnection, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
    diesel::update(
        outbox::table
            .filter(outbox::id.eq_any(ids))
            .filter(outbox::sent_at.is_null()),
    )
    .set(outbox::sent_at.eq(Some(to_db(now))))
    .execute(conn)?;
    Ok(())
}

/// The earliest digest time with warnings waiting for it.
pub fn earliest_digest(conn: &mut AnyConnection) -> Result<Option<DateTime<Utc>>> {
    Ok(outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::digest_key.is_not_null())
        .select(diesel::dsl::min(outbox::available_at))
        .first::<Option<NaiveDateTime>>(conn)?
        .map(from_db))
}

/// The escalation notifications of one conversation, oldest first.
pub fn of_conversation(conn: &mut AnyConnection, conversation_id: i64) -> Result<Vec<OutboxRow>> {
    Ok(outbox::table
        .filter(outbox::conversation_id.eq(conversation_id))
        .order(outbox::id)
        .select(Record::as_select())
        .load::<Record>(conn)?
        .into_iter()
        .map(OutboxRow::from)
        .collect())
}
