//! The same store behaviour, checked on SQLite and on PostgreSQL.

use chrono::{DateTime, Duration, TimeZone, Utc};
use keepword::contract::Timer;
use keepword::sla::{Direction, TicketStatus, TimerStatus};
use keepword::store::{
    self, Checkpoint, FiredStep, Inserted, NewConversation, NewMessage, NewOutbox, Store,
    StoreError, TimerUpdate,
};

/// What an instant reads back as: truncated to microseconds.
fn us(t: DateTime<Utc>) -> DateTime<Utc> {
    store::from_db(store::to_db(t))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn conversation(thread: &str, now: DateTime<Utc>) -> NewConversation {
    NewConversation {
        channel: "email".into(),
        thread_key: thread.into(),
        client_id: "acme".into(),
        subject: "Site down".into(),
        request_type: "urgent".into(),
        classification: "urgent: keyword `down` in subject".into(),
        contract_version: "v1".into(),
        status: TicketStatus::Open,
        channel_mismatch: true,
        opened_at: now,
        updated_at: now,
        subject_key: "site down".into(),
        opener: "jane@acme.com".into(),
        last_message_at: Some(now),
    }
}

fn message(
    conv: Option<i64>,
    external_id: &str,
    raw: Option<Vec<u8>>,
    now: DateTime<Utc>,
) -> NewMessage {
    NewMessage {
        conversation_id: conv,
        channel: "email".into(),
        external_id: external_id.into(),
        direction: Some(Direction::Inbound),
        sender: "jane@acme.com".into(),
        recipients: "support@example.com".into(),
        subject: "Site down".into(),
        body: "Grüße — the site is down ✓".into(),
        message_id: Some(external_id.into()),
        in_reply_to: None,
        refs: String::new(),
        raw,
        sent_at: now,
        received_at: now,
        status: None,
        awaiting_client: false,
    }
}

fn exercise(store: &Store) {
    store.ping().expect("ping");
    let now = at("2026-03-29T00:59:59.123456789Z");

    store
        .with(|c| {
            // Contract versions are kept once each, past ones included.
            assert!(store::record_contract_version(
                c, "v1", "Contract", "src1", now
            )?);
            assert!(!store::record_contract_version(
                c, "v1", "Contract", "src1", now
            )?);
            assert!(store::record_contract_version(
                c,
                "v2",
                "Contract",
                "src2",
                now + Duration::seconds(1)
            )?);
            let versions = store::contract_versions_list(c)?;
            assert_eq!(
                versions
                    .iter()
                    .map(|v| v.version.as_str())
                    .collect::<Vec<_>>(),
                ["v1", "v2"]
            );
            assert_eq!(store::contract_version(c, "v2")?.unwrap().source, "src2");

            store::upsert_client(c, "acme", "Acme", now)?;
            store::upsert_client(c, "acme", "ACME Corp", now)?;
            assert_eq!(store::client(c, "acme")?.unwrap().name, "ACME Corp");

            // One conversation per (channel, thread).
            let (opened, created) = store::open_conversation(c, &conversation("t1", now))?;
            assert!(created);
            let id = opened.id;
            let (again, created) = store::open_conversation(c, &conversation("t1", now))?;
            assert!(!created);
            assert_eq!(
                again, opened,
                "the existing row, as the new one was returned"
            );
            let row = store::conversation(c, id)?.unwrap();
            assert_eq!(row, opened, "RETURNING gives the row as stored");
            // Instants read back equal, to the microsecond, on both backends.
            let micros = store::from_db(store::to_db(now));
            assert_eq!(row.opened_at, micros);
            assert_ne!(micros, now, "the test instant has nanoseconds");
            assert!(row.channel_mismatch);
            store::set_conversation_status(c, id, TicketStatus::Solved, now)?;
            assert_eq!(store::conversation(c, id)?.unwrap().solved_at, Some(micros));

            // Messages are idempotent on (channel, external_id); raw bytes survive,
            // including bytes that are not UTF-8.
            let raw =
                b"Subject: =?iso-2022-jp?B?GyRCJUYlOSVIGyhC?=\r\n\r\n\xff\xfe\x00body".to_vec();
            let first = store::insert_message(
                c,
                &message(Some(id), "<m1@acme.com>", Some(raw.clone()), now),
            )?;
            assert!(matches!(first, Inserted::New(_)));
            let second = store::insert_message(c, &message(Some(id), "<m1@acme.com>", None, now))?;
            assert_eq!(second, Inserted::Duplicate(first.id()));
            let msgs = store::messages_of(c, id)?;
            assert_eq!(msgs.len(), 1);
            assert_eq!(msgs[0].raw.as_deref(), Some(raw.as_slice()));
            assert_eq!(msgs[0].body, "Grüße — the site is down ✓");

            // Timers: replaced in place; the scheduler reads the earliest running due.
            let due = now + Duration::minutes(30);
            let mut t = TimerUpdate {
                conversation_id: id,
                kind: Timer::FirstResponse,
                seq: 0,
                status: TimerStatus::Running,
                started_at: now,
                due_at: Some(due),
                stopped_at: None,
            };
            store::save_timer(c, &t)?;
            t.kind = Timer::Resolution;
            t.due_at = Some(now + Duration::hours(8));
            store::save_timer(c, &t)?;
            let running_due = |c: &mut store::AnyConnection| -> Result<_, store::StoreError> {
                Ok(store::timers_of(c, id)?
                    .into_iter()
                    .filter(|t| t.status == TimerStatus::Running)
                    .filter_map(|t| t.due_at)
                    .min())
            };
            assert_eq!(running_due(c)?, Some(us(due)));
            t.kind = Timer::FirstResponse;
            t.status = TimerStatus::Met;
            t.stopped_at = Some(now);
            store::save_timer(c, &t)?;
            assert_eq!(store::timers_of(c, id)?.len(), 2);
            assert_eq!(running_due(c)?, Some(us(now + Duration::hours(8))));

            // An escalation step fires once.
            let step = FiredStep {
                conversation_id: id,
                timer: Timer::FirstResponse,
                timer_seq: 0,
                step: "at:50%".into(),
                due_at: due,
                fired_at: due,
                late: false,
            };
            assert!(store::record_fired_step(c, &step)?);
            assert!(!store::record_fired_step(c, &step)?);
            assert_eq!(store::fired_step_count(c, id)?, 1);

            // The outbox de-duplicates and counts what is pending.
            let n = NewOutbox {
                kind: "email".into(),
                target: "lead@example.com".into(),
                payload: "{}".into(),
                dedupe_key: "ack:1".into(),
                created_at: now,
                available_at: now,
            };
            assert!(store::enqueue(c, &n)?);
            assert!(!store::enqueue(c, &n)?);
            assert_eq!(store::outbox_pending(c)?, 1);

            // Mailbox progress is an upsert.
            assert_eq!(store::checkpoint(c, "support", "INBOX")?, None);
            store::save_checkpoint(
                c,
                "support",
                "INBOX",
                Checkpoint {
                    uidvalidity: 7,
                    last_uid: 10,
                },
                now,
            )?;
            store::save_checkpoint(
                c,
                "support",
                "INBOX",
                Checkpoint {
                    uidvalidity: 7,
                    last_uid: 42,
                },
                now,
            )?;
            assert_eq!(
                store::checkpoint(c, "support", "INBOX")?,
                Some(Checkpoint {
                    uidvalidity: 7,
                    last_uid: 42
                })
            );

            // Input that could not be processed is kept raw.
            store::reject_input(
                c,
                "email",
                "unparseable",
                "no header block",
                b"\x00\x01garbage",
                now,
            )?;
            let rejected = store::rejected_inputs(c, 10)?;
            assert_eq!(rejected.len(), 1);
            assert_eq!(rejected[0].raw, b"\x00\x01garbage");
            Ok(())
        })
        .expect("store operations");

    // A failing transaction leaves nothing behind.
    let r: Result<(), StoreError> = store.transaction(|c| {
        store::enqueue(
            c,
            &NewOutbox {
                kind: "email".into(),
                target: "x@example.com".into(),
                payload: "{}".into(),
                dedupe_key: "rolled-back".into(),
                created_at: now,
                available_at: now,
            },
        )?;
        Err(StoreError::Query(
            diesel::result::Error::RollbackTransaction,
        ))
    });
    assert!(r.is_err());
    let pending = store.with(store::outbox_pending).unwrap();
    assert_eq!(pending, 1, "the rolled-back row must not be there");

    // Foreign keys are enforced on both backends (SQLite needs a PRAGMA for it).
    let orphan =
        store.with(|c| store::insert_message(c, &message(Some(999_999), "<orphan@x>", None, now)));
    assert!(
        orphan.is_err(),
        "a message for a missing conversation must be refused"
    );

    // Concurrent writers: several threads insert at once; every row lands once.
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    store
                        .transaction(|c| {
                            // Read first, write later: the pattern that makes a
                            // deferred SQLite transaction fail under contention.
                            store::outbox_pending(c)?;
                            store::insert_message(
                                c,
                                &message(
                                    None,
                                    &format!("<c{}@x>", i % 20 + t),
                                    None,
                                    Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
                                ),
                            )
                        })
                        .expect("concurrent insert");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// The store behaviour on one backend, then a re-open that runs no
/// migration twice and keeps the data.
fn store_round_trip(url: &str) {
    let expected = if url.starts_with("postgres") {
        store::Backend::Postgres
    } else {
        store::Backend::Sqlite
    };
    let store = Store::open(url).expect("open the store");
    assert_eq!(store.backend(), expected);
    exercise(&store);
    drop(store);
    let store = Store::open(url).expect("reopen the store");
    assert_eq!(store.with(store::outbox_pending).unwrap(), 1);
}

crate::both_backends!(store_round_trip);

#[test]
fn connection_errors_are_the_real_ones() {
    let e = Store::open("postgres://nobody@127.0.0.1:1/none")
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        e.contains("127.0.0.1") || e.to_lowercase().contains("connect"),
        "{e}"
    );
    assert!(!e.contains("multiconnection"), "{e}");
    let e = Store::open("mysql://x@y/z")
        .err()
        .expect("must fail")
        .to_string();
    assert!(e.contains("sqlite://"), "{e}");
}

/// Columns of `schema.rs`, parsed from its `table!` blocks: table → column →
/// (diesel type without `Nullable`, nullable).
fn schema_rs()
-> std::collections::BTreeMap<String, std::collections::BTreeMap<String, (String, bool)>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/schema.rs"))
        .unwrap();
    let mut tables = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(head) = line.strip_suffix('{') {
            if let Some((name, _)) = head.split_once(" (") {
                current = Some(name.trim().to_string());
                tables.insert(name.trim().to_string(), std::collections::BTreeMap::new());
            }
            continue;
        }
        if line.starts_with('}') {
            current = None;
            continue;
        }
        let (Some(table), Some((col, ty))) = (&current, line.split_once(" -> ")) else {
            continue;
        };
        let ty = ty.trim_end_matches(',');
        let (ty, nullable) = match ty.strip_prefix("Nullable<") {
            Some(inner) => (inner.trim_end_matches('>'), true),
            None => (ty, false),
        };
        tables
            .get_mut(table)
            .unwrap()
            .insert(col.trim().to_string(), (ty.to_string(), nullable));
    }
    tables
}

/// What each diesel type is stored as, per backend (lower-case type names
/// as SQLite's `PRAGMA table_info` and PostgreSQL's `information_schema`
/// report them).
fn sql_types(diesel: &str, postgres: bool) -> &'static [&'static str] {
    match (diesel, postgres) {
        ("BigInt", true) => &["bigint"],
        ("BigInt", false) => &["bigint", "integer"],
        ("Integer", true) => &["integer"],
        ("Integer", false) => &["integer", "int"],
        ("Text", _) => &["text"],
        ("Bool", true) => &["boolean"],
        ("Bool", false) => &["boolean", "bool"],
        ("Timestamp", true) => &["timestamp without time zone"],
        ("Timestamp", false) => &["timestamp"],
        ("Binary", true) => &["bytea"],
        ("Binary", false) => &["blob"],
        ("Date", _) => &["date"],
        _ => &[],
    }
}

#[derive(diesel::QueryableByName, Debug)]
struct SqliteColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    type_: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    notnull: i32,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pk: i32,
}

#[derive(diesel::QueryableByName, Debug)]
struct PgColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    data_type: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    is_nullable: String,
}

/// CI checks what can drift (issue 7): the hand-written `schema.rs` against
/// the tables the migrations build, column by column, on both backends.
fn schema_matches_migrations(url: &str) {
    use diesel::RunQueryDsl;
    let store = Store::open(url).unwrap();
    let expected = schema_rs();
    assert!(expected.len() >= 9, "{expected:?}");
    let actual: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, (String, bool)>,
    > = store
        .with(|c| {
            let mut out = std::collections::BTreeMap::new();
            match c {
                store::AnyConnection::Sqlite(c) => {
                    for table in expected.keys() {
                        let cols: Vec<SqliteColumn> = diesel::sql_query(format!(
                            "SELECT name, type AS type_, \"notnull\", pk \
                                     FROM pragma_table_info('{table}')"
                        ))
                        .load(c)?;
                        out.insert(
                            table.clone(),
                            cols.into_iter()
                                // SQLite's INTEGER PRIMARY KEY is never NULL.
                                .map(|k| {
                                    (
                                        k.name,
                                        (k.type_.to_lowercase(), k.notnull == 0 && k.pk == 0),
                                    )
                                })
                                .collect(),
                        );
                    }
                }
                store::AnyConnection::Postgresql(c) => {
                    let cols: Vec<PgColumn> = diesel::sql_query(
                        "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                             data_type::text AS data_type, is_nullable::text AS is_nullable \
                             FROM information_schema.columns WHERE table_schema = 'public'",
                    )
                    .load(c)?;
                    for k in cols {
                        out.entry(k.table_name)
                            .or_insert_with(std::collections::BTreeMap::new)
                            .insert(k.column_name, (k.data_type, k.is_nullable == "YES"));
                    }
                }
            }
            Ok(out)
        })
        .unwrap();
    let postgres = url.starts_with("postgres");
    for (table, columns) in &expected {
        let got = actual
            .get(table)
            .unwrap_or_else(|| panic!("table {table} of schema.rs is not in the database"));
        let names = |m: &std::collections::BTreeMap<String, (String, bool)>| {
            m.keys().cloned().collect::<Vec<_>>()
        };
        assert_eq!(names(columns), names(got), "columns of {table}");
        for (col, (ty, nullable)) in columns {
            let (sql, sql_nullable) = &got[col];
            assert!(
                sql_types(ty, postgres).contains(&sql.as_str()),
                "{table}.{col}: schema.rs says {ty}, the database has {sql}"
            );
            assert_eq!(nullable, sql_nullable, "{table}.{col}: nullability");
        }
    }
    let extra: Vec<&String> = actual
        .keys()
        .filter(|t| !expected.contains_key(*t) && !t.starts_with("__diesel"))
        .collect();
    assert!(extra.is_empty(), "tables missing from schema.rs: {extra:?}");
}

crate::both_backends!(schema_matches_migrations);

/// Timers written in a batch (one multi-row upsert on PostgreSQL) read back
/// as written, and a timer that no longer stops has its `stopped_at`
/// cleared: a `None` is a NULL, not "leave the column as it was".
fn timers_in_batches(url: &str) {
    let store = Store::open(url).unwrap();
    let now = us(at("2026-12-01T09:00:00Z"));
    store
        .with(|c| {
            store::record_contract_version(c, "v1", "shipped", "src1", now)?;
            store::upsert_client(c, "acme", "ACME Corp", now)?;
            let (conv, _) = store::open_conversation(c, &conversation("batch", now))?;
            let timer = |seq: u32, status, stopped: Option<DateTime<Utc>>| TimerUpdate {
                conversation_id: conv.id,
                kind: Timer::NextResponse,
                seq,
                status,
                started_at: now,
                due_at: Some(now + Duration::hours(1)),
                stopped_at: stopped,
            };
            let first: Vec<TimerUpdate> = (0..3)
                .map(|s| timer(s, TimerStatus::Met, Some(now + Duration::minutes(10))))
                .collect();
            store::save_timers(c, &first)?;
            assert_eq!(store::timers_of(c, conv.id)?.len(), 3);
            // Seq 1 runs again (an earlier reply was re-dated), seq 3 is new.
            store::save_timers(
                c,
                &[
                    timer(1, TimerStatus::Running, None),
                    timer(3, TimerStatus::Running, None),
                ],
            )?;
            let rows = store::timers_of(c, conv.id)?;
            let got: Vec<(u32, TimerStatus, Option<DateTime<Utc>>)> = rows
                .iter()
                .map(|t| (t.seq, t.status, t.stopped_at))
                .collect();
            let stopped = Some(now + Duration::minutes(10));
            assert_eq!(
                got,
                vec![
                    (0, TimerStatus::Met, stopped),
                    (1, TimerStatus::Running, None),
                    (2, TimerStatus::Met, stopped),
                    (3, TimerStatus::Running, None),
                ]
            );
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

crate::both_backends!(timers_in_batches);

/// Conversation states written in a batch (one `UPDATE … FROM unnest` on
/// PostgreSQL) read back as each conversation's own, NULLs included, and
/// conversations outside the batch are untouched.
fn conversation_states_in_batches(url: &str) {
    use keepword::sla::Health;
    let store = Store::open(url).unwrap();
    let now = us(at("2026-12-01T09:00:00Z"));
    let later = now + Duration::hours(2);
    store
        .with(|c| {
            store::record_contract_version(c, "v1", "shipped", "src1", now)?;
            store::upsert_client(c, "acme", "ACME Corp", now)?;
            let ids: Vec<i64> = (0..4)
                .map(|i| {
                    store::open_conversation(c, &conversation(&format!("s{i}"), now))
                        .map(|(r, _)| r.id)
                })
                .collect::<Result<_, _>>()?;
            let state = |i: i64| store::DerivedState {
                status: if i == 1 {
                    TicketStatus::Solved
                } else {
                    TicketStatus::Open
                },
                health: if i == 2 {
                    Health::Breached
                } else {
                    Health::OnTrack
                },
                next_check_at: (i != 1).then(|| now + Duration::minutes(i)),
                solved_at: (i == 1).then_some(now),
                last_message_at: Some(now + Duration::seconds(i)),
                next_due: (i != 1).then(|| (now + Duration::hours(i), Timer::FirstResponse)),
                paused_since: None,
            };
            let batch: Vec<_> = ids[..3]
                .iter()
                .map(|&id| (id, state(id - ids[0])))
                .collect();
            store::update_conversation_states(c, &batch, later)?;
            for (k, &id) in ids.iter().enumerate() {
                let row = store::conversation(c, id)?.unwrap();
                let got = (
                    row.status,
                    row.health,
                    row.next_check_at,
                    row.solved_at,
                    row.next_due_at,
                    row.next_timer,
                    row.updated_at,
                );
                if k < 3 {
                    let d = state(k as i64);
                    assert_eq!(
                        got,
                        (
                            d.status,
                            d.health,
                            d.next_check_at,
                            d.solved_at,
                            d.next_due.map(|(t, _)| t),
                            d.next_due.map(|(_, k)| k),
                            later
                        ),
                        "conversation {k}"
                    );
                    assert_eq!(row.last_message_at, d.last_message_at);
                } else {
                    assert_eq!(row.updated_at, now, "outside the batch: untouched");
                    assert_eq!(row.health, Health::OnTrack);
                }
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

crate::both_backends!(conversation_states_in_batches);

/// On PostgreSQL a batch's inserts are prepared statements, kept on the
/// connection and run again: not parsed and planned by the database on
/// every batch (diesel by itself caches none of them). Two batches of the
/// same size on one connection leave one prepared insert per table, run
/// twice; a batch bigger than the cached shapes is prepared unnamed.
#[test]
fn postgres_batch_inserts_are_prepared_once() {
    let db = crate::common::FreshPostgres::new();
    let store = Store::open(&db.url).expect("open the store");
    let now = at("2026-03-30T10:00:00Z");
    let state = |n: &NewConversation| store::DerivedState {
        status: TicketStatus::Open,
        health: keepword::sla::Health::OnTrack,
        next_check_at: Some(n.opened_at + Duration::hours(1)),
        solved_at: None,
        last_message_at: n.last_message_at,
        next_due: Some((n.opened_at + Duration::hours(2), Timer::FirstResponse)),
        paused_since: None,
    };
    #[derive(diesel::QueryableByName, Debug)]
    struct Prepared {
        #[diesel(sql_type = diesel::sql_types::Text)]
        statement: String,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        generic_plans: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        custom_plans: i64,
    }
    store
        .with(|c| {
            store::record_contract_version(c, "v1", "Contract", "src", now)?;
            store::upsert_client(c, "acme", "Acme", now)?;
            for round in 0..7 {
                let new: Vec<_> = (0..3)
                    .map(|i| {
                        let n = conversation(&format!("r{round}-{i}"), now);
                        let mut s = state(&n);
                        if (round + i) % 3 == 0 {
                            s.next_check_at = None;
                        }
                        (n, s)
                    })
                    .collect();
                let rows = store::open_conversations(c, &new)?;
                assert!(rows.iter().all(Option::is_some), "all three are new");
                let msgs: Vec<_> = rows
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, r)| {
                        // Mixed: one with raw bytes and a reply header, one
                        // without; NULLs do not change the statement.
                        let mut m = message(Some(r.id), &format!("m{round}-{i}"), None, now);
                        if (round + i) % 2 == 0 {
                            m.raw = Some(b"raw".to_vec());
                            m.in_reply_to = Some("<x@example.com>".into());
                        }
                        m
                    })
                    .collect();
                store::insert_messages(c, &msgs)?;
            }
            // One batch beyond the cached shapes.
            let big: Vec<_> = (0..store::CACHED_ROWS + 1)
                .map(|i| {
                    let n = conversation(&format!("big-{i}"), now);
                    let s = state(&n);
                    (n, s)
                })
                .collect();
            store::open_conversations(c, &big)?;
            let prepared: Vec<Prepared> = diesel::RunQueryDsl::load(
                diesel::sql_query(
                    "SELECT statement, generic_plans, custom_plans \
                     FROM pg_prepared_statements WHERE statement LIKE 'INSERT%'",
                ),
                c,
            )?;
            let of = |table: &str| -> Vec<&Prepared> {
                prepared
                    .iter()
                    .filter(|p| p.statement.starts_with(&format!("INSERT INTO \"{table}\"")))
                    .collect()
            };
            for table in ["conversations", "messages", "message_bodies"] {
                let p = of(table);
                assert_eq!(p.len(), 1, "{table}: one prepared shape: {prepared:?}");
                assert_eq!(
                    p[0].generic_plans + p[0].custom_plans,
                    7,
                    "{table}: run seven times, prepared once"
                );
                // PostgreSQL settles on a generic plan after five runs.
                assert!(p[0].generic_plans >= 1, "{table}: {:?}", p[0]);
            }
            Ok(())
        })
        .unwrap();
    // The opened state is in the rows, as given.
    let rows = store
        .with(|c| {
            store::conversations_by_threads(
                c,
                &[("email", "r0-0"), ("email", "r0-1"), ("email", "big-3")],
            )
        })
        .unwrap();
    assert_eq!(rows[&("email".into(), "r0-0".into())].next_check_at, None);
    for row in rows.values().filter(|r| r.thread_key != "r0-0") {
        assert_eq!(row.next_check_at, Some(now + Duration::hours(1)));
        assert_eq!(row.next_due_at, Some(now + Duration::hours(2)));
        assert_eq!(row.next_timer, Some(Timer::FirstResponse));
    }
    assert_eq!(rows.len(), 3);
}

/// Mail is kept compressed with lz4 on PostgreSQL: its default, pglz, was two
/// thirds of the database's CPU while ingesting mail with attachments. A
/// large, compressible raw mail and body read back whole, and the values
/// stored are lz4.
#[test]
fn postgres_mail_is_compressed_with_lz4() {
    let db = crate::common::FreshPostgres::new();
    let store = Store::open(&db.url).expect("open the store");
    let now = at("2026-03-30T10:00:00Z");
    let raw: Vec<u8> = (0..4_000)
        .flat_map(|i| {
            format!("line {i} of an attachment, base64-ish QUJDREVGR0g=\r\n").into_bytes()
        })
        .collect();
    #[derive(diesel::QueryableByName)]
    struct Method {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        raw: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        body: Option<String>,
    }
    let (methods, stored) = store
        .with(|c| {
            store::record_contract_version(c, "v1", "Contract", "src", now)?;
            store::upsert_client(c, "acme", "Acme", now)?;
            let (conv, _) = store::open_conversation(c, &conversation("lz4", now))?;
            let mut m = message(Some(conv.id), "big", None, now);
            m.raw = Some(raw.clone());
            m.body = "A long body. ".repeat(2_000);
            store::insert_messages(c, &[m])?;
            let methods: Method = diesel::RunQueryDsl::get_result(
                diesel::sql_query(
                    "SELECT pg_column_compression(raw) AS raw, \
                       pg_column_compression(body) AS body FROM message_bodies",
                ),
                c,
            )?;
            Ok((methods, store::messages_of(c, conv.id)?))
        })
        .unwrap();
    assert_eq!(methods.raw.as_deref(), Some("lz4"));
    assert_eq!(methods.body.as_deref(), Some("lz4"));
    assert_eq!(stored[0].raw.as_deref(), Some(raw.as_slice()));
    assert_eq!(stored[0].body, "A long body. ".repeat(2_000));
}

/// `len` bytes that do not compress (xorshift64*), the same for a `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// A SQLite file's log is copied into the database by a thread of the
/// store's own, not by the commit that happens to take it past SQLite's
/// threshold (that stalled the one writer): the pooled connections do not
/// checkpoint, and yet the written pages reach the database file soon.
#[test]
fn sqlite_checkpoints_beside_the_writer() {
    let (dir, url) = crate::common::fresh_sqlite();
    let store = Store::open(&url).expect("open the store");
    let now = at("2026-03-30T10:00:00Z");
    #[derive(diesel::QueryableByName)]
    struct Pages {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        wal_autocheckpoint: i32,
    }
    let auto: Pages = store
        .with(|c| {
            Ok(diesel::RunQueryDsl::get_result(
                diesel::sql_query("PRAGMA wal_autocheckpoint"),
                c,
            )?)
        })
        .unwrap();
    assert_eq!(auto.wal_autocheckpoint, 0, "commits do not checkpoint");
    let file = dir.path().join("keepword.db");
    let before = std::fs::metadata(&file).unwrap().len();
    // About 8 MiB of mail, in several commits.
    for round in 0..8 {
        store
            .transaction(|c| {
                store::record_contract_version(c, "v1", "Contract", "src", now)?;
                store::upsert_client(c, "acme", "Acme", now)?;
                let (conv, _) = store::open_conversation(c, &conversation("big", now))?;
                let msgs: Vec<NewMessage> = (0..32)
                    .map(|i| {
                        message(
                            Some(conv.id),
                            &format!("m{round}-{i}"),
                            // Incompressible: raw mail is stored lz4-compressed.
                            Some(noise(32 * 1024, (round * 32 + i) as u64)),
                            now,
                        )
                    })
                    .collect();
                store::insert_messages(c, &msgs)?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let size = std::fs::metadata(&file).unwrap().len();
        if size > before + 8 * 1024 * 1024 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {size} bytes (from {before}): nothing checkpointed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(store);
}

#[derive(diesel::QueryableByName, Debug)]
struct Synchronous {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    synchronous: i32,
}

/// An accepted input is durable before it is acknowledged: every SQLite
/// connection of the store, the writer's included, commits with
/// `synchronous = FULL` (2), which survives a power cut, not only a killed
/// process, in WAL mode.
#[test]
fn sqlite_commits_reach_the_disk_before_they_return() {
    use diesel::RunQueryDsl;
    let (_dir, url) = crate::common::fresh_sqlite();
    let store = Store::open(&url).unwrap();
    for _ in 0..3 {
        let got = store
            .with(|c| match c {
                keepword::store::AnyConnection::Sqlite(c) => {
                    Ok(diesel::sql_query("PRAGMA synchronous").get_result::<Synchronous>(c)?)
                }
                _ => unreachable!("a SQLite store"),
            })
            .unwrap();
        assert_eq!(got.synchronous, 2, "PRAGMA synchronous is not FULL");
    }
}

/// A client's open requests: every unsolved one counted, the page the one
/// due soonest first (ties by id), those with nothing due after them
/// oldest first, on both sides of the page's end; solved ones and other
/// clients' never. On SQLite the page is read in the index's order, not
/// sorted: a sort reads every open conversation of the client first.
fn a_clients_open_requests_are_listed_due_soonest_first(url: &str) {
    use keepword::sla::Health;
    let store = Store::open(url).unwrap();
    let now = us(at("2026-12-01T09:00:00Z"));
    // (client, solved, due in hours): ties at 3 h; nothing due for three.
    let plan: [(&str, bool, Option<i64>); 12] = [
        ("acme", false, Some(5)),
        ("acme", false, None),
        ("acme", false, Some(3)),
        ("globex", false, Some(1)),
        ("acme", true, None),
        ("acme", false, Some(3)),
        ("acme", false, None),
        ("acme", true, Some(2)),
        ("acme", false, Some(8)),
        ("globex", false, None),
        ("acme", false, None),
        ("acme", false, Some(4)),
    ];
    let ids = store
        .with(|c| {
            store::record_contract_version(c, "v1", "shipped", "src1", now)?;
            store::upsert_client(c, "acme", "ACME Corp", now)?;
            store::upsert_client(c, "globex", "Globex", now)?;
            let mut ids = Vec::new();
            let mut states = Vec::new();
            for (i, (client, solved, due)) in plan.iter().enumerate() {
                let mut new = conversation(&format!("open-{i}"), now);
                new.client_id = (*client).into();
                let id = store::open_conversation(c, &new)?.0.id;
                ids.push(id);
                states.push((
                    id,
                    store::DerivedState {
                        status: if *solved {
                            TicketStatus::Solved
                        } else {
                            TicketStatus::Open
                        },
                        health: Health::OnTrack,
                        next_check_at: None,
                        solved_at: solved.then_some(now),
                        last_message_at: Some(now),
                        next_due: due.map(|h| (now + Duration::hours(h), Timer::FirstResponse)),
                        paused_since: None,
                    },
                ));
            }
            store::update_conversation_states(c, &states, now)?;
            Ok::<_, StoreError>(ids)
        })
        .unwrap();
    let mut expected: Vec<(bool, Option<i64>, i64)> = plan
        .iter()
        .zip(&ids)
        .filter(|((client, solved, _), _)| *client == "acme" && !solved)
        .map(|((_, _, due), id)| (due.is_none(), *due, *id))
        .collect();
    expected.sort();
    let expected: Vec<i64> = expected.into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(expected.len(), 8);
    for limit in [1, 3, 5, 6, 8, 50] {
        let (rows, total) = store
            .with(|c| store::client_open(c, "acme", limit))
            .unwrap();
        assert_eq!(total, 8, "limit {limit}");
        let got: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let want: Vec<i64> = expected.iter().copied().take(limit as usize).collect();
        assert_eq!(got, want, "limit {limit}");
    }
    let (rows, total) = store
        .with(|c| store::client_open(c, "initech", 50))
        .unwrap();
    assert!(rows.is_empty() && total == 0);

    if store.backend() == store::Backend::Sqlite {
        #[derive(diesel::QueryableByName)]
        struct Step {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        let plan: Vec<String> = store
            .with(|c| {
                let store::AnyConnection::Sqlite(c) = c else {
                    unreachable!()
                };
                use diesel::RunQueryDsl;
                Ok::<_, StoreError>(
                    // The statement as diesel writes it, its values bound: a
                    // bound LIMIT made the planner read every conversation
                    // of the client through `conversations_client_subject`.
                    diesel::sql_query(
                        "EXPLAIN QUERY PLAN SELECT `conversations`.`id` FROM `conversations` \
                         WHERE (((`conversations`.`client_id` = ?) \
                         AND conversations.status <> 'solved') \
                         AND (`conversations`.`next_due_at` IS NOT NULL)) \
                         ORDER BY `conversations`.`next_due_at` ASC, `conversations`.`id` ASC \
                         LIMIT ?",
                    )
                    .bind::<diesel::sql_types::Text, _>("acme")
                    .bind::<diesel::sql_types::BigInt, _>(50_i64)
                    .load::<Step>(c)?
                    .into_iter()
                    .map(|s| s.detail)
                    .collect(),
                )
            })
            .unwrap();
        let plan = plan.join("; ");
        assert!(plan.contains("conversations_client_open"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "sorted: {plan}");
    }
}

crate::both_backends!(a_clients_open_requests_are_listed_due_soonest_first);
