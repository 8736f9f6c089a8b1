//! The receivers' faults, each a scenario against the real outbox worker on
//! SQLite and PostgreSQL: the recording receivers act the fault out, the
//! checker reads what they recorded. After each: nothing lost, duplicates
//! only with the same identity after an uncertain attempt, every
//! notification within [`BOUND`] of the fault's end, a log line and a metric
//! while it lasted, and the worker delivering again without a restart.

use std::time::{Duration, Instant};

use crate::checker::Must;
use crate::rig::{BOUND, Rig};
use crate::support;
use crate::support::recorders::{Act, HttpRecorder, SmtpAct, SmtpRecorder};

/// Long enough for any scenario here to settle on a loaded machine.
const SETTLE: Duration = Duration::from_secs(40);

/// Each scenario on SQLite and PostgreSQL, on a current-thread runtime (so
/// the rig's log capture sees the worker's lines).
macro_rules! scenarios {
    ($($body:ident),+ $(,)?) => {$(
        mod $body {
            #[tokio::test]
            async fn sqlite() {
                let (_dir, url) = crate::common::fresh_sqlite();
                super::$body(&url).await;
            }
            #[tokio::test]
            async fn postgres() {
                let db = crate::common::FreshPostgres::new();
                super::$body(&db.url).await;
            }
        }
    )+};
}

fn failed(rig: &Rig, kind: &str) -> u64 {
    rig.metric(&format!(
        "keepword_notifications_total{{kind=\"{kind}\",result=\"failed\"}}"
    ))
}

fn refused(rig: &Rig, kind: &str) -> u64 {
    rig.metric(&format!(
        "keepword_notifications_total{{kind=\"{kind}\",result=\"refused\"}}"
    ))
}

// ---------------------------------------------------------------- SMTP

/// The server answers the end of DATA with 421 (and hangs up), then 451:
/// both "later". Every mail goes out once.
async fn smtp_421_and_451(url: &str) {
    let rig_history = support::recorders::History::default();
    let smtp = SmtpRecorder::start(
        &rig_history,
        |_| None,
        |n| match n {
            0 => SmtpAct::Reply("421 4.3.2 service shutting down"),
            1 => SmtpAct::Reply("451 4.3.0 try again later"),
            _ => SmtpAct::Accept,
        },
    )
    .await;
    let mut rig = Rig::start(url, smtp.port);
    rig.history = rig_history;
    for i in 0..4 {
        rig.email(&format!("smtp-4xx-{i}"), "ann@client.test", Must::Deliver);
    }
    rig.settle(SETTLE).await;
    let report = rig.report(
        "smtp 421 and 451",
        "the end of DATA answered 421 (connection closed), then 451",
        rig.last_fault(),
    );
    report.assert_kept();
    assert_eq!(report.duplicated_same_identity.len(), 0, "{report:#?}");
    assert!(failed(&rig, "email") >= 2, "{}", rig.metrics());
    let log = rig.log.text();
    assert!(
        log.contains("notification not sent; will retry") && log.contains("451"),
        "{log}"
    );
    rig.stop().await;
}

/// Nothing listens on the SMTP port, then a server starts there: the mail
/// that waited goes out once it can.
async fn smtp_refused_connections(url: &str) {
    let port = support::free_port();
    let mut rig = Rig::start(url, port);
    for i in 0..3 {
        rig.email(&format!("smtp-down-{i}"), "ann@client.test", Must::Deliver);
    }
    assert!(
        support::eventually(Duration::from_secs(20), || failed(&rig, "email") >= 3).await,
        "{}",
        rig.metrics()
    );
    let history = rig.history.clone();
    let _smtp = SmtpRecorder::start_on(port, &history, |_| None, |_| SmtpAct::Accept).await;
    let fault_ended = Instant::now();
    rig.settle(SETTLE).await;
    let report = rig.report(
        "smtp connection refused",
        "no server on the SMTP port until the mail had failed once each",
        fault_ended,
    );
    report.assert_kept();
    let log = rig.log.text();
    assert!(
        log.contains("notification not sent; will retry") && log.contains("onnection refused"),
        "{log}"
    );
    rig.stop().await;
}

/// The server takes the message and holds its reply to the end of DATA past
/// the sender's patience (the RFC 1047 window): the attempt's outcome is
/// unknown, counted, and the retry carries the same Message-ID. The next two
/// ends of DATA are answered 451: a mail sent meanwhile must not be taken
/// for delivered on the connection whose reply is still on its way.
async fn smtp_slow_end_of_data(url: &str) {
    let history = support::recorders::History::default();
    let smtp = SmtpRecorder::start(
        &history,
        |_| None,
        |n| match n {
            0 => SmtpAct::Slow(Duration::from_secs(4)),
            1 | 2 => SmtpAct::Reply("451 4.3.0 try again later"),
            _ => SmtpAct::Accept,
        },
    )
    .await;
    let mut rig = Rig::start(url, smtp.port);
    rig.history = history;
    rig.email("smtp-slow-0", "ann@client.test", Must::Deliver);
    assert!(
        support::eventually(Duration::from_secs(20), || rig.uncertain() >= 1).await,
        "{}",
        rig.log.text()
    );
    rig.email("smtp-slow-1", "ann@client.test", Must::Deliver);
    // The first attempt alone already counts as taken: wait for its retry.
    assert!(
        support::eventually(Duration::from_secs(20), || rig
            .history
            .attempts("smtp-slow-0")
            >= 2)
        .await
    );
    rig.settle(SETTLE).await;
    let report = rig.report(
        "smtp slow end of DATA",
        "the reply to the end of DATA held 4 s against a 2 s send timeout, then two 451s",
        rig.started,
    );
    if !report.kept() {
        eprintln!("{}\n{}", rig.explain(&report), rig.log.text());
    }
    report.assert_kept();
    assert_eq!(
        rig.metric("keepword_notifications_uncertain_total{kind=\"email\"}"),
        1,
        "{}\n{:#?}",
        rig.log.text(),
        rig.history.all()
    );
    rig.stop().await;
}

/// Poison output: one recipient the server refuses for good (550 at RCPT)
/// among good ones. The refused mail is parked after one attempt and shown;
/// the rest go out as if nothing happened.
async fn smtp_550_recipient_holds_up_nothing(url: &str) {
    let history = support::recorders::History::default();
    let smtp = SmtpRecorder::start(
        &history,
        |rcpt| (rcpt == "nobody@client.test").then_some("550 5.1.1 no such user"),
        |_| SmtpAct::Accept,
    )
    .await;
    let mut rig = Rig::start(url, smtp.port);
    rig.history = history;
    rig.email("smtp-poison", "nobody@client.test", Must::BeRefused);
    for i in 0..5 {
        rig.email(&format!("smtp-good-{i}"), "ann@client.test", Must::Deliver);
    }
    rig.settle(SETTLE).await;
    let report = rig.report(
        "smtp 550 recipient",
        "one recipient answered 550 at RCPT among five good ones",
        rig.started,
    );
    report.assert_kept();
    let refused_rows = rig
        .store
        .with(|c| keepword::store::outbox::refused(c, 10))
        .unwrap();
    assert_eq!(refused_rows.len(), 1);
    assert!(
        refused_rows[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("550"),
        "{:?}",
        refused_rows[0]
    );
    assert_eq!(refused(&rig, "email"), 1);
    assert!(
        rig.log.text().contains("refused for good"),
        "{}",
        rig.log.text()
    );
    rig.stop().await;
}

// ---------------------------------------------------------------- webhooks

/// A webhook receiver answers 500 three times, then takes everything.
async fn webhook_500(url: &str) {
    let mut rig = Rig::start(url, support::free_port());
    let hook = HttpRecorder::start("hook", &rig.history, |n, _| {
        if n < 3 {
            Act::Answer("500 Internal Server Error", String::new())
        } else {
            Act::ok()
        }
    })
    .await;
    for i in 0..4 {
        rig.webhook(&format!("hook-500-{i}"), &hook.url, Must::Deliver);
    }
    rig.settle(SETTLE).await;
    let report = rig.report("webhook 500", "three answers of 500", rig.last_fault());
    report.assert_kept();
    assert!(report.duplicated_same_identity.is_empty(), "{report:#?}");
    assert!(failed(&rig, "webhook") >= 3);
    assert!(rig.log.text().contains("HTTP 500"), "{}", rig.log.text());
    rig.stop().await;
}

/// 429 with `Retry-After: 2`: the retry comes when the receiver said, not
/// on the (shorter) back-off.
async fn webhook_429_retry_after(url: &str) {
    let mut rig = Rig::start(url, support::free_port());
    let hook = HttpRecorder::start("hook", &rig.history, |n, _| {
        if n == 0 {
            Act::Answer("429 Too Many Requests", "Retry-After: 2\r\n".into())
        } else {
            Act::ok()
        }
    })
    .await;
    rig.webhook("hook-429", &hook.url, Must::Deliver);
    rig.settle(SETTLE).await;
    let report = rig.report(
        "webhook 429 + Retry-After",
        "429 with Retry-After: 2 once",
        rig.last_fault(),
    );
    report.assert_kept();
    let h = rig.history.all();
    assert_eq!(h.len(), 2, "{h:?}");
    // A lower bound, not a speed: sooner would have ignored the receiver.
    let gap = h[1].at - h[0].at;
    assert!(gap >= Duration::from_millis(1_900), "retried after {gap:?}");
    assert!(
        rig.log.text().contains("retry after 2 s"),
        "{}",
        rig.log.text()
    );
    rig.stop().await;
}

/// Poison output over HTTP: a receiver gone for good (410) among a working
/// one. The 410 is parked after one attempt; the others are not held up.
async fn webhook_410_holds_up_nothing(url: &str) {
    let mut rig = Rig::start(url, support::free_port());
    let gone = HttpRecorder::start("gone", &rig.history, |_, _| {
        Act::Answer("410 Gone", String::new())
    })
    .await;
    let hook = HttpRecorder::start("hook", &rig.history, |_, _| Act::ok()).await;
    rig.webhook("hook-gone", &gone.url, Must::BeRefused);
    for i in 0..3 {
        rig.webhook(&format!("hook-fine-{i}"), &hook.url, Must::Deliver);
    }
    rig.settle(SETTLE).await;
    let report = rig.report("webhook 410", "one receiver answers 410 Gone", rig.started);
    report.assert_kept();
    assert_eq!(refused(&rig, "webhook"), 1);
    let parked = rig
        .store
        .with(|c| keepword::store::outbox::refused(c, 10))
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert!(
        rig.log.text().contains("refused for good"),
        "{}",
        rig.log.text()
    );
    rig.stop().await;
}

/// Nothing listens at the webhook's address, then a receiver starts there:
/// the log says what is wrong (not only "error sending request"), and the
/// webhooks go out once it can take them.
async fn webhook_connection_refused(url: &str) {
    let port = support::free_port();
    let mut rig = Rig::start(url, support::free_port());
    let down = format!("http://127.0.0.1:{port}/hook");
    for i in 0..3 {
        rig.webhook(&format!("hook-down-{i}"), &down, Must::Deliver);
    }
    assert!(support::eventually(Duration::from_secs(20), || failed(&rig, "webhook") >= 3).await);
    let history = rig.history.clone();
    let _hook = HttpRecorder::start_on(port, "hook", &history, |_, _| Act::ok()).await;
    let fault_ended = Instant::now();
    rig.settle(SETTLE).await;
    let report = rig.report(
        "webhook connection refused",
        "nothing listening at the webhook's address until each had failed once",
        fault_ended,
    );
    report.assert_kept();
    let log = rig.log.text();
    assert!(log.contains("onnection refused"), "{log}");
    rig.stop().await;
}

/// A slow receiver (1 s, inside the 2 s send timeout): delivered once each.
async fn webhook_slow(url: &str) {
    let mut rig = Rig::start(url, support::free_port());
    let hook = HttpRecorder::start("hook", &rig.history, |_, _| {
        Act::Slow(Duration::from_secs(1))
    })
    .await;
    for i in 0..3 {
        rig.webhook(&format!("hook-slow-{i}"), &hook.url, Must::Deliver);
    }
    rig.settle(SETTLE).await;
    let report = rig.report(
        "webhook slow",
        "every answer held 1 s (send timeout 2 s)",
        rig.started,
    );
    report.assert_kept();
    assert_eq!(report.attempts, 3, "{report:#?}");
    assert_eq!(rig.uncertain(), 0);
    rig.stop().await;
}

/// The receiver takes the first request and never answers; then it resets
/// the next connection without an answer. Both outcomes are unknown; each
/// retry carries the same `webhook-id`.
async fn webhook_never_then_reset(url: &str) {
    let mut rig = Rig::start(url, support::free_port());
    let hook = HttpRecorder::start("hook", &rig.history, |n, _| match n {
        0 => Act::Never,
        1 => Act::Reset,
        _ => Act::ok(),
    })
    .await;
    rig.webhook("hook-silent", &hook.url, Must::Deliver);
    rig.settle(SETTLE).await;
    let report = rig.report(
        "webhook never answers, then resets",
        "the first request held without an answer, the second reset (RST)",
        rig.last_fault(),
    );
    report.assert_kept();
    let h = rig.history.all();
    assert_eq!(h.len(), 3, "{h:?}");
    assert!(h.iter().all(|d| d.identity == h[0].identity));
    assert_eq!(
        rig.metric("keepword_notifications_uncertain_total{kind=\"webhook\"}"),
        2,
        "{}",
        rig.metrics()
    );
    assert!(
        rig.log.text().contains("outcome unknown"),
        "{}",
        rig.log.text()
    );
    rig.stop().await;
}

scenarios!(
    smtp_421_and_451,
    smtp_refused_connections,
    smtp_slow_end_of_data,
    smtp_550_recipient_holds_up_nothing,
    webhook_500,
    webhook_connection_refused,
    webhook_429_retry_after,
    webhook_410_holds_up_nothing,
    webhook_slow,
    webhook_never_then_reset,
);

/// `BOUND` is what the scenarios promise; say it where the report reads it.
#[test]
fn the_stated_bound_covers_the_longest_back_off() {
    let t = crate::rig::tuning();
    assert!(BOUND >= t.max_backoff + t.send_timeout + t.idle_poll);
}

// ---------------------------------------------------------------- PostgreSQL

/// Terminates every session of the test database but the caller's
/// (`pg_terminate_backend`, keepword's sessions on this test's own database
/// only): how many it ended.
pub fn terminate_sessions(url: &str) -> usize {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Ended {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut c = diesel::pg::PgConnection::establish(url).unwrap();
    diesel::sql_query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .get_result::<Ended>(&mut c)
    .unwrap()
    .n as usize
}

/// keepword's PostgreSQL sessions are terminated again and again while the
/// worker claims, sends and records: every notification still arrives, none
/// under another identity, and the worker delivers again once it stops.
#[tokio::test]
async fn postgres_sessions_terminated() {
    let db = crate::common::FreshPostgres::new();
    let mut rig = Rig::start(&db.url, support::free_port());
    let hook = HttpRecorder::start("hook", &rig.history, |_, _| {
        Act::Slow(Duration::from_millis(100))
    })
    .await;
    // A killer on its own thread, every 20 ms for 2 s, so sessions die
    // mid-claim and mid-record too, not only while idle in the pool.
    let killer = {
        let url = db.url.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(2);
            let mut ended = 0;
            while Instant::now() < until {
                ended += terminate_sessions(&url);
                std::thread::sleep(Duration::from_millis(20));
            }
            ended
        })
    };
    for round in 0..10 {
        for i in 0..3 {
            rig.webhook(&format!("pg-kill-{round}-{i}"), &hook.url, Must::Deliver);
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let ended = tokio::task::spawn_blocking(move || killer.join().unwrap())
        .await
        .unwrap();
    let fault_ended = Instant::now();
    assert!(ended > 0, "no session was terminated");
    rig.settle(SETTLE).await;
    // Healthy again without a restart: every transaction after the fault
    // succeeds the first time, whichever pooled connection it gets.
    for i in 0..30 {
        let key = format!("pg-kill-after-{i}");
        if let Err(e) = rig.try_webhook(&key, &hook.url) {
            panic!("{key}: the store still fails after the fault: {e}");
        }
    }
    rig.settle(SETTLE).await;
    // An outcome whose recording died with its session is sent again when
    // its lease ends (counted as unrecorded): as uncertain as a crash after
    // the send.
    let report = rig.report(
        "PostgreSQL sessions terminated",
        &format!(
            "pg_terminate_backend of keepword's sessions, every 20 ms for 2 s ({ended} ended)"
        ),
        fault_ended,
    );
    report.assert_kept();
    // While it lasted: a log line and a metric.
    let log = rig.log.text();
    assert!(
        log.contains("outbox step failed") || log.contains("cannot record sent notifications"),
        "{log}"
    );
    assert!(
        rig.metrics()
            .contains("keepword_outbox_database_errors_total"),
        "{}",
        rig.metrics()
    );
    rig.stop().await;
}

/// Another session takes `LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE` and
/// holds it for `hold`: returns once it holds it, with the thread that
/// releases it.
async fn lock_outbox(url: &str, hold: Duration) -> std::thread::JoinHandle<()> {
    use diesel::prelude::*;
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let url = url.to_string();
    let holder = std::thread::spawn(move || {
        let mut c = diesel::pg::PgConnection::establish(&url).unwrap();
        c.transaction(|c| {
            diesel::sql_query("LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE").execute(c)?;
            locked_tx.send(()).unwrap();
            std::thread::sleep(hold);
            diesel::QueryResult::Ok(())
        })
        .unwrap();
    });
    tokio::task::spawn_blocking(move || locked_rx.recv().unwrap())
        .await
        .unwrap();
    holder
}

/// Three webhooks `PREFIX-i` enqueued by a writer that queues behind a lock
/// (the service's own enqueue waits like this, up to its caller's timeout).
fn enqueue_behind(
    rig: &Rig,
    url: &str,
    prefix: &str,
) -> tokio::task::JoinHandle<Vec<crate::checker::Expected>> {
    let store = rig.store.clone();
    let (url, prefix) = (url.to_string(), prefix.to_string());
    tokio::task::spawn_blocking(move || {
        (0..3)
            .map(|i| crate::rig::webhook(&store, &format!("{prefix}-{i}"), &url, Must::Deliver))
            .collect::<Vec<_>>()
    })
}

/// Waits until the worker said, in its metric, that a claim failed.
async fn claim_failed(rig: &Rig, while_what: &str) {
    assert!(
        support::eventually(Duration::from_secs(20), || rig
            .metric("keepword_outbox_database_errors_total{stage=\"claim\"}")
            >= 1)
        .await,
        "nothing said {while_what}: {}",
        rig.log.text()
    );
}

/// Waits for the lock's end, then for the rows enqueued behind it to be
/// delivered: when the lock ended.
async fn release(
    rig: &mut Rig,
    holder: std::thread::JoinHandle<()>,
    enqueue: tokio::task::JoinHandle<Vec<crate::checker::Expected>>,
) -> Instant {
    tokio::task::spawn_blocking(move || holder.join().unwrap())
        .await
        .unwrap();
    let ended = Instant::now();
    rig.expected.extend(enqueue.await.unwrap());
    rig.wake();
    rig.settle(SETTLE).await;
    ended
}

/// Another session holds an exclusive lock on the outbox table for 7 s:
/// the worker's claim gives up after the lock timeout, says so in its log
/// and metric while the lock lasts, and delivers once it is released.
#[tokio::test]
async fn postgres_table_lock() {
    let db = crate::common::FreshPostgres::new();
    let mut rig = Rig::start(&db.url, support::free_port());
    let hook = HttpRecorder::start("hook", &rig.history, |_, _| Act::ok()).await;
    rig.webhook("pg-lock-warmup", &hook.url, Must::Deliver);
    rig.settle(SETTLE).await;
    // The lock is taken before the rows are written, so it holds them.
    let holder = lock_outbox(&db.url, Duration::from_secs(7)).await;
    let locked_at = Instant::now();
    let enqueue = enqueue_behind(&rig, &hook.url, "pg-lock");
    // While the lock lasts: the claim gives up, in the log and the metric.
    claim_failed(&rig, "while the table was locked").await;
    assert!(
        locked_at.elapsed() < Duration::from_secs(7),
        "the lock was released before anything was said"
    );
    assert!(
        rig.log.text().contains("lock timeout"),
        "{}",
        rig.log.text()
    );
    let fault_ended = release(&mut rig, holder, enqueue).await;
    let report = rig.report(
        "PostgreSQL table lock",
        "LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE held 7 s by another session",
        fault_ended,
    );
    report.assert_kept();
    rig.stop().await;
}

/// A statement timeout set on the test's own database (`ALTER DATABASE …
/// SET statement_timeout = '1s'`, taken up by keepword's sessions as they
/// reconnect) while another session holds the outbox table for 6 s: the
/// worker's statements are cancelled after 1 s, before their own 5 s lock
/// timeout; it says so in its log and metric while that lasts, and once the
/// lock is gone everything is delivered (the statements themselves are
/// quick), without a restart; then the setting is lifted.
#[tokio::test]
async fn postgres_statement_timeout() {
    use diesel::prelude::*;
    let db = crate::common::FreshPostgres::new();
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let admin = |sql: String| {
        let mut c = diesel::pg::PgConnection::establish(&db.url).unwrap();
        diesel::sql_query(sql).execute(&mut c).unwrap();
    };
    let mut rig = Rig::start(&db.url, support::free_port());
    let hook = HttpRecorder::start("hook", &rig.history, |_, _| Act::ok()).await;
    rig.webhook("pg-timeout-warmup", &hook.url, Must::Deliver);
    rig.settle(SETTLE).await;
    admin(format!(
        "ALTER DATABASE {name} SET statement_timeout = '1s'"
    ));
    // The setting reaches a session when it starts: end keepword's.
    terminate_sessions(&db.url);
    let holder = lock_outbox(&db.url, Duration::from_secs(6)).await;
    let enqueue = enqueue_behind(&rig, &hook.url, "pg-timeout");
    claim_failed(&rig, "under the statement timeout").await;
    assert!(
        rig.log.text().contains("statement timeout"),
        "the log does not name the statement timeout: {}",
        rig.log.text()
    );
    let fault_ended = release(&mut rig, holder, enqueue).await;
    admin(format!("ALTER DATABASE {name} RESET statement_timeout"));
    let report = rig.report(
        "PostgreSQL statement timeout",
        "ALTER DATABASE SET statement_timeout = '1s' (sessions ended to take it up) while another session held LOCK TABLE outbox 6 s; then RESET",
        fault_ended,
    );
    report.assert_kept();
    rig.stop().await;
}

// ---------------------------------------------------------------- random mix

/// Every fault of the receivers at once, drawn from a seeded generator
/// (`FAULTS_SEED`, default 1) for a fixed time
/// (`FAULTS_SECONDS`, default 30) while notifications keep coming
/// (five a second, email and webhook); then the faults stop and everything
/// must arrive within the bound. Attempts interleave as the machine runs
/// them, so a seed fixes the mix of faults, not their exact order.
async fn random_mix(url: &str) {
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let seed: u64 = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let seconds: u64 = std::env::var("FAULTS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let faulty = Arc::new(AtomicBool::new(true));
    let rng = Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)));
    let history = support::recorders::History::default();
    let smtp = {
        let (faulty, rng) = (faulty.clone(), rng.clone());
        SmtpRecorder::start(
            &history,
            |rcpt| {
                rcpt.starts_with("nobody")
                    .then_some("550 5.1.1 no such user")
            },
            move |_| {
                if !faulty.load(Ordering::SeqCst) {
                    return SmtpAct::Accept;
                }
                match rng.lock().unwrap().random_range(0..100) {
                    0..60 => SmtpAct::Accept,
                    60..75 => SmtpAct::Reply("451 4.3.0 try again later"),
                    75..90 => SmtpAct::Reply("421 4.3.2 service shutting down"),
                    _ => SmtpAct::Slow(Duration::from_secs(3)),
                }
            },
        )
        .await
    };
    let mut rig = Rig::start(url, smtp.port);
    rig.history = history;
    let hook = {
        let (faulty, rng) = (faulty.clone(), rng.clone());
        HttpRecorder::start("hook", &rig.history, move |_, _| {
            if !faulty.load(Ordering::SeqCst) {
                return Act::ok();
            }
            match rng.lock().unwrap().random_range(0..100) {
                0..50 => Act::ok(),
                50..65 => Act::Answer("500 Internal Server Error", String::new()),
                65..75 => Act::Answer("429 Too Many Requests", "Retry-After: 1\r\n".into()),
                75..85 => Act::Answer("503 Service Unavailable", String::new()),
                85..92 => Act::Slow(Duration::from_millis(500)),
                92..96 => Act::Never,
                _ => Act::Reset,
            }
        })
        .await
    };
    let gone = HttpRecorder::start("gone", &rig.history, |_, _| {
        Act::Answer("410 Gone", String::new())
    })
    .await;
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut n = 0;
    while Instant::now() < until {
        let key = format!("mix-{n}");
        match n % 10 {
            0 => rig.webhook(&key, &gone.url, Must::BeRefused),
            1 => rig.email(&key, &format!("nobody{n}@client.test"), Must::BeRefused),
            2..=5 => rig.email(&key, "ann@client.test", Must::Deliver),
            _ => rig.webhook(&key, &hook.url, Must::Deliver),
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    faulty.store(false, Ordering::SeqCst);
    let fault_ended = Instant::now();
    rig.settle(Duration::from_secs(60)).await;
    let report = rig.report(
        &format!("random mix (seed {seed}, {seconds} s)"),
        "SMTP 451/421/slow DATA/550 recipients, webhook 500/429+Retry-After/503/slow/never/reset/410, at random",
        fault_ended,
    );
    if !report.kept() {
        eprintln!("{}", rig.explain(&report));
    }
    report.assert_kept();
    rig.stop().await;
}

mod random_mix {
    #[tokio::test]
    #[ignore = "scripts/faults runs it, with a seed and a time"]
    async fn sqlite() {
        let (_dir, url) = crate::common::fresh_sqlite();
        super::random_mix(&url).await;
    }
    #[tokio::test]
    #[ignore = "scripts/faults runs it, with a seed and a time"]
    async fn postgres() {
        let db = crate::common::FreshPostgres::new();
        super::random_mix(&db.url).await;
    }
}

// ---------------------------------------------------------------- disk full

/// A tmpfs of its own (needs root), unmounted when dropped.
pub struct Tmpfs {
    pub path: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mut fs = Tmpfs::mount_at(dir.path(), size);
        fs._dir = Some(dir);
        fs
    }

    /// Mounts one at `path` (created if missing).
    pub fn mount_at(path: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs at {} (the disk-full scenarios need root)",
            path.display()
        );
        Tmpfs {
            path: path.to_path_buf(),
            _dir: None,
        }
    }

    /// Writes a file until the file system is full; returns its path.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        // The last pages a partial write left: byte by byte.
        while f.write_all(&[0]).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// SQLite on a 16 MB tmpfs that fills up while notifications wait for a
/// receiver that is down. While the disk is full: new input is refused with
/// a clear error (nothing is taken that could be lost), and the worker says
/// so in its log and metric. Once space is freed: everything goes out,
/// without a restart.
async fn sqlite_disk_full() {
    let fs = Tmpfs::mount("16m");
    let url = format!("sqlite://{}/keepword.db", fs.path.display());
    let port = support::free_port();
    let mut rig = Rig::start(&url, support::free_port());
    let down = format!("http://127.0.0.1:{port}/hook");
    for i in 0..5 {
        rig.webhook(&format!("disk-{i}"), &down, Must::Deliver);
    }
    // The receiver being down, each has failed once: rows were updated.
    assert!(support::eventually(Duration::from_secs(20), || failed(&rig, "webhook") >= 5).await);
    let filler = fs.fill();
    // New input is refused, saying why.
    let refused = (0..50).find_map(|i| rig.try_webhook(&format!("disk-late-{i}"), &down).err());
    let refused = refused.expect("the full disk took 50 more rows");
    assert!(
        refused.to_string().contains("full"),
        "not a clear error: {refused}"
    );
    let history = rig.history.clone();
    let _hook = HttpRecorder::start_on(port, "hook", &history, |_, _| Act::ok()).await;
    // The worker sends and cannot record, or cannot claim: it says so.
    assert!(
        support::eventually(Duration::from_secs(30), || {
            rig.metrics()
                .contains("keepword_outbox_database_errors_total")
        })
        .await,
        "nothing said while the disk was full: {}",
        rig.log.text()
    );
    assert!(rig.log.text().contains("full"), "{}", rig.log.text());
    std::fs::remove_file(filler).unwrap();
    let fault_ended = Instant::now();
    rig.settle(SETTLE).await;
    let report = rig.report(
        "SQLite disk full",
        "the database's 16 MB tmpfs filled while notifications waited for a receiver that was down",
        fault_ended,
    );
    if !report.kept() {
        eprintln!("{}\n{}", rig.explain(&report), rig.log.text());
    }
    report.assert_kept();
    rig.stop().await;
}

#[tokio::test]
#[ignore = "mounts a tmpfs (root); scripts/faults runs it"]
async fn sqlite_disk_full_sqlite() {
    sqlite_disk_full().await;
}

// ---------------------------------------------------------------- poison output, shown

/// Poison output through the service: a client writes from an address the
/// mail server refuses (550 at RCPT). Its acknowledgement is parked after
/// one attempt, the conversation's timeline says so instead of "sent", and
/// the Rejected page's list names it; a second client's acknowledgement is
/// not held up.
async fn refused_acknowledgement_is_shown(url: &str) {
    use keepword::imap::{FetchedMail, FolderKind};
    use keepword::service::MailboxContext;
    let history = support::recorders::History::default();
    let smtp = SmtpRecorder::start(
        &history,
        |rcpt| (rcpt == "nobody@acme.com").then_some("550 5.1.1 <nobody@acme.com>: no such user"),
        |_| SmtpAct::Accept,
    )
    .await;
    let service = crate::common::shipped_service(url);
    let mut rig = Rig::start(url, smtp.port);
    rig.history = history;
    let mailbox = MailboxContext {
        name: "support".into(),
        channel: "email".into(),
        team: vec!["@example.com".into()],
        own: vec!["support@example.com".into()],
    };
    let now = chrono::Utc::now();
    let mail = |from: &str, id: &str| FetchedMail {
        uid: if id.starts_with("<a") { 1 } else { 2 },
        raw: format!(
            "From: {from}\r\nTo: support@example.com\r\nSubject: Question {id}\r\n\
             Message-ID: {id}\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n",
            now.to_rfc2822()
        )
        .into_bytes(),
    };
    let r = service
        .intake
        .ingest_mail_batch(
            &mailbox,
            "INBOX",
            FolderKind::Inbox,
            7,
            vec![
                mail("Nobody <nobody@acme.com>", "<a1@acme.com>"),
                mail("Jane <jane@acme.com>", "<b1@acme.com>"),
            ],
            now,
        )
        .unwrap();
    assert_eq!(r.acknowledged, 2, "{r:?}");
    rig.wake();
    let rows = rig.store.with(keepword::store::outbox::all).unwrap();
    rig.expected.push(crate::checker::Expected {
        key: "rcpt:nobody@acme.com".into(),
        identity: String::new(),
        must: Must::BeRefused,
    });
    let jane = rows
        .iter()
        .find(|r| r.target.contains("jane"))
        .expect("Jane's acknowledgement");
    let subject = match serde_json::from_str(&jane.payload).unwrap() {
        keepword::notify::OutboxMessage::Email {
            subject,
            message_id,
            ..
        } => {
            rig.expected.push(crate::checker::Expected {
                key: subject.clone(),
                identity: message_id,
                must: Must::Deliver,
            });
            subject
        }
        other => panic!("{other:?}"),
    };
    rig.settle(SETTLE).await;
    let report = rig.report(
        "poison output: an acknowledgement to a 550 address",
        "a client's address refused with 550 at RCPT; another client's acknowledgement beside it",
        rig.started,
    );
    report.assert_kept();
    assert!(rig.history.all_accepted([subject.as_str()].into_iter()));

    let refused = service.reads.refused_notifications(10).unwrap();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let n = &refused[0];
    assert_eq!((n.what, n.kind.as_str()), ("acknowledgement", "email"));
    assert!(n.error.contains("550"), "{n:?}");
    let conversation = n
        .conversation_id
        .expect("the acknowledgement's conversation");
    let timeline = service
        .reads
        .timeline(conversation, 1, chrono::Utc::now())
        .unwrap();
    let ack = timeline
        .items
        .iter()
        .find(|i| i.kind == "ack")
        .expect("the acknowledgement on the timeline");
    assert!(
        ack.title
            .starts_with("acknowledgement to nobody@acme.com refused: ")
            && ack.title.contains("550")
            && ack.title.ends_with("— not retried"),
        "{}",
        ack.title
    );
    rig.stop().await;
}

scenarios!(refused_acknowledgement_is_shown);
