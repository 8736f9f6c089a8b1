//! The compliance report from per-day summaries equals the row tally, on
//! both backends: before the rebuild job ran (every day stale), after it
//! ran, and after further writes (a timer settles, a conversation
//! reclassified, a retention run, an erasure) with and without the job
//! running again; for whole periods, periods cut at midnight and periods
//! that start and end within a day.

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::RunQueryDsl;
use keepword::config::Days;
use keepword::imap::{FetchedMail, FolderKind};
use keepword::ingest::IncomingEvent;
use keepword::service::erasure::{self, ErasureRequest};
use keepword::service::{ComplianceRow, Service};
use keepword::sla::{Direction, TicketStatus};

use crate::common;
use crate::email_ingest::mailbox;

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
    let history = crate::compliance::history();
    let until = history.last().unwrap().0;
    for (n, chunk) in history.chunks(10).enumerate() {
        let batch: Vec<FetchedMail> = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, m))| FetchedMail {
                uid: (n * 10 + i + 1) as u32,
                raw: m.clone().into_bytes(),
            })
            .collect();
        s.intake
            .ingest_mail_batch(&mailbox(), "INBOX", FolderKind::Inbox, 1, batch, until)
            .unwrap();
    }
    let start = history[0].0;
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

crate::both_backends!(
    summaries_equal_the_row_tally,
    a_rebuild_beside_an_open_write_misses_nothing
);
