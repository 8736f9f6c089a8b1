//! The client's record from per-day summaries (`record_days`, `tally_days`)
//! equals the record counted from its rows, on both backends: figures,
//! weeks and medians of every client for 30, 90 and 365 days, before the
//! rebuild job ran (every day stale), after it, and after further writes
//! (a timer settles, a status changed, a broken promise's due moved, a
//! conversation reclassified, a new request) with and without the job. And
//! the paged broken promises: every one exactly once across the pages,
//! the newest due first.

use chrono::{DateTime, Duration, Utc};
use keepword::service::{BrokenPromise, ClientRecord, Service, record_period};
use keepword::sla::Direction;

use crate::common;
use crate::tally::{event, load, rebuild, sql, stale};

const CLIENTS: [&str; 4] = ["acme", "globex", "initech", "unknown"];

/// The order the pages list: the newest due first.
fn newest_first(b: &BrokenPromise) -> impl Ord {
    std::cmp::Reverse((b.due_at, b.conversation_id))
}

/// A broken promise as a set element.
fn key(b: &BrokenPromise) -> (DateTime<Utc>, i64, String, Option<String>, String) {
    (
        b.due_at,
        b.conversation_id,
        b.promise.clone(),
        b.kept.clone(),
        b.late.clone(),
    )
}

/// Every client's record at `now` for 30, 90 and 365 days: the summary
/// path equals the row path, and its pages of `per_page` list every broken
/// promise of the row path once, newest first. How many broken promises
/// the records listed in all.
fn same_records(s: &Service, now: DateTime<Utc>, when: &str) -> usize {
    let mut listed = 0;
    for client in CLIENTS {
        for days in [30, 90, 365] {
            let (from, to) = record_period(days, now);
            let rows = s.reads.client_record(client, from, to, now).unwrap();
            for per_page in [1, 2, 7, 50] {
                let mut pages: Vec<BrokenPromise> = Vec::new();
                let mut page = 1;
                loop {
                    let r = s
                        .reads
                        .client_record_pages(client, from, to, page, per_page, now)
                        .unwrap();
                    let at = format!("{when}: {client}, {days} days, page {page} of {per_page}");
                    figures_equal(&r, &rows, &at);
                    assert_eq!(r.broken_page, page, "{at}");
                    assert_eq!(
                        r.broken_pages,
                        rows.broken.div_ceil(per_page).max(1),
                        "{at}"
                    );
                    assert!(r.broken_promises.len() <= per_page, "{at}");
                    if page < r.broken_pages {
                        assert_eq!(r.broken_promises.len(), per_page, "{at}: a full page");
                    }
                    pages.extend(r.broken_promises);
                    if page >= r.broken_pages {
                        break;
                    }
                    page += 1;
                }
                // A page past the last lists nothing.
                let past = s
                    .reads
                    .client_record_pages(client, from, to, page + 1, per_page, now)
                    .unwrap();
                assert!(
                    past.broken_promises.is_empty(),
                    "{when}: past the last page"
                );
                assert!(
                    pages.is_sorted_by_key(newest_first),
                    "{when}: {client} {days}: newest first"
                );
                let mut got: Vec<_> = pages.iter().map(key).collect();
                let mut want: Vec<_> = rows.broken_promises.iter().map(key).collect();
                got.sort();
                want.sort();
                assert_eq!(
                    got, want,
                    "{when}: {client}, {days} days, {per_page} a page: each once"
                );
                assert_eq!(pages.len(), rows.broken, "{when}: every broken promise");
            }
            listed += rows.broken_promises.len();
        }
    }
    listed
}

fn figures_equal(a: &ClientRecord, b: &ClientRecord, at: &str) {
    assert_eq!(a.types, b.types, "{at}: types, kinds, weeks, medians");
    assert_eq!(
        (a.requests, a.kept, a.broken, a.broken_listed),
        (b.requests, b.kept, b.broken, b.broken_listed),
        "{at}: totals"
    );
    assert_eq!((a.from, a.to, &a.period), (b.from, b.to, &b.period), "{at}");
}

fn record_days_equal_the_row_record(url: &str) {
    let s = common::shipped_service(url);
    let until = load(&s);
    let now = until + Duration::hours(1);

    // Before the job ran: every day stale, all counted from rows.
    assert!(stale(&s) > 5);
    let listed = same_records(&s, now, "before the job ran");
    assert!(listed > 3, "broken promises to page: {listed}");
    let acme = s
        .reads
        .client_record(
            "acme",
            record_period(90, now).0,
            record_period(90, now).1,
            now,
        )
        .unwrap();
    assert!(acme.requests > 0 && acme.kept > 0 && acme.broken > 0);
    assert!(
        acme.types
            .iter()
            .flat_map(|t| &t.weeks)
            .any(|w| w.median_first_response.is_some()),
        "a week's median"
    );

    // After it: no day stale, every figure from the summaries.
    assert!(rebuild(&s) > 5);
    assert_eq!(same_records(&s, now, "after the job ran"), listed);
    // The page does read the summaries now.
    assert!(sql(&s, "UPDATE record_days SET kept = kept + 1000") > 0);
    let (from, to) = record_period(90, now);
    let off = s
        .reads
        .client_record_page("acme", from, to, 1, now)
        .unwrap();
    assert_ne!(off.types, acme.types, "read from record_days");
    sql(&s, "UPDATE record_days SET kept = kept - 1000");
    assert!(sql(&s, "UPDATE tally_days SET met = met + 1000") > 0);
    let off = s
        .reads
        .client_record_page("acme", from, to, 1, now)
        .unwrap();
    assert_ne!(off.kept, acme.kept, "read from tally_days");
    sql(&s, "UPDATE tally_days SET met = met - 1000");
    same_records(&s, now, "the summaries put back");

    // A timer settles.
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
    assert!(stale(&s) > 0);
    same_records(&s, now, "a timer settled, before the job");
    rebuild(&s);
    same_records(&s, now, "a timer settled, after the job");

    // A status changed behind the service's back.
    sql(
        &s,
        "UPDATE timers SET status = 'missed' WHERE id = \
         (SELECT min(id) FROM timers WHERE status = 'met' AND kind = 'first_response')",
    );
    same_records(&s, now, "a status changed");
    rebuild(&s);
    same_records(&s, now, "a status changed, after the job");

    // A broken promise's due moved (the day it settles): the compliance
    // tally does not read it, the record does.
    let moved = match url.starts_with("postgres") {
        true => {
            "UPDATE timers SET due_at = due_at - interval '9 days' WHERE id = \
             (SELECT max(id) FROM timers WHERE status IN ('missed', 'breached'))"
        }
        false => {
            "UPDATE timers SET due_at = strftime('%Y-%m-%d %H:%M:%f', due_at, '-9 days') \
             WHERE id = (SELECT max(id) FROM timers WHERE status IN ('missed', 'breached'))"
        }
    };
    assert_eq!(sql(&s, moved), 1);
    assert_eq!(stale(&s), 1, "the timer's day");
    same_records(&s, now, "a due moved");
    rebuild(&s);
    same_records(&s, now, "a due moved, after the job");

    // Reclassified, moved to another client.
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
    same_records(&s, now, "reclassified, before the job");
    rebuild(&s);
    same_records(&s, now, "reclassified, after the job");

    // New requests later, without the job, then with it: stale and clean
    // days mixed.
    let later = now + Duration::days(2);
    for (key, thread, direction) in [
        ("initech-new", "initech-new", Some(Direction::Inbound)),
        ("initech-ours", "initech-ours", Some(Direction::Outbound)),
        ("initech-0-more", "initech-0", Some(Direction::Inbound)),
    ] {
        s.intake
            .record_event(event(key, thread, direction, later), None, later)
            .unwrap();
    }
    assert!(stale(&s) > 0);
    let later = later + Duration::hours(1);
    same_records(&s, later, "later writes, before the job");
    s.deadlines.due_work(later + Duration::days(3)).unwrap();
    same_records(&s, later + Duration::days(3), "overdue, before the job");
    rebuild(&s);
    same_records(&s, later + Duration::days(3), "overdue, after the job");
}

crate::both_backends!(record_days_equal_the_row_record);
