//! Storage: one diesel code path over SQLite (default, embedded) and PostgreSQL.
//!
//! The backend is chosen from the URL scheme and the inner connection type is
//! connected directly, so users see libpq's or SQLite's real error instead of
//! diesel's generic "invalid connection url for multiconnection". Migrations
//! for both backends are embedded and run at start. Every instant is stored as
//! UTC, truncated to microseconds (PostgreSQL's precision), so a value reads
//! back equal on both backends.
//!
//! diesel is synchronous: callers on the async side run store calls in
//! `spawn_blocking` / `web::block`.

mod clients;
mod contracts;
mod conversations;
pub mod erasure;
mod escalations;
mod libpq;
pub use libpq::before_exit;
mod live;
mod mailboxes;
mod messages;
pub mod outbox;
mod queue;
mod record;
pub mod record_days;
mod rejected;
mod retention;
pub mod schema;
mod status;
pub mod tally;
mod timers;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Timelike, Utc};
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

// Queries live in one file per aggregate; these are what the rest of the
// program may call.
pub use clients::{ClientRow, client, upsert_client};
pub use contracts::{
    ContractVersionRow, contract_version, contract_versions_list, record_contract_version,
};
pub use conversations::{
    ConversationFilter, ConversationRow, DerivedState, NewConversation, advance_last_message,
    claim_due_conversations, conversation, conversation_by_thread, conversations_by_ids,
    conversations_by_subject_keys, conversations_by_threads, earliest_check, list_conversations,
    open_conversation, open_conversations, open_counts, open_or_find_conversations,
    set_conversation_status, update_conversation_state, update_conversation_states,
};
pub use conversations::{opened_since_by_type, opened_since_of_client};
pub use escalations::{
    FiredStep, fired_step_count, fired_steps_of, fired_steps_of_many, record_fired_step,
};
pub use live::{CHANNEL as CHANGES_CHANNEL, Heard, Relay};
pub use mailboxes::{Checkpoint, checkpoint, save_checkpoint};
pub use messages::{
    BodyPreview, BodyRemoved, EventRow, Inserted, MessageRow, NewMessage, acknowledged_any_since,
    acknowledged_since, body_previews, conversation_of_message_id, conversations_of_message_ids,
    events_of, events_of_many, insert_message, insert_messages, message_body,
    message_by_external_id, message_heads_of, messages_by_external_ids, messages_of,
    set_raw_compression,
};
pub use outbox::{
    NewOutbox, OutboxRow, Routing, enqueue, enqueue_many, enqueue_routed, outbox_pending,
};
pub use queue::{
    QueueFilter, QueuePage, SessionRow, create_session, delete_session, live_session,
    opened_between, queue_page,
};
pub use record::{
    RecordRow, Reply, add_client_link, client_by_link_hash, client_open, client_opened_between,
    due_between, longest_paused, outbox_has_key, replace_client_link, replies_of_many,
    tallied_between,
};
pub use rejected::{RejectedRow, reject_input, rejected_input, rejected_inputs};
pub use retention::{RetentionBatch, remove_old_bodies, remove_old_rejected};
pub use status::{conversation_by_status_hash, insert_status_link, insert_status_links};
pub use timers::{TimerRow, TimerUpdate, save_timer, save_timers, timers_of, timers_of_many};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Serialises concurrent `migrate` runs of several processes on one PostgreSQL.
const MIGRATION_LOCK_KEY: i64 = 0x6b65_6570_776f_7264; // "keepword"

#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs the same query body on whichever backend `conn` is. Needed where the
/// combined backend cannot express a query (`ON CONFLICT`, `RETURNING`).
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::AnyConnection::Postgresql($c) => $body,
            $crate::store::AnyConnection::Sqlite($c) => $body,
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A parsed `database_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A file path, or `:memory:`.
    Sqlite(String),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<DatabaseUrl, StoreError> {
        if let Some(rest) = url.strip_prefix("sqlite://") {
            if rest.is_empty() {
                return Err(StoreError::Url(
                    "sqlite:// needs a path, e.g. sqlite://data/keepword.db".into(),
                ));
            }
            Ok(DatabaseUrl::Sqlite(rest.to_string()))
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            Ok(DatabaseUrl::Sqlite(rest.to_string()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_string()))
        } else {
            Err(StoreError::Url(format!(
                "`{}` is neither sqlite://PATH nor postgres://…",
                redact_url(url)
            )))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Query parameters that carry a password (libpq's `password`,
/// `sslpassword`, and the spellings other drivers accept).
fn is_password_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("pass") || name.contains("secret") || name.contains("token") || name == "pwd"
}

/// The URL with every password replaced by `***`, for logs and errors: the
/// one in the userinfo (which may itself contain an unescaped `@`, so the
/// host starts after the *last* `@` of the authority) and any in the query.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let mut out = format!("{scheme}://");
    match before_query.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***@")),
                None => out.push_str(&format!("{userinfo}@")),
            }
            out.push_str(host);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if is_password_param(name) => format!("{name}=***"),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// The passwords `url` carries (see [`redact_url`]), so that a driver's
/// message that quotes one can be cleaned too.
fn url_passwords(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut found = Vec::new();
    if let Some((userinfo, _)) = before_query.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        found.push(password.to_string());
    }
    for pair in query.split('&') {
        if let Some((name, value)) = pair.split_once('=')
            && is_password_param(name)
        {
            found.push(value.to_string());
        }
    }
    found.retain(|p| !p.is_empty());
    found
}

/// `text` (an error from the driver) with any password of `url` in it
/// replaced by `***`.
pub fn redact_in(text: &str, url: &str) -> String {
    url_passwords(url)
        .iter()
        .fold(text.to_string(), |t, p| t.replace(p.as_str(), "***"))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database_url: {0}")]
    Url(String),
    #[error("cannot open database {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("database migrations failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection pool: {0}")]
    Pool(String),
    /// A stored value no version of keepword writes (a hand-edited row).
    #[error("unexpected value in the database: {0}")]
    Corrupt(String),
}

/// Runs `f` in a savepoint of the caller's transaction: an error rolls back
/// what `f` wrote and nothing else (one bad message of a batch is kept raw
/// while the rest commits).
pub fn savepoint<T, E>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    conn.transaction(f)
}

/// A `TRUE` that keeps a batch lookup (`= ANY($1)`) out of diesel's
/// prepared-statement cache, so that PostgreSQL plans each run for its
/// array. A cached statement gets a generic plan after five runs; made while
/// a table is young, that plan for `channel = $1 AND external_id = ANY($2)`
/// scans the whole channel, and it stays until the next ANALYZE: seen as a
/// batch's duplicate lookup taking most of the database's time in the first
/// minute of a fresh install under load. Planning once a batch costs a
/// fraction of a millisecond. SQLite never caches these (its `IN` list has a
/// varying number of parameters).
pub(crate) fn planned_each_time() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql("TRUE")
}

/// A PostgreSQL statement kept in diesel's prepared-statement cache (keyed
/// by its SQL text) although diesel would not cache it: diesel never caches
/// multi-row inserts, `ON CONFLICT … DO UPDATE`, `UPDATE`s or raw SQL, so
/// PostgreSQL parsed, analysed and planned each of them on every batch
/// (the events benchmark's profile, BENCHMARKS.md section a). Only for
/// statements whose plan cannot depend on the values bound (plain inserts,
/// upserts by a unique key; not the `UPDATE … FROM unnest(…)`, whose generic
/// plan scans the table), and whose text takes few shapes: callers wrap a
/// multi-row insert only up to [`CACHED_ROWS`] rows, so the cache holds a
/// bounded number of statements per connection (their forms bind NULL, not
/// `DEFAULT`, for a `None`, so the text depends on the row count only). Run
/// them with `load`/`get_results`: diesel's `execute` takes the statement by
/// reference, and a reference does not pass this on.
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(pub Q);

/// Rows up to which a multi-row insert is [`Cached`]: group commit batches
/// are mostly this small; bigger ones are rarer and amortise their planning.
pub const CACHED_ROWS: usize = 16;

/// Runs the PostgreSQL statement `$q` as `|$x| $run`, through [`Cached`]
/// when it has at most [`CACHED_ROWS`] rows.
#[macro_export]
#[doc(hidden)]
macro_rules! pg_cached {
    ($rows:expr, $q:expr, |$x:ident| $run:expr) => {{
        let q = $q;
        if $rows <= $crate::store::CACHED_ROWS {
            let $x = $crate::store::Cached(q);
            $run
        } else {
            let $x = q;
            $run
        }
    }};
}

impl<Q> diesel::query_builder::QueryId for Cached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> diesel::query_builder::QueryFragment<diesel::pg::Pg> for Cached<Q>
where
    Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>,
{
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &diesel::pg::Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

/// On SQLite too: each single-row insert of a batch's loop was compiled
/// again for every row (its text is keyed in the cache, so shapes that
/// differ by an omitted `None` column are kept apart).
impl<Q> diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite> for Cached<Q>
where
    Q: diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite>,
{
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, diesel::sqlite::Sqlite>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &diesel::sqlite::Sqlite) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, C> diesel::RunQueryDsl<C> for Cached<Q> {}

/// Parses a stored name (`running`, `first_response`, …) into its enum.
pub(crate) fn parse_stored<T: std::str::FromStr>(column: &str, value: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

#[derive(Debug)]
pub struct ConnectError(String);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ConnectError {}

/// Connects the inner connection type itself (see the module doc) and applies
/// SQLite's per-connection settings.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
    /// SQLite: a [`Checkpointer`] copies the log into the database, so
    /// commits do not.
    background_checkpoints: bool,
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<AnyConnection, ConnectError> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                sqlite_plans_ignore_bound_values();
                let mut c =
                    SqliteConnection::establish(path).map_err(|e| ConnectError(e.to_string()))?;
                // WAL lets readers run beside the one writer; busy_timeout makes
                // a second writer wait instead of failing with SQLITE_BUSY.
                // batch_execute: a prepared `sql_query` would run only the
                // first of several statements. cache_size 16 MiB (the default
                // is 2): a mail batch with attachments writes several MiB, and
                // a smaller cache spills dirty pages to the WAL mid-transaction.
                // temp_store MEMORY: a statement that may abort half-way (a
                // foreign key, an upsert) journals the pages it changes, and
                // past 64 KiB SQLite spilled that journal to a temporary
                // file — created, written and deleted per statement: 13% of
                // the writer's time storing mail with attachments.
                // busy_timeout first: `journal_mode` takes a lock too, and
                // while another process writes it failed at once ("database is
                // locked": a second `serve` starting beside a busy one).
                // synchronous FULL: each commit reaches the disk before it
                // returns. NORMAL in WAL mode survives a killed process but
                // can lose the last commits to a power cut or a kernel
                // crash — events already answered 201, mail already past
                // its IMAP checkpoint. Writers commit in batches, so this
                // is one fsync per batch (BENCHMARKS.md: its cost).
                c.batch_execute(
                    "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; \
                     PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;",
                )
                .map_err(|e| ConnectError(e.to_string()))?;
                if self.background_checkpoints {
                    c.batch_execute("PRAGMA wal_autocheckpoint = 0;")
                        .map_err(|e| ConnectError(e.to_string()))?;
                }
                Ok(AnyConnection::Sqlite(c))
            }
            DatabaseUrl::Postgres(url) => {
                libpq::open_unless_ending(|| PgConnection::establish(url))
                    .ok_or_else(|| ConnectError("the process is ending: no new connection".into()))?
                    .map(AnyConnection::Postgresql)
                    .map_err(|e| ConnectError(e.to_string()))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        diesel::sql_query("SELECT 1")
            .execute(conn)
            .map(|_| ())
            .map_err(|e| ConnectError(e.to_string()))
    }

    /// A connection still inside a transaction, or whose transaction
    /// manager broke (a rollback that failed because the session was
    /// killed), must not go back to the pool: its next user would run
    /// inside that transaction or get `BrokenTransactionManager`. diesel's
    /// own r2d2 manager asks the same.
    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        use diesel::r2d2::R2D2Connection;
        std::thread::panicking()
            || match conn {
                AnyConnection::Postgresql(c) => c.is_broken(),
                AnyConnection::Sqlite(c) => c.is_broken(),
            }
    }
}

/// Makes every SQLite connection this process opens from now on keep its
/// query plans whatever values are bound (SQLite's query planner stability
/// guarantee, `SQLITE_DBCONFIG_ENABLE_QPSG`). Registered once, as an
/// automatic extension: SQLite runs it inside each open, and diesel gives no
/// access to the raw handle.
///
/// Why: since 3.5x SQLite treats a bound `LIMIT` (diesel's `.first()` sends
/// `LIMIT ?`) as a value the plan depends on, and expires the statement each
/// time diesel binds it again. Every cached lookup was then compiled again on
/// every execution: on the duplicate-id path of `POST /api/v1/events` 12% of
/// the server's CPU went to `sqlite3Reprepare`. With the guarantee diesel's
/// statement cache works as intended. We lose only plans tuned to one bound
/// value (LIKE prefixes, ANALYZE samples), which no query here relies on.
#[allow(unsafe_code)]
fn sqlite_plans_ignore_bound_values() {
    use libsqlite3_sys as ffi;
    use std::ffi::{c_char, c_int};

    unsafe extern "C" fn on_open(
        db: *mut ffi::sqlite3,
        _err: *mut *mut c_char,
        _api: *const ffi::sqlite3_api_routines,
    ) -> c_int {
        // SAFETY: SQLite calls this with the connection it is opening.
        unsafe {
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
                1 as c_int,
                std::ptr::null_mut::<c_int>(),
            );
        }
        ffi::SQLITE_OK
    }

    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registers a function pointer with the signature SQLite
        // expects; it stays valid for the life of the process.
        let rc = unsafe { ffi::sqlite3_auto_extension(Some(on_open)) };
        if rc != ffi::SQLITE_OK {
            tracing::warn!(
                code = rc,
                "SQLite: cannot enable stable query plans; lookups will be recompiled"
            );
        }
    });
}

pub type Conn = PooledConnection<Manager>;

/// Held while this process polls a mailbox; see [`Store::try_lease_mailbox`].
pub struct MailboxLease {
    conn: Conn,
}

impl Drop for MailboxLease {
    /// The connection goes back to the pool: release the session lock, or
    /// it would outlive the lease.
    fn drop(&mut self) {
        if let AnyConnection::Postgresql(c) = &mut *self.conn {
            let _ = diesel::sql_query("SELECT pg_advisory_unlock_all()").execute(c);
        }
    }
}

/// The pool plus what it was opened on. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<Manager>,
    backend: Backend,
    /// As parsed once at [`Store::open`]: the relay of live changes opens
    /// its own connections with it.
    url: DatabaseUrl,
    /// SQLite has one writer at a time. Without this, concurrent
    /// `BEGIN IMMEDIATE`s wait in SQLite's busy handler, which polls with
    /// sleeps of up to 100 ms (BENCHMARKS.md, section a: it put the ingest
    /// p99 far out). Queuing on a mutex wakes the
    /// next writer as soon as the previous one commits. Unused on PostgreSQL.
    sqlite_writer: Arc<Mutex<()>>,
    /// While any clone lives, the [`Checkpointer`] (SQLite files) runs.
    _alive: Arc<()>,
}

/// Copies a SQLite file's write-ahead log into the database, on a thread of
/// its own. By default SQLite does it in the commit that takes the log past
/// 1,000 pages: the one writer then copies and syncs while every other
/// write waits (the events benchmark's profile, BENCHMARKS.md section a).
/// A PASSIVE checkpoint takes no lock a
/// reader or the writer needs, so running it beside them costs them
/// nothing; it runs every 100 ms, so the log stays as short as SQLite's own
/// threshold keeps it under a steady load. The thread ends with the store.
struct Checkpointer;

impl Checkpointer {
    const EVERY: Duration = Duration::from_millis(100);

    fn spawn(path: String, alive: std::sync::Weak<()>) -> Result<(), StoreError> {
        let mut conn = SqliteConnection::establish(&path).map_err(|e| StoreError::Connect {
            url: path.clone(),
            reason: e.to_string(),
        })?;
        conn.batch_execute("PRAGMA busy_timeout = 10000;")?;
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut warned = false;
                loop {
                    std::thread::sleep(Self::EVERY);
                    if alive.upgrade().is_none() {
                        return;
                    }
                    if let Err(e) = conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE);")
                        && !warned
                    {
                        tracing::warn!(error = %e, "SQLite: WAL checkpoint failed; retrying");
                        warned = true;
                    }
                }
            })
            .map_err(|e| StoreError::Connect {
                url: path,
                reason: format!("cannot start the checkpoint thread: {e}"),
            })?;
        Ok(())
    }
}

impl Store {
    /// Opens (creating a SQLite file and its folder on first start) and runs
    /// pending migrations.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let parsed = DatabaseUrl::parse(url)?;
        let max_size = match &parsed {
            // Every connection to `:memory:` is its own database: keep one.
            DatabaseUrl::Sqlite(p) if p == ":memory:" => 1,
            DatabaseUrl::Sqlite(p) => {
                if let Some(dir) = Path::new(p).parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError::Connect {
                        url: redact_url(url),
                        reason: format!("cannot create folder {}: {e}", dir.display()),
                    })?;
                }
                4
            }
            DatabaseUrl::Postgres(_) => 10,
        };
        let backend = parsed.backend();
        let checkpoint_file = match &parsed {
            DatabaseUrl::Sqlite(p) if p != ":memory:" => Some(p.clone()),
            _ => None,
        };
        let manager = Manager {
            url: parsed.clone(),
            background_checkpoints: checkpoint_file.is_some(),
        };
        if matches!(parsed, DatabaseUrl::Postgres(_)) {
            libpq::keep_tls_through_exit();
        }
        // Connect once outside the pool so the user sees the real reason
        // (r2d2 would only say "timed out waiting for connection").
        let mut first = manager.connect().map_err(|e| StoreError::Connect {
            url: redact_url(url),
            reason: redact_in(&e.0, url),
        })?;
        run_migrations(&mut first)?;
        let pool = Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Connect {
                url: redact_url(url),
                reason: redact_in(&e.to_string(), url),
            })?;
        let alive = Arc::new(());
        if let Some(path) = checkpoint_file {
            Checkpointer::spawn(path, Arc::downgrade(&alive))?;
        }
        Ok(Store {
            pool,
            backend,
            url: parsed,
            sqlite_writer: Arc::new(Mutex::new(())),
            _alive: alive,
        })
    }

    /// Run at start. On SQLite one process owns all the work, so no outbox
    /// lease can belong to a live sender: leases left by a crashed run are
    /// released (they would only delay their notifications by up to two
    /// minutes). On PostgreSQL other processes may be sending: leases stand.
    pub fn release_stale_leases(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        match self.backend {
            Backend::Sqlite => self.with(|c| outbox::release_all(c, now)),
            Backend::Postgres => Ok(0),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// How many event writers to run: one on SQLite, which has one writer
    /// anyway; on PostgreSQL one per core, at least two (more writers than
    /// cores made each batch smaller and the backends contend for the same
    /// index pages: BENCHMARKS.md, the events API).
    pub fn event_writers(&self) -> usize {
        match self.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => {
                std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
            }
        }
    }

    /// Scheduler steps to run at once while a burst is due. On PostgreSQL
    /// each claims its own batch with `FOR UPDATE SKIP LOCKED`, as steps of
    /// several processes do, and a step spends most of its time waiting on
    /// round trips, which overlap; SQLite has one writer: one step.
    pub fn burst_steps(&self) -> usize {
        match self.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 4,
        }
    }

    pub fn conn(&self) -> Result<Conn, StoreError> {
        self.pool.get().map_err(|e| StoreError::Pool(e.to_string()))
    }

    /// Runs `f` on a pooled connection.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        f(&mut conn)
    }

    /// Runs `f` in one transaction: all of it commits, or none of it.
    ///
    /// On SQLite the transaction is `BEGIN IMMEDIATE`: a deferred one that
    /// reads first and writes later fails with SQLITE_BUSY at once when
    /// another writer got in between (the busy timeout does not apply to
    /// that upgrade), while an immediate one waits its turn.
    pub fn transaction<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction_on(false, f)
    }

    /// [`Self::transaction`] for an erasure: on SQLite with `secure_delete`,
    /// so that what it deletes or overwrites is zeroed in the pages it
    /// writes, never left in free space; follow it with
    /// [`Self::scrub_files`].
    pub fn erasing_transaction<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction_on(true, f)
    }

    fn transaction_on<T, E: From<StoreError>>(
        &self,
        secure_delete: bool,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        type Tm = <AnyConnection as Connection>::TransactionManager;
        let db = |e: diesel::result::Error| E::from(StoreError::Query(e));
        // Taken before the connection, so queued writers hold no connection
        // that a reader could use.
        let _writer = (self.backend == Backend::Sqlite)
            .then(|| self.sqlite_writer.lock().unwrap_or_else(|p| p.into_inner()));
        let mut conn = self.conn()?;
        let any: &mut AnyConnection = &mut conn;
        match any {
            AnyConnection::Sqlite(c) => {
                if secure_delete {
                    c.batch_execute("PRAGMA secure_delete = ON;").map_err(db)?;
                }
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE").map_err(db)?
            }
            AnyConnection::Postgresql(_) => Tm::begin_transaction(any).map_err(db)?,
        }
        let out = match f(any) {
            Ok(value) => Tm::commit_transaction(any).map_err(db).map(|()| value),
            Err(e) => {
                Tm::rollback_transaction(any).map_err(db)?;
                Err(e)
            }
        };
        if let (true, AnyConnection::Sqlite(c)) = (secure_delete, any) {
            c.batch_execute("PRAGMA secure_delete = OFF;").map_err(db)?;
        }
        out
    }

    /// After an erasure committed: what it removed leaves the files. SQLite:
    /// the database is rebuilt (`VACUUM`: free pages and the unused space
    /// of pages, where older versions of rows linger, are not copied) and
    /// the write-ahead log is copied in and truncated to nothing.
    /// PostgreSQL: the touched tables are vacuumed, so no dead version of
    /// a changed row is left in them (or their TOAST tables).
    pub fn scrub_files(
        &self,
        tables: &std::collections::BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let _writer = (self.backend == Backend::Sqlite)
            .then(|| self.sqlite_writer.lock().unwrap_or_else(|p| p.into_inner()));
        let mut conn = self.conn()?;
        match &mut *conn {
            AnyConnection::Sqlite(c) => {
                c.batch_execute("VACUUM;")?;
                #[derive(QueryableByName)]
                struct Checkpoint {
                    #[diesel(sql_type = diesel::sql_types::Integer)]
                    busy: i32,
                }
                // A reader of the old log makes the checkpoint give up
                // (busy = 1) rather than wait: try again for a while.
                for attempt in 0.. {
                    let r: Checkpoint =
                        diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result(c)?;
                    if r.busy == 0 {
                        break;
                    }
                    if attempt == 100 {
                        return Err(StoreError::Pool(
                            "the write-ahead log could not be truncated: a reader stayed open \
                             for 10 s; run `keepword erase` again"
                                .into(),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            AnyConnection::Postgresql(c) => {
                for t in tables {
                    c.batch_execute(&format!("VACUUM \"{}\";", t.replace('"', "\"\"")))?;
                }
            }
        }
        Ok(())
    }

    /// Runs the reads of `f` against one snapshot of the database, so a page
    /// built from several queries (a conversation, its messages, timers and
    /// steps; the queue and its counts) shows one moment. Read-only: on
    /// SQLite a deferred transaction (WAL gives it a snapshot and it takes no
    /// writer's turn), on PostgreSQL `REPEATABLE READ READ ONLY`.
    pub fn snapshot<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        type Tm = <AnyConnection as Connection>::TransactionManager;
        let db = |e: diesel::result::Error| E::from(StoreError::Query(e));
        let mut conn = self.conn()?;
        let any: &mut AnyConnection = &mut conn;
        match any {
            AnyConnection::Sqlite(c) => {
                AnsiTransactionManager::begin_transaction_sql(c, "BEGIN DEFERRED").map_err(db)?
            }
            AnyConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction_sql(
                c,
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            )
            .map_err(db)?,
        }
        let out = f(any);
        // Nothing was written: ending it either way is the same.
        Tm::rollback_transaction(any).map_err(db)?;
        out
    }

    /// Leases a mailbox so that, of several processes on one PostgreSQL, one
    /// polls it (docs/ARCHITECTURE.md). The lease is a session advisory lock held by the
    /// returned connection: it ends when the lease is dropped or the process
    /// dies. `None`: another process holds it. On SQLite one process owns all
    /// the work, so the lease is always granted.
    pub fn try_lease_mailbox(&self, mailbox: &str) -> Result<Option<MailboxLease>, StoreError> {
        let mut conn = self.conn()?;
        let granted = match &mut *conn {
            AnyConnection::Sqlite(_) => true,
            AnyConnection::Postgresql(c) => {
                #[derive(QueryableByName)]
                struct Granted {
                    #[diesel(sql_type = diesel::sql_types::Bool)]
                    granted: bool,
                }
                diesel::sql_query(
                    "SELECT pg_try_advisory_lock(hashtext('keepword-mailbox:' || $1)) AS granted",
                )
                .bind::<diesel::sql_types::Text, _>(mailbox)
                .get_result::<Granted>(c)?
                .granted
            }
        };
        Ok(granted.then_some(MailboxLease { conn }))
    }

    /// `/readyz`: the database answers a query, waiting at most `timeout`
    /// for a connection.
    pub fn ping_within(&self, timeout: Duration) -> Result<(), StoreError> {
        let mut conn = self
            .pool
            .get_timeout(timeout)
            .map_err(|e| StoreError::Pool(e.to_string()))?;
        diesel::sql_query("SELECT 1").execute(&mut *conn)?;
        Ok(())
    }

    /// The database answers a query.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| {
            diesel::sql_query("SELECT 1").execute(c)?;
            Ok(())
        })
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Pool(e.to_string())
    }
}

fn run_migrations(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let result = match conn {
        AnyConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        AnyConnection::Postgresql(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(c)?;
            let r = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ());
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                .execute(c)?;
            r
        }
    };
    result.map_err(|e| StoreError::Migration(e.to_string()))
}

/// UTC instant → stored value (microsecond precision on both backends).
pub fn to_db(t: DateTime<Utc>) -> NaiveDateTime {
    let n = t.naive_utc();
    n.with_nanosecond(n.nanosecond() / 1_000 * 1_000)
        .unwrap_or(n)
}

/// Stored value → UTC instant.
pub fn from_db(n: NaiveDateTime) -> DateTime<Utc> {
    n.and_utc()
}

/// PostgreSQL text cannot hold NUL; mail and webhook bodies sometimes do.
/// Replaced the same way on both backends so they store the same text.
pub(crate) fn text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_left_inside_a_transaction_does_not_go_back_to_the_pool() {
        use diesel::connection::{Connection, TransactionManager};
        type Manager = <AnyConnection as Connection>::TransactionManager;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("k.db").display());
        let store = Store::open(&url).unwrap();
        for _ in 0..3 {
            let mut c = store.conn().unwrap();
            let depth = Manager::transaction_manager_status_mut(&mut c)
                .transaction_depth()
                .unwrap();
            assert_eq!(
                depth, None,
                "a pooled connection starts outside a transaction"
            );
            // Left inside it, as when a killed session's rollback fails.
            Manager::begin_transaction(&mut c).unwrap();
        }
    }

    #[test]
    fn urls_choose_the_backend_and_hide_passwords() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://data/k.db").unwrap(),
            DatabaseUrl::Sqlite("data/k.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap(),
            DatabaseUrl::Sqlite(":memory:".into())
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://u@h/db").unwrap().backend(),
            Backend::Postgres
        );
        let e = DatabaseUrl::parse("mysql://root:pw@h/db")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mysql://root:***@h/db"), "{e}");
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
    }

    /// Executions of `SELECT ?1 LIMIT ?2` on a fresh raw connection, bound
    /// anew each time as diesel does, that SQLite had to compile again.
    #[allow(unsafe_code)]
    fn reprepares_of_a_bound_limit(disable_qpsg: bool) -> i32 {
        use libsqlite3_sys as ffi;
        use std::ptr::{null, null_mut};
        // SAFETY: plain use of the C API on a private in-memory connection.
        unsafe {
            let mut db = null_mut();
            let rc = ffi::sqlite3_open_v2(
                c":memory:".as_ptr(),
                &mut db,
                ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
                null(),
            );
            assert_eq!(rc, ffi::SQLITE_OK);
            if disable_qpsg {
                ffi::sqlite3_db_config(
                    db,
                    ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
                    0 as std::ffi::c_int,
                    null_mut::<std::ffi::c_int>(),
                );
            }
            let mut stmt = null_mut();
            let rc = ffi::sqlite3_prepare_v3(
                db,
                c"SELECT ?1 LIMIT ?2".as_ptr(),
                -1,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                null_mut(),
            );
            assert_eq!(rc, ffi::SQLITE_OK);
            for i in 0..5 {
                ffi::sqlite3_bind_int64(stmt, 1, i);
                ffi::sqlite3_bind_int64(stmt, 2, 1);
                assert_eq!(ffi::sqlite3_step(stmt), ffi::SQLITE_ROW);
                ffi::sqlite3_reset(stmt);
            }
            let n = ffi::sqlite3_stmt_status(stmt, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
            ffi::sqlite3_finalize(stmt);
            ffi::sqlite3_close(db);
            n
        }
    }

    #[test]
    fn sqlite_reuses_statements_with_a_bound_limit() {
        // Opening a store registers the hook for every later connection.
        Store::open("sqlite::memory:").unwrap();
        assert_eq!(
            reprepares_of_a_bound_limit(false),
            0,
            "a rebound LIMIT recompiled the statement"
        );
        // The control shows the measurement sees what the hook prevents.
        assert!(reprepares_of_a_bound_limit(true) >= 4);
    }

    #[test]
    fn passwords_are_hidden_wherever_a_url_carries_them() {
        for (url, redacted) in [
            // An unescaped `@` in the password: the host is after the last one.
            ("postgres://u:p@ss@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://u:a@b@c@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=QuerySecret99",
                "postgres://u@h/db?password=***",
            ),
            (
                "postgres://h/db?sslmode=disable&password=QuerySecret99&sslpassword=K3y",
                "postgres://h/db?sslmode=disable&password=***&sslpassword=***",
            ),
            (
                "postgres://u:Pw1@h/db?PASSWORD=QuerySecret99",
                "postgres://u:***@h/db?PASSWORD=***",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("sqlite://data/k.db", "sqlite://data/k.db"),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
        assert_eq!(
            redact_in(
                "could not connect: bad option QuerySecret99 and p@ss",
                "postgres://u:p@ss@h/db?password=QuerySecret99"
            ),
            "could not connect: bad option *** and ***"
        );
    }

    #[test]
    fn instants_are_truncated_to_microseconds() {
        let t = DateTime::parse_from_rfc3339("2026-03-29T01:59:59.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(to_db(t).nanosecond(), 123_456_000);
        assert_eq!(from_db(to_db(t)).timestamp(), t.timestamp());
    }
}
