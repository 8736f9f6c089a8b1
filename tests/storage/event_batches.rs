//! Group commit of ticket events (`Intake::submit_event`): events that
//! arrive together share one transaction, yet each is answered as if it had
//! been alone — stored once, duplicates (before or within a batch) named as
//! such with the original's ids, and one refused event failing only itself.
//! Both backends.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::RunQueryDsl;
use keepword::ingest::IncomingEvent;
use keepword::service::{Recorded, Service};
use keepword::sla::Direction;

use crate::common;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn event(key: &str, thread: &str, direction: Direction, from: &str) -> IncomingEvent {
    IncomingEvent {
        idempotency_key: key.into(),
        channel: "email".into(),
        thread: thread.into(),
        direction: Some(direction),
        from: from.into(),
        client: None,
        client_hint: None,
        subject: format!("Question {thread}"),
        body: "How do I export the report?".into(),
        priority: None,
        status: None,
        awaiting_client: false,
        at: at("2026-12-02T10:00:00Z"),
    }
}

const CLIENT: &str = "peter@initech.example";
const TEAM: &str = "support@example.com";

/// Submits every event at once and waits for all answers, in order.
async fn submit_all(s: &Service, events: Vec<IncomingEvent>) -> Vec<Result<Recorded, String>> {
    let now = at("2026-12-02T10:00:05Z");
    let tasks: Vec<_> = events
        .into_iter()
        .map(|e| {
            let s = s.clone();
            tokio::spawn(async move { s.intake.submit_event(e, None, now).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().map_err(|e| e.to_string()));
    }
    out
}

fn count(s: &Service, table: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    s.core
        .store()
        .with(|c| {
            Ok(
                diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
                    .get_result::<N>(c)?
                    .n,
            )
        })
        .unwrap()
}

/// The (sum, count) of the batch-size histogram.
fn batches(s: &Service) -> (f64, u64) {
    let h = &s.reads.metrics().event_batch_size;
    (h.get_sample_sum(), h.get_sample_count())
}

async fn burst_is_stored_once_each(url: &str) {
    let s = common::shipped_service(url);
    // Stored before the burst: its repeat in the burst is a duplicate.
    let before = s
        .intake
        .record_event(
            event("old", "t-old", Direction::Inbound, CLIENT),
            None,
            at("2026-12-02T09:00:00Z"),
        )
        .unwrap();
    let mut events = Vec::new();
    for i in 0..150 {
        events.push(event(
            &format!("n{i}"),
            &format!("t{i}"),
            Direction::Inbound,
            CLIENT,
        ));
    }
    // The team answers the first 50 threads in the same burst, a second
    // after the request: the tasks race, so an answer may reach its writer
    // before the request does, and only the times say which came first.
    for i in 0..50 {
        let mut answer = event(
            &format!("f{i}"),
            &format!("t{i}"),
            Direction::Outbound,
            TEAM,
        );
        answer.at = at("2026-12-02T10:00:01Z");
        events.push(answer);
    }
    // Retries of the first 50 requests, and of the one stored before.
    for i in 0..50 {
        events.push(event(
            &format!("n{i}"),
            &format!("t{i}"),
            Direction::Inbound,
            CLIENT,
        ));
    }
    events.push(event("old", "t-old", Direction::Inbound, CLIENT));
    let keys: Vec<String> = events.iter().map(|e| e.idempotency_key.clone()).collect();

    let results = submit_all(&s, events).await;

    let mut first: HashMap<&str, &Recorded> = HashMap::new();
    let mut fresh = 0;
    let mut created = 0;
    let mut links = HashSet::new();
    for (key, r) in keys.iter().zip(&results) {
        let r = r.as_ref().unwrap_or_else(|e| panic!("{key}: {e}"));
        if r.duplicate {
            continue;
        }
        fresh += 1;
        assert!(
            first.insert(key, r).is_none(),
            "{key} stored twice: {results:?}"
        );
        if r.conversation_created {
            created += 1;
            let url = r
                .status_url
                .clone()
                .expect("a status link for each new request");
            assert!(links.insert(url), "status links are distinct");
        }
    }
    assert_eq!(fresh, 200, "150 requests and 50 answers stored once each");
    assert_eq!(created, 150, "one conversation per new thread");
    // Every duplicate names the message its key stored.
    for (key, r) in keys.iter().zip(&results) {
        let r = r.as_ref().unwrap();
        if r.duplicate {
            let original = if key == "old" {
                (before.message_id, before.conversation_id)
            } else {
                (
                    first[key.as_str()].message_id,
                    first[key.as_str()].conversation_id,
                )
            };
            assert_eq!((r.message_id, r.conversation_id), original, "{key}");
            assert_eq!(r.status_url, None);
        }
    }
    // An answer and its request share the conversation of their thread.
    for i in 0..50 {
        assert_eq!(
            first[format!("f{i}").as_str()].conversation_id,
            first[format!("n{i}").as_str()].conversation_id
        );
    }
    assert_eq!(count(&s, "messages"), 201);
    assert_eq!(count(&s, "conversations"), 151);
    // Each conversation was evaluated with all of its burst's events: the
    // answered ones met their first response, the others still run.
    let answered = first["n7"].conversation_id.unwrap();
    let waiting = first["n120"].conversation_id.unwrap();
    let timer = |id: i64| {
        let d = s.reads.conversation_detail(id).unwrap();
        d.summary
            .timers
            .iter()
            .find(|t| t.timer == "first_response")
            .map(|t| t.status.clone())
            .unwrap()
    };
    assert_eq!(timer(answered), "met");
    assert_eq!(timer(waiting), "running");
    // Group commit happened: fewer transactions than events.
    let (sum, n) = batches(&s);
    assert_eq!(sum as usize, results.len());
    assert!(
        n < results.len() as u64,
        "{} events in {n} transactions: no batch formed",
        results.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_burst_is_stored_once_each() {
    let (_dir, url) = common::fresh_sqlite();
    burst_is_stored_once_each(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_burst_is_stored_once_each() {
    let db = common::FreshPostgres::new();
    burst_is_stored_once_each(&db.url).await;
}

/// Makes the database itself refuse every message from `sender`: a
/// trigger, as a constraint or a full disk would, that the service cannot
/// tell from any other refusal.
pub(crate) fn refuse_messages_from(s: &Service, sender: &str) {
    let statements = match s.core.store().backend() {
        keepword::store::Backend::Sqlite => vec![format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages \
             WHEN NEW.sender = '{sender}' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )],
        keepword::store::Backend::Postgres => vec![
            format!(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN \
                   IF NEW.sender = '{sender}' THEN \
                     RAISE EXCEPTION 'refused by the test'; END IF; \
                   RETURN NEW; END $$ LANGUAGE plpgsql"
            ),
            "CREATE TRIGGER refuse BEFORE INSERT ON messages \
               FOR EACH ROW EXECUTE FUNCTION refuse()"
                .to_string(),
        ],
    };
    for sql in statements {
        s.core
            .store()
            .with(|c| Ok(diesel::sql_query(&sql).execute(c)?))
            .unwrap();
    }
}

/// A trigger makes the database itself refuse one event's message: the
/// batch it was in is stored again event by event, so only that one fails,
/// and the conversation it would have opened is rolled back with it.
async fn refused_event_fails_alone(url: String) {
    let s = common::shipped_service(&url);
    refuse_messages_from(&s, "refused@initech.example");
    let mut events: Vec<IncomingEvent> = (0..60)
        .map(|i| {
            event(
                &format!("k{i}"),
                &format!("t{i}"),
                Direction::Inbound,
                CLIENT,
            )
        })
        .collect();
    events[30] = event(
        "bad",
        "t-bad",
        Direction::Inbound,
        "refused@initech.example",
    );
    let results = submit_all(&s, events).await;
    for (i, r) in results.iter().enumerate() {
        if i == 30 {
            let e = r.as_ref().expect_err("the refused event fails");
            assert!(e.contains("refused by the test"), "{e}");
        } else {
            let r = r.as_ref().unwrap_or_else(|e| panic!("event {i}: {e}"));
            assert!(r.conversation_created && !r.duplicate, "event {i}: {r:?}");
        }
    }
    assert_eq!(count(&s, "messages"), 59);
    assert_eq!(count(&s, "conversations"), 59, "t-bad opened nothing");
    // Sent again once the database takes it: stored, not a duplicate.
    s.core
        .store()
        .with(|c| Ok(diesel::sql_query("DROP TRIGGER refuse ON messages").execute(c)?))
        .or_else(|_| {
            s.core
                .store()
                .with(|c| Ok(diesel::sql_query("DROP TRIGGER refuse").execute(c)?))
        })
        .unwrap();
    let again = submit_all(
        &s,
        vec![event(
            "bad",
            "t-bad",
            Direction::Inbound,
            "refused@initech.example",
        )],
    )
    .await;
    let r = again[0].as_ref().unwrap();
    assert!(r.conversation_created && !r.duplicate);
}

crate::both_backends!(async refused_event_fails_alone);

/// Stopping the writers at shutdown: every event either was stored and
/// answered, or was refused as "shutting down" — none is answered and lost,
/// none stored unanswered — and nothing is taken afterwards.
async fn stop_stores_what_was_accepted(url: &str) {
    let s = common::shipped_service(url);
    let now = at("2026-12-02T10:00:05Z");
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = s.clone();
            let e = event(
                &format!("s{i}"),
                &format!("t{i}"),
                Direction::Inbound,
                CLIENT,
            );
            tokio::spawn(async move { s.intake.submit_event(e, None, now).await })
        })
        .collect();
    // Let some of the burst reach the writers, then stop mid-burst.
    while batches(&s).1 == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let stopper = s.clone();
    tokio::task::spawn_blocking(move || stopper.intake.stop_event_writers())
        .await
        .unwrap();
    let mut stored = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                assert!(!r.duplicate);
                stored += 1;
            }
            Err(e) => {
                assert!(e.to_string().contains("shutting down"), "{e}");
                refused += 1;
            }
        }
    }
    assert_eq!(stored + refused, 200);
    assert!(stored > 0, "the writers had taken part of the burst");
    assert_eq!(
        count(&s, "messages"),
        stored,
        "stored exactly the answered ones"
    );
    let after = s
        .intake
        .submit_event(
            event("late", "t-late", Direction::Inbound, CLIENT),
            None,
            now,
        )
        .await;
    assert!(after.is_err(), "nothing is taken after the stop");
    assert_eq!(count(&s, "messages"), stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stop_stores_what_was_accepted() {
    let (_dir, url) = common::fresh_sqlite();
    stop_stores_what_was_accepted(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stop_stores_what_was_accepted() {
    let db = common::FreshPostgres::new();
    stop_stores_what_was_accepted(&db.url).await;
}

/// Every conversation's derived columns and timers, as text, in id order.
fn state_snapshot(s: &Service) -> Vec<Vec<Option<String>>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        v: Option<String>,
    }
    let queries = [
        "SELECT CAST(id AS TEXT) || '|' || status || '|' || health || '|' || \
           COALESCE(CAST(next_check_at AS TEXT), '-') || '|' || \
           COALESCE(CAST(solved_at AS TEXT), '-') || '|' || \
           COALESCE(CAST(last_message_at AS TEXT), '-') || '|' || \
           COALESCE(CAST(next_due_at AS TEXT), '-') || '|' || next_timer || '|' || \
           COALESCE(CAST(paused_since AS TEXT), '-') AS v FROM conversations ORDER BY id",
        "SELECT CAST(conversation_id AS TEXT) || '|' || kind || '|' || CAST(seq AS TEXT) || \
           '|' || status || '|' || CAST(started_at AS TEXT) || '|' || \
           COALESCE(CAST(due_at AS TEXT), '-') || '|' || \
           COALESCE(CAST(stopped_at AS TEXT), '-') AS v \
           FROM timers ORDER BY conversation_id, kind, seq",
        "SELECT CAST(conversation_id AS TEXT) || '|' || step AS v \
           FROM escalations_fired ORDER BY conversation_id, step",
    ];
    queries
        .iter()
        .map(|q| {
            s.core
                .store()
                .with(|c| Ok(diesel::sql_query(*q).load::<Row>(c)?))
                .unwrap()
                .into_iter()
                .map(|r| r.v)
                .collect()
        })
        .collect()
}

/// A batch that opens conversations writes each one's state into its row as
/// it inserts it, evaluated from the batch's own events instead of read
/// back. That state must be exactly what a full evaluation from the stored
/// events gives: the scheduler re-evaluates every conversation afterwards
/// and must find nothing to change. The shapes cover answered and
/// unanswered requests, an answer stamped before its request, a request
/// already overdue (its steps fire in the batch), a pending and a solved
/// one, and times finer than the database keeps (read back instead).
async fn opened_state_is_what_a_full_evaluation_gives(url: &str) {
    let s = common::shipped_service(url);
    let mut events = Vec::new();
    for i in 0..20 {
        events.push(event(
            &format!("a{i}"),
            &format!("a{i}"),
            Direction::Inbound,
            CLIENT,
        ));

        let mut b = event(
            &format!("b{i}"),
            &format!("b{i}"),
            Direction::Inbound,
            CLIENT,
        );
        b.at = at("2026-12-02T10:00:00.000000123Z");
        events.push(b);
        let mut b2 = event(
            &format!("b{i}-r"),
            &format!("b{i}"),
            Direction::Outbound,
            TEAM,
        );
        b2.at = at("2026-12-02T10:00:01Z");
        events.push(b2);

        let mut c = event(
            &format!("c{i}-r"),
            &format!("c{i}"),
            Direction::Outbound,
            TEAM,
        );
        c.at = at("2026-12-02T09:59:58Z");
        events.push(c);
        let mut c2 = event(
            &format!("c{i}"),
            &format!("c{i}"),
            Direction::Inbound,
            CLIENT,
        );
        c2.at = at("2026-12-02T10:00:02.5Z");
        events.push(c2);

        let mut d = event(
            &format!("d{i}"),
            &format!("d{i}"),
            Direction::Inbound,
            CLIENT,
        );
        d.at = at("2026-11-25T09:00:00Z");
        events.push(d);

        events.push(event(
            &format!("e{i}"),
            &format!("e{i}"),
            Direction::Inbound,
            CLIENT,
        ));
        let mut e2 = event(
            &format!("e{i}-r"),
            &format!("e{i}"),
            Direction::Outbound,
            TEAM,
        );
        e2.at = at("2026-12-02T10:00:03Z");
        e2.awaiting_client = true;
        e2.status = Some(keepword::sla::TicketStatus::Pending);
        events.push(e2);

        events.push(event(
            &format!("s{i}"),
            &format!("s{i}"),
            Direction::Inbound,
            CLIENT,
        ));
        let mut s2 = event(
            &format!("s{i}-r"),
            &format!("s{i}"),
            Direction::Outbound,
            TEAM,
        );
        s2.at = at("2026-12-02T10:00:04Z");
        s2.status = Some(keepword::sla::TicketStatus::Solved);
        events.push(s2);
    }
    let n = events.len();
    for r in submit_all(&s, events).await {
        r.unwrap();
    }
    assert_eq!(count(&s, "messages"), n as i64);
    assert_eq!(count(&s, "conversations"), 120);
    let (_, transactions) = batches(&s);
    assert!(
        transactions < n as u64,
        "{n} events in {transactions} transactions: no batch formed"
    );
    let before = state_snapshot(&s);
    assert!(
        before[2].len() >= 20,
        "the overdue requests fired their steps in the batch: {:?}",
        before[2]
    );
    assert!(before[0].iter().flatten().any(|r| r.contains("|solved|")));
    assert!(before[0].iter().flatten().any(|r| r.contains("|pending|")));

    // The scheduler looks at every conversation again at the burst's own
    // instant: it reads all events back and evaluates from scratch.
    a_full_evaluation_changes_nothing(&s, at("2026-12-02T10:00:05Z"), 120);
}

/// Makes the scheduler look at every conversation again at `now` (it reads
/// all events back and evaluates from scratch) and asserts that it finds
/// nothing to change: no conversation column, timer or fired step.
pub(crate) fn a_full_evaluation_changes_nothing(
    s: &Service,
    now: DateTime<Utc>,
    conversations: usize,
) {
    let before = state_snapshot(s);
    s.core
        .store()
        .with(|c| {
            use diesel::ExpressionMethods;
            use keepword::store::schema::conversations::dsl as conv;
            diesel::update(conv::conversations)
                .set(conv::next_check_at.eq(Some(now.naive_utc())))
                .execute(c)?;
            Ok(())
        })
        .unwrap();
    let (mut looked_at, mut fired) = (0, 0);
    loop {
        let report = s.deadlines.due_work(now).unwrap();
        if report.conversations == 0 {
            break;
        }
        looked_at += report.conversations;
        fired += report.fired;
    }
    assert_eq!(looked_at, conversations, "every conversation re-evaluated");
    assert_eq!(fired, 0, "nothing new fell due");
    let after = state_snapshot(s);
    for (table, (b, a)) in ["conversations", "timers", "escalations_fired"]
        .iter()
        .zip(before.iter().zip(&after))
    {
        assert_eq!(b.len(), a.len(), "{table}: rows");
        for (b, a) in b.iter().zip(a) {
            assert_eq!(
                b, a,
                "{table}: the batch wrote a state a full evaluation changes"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_opened_state_is_what_a_full_evaluation_gives() {
    let (_dir, url) = common::fresh_sqlite();
    opened_state_is_what_a_full_evaluation_gives(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_opened_state_is_what_a_full_evaluation_gives() {
    let db = common::FreshPostgres::new();
    opened_state_is_what_a_full_evaluation_gives(&db.url).await;
}
