//! The compliance report from per-day summaries equals the row tally, on
//! both backends: before the rebuild job ran (every day stale), after it
//! ran, and after further writes (a timer settles, a conversation
//! reclassified, a retention run, an erasure) with and without the job
//! running again; for whole periods, periods cut at midnight and periods
//! that start and end within a day.

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::RunQueryDsl;
use keepword::config::Days;
use keepword::ingest::IncomingEvent;
use keepword::service::erasure::{self, ErasureRequest};
use keepword::service::{ComplianceRow, Service};
use keepword::sla::{Direction, TicketStatus};

use crate::common;

/// The row tally of `[from, to)`, without the drill-down's ids.
fn row_tally(s: &Service, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<ComplianceRow> {
    s.reads
        .compliance_with_ids(from, to)
        .unwrap()
        .into_iter()
        .map(|mut r| {
            r.ids.clear();
            r
        })
        .collect()
}

/// The periods compared: the whole history, a week cut at midnight, and
/// one that starts and ends in the middle of a day.
fn periods() -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let start = crate::compliance::history()[0].0;
    vec![
        (
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
        ),
        (
            Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 9, 0, 0, 0).unwrap(),
        ),
        (
            start + Duration::hours(30),
            start + Duration::days(8) + Duration::hours(5),
        ),
        // Within one day.
        (
            start + Duration::days(2) + Duration::hours(1),
            start + Duration::days(2) + Duration::hours(9),
        ),
    ]
}

/// The summary report equals the row tally for every period; returns the
/// whole period's rows.
fn same(s: &Service, when: &str) -> Vec<ComplianceRow> {
    for (from, to) in periods() {
        assert_eq!(
            s.reads.compliance(from, to).unwrap(),
            row_tally(s, from, to),
            "{when}: {from}..{to}"
        );
    }
    let (from, to) = periods()[0];
    let rows = s.reads.compliance(from, to).unwrap();
    assert!(rows.iter().all(|r| r.ids.is_empty()), "{when}: no ids");
    // The drill-down's rows name the conversations behind each figure.
    for r in s.reads.compliance_with_ids(from, to).unwrap() {
        let ids = |k: &str| r.ids.get(k).map_or(0, Vec::len);
        assert_eq!(ids("all"), r.conversations, "{when}: {r:?}");
        assert!(
            ids("met") <= r.met && ids("missed") <= r.missed,
            "{when}: {r:?}"
        );
        assert_eq!(ids("breached") > 0, r.breached > 0, "{when}: {r:?}");
    }
    rows
}

/// Runs the rebuild until no day is stale; how many days it rebuilt.
pub(crate) fn rebuild(s: &Service) -> usize {
    let mut n = 0;
    loop {
        let round = s.deadlines.rebuild_tally_days(3).unwrap();
        n += round.rebuilt;
        if round.found == 0 {
            assert_eq!(s.deadlines.tally_stale_days().unwrap(), 0);
            return n;
        }
    }
}

pub(crate) fn stale(s: &Service) -> i64 {
    s.deadlines.tally_stale_days().unwrap()
}

pub(crate) fn sql(s: &Service, q: &str) -> usize {
    s.core
        .store()
        .with(|c| Ok(diesel::sql_query(q).execute(c)?))
        .unwrap()
}

pub(crate) fn event(
    key: &str,
    thread: &str,
    direction: Option<Direction>,
    at: DateTime<Utc>,
) -> IncomingEvent {
    IncomingEvent {
        idempotency_key: key.into(),
        channel: "email".into(),
        thread: thread.into(),
        direction,
        from: "peter@initech.example".into(),
        client: Some("initech".into()),
        client_hint: None,
        subject: "The export is broken".into(),
        body: "It fails.".into(),
        priority: None,
        status: None,
        awaiting_client: false,
        at,
    }
}

/// The history of the compliance test (met, missed, never answered) by
/// mail, and by events: conversations answered and followed up (next
/// responses), one waiting on the client (paused), one marked pending.
pub(crate) fn load(s: &Service) -> DateTime<Utc> {
    let until = crate::compliance::ingest_history(s);
    let start = crate::compliance::history()[0].0;
    for i in 0..6i64 {
        let thread = format!("initech-{i}");
        let at = start + Duration::hours(7 + 19 * i);
        let key = |k: &str| format!("{thread}-{k}");
        let rec = |ev: IncomingEvent| {
            let at = ev.at;
            s.intake.record_event(ev, None, at).unwrap()
        };
        rec(event(&key("in"), &thread, Some(Direction::Inbound), at));
        rec(event(
            &key("out"),
            &thread,
            Some(Direction::Outbound),
            at + Duration::minutes(40 + 90 * i),
        ));
        rec(event(
            &key("again"),
            &thread,
            Some(Direction::Inbound),
            at + Duration::hours(3),
        ));
        match i % 3 {
            0 => {
                rec(event(
                    &key("answer"),
                    &thread,
                    Some(Direction::Outbound),
                    at + Duration::hours(4 + 6 * i),
                ));
            }
            1 => {
                let mut ev = event(
                    &key("ask"),
                    &thread,
                    Some(Direction::Outbound),
                    at + Duration::hours(4),
                );
                ev.awaiting_client = true;
                rec(ev);
            }
            _ => {
                let mut ev = event(&key("pending"), &thread, None, at + Duration::hours(5));
                ev.status = Some(TicketStatus::Pending);
                rec(ev);
            }
        }
    }
    // Overdue timers breach.
    s.deadlines.due_work(until + Duration::days(3)).unwrap();
    until
}

fn statuses(s: &Service) -> Vec<String> {
    use diesel::prelude::*;
    use keepword::store::schema::timers;
    s.core
        .store()
        .with(|c| {
            Ok(timers::table
                .select(timers::status)
                .distinct()
                .order(timers::status)
                .load::<String>(c)?)
        })
        .unwrap()
}

fn summaries_equal_the_row_tally(url: &str) {
    let s = common::shipped_service(url);
    let until = load(&s);
    let kinds = statuses(&s);
    for k in ["met", "missed", "breached", "paused", "running"] {
        assert!(kinds.iter().any(|x| x == k), "no {k} timer: {kinds:?}");
    }

    // Before the job ran: every day with timers stale, all counted from rows.
    assert!(stale(&s) > 5, "{}", stale(&s));
    let first = same(&s, "before the job ran");
    assert!(first.iter().any(|r| r.met > 0 && r.missed > 0));
    assert!(first.iter().any(|r| r.breached > 0));
    assert!(
        first
            .iter()
            .any(|r| r.timer == "next response" && r.p50.is_some())
    );

    // After it: no day stale, every figure from the summaries.
    assert!(rebuild(&s) > 5);
    assert_eq!(same(&s, "after the job ran"), first);
    assert_eq!(rebuild(&s), 0, "nothing to rebuild twice");
    // The report does read the summaries now.
    assert!(sql(&s, "UPDATE tally_days SET met = met + 1000") > 0);
    assert_ne!(
        s.reads.compliance(periods()[0].0, periods()[0].1).unwrap(),
        first
    );
    sql(&s, "UPDATE tally_days SET met = met - 1000");
    assert_eq!(
        s.reads.compliance(periods()[0].0, periods()[0].1).unwrap(),
        first
    );

    // A timer settles: the running follow-up of one conversation answered.
    s.intake
        .record_event(
            event(
                "initech-2-late",
                "initech-2",
                Some(Direction::Outbound),
                until,
            ),
            None,
            until,
        )
        .unwrap();
    assert!(stale(&s) > 0, "a settled timer marks its day");
    let settled = same(&s, "a timer settled, before the job");
    assert_ne!(settled, first, "the answer counts");
    rebuild(&s);
    assert_eq!(same(&s, "a timer settled, after the job"), settled);

    // A settled timer's status changed behind the service's back: only the
    // trigger can tell (a summary read without it would still say met).
    assert_eq!(
        sql(
            &s,
            "UPDATE timers SET status = 'missed' WHERE id = \
             (SELECT min(id) FROM timers WHERE status = 'met' AND kind = 'first_response')"
        ),
        1
    );
    assert_eq!(stale(&s), 1, "the timer's day");
    let changed = same(&s, "a status changed");
    assert_ne!(changed, settled);
    rebuild(&s);
    assert_eq!(same(&s, "a status changed, after the job"), changed);
    // A timer's stop moved (its reply time), one deleted.
    sql(
        &s,
        "UPDATE timers SET stopped_at = started_at WHERE id = \
         (SELECT max(id) FROM timers WHERE status = 'met' AND kind = 'next_response')",
    );
    sql(
        &s,
        "DELETE FROM timers WHERE id = (SELECT max(id) FROM timers WHERE kind = 'resolution')",
    );
    assert!(stale(&s) > 0);
    same(&s, "a stop moved and a timer deleted");
    rebuild(&s);
    same(&s, "a stop moved and a timer deleted, after the job");
    // A state change that counts nothing marks nothing.
    sql(&s, "UPDATE timers SET due_at = due_at");
    sql(
        &s,
        "UPDATE conversations SET health = health, subject = subject",
    );
    assert_eq!(stale(&s), 0, "nothing the tally reads changed");

    // A conversation reclassified, one moved to another client, one moved
    // to another day (both days marked).
    sql(
        &s,
        "UPDATE conversations SET request_type = 'urgent' WHERE id = \
         (SELECT min(id) FROM conversations WHERE request_type <> 'urgent')",
    );
    sql(
        &s,
        "UPDATE conversations SET client_id = 'globex' WHERE id = \
         (SELECT max(id) FROM conversations WHERE client_id = 'acme')",
    );
    let reclassified = same(&s, "reclassified, before the job");
    rebuild(&s);
    assert_eq!(same(&s, "reclassified, after the job"), reclassified);
    let moved = match url.starts_with("postgres") {
        true => {
            "UPDATE conversations SET opened_at = opened_at + interval '3 days' WHERE id = \
             (SELECT min(id) FROM conversations)"
        }
        false => {
            "UPDATE conversations SET opened_at = strftime('%Y-%m-%d %H:%M:%f', opened_at, '+3 days') \
             WHERE id = (SELECT min(id) FROM conversations)"
        }
    };
    sql(&s, moved);
    assert_eq!(stale(&s), 2, "the old day and the new");
    let moved = same(&s, "moved a day, before the job");
    rebuild(&s);
    assert_eq!(same(&s, "moved a day, after the job"), moved);

    // Retention: bodies go, the figures stay, with and without the job.
    let days = Days::new(365).unwrap();
    while !s
        .deadlines
        .retention_batch(days, until + Duration::days(400), 50)
        .unwrap()
        .done
    {}
    assert_eq!(same(&s, "after retention"), moved);
    rebuild(&s);
    assert_eq!(same(&s, "after retention and the job"), moved);

    // An erasure keeps the anonymous SLA facts.
    erasure::erase(
        s.core.store(),
        &ErasureRequest::Address("jane@acme.com".into()),
        until + Duration::days(401),
        false,
    )
    .unwrap();
    assert_eq!(same(&s, "after an erasure"), moved);
    rebuild(&s);
    assert_eq!(same(&s, "after an erasure and the job"), moved);

    // More mail and events later, without the job: stale and clean days mixed.
    let later = until + Duration::days(402);
    s.intake
        .record_event(
            event(
                "initech-new",
                "initech-new",
                Some(Direction::Inbound),
                later,
            ),
            None,
            later,
        )
        .unwrap();
    s.intake
        .record_event(
            event(
                "initech-0-more",
                "initech-0",
                Some(Direction::Inbound),
                later,
            ),
            None,
            later,
        )
        .unwrap();
    s.deadlines.due_work(later + Duration::days(3)).unwrap();
    same(&s, "later writes, before the job");
    rebuild(&s);
    same(&s, "later writes, after the job");
}

/// A rebuild that starts while a writer's change of the day is not yet
/// committed must not leave the day clean without it: on PostgreSQL it
/// waits for the writer (the mark's row is held), on SQLite for the one
/// writer's turn. The writer holds its transaction open while the rebuild
/// is started beside it; however the two interleave, the report afterwards
/// equals the row tally and, once the job ran again, no day is stale.
fn a_rebuild_beside_an_open_write_misses_nothing(url: &str) {
    let s = common::shipped_service(url);
    load(&s);
    rebuild(&s);
    let before = same(&s, "loaded");
    let day = s
        .core
        .store()
        .with(|c| {
            use diesel::prelude::*;
            use keepword::store::schema::{conversations, timers};
            let id: i64 = timers::table
                .filter(timers::status.eq("met"))
                .filter(timers::kind.eq("first_response"))
                .select(timers::conversation_id)
                .order(timers::id.asc())
                .first(c)?;
            let opened: chrono::NaiveDateTime = conversations::table
                .find(id)
                .select(conversations::opened_at)
                .first(c)?;
            Ok(opened.date())
        })
        .unwrap();
    // The day is marked (by a write before), so the writer's own mark
    // finds it there and takes no lock of a new row's.
    sql(
        &s,
        &format!("INSERT INTO tally_stale (day) VALUES ('{day}')"),
    );
    assert_eq!(stale(&s), 1);
    let rebuilder = s
        .core
        .store()
        .transaction(|c| {
            diesel::sql_query(
                "UPDATE timers SET status = 'missed' WHERE id =                  (SELECT min(id) FROM timers WHERE status = 'met' AND kind = 'first_response')",
            )
            .execute(c)?;
            let d = s.deadlines.clone();
            let t = std::thread::spawn(move || d.rebuild_tally_day(day));
            // Gives the rebuild the chance to run into the open write.
            std::thread::sleep(std::time::Duration::from_millis(300));
            Ok::<_, keepword::store::StoreError>(t)
        })
        .unwrap();
    rebuilder.join().unwrap().unwrap();
    let after = same(&s, "a rebuild beside a write");
    assert_ne!(after, before);
    rebuild(&s);
    assert_eq!(same(&s, "and the job again"), after);
}

/// Summaries made by other counting rules or another time-zone database
/// are made anew: no write marks them, the start does.
fn summaries_of_other_rules_are_made_anew(url: &str) {
    let s = common::shipped_service(url);
    load(&s);
    // A new database: the rules are recorded, nothing to remake beyond the
    // days its writes marked.
    assert!(s.deadlines.remake_tally_if_rules_changed().unwrap());
    rebuild(&s);
    let (from, to) = periods()[0];
    let right = row_tally(&s, from, to);
    assert_eq!(s.reads.compliance(from, to).unwrap(), right);
    assert!(
        !s.deadlines.remake_tally_if_rules_changed().unwrap(),
        "same rules"
    );
    assert_eq!(stale(&s), 0);

    // Summaries an older keepword made, whose business time differed.
    assert!(sql(&s, "UPDATE tally_days SET met = met + 7") > 0);
    assert!(sql(&s, "UPDATE tally_rules SET rules = 'rules 0, tzdb 2020a'") == 1);
    assert_ne!(s.reads.compliance(from, to).unwrap(), right);
    assert!(s.deadlines.remake_tally_if_rules_changed().unwrap());
    assert!(stale(&s) > 5, "every day with conversations: {}", stale(&s));
    assert_eq!(
        s.reads.compliance(from, to).unwrap(),
        right,
        "stale days read from rows"
    );
    rebuild(&s);
    assert_eq!(s.reads.compliance(from, to).unwrap(), right, "and rebuilt");
    assert!(!s.deadlines.remake_tally_if_rules_changed().unwrap());
}

/// The met timers (of `kind`, or all), oldest first, each with the day its
/// conversation opened: the day whose summary a write to it marks.
fn met_timers(s: &Service, kind: Option<&str>) -> Vec<(i64, chrono::NaiveDate)> {
    use diesel::prelude::*;
    use keepword::store::schema::{conversations, timers};
    let rows: Vec<(i64, chrono::NaiveDateTime)> = s
        .core
        .store()
        .with(|c| {
            let mut q = timers::table
                .inner_join(conversations::table)
                .filter(timers::status.eq("met"))
                .select((timers::id, conversations::opened_at))
                .order(timers::id.asc())
                .into_boxed();
            if let Some(kind) = kind {
                q = q.filter(timers::kind.eq(kind.to_string()));
            }
            Ok::<_, keepword::store::StoreError>(q.load(c)?)
        })
        .unwrap();
    rows.into_iter().map(|(id, at)| (id, at.date())).collect()
}

/// Two writers change the same clean day; the rebuild starts after the
/// first committed and before the second did. The second writer's mark
/// found the first's (uncommitted, then committed) and, with a unique mark
/// and `ON CONFLICT DO NOTHING`, held nothing: the rebuild read the day
/// without its change and left it clean. With the advisory lock the
/// rebuild waits for the second writer.
fn a_rebuild_between_two_writers_of_a_new_mark_misses_nothing(url: &str) {
    use std::sync::mpsc;
    let s = common::shipped_service(url);
    load(&s);
    rebuild(&s);
    same(&s, "loaded");
    // Two met first responses of conversations opened the same day.
    let rows = met_timers(&s, Some("first_response"));
    let (a, b, day) = rows
        .iter()
        .enumerate()
        .find_map(|(i, (x, day))| {
            rows[i + 1..]
                .iter()
                .find(|(_, d)| d == day)
                .map(|(y, _)| (*x, *y, *day))
        })
        .expect("no day with two met first responses");
    assert_eq!(stale(&s), 0);
    let writer = |id: i64, marked: mpsc::Sender<()>, commit: mpsc::Receiver<()>| {
        let store = s.core.store().clone();
        std::thread::spawn(move || {
            store
                .transaction(|c| {
                    diesel::sql_query(format!(
                        "UPDATE timers SET status = 'missed' WHERE id = {id}"
                    ))
                    .execute(c)?;
                    marked.send(()).unwrap();
                    commit.recv().unwrap();
                    Ok::<_, keepword::store::StoreError>(())
                })
                .unwrap()
        })
    };
    let (marked1, w1_marked) = mpsc::channel();
    let (commit1, w1_commit) = mpsc::channel();
    let w1 = writer(a, marked1, w1_commit);
    w1_marked.recv().unwrap();
    let (marked2, w2_marked) = mpsc::channel();
    let (commit2, w2_commit) = mpsc::channel();
    let w2 = writer(b, marked2, w2_commit);
    // The second writer is at its mark (or waits for the first's).
    std::thread::sleep(std::time::Duration::from_millis(200));
    commit1.send(()).unwrap();
    w1.join().unwrap();
    w2_marked.recv().unwrap();
    let d = s.deadlines.clone();
    let rebuilder = std::thread::spawn(move || d.rebuild_tally_day(day));
    // Gives the rebuild the chance to run past the open second write.
    std::thread::sleep(std::time::Duration::from_millis(300));
    commit2.send(()).unwrap();
    w2.join().unwrap();
    rebuilder.join().unwrap().unwrap();
    // Whatever the rebuild did, the report is the rows': a clean day's
    // summary must hold both writes.
    let after = same(&s, "a rebuild between two writers");
    rebuild(&s);
    assert_eq!(same(&s, "and the job again"), after);
}

/// Two writers mark two clean days in opposite orders, each in one
/// transaction (an event batch opening today's conversation and settling an
/// older one's timer, beside the scheduler settling both in the other
/// order). With a unique mark each waited for the other's uncommitted one:
/// a deadlock, and PostgreSQL aborted one (the email intake would have filed
/// its mail as rejected). Marks no writer waits for let both commit.
fn writers_marking_two_days_in_opposite_orders_both_commit(url: &str) {
    use std::sync::{Arc, Barrier};
    let s = common::shipped_service(url);
    load(&s);
    rebuild(&s);
    // Two met timers on each of two different days: the writers share no
    // row, only the days.
    let mut by_day: std::collections::BTreeMap<chrono::NaiveDate, Vec<i64>> = Default::default();
    for (id, day) in met_timers(&s, None) {
        by_day.entry(day).or_default().push(id);
    }
    let mut two = by_day.into_values().filter(|ids| ids.len() >= 2);
    let (x, y) = (two.next().unwrap(), two.next().unwrap());
    let (a, b) = ((x[0], y[0]), (y[1], x[1]));
    assert_eq!(stale(&s), 0);
    // On SQLite the second writer waits for the first's commit (one
    // writer); only PostgreSQL runs them side by side.
    let side_by_side = url.starts_with("postgres");
    let both = Arc::new(Barrier::new(if side_by_side { 2 } else { 1 }));
    let writer = |first: i64, second: i64| {
        let (store, both) = (s.core.store().clone(), both.clone());
        std::thread::spawn(move || {
            store.transaction(|c| {
                let settle = |c: &mut keepword::store::AnyConnection, id: i64| {
                    diesel::sql_query(format!(
                        "UPDATE timers SET status = 'missed' WHERE id = {id}"
                    ))
                    .execute(c)
                };
                settle(c, first)?;
                both.wait();
                settle(c, second)?;
                Ok::<_, keepword::store::StoreError>(())
            })
        })
    };
    let w1 = writer(a.0, a.1);
    let w2 = writer(b.0, b.1);
    w1.join().unwrap().expect("the first writer commits");
    w2.join().unwrap().expect("the second writer commits");
    assert_eq!(stale(&s), 2);
    let after = same(&s, "two writers, two days");
    rebuild(&s);
    assert_eq!(same(&s, "and the job again"), after);
}

crate::both_backends!(
    summaries_equal_the_row_tally,
    writers_marking_two_days_in_opposite_orders_both_commit,
    a_rebuild_beside_an_open_write_misses_nothing,
    a_rebuild_between_two_writers_of_a_new_mark_misses_nothing,
    summaries_of_other_rules_are_made_anew
);

/// Not a check: how long the rebuild takes, printed. The history copied
/// 1,200 times over ten days (about 61,000 conversations, 6,000 a day —
/// a day of two million a year) by SQL, then every day rebuilt, one and
/// all. `cargo test --test storage tally::rebuild_times -- --ignored
/// --nocapture`.
fn rebuild_times(url: &str) {
    let s = common::shipped_service(url);
    load(&s);
    let pg = url.starts_with("postgres");
    let copies = 1_200;
    let started = std::time::Instant::now();
    let series = if pg {
        format!("SELECT generate_series(1, {copies}) AS k")
    } else {
        format!(
            "WITH RECURSIVE s(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM s WHERE k < {copies}) \
             SELECT k FROM s"
        )
    };
    // A column moved back by `k % 10` days.
    let shift = |col: &str, k: &str| {
        if pg {
            format!("{col} - ({k} % 10) * interval '1 day'")
        } else {
            format!("strftime('%Y-%m-%d %H:%M:%f', {col}, '-' || ({k} % 10) || ' days')")
        }
    };
    sql(
        &s,
        &format!(
            "INSERT INTO conversations (channel, thread_key, client_id, subject, request_type, \
               classification, contract_version, status, channel_mismatch, opened_at, updated_at, \
               health, subject_key, opener, next_timer) \
             SELECT c.channel, 'copy-' || s.k || '-' || c.thread_key, c.client_id, c.subject, \
               c.request_type, c.classification, c.contract_version, c.status, c.channel_mismatch, \
               {}, c.updated_at, c.health, c.subject_key, CAST(c.id AS TEXT), c.next_timer \
             FROM conversations c CROSS JOIN ({series}) s",
            shift("c.opened_at", "s.k")
        ),
    );
    let k = if pg {
        "CAST(split_part(n.thread_key, '-', 2) AS BIGINT)"
    } else {
        "CAST(substr(n.thread_key, 6, instr(substr(n.thread_key, 6), '-') - 1) AS INTEGER)"
    };
    let timers = sql(
        &s,
        &format!(
            "INSERT INTO timers (conversation_id, kind, seq, status, started_at, due_at, stopped_at) \
             SELECT n.id, t.kind, t.seq, t.status, {}, {}, {} \
             FROM (SELECT *, {k} AS k FROM conversations n WHERE n.thread_key LIKE 'copy-%') n \
             JOIN timers t ON t.conversation_id = CAST(n.opener AS BIGINT)",
            shift("t.started_at", "n.k"),
            shift("t.due_at", "n.k"),
            shift("t.stopped_at", "n.k"),
        ),
    );
    println!(
        "{url}: {timers} timers copied in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Day by day, each timed, with its conversations.
    let mut took = Vec::new();
    let all = std::time::Instant::now();
    loop {
        let t = std::time::Instant::now();
        let round = s.deadlines.rebuild_tally_days(1).unwrap();
        if round.found == 0 {
            break;
        }
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let all = all.elapsed().as_secs_f64();
    let sizes: Vec<i64> = s
        .core
        .store()
        .with(|c| {
            use diesel::prelude::*;
            use keepword::store::schema::tally_days as d;
            let rows: Vec<(chrono::NaiveDate, i64)> = d::table
                .filter(d::timer.eq("first_response"))
                .select((d::day, d::conversations))
                .load(c)?;
            let mut per_day = std::collections::BTreeMap::new();
            for (day, n) in rows {
                *per_day.entry(day).or_insert(0) += n;
            }
            Ok(per_day.into_values().collect())
        })
        .unwrap();
    took.sort_by(f64::total_cmp);
    println!(
        "{url}: {} days ({} conversations, at most {} a day) rebuilt in {all:.2} s: \
         a day {:.0} ms median, {:.0} ms at most",
        took.len(),
        sizes.iter().sum::<i64>(),
        sizes.iter().max().unwrap_or(&0),
        took[took.len() / 2],
        took.last().unwrap_or(&0.0)
    );
    let (from, to) = periods()[0];
    let t = std::time::Instant::now();
    let rows = row_tally(&s, from, to);
    let by_rows = t.elapsed();
    let t = std::time::Instant::now();
    let summed = s.reads.compliance(from, to).unwrap();
    println!(
        "{url}: the report over all of it: {:.0} ms from the rows, {:.0} ms from the summaries",
        by_rows.as_secs_f64() * 1000.0,
        t.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(summed, rows);
}

#[test]
#[ignore = "prints timings; run by hand"]
fn rebuild_times_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    rebuild_times(&url);
}

#[test]
#[ignore = "prints timings; run by hand"]
fn rebuild_times_postgres() {
    let db = common::FreshPostgres::new();
    rebuild_times(&db.url);
}
