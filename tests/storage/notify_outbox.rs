//! The outbox worker against real receivers (aiosmtpd over SMTP, an HTTP
//! server for webhooks) on SQLite and PostgreSQL: delivery with the right
//! headers, back-off while a receiver is down, exactly one delivery per row,
//! and two workers sharing one database.

use crate::support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keepword::config::{Secret, SmtpSettings, Tls};
use keepword::notify::{
    OutboxWorker, Senders, SmtpSender, StepReport, WebhookSender, WorkerConfig,
};
use keepword::outbox::{EmailDraft, OutboxMessage, new_email, new_webhook};
use keepword::store::{self, OutboxRow, Store, outbox};
use prometheus::{Encoder, Registry, TextEncoder};
use support::{HookReceiver, SmtpServer};

fn smtp_settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        tls: Tls::None,
        username: String::new(),
        password: Secret::default(),
        password_file: None,
        from: "Northwind Support <support@example.com>".parse().unwrap(),
        ca_file: None,
        auth: Default::default(),
        oauth: None,
    }
}

fn config() -> WorkerConfig {
    WorkerConfig {
        send_timeout: Duration::from_secs(10),
        ..WorkerConfig::default()
    }
}

fn worker(store: Store, smtp_port: u16, config: WorkerConfig) -> OutboxWorker {
    let senders = Senders {
        smtp: Some(SmtpSender::new(&smtp_settings(smtp_port)).unwrap()),
        webhook: WebhookSender::with_timeout(Duration::from_secs(5)).unwrap(),
        slack: None,
    };
    OutboxWorker::new(store, senders, config)
}

fn ack(n: usize) -> EmailDraft {
    EmailDraft {
        to: vec![format!("Ann Client <ann{n}@client.test>")],
        subject: format!("We received your request {n}"),
        text: format!("Hello Ann, we will answer request {n} within 4 business hours."),
        html: Some(format!(
            "<p>Hello Ann, we will answer request <b>{n}</b>.</p>"
        )),
        headers: vec![
            ("Auto-Submitted".into(), "auto-replied".into()),
            ("In-Reply-To".into(), format!("<req{n}@client.test>")),
            (
                "References".into(),
                format!("<root{n}@client.test> <req{n}@client.test>"),
            ),
            ("X-Auto-Response-Suppress".into(), "All".into()),
        ],
    }
}

fn enqueue(store: &Store, row: store::NewOutbox) -> bool {
    store.transaction(|c| store::enqueue(c, &row)).unwrap()
}

fn rows(store: &Store) -> Vec<OutboxRow> {
    store.with(outbox::all).unwrap()
}

fn message_id(row: &OutboxRow) -> String {
    match serde_json::from_str(&row.payload).unwrap() {
        OutboxMessage::Email { message_id, .. } => message_id,
        other => panic!("not an email: {other:?}"),
    }
}

fn exported(worker: &OutboxWorker) -> String {
    let registry = Registry::new_custom(Some("keepword".into()), None).unwrap();
    for c in worker.collectors() {
        registry.register(c).unwrap();
    }
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .unwrap();
    String::from_utf8(buf).unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc::now()
}

// ------------------------------------------------------------------ scenarios

async fn delivers_email_and_webhook(url: &str) {
    let smtp = SmtpServer::start();
    let hook = HookReceiver::start(0).await;
    let store = Store::open(url).unwrap();
    let w = worker(store.clone(), smtp.port, config());
    let now = t0();

    assert!(enqueue(
        &store,
        new_email(ack(1), "example.com", "ack:1", now).unwrap()
    ));
    // The same dedupe key again (a retried use case) adds nothing.
    assert!(!enqueue(
        &store,
        new_email(ack(1), "example.com", "ack:1", now).unwrap()
    ));
    let body = serde_json::json!({
        "text": "Breach: conversation 7 (Acme) missed first_response",
        "conversation_id": 7,
        "client": "acme",
        "timer": "first_response",
    });
    assert!(enqueue(
        &store,
        new_webhook(&hook.url, body.clone(), "esc:7:breach", now).unwrap()
    ));
    assert!(exported(&w).contains("keepword_outbox_pending 0"));

    let report = w.step(now).await.unwrap();
    assert_eq!((report.claimed, report.sent, report.failed), (2, 2, 0));
    assert_eq!((report.pending, report.next_due), (0, None));

    let received = smtp.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    let email_row = rows(&store)
        .into_iter()
        .find(|r| r.kind == "email")
        .unwrap();
    assert_eq!(mail.header("Message-ID"), Some(message_id(&email_row)));
    assert_eq!(mail.header_count("Message-ID"), 1);
    assert_eq!(
        mail.header("Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        mail.header("In-Reply-To").as_deref(),
        Some("<req1@client.test>")
    );
    assert_eq!(
        mail.header("References").as_deref(),
        Some("<root1@client.test> <req1@client.test>")
    );
    assert_eq!(
        mail.header("X-Auto-Response-Suppress").as_deref(),
        Some("All")
    );
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("We received your request 1")
    );
    assert!(
        mail.header("From")
            .unwrap()
            .contains("<support@example.com>")
    );
    assert!(mail.header("To").unwrap().contains("ann1@client.test"));
    assert!(mail.header("Date").is_some());
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative"),
        "{}",
        mail.data
    );
    assert_eq!(mail.mail_from, "support@example.com");
    assert_eq!(mail.rcpt_tos, vec!["ann1@client.test".to_string()]);
    let plain = mail
        .data
        .find("Content-Type: text/plain")
        .expect("text part");
    let html = mail
        .data
        .find("Content-Type: text/html")
        .expect("html part");
    assert!(plain < html, "text first, HTML last (preferred)");
    assert!(
        mail.data
            .contains("we will answer request 1 within 4 business hours")
    );
    assert!(mail.data.contains("<b>1</b>"));

    assert_eq!(hook.accepted(), vec![body]);

    for row in rows(&store) {
        assert!(row.sent_at.is_some(), "{row:?}");
        assert_eq!(row.attempts, 1);
        assert_eq!(row.last_error, None);
    }
    let text = exported(&w);
    assert!(text.contains("keepword_outbox_pending 0"), "{text}");
    assert!(
        text.contains(r#"keepword_notifications_total{kind="email",result="sent"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"keepword_notifications_total{kind="webhook",result="sent"} 1"#),
        "{text}"
    );

    // Sent rows are never claimed again, however far time moves.
    let again = w.step(now + Duration::from_secs(86_400)).await.unwrap();
    assert_eq!(again.claimed, 0);
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(hook.requests(), 1);
}

async fn backs_off_while_smtp_is_down(url: &str) {
    let port = support::free_port();
    let store = Store::open(url).unwrap();
    let w = worker(store.clone(), port, config());
    let now = t0();
    for n in 0..3 {
        enqueue(
            &store,
            new_email(ack(n), "example.com", format!("ack:{n}"), now).unwrap(),
        );
    }

    // Nobody listens: every attempt fails, is counted and backs off.
    let first = w.step(now).await.unwrap();
    assert_eq!((first.claimed, first.sent, first.failed), (3, 0, 3));
    assert_eq!(first.pending, 3);
    let due = first.next_due.unwrap();
    assert!(due > now && due <= now + Duration::from_secs(2), "{due}");
    for row in rows(&store) {
        assert_eq!(row.attempts, 1);
        assert!(
            row.last_error.as_deref().unwrap().contains("smtp"),
            "{row:?}"
        );
        assert!(row.sent_at.is_none());
    }
    assert!(exported(&w).contains("keepword_outbox_pending 3"));
    // Backing off: not due yet.
    assert_eq!(w.step(now).await.unwrap().claimed, 0);

    let mut at = now;
    let mut previous_wait = Duration::ZERO;
    for attempt in 2..=5 {
        at += Duration::from_secs(3_600);
        let r = w.step(at).await.unwrap();
        assert_eq!((r.claimed, r.failed), (3, 3));
        for row in rows(&store) {
            assert_eq!(row.attempts, attempt);
            let wait = (row.available_at - at).to_std().unwrap();
            let full = Duration::from_secs(1 << (attempt - 1));
            assert!(
                wait >= full / 2 && wait <= full + Duration::from_secs(1),
                "{wait:?}"
            );
        }
        let wait = (r.next_due.unwrap() - at).to_std().unwrap();
        assert!(wait >= previous_wait / 2, "back-off grows");
        previous_wait = wait;
    }

    // The server comes up: each row goes out exactly once.
    let smtp = SmtpServer::start_on(port);
    at += Duration::from_secs(3_600);
    let r = w.step(at).await.unwrap();
    assert_eq!((r.claimed, r.sent, r.pending), (3, 3, 0));
    at += Duration::from_secs(3_600);
    assert_eq!(w.step(at).await.unwrap().claimed, 0);
    let received = smtp.received();
    assert_eq!(received.len(), 3);
    let ids: HashSet<String> = received
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    let expected: HashSet<String> = rows(&store).iter().map(message_id).collect();
    assert_eq!(ids, expected, "retries keep the Message-ID set at enqueue");
    for row in rows(&store) {
        assert_eq!(row.attempts, 6);
        assert!(row.sent_at.is_some());
    }
    let text = exported(&w);
    assert!(text.contains("keepword_outbox_pending 0"), "{text}");
    assert!(text.contains(r#"keepword_notifications_total{kind="email",result="failed"} 15"#));
    assert!(text.contains(r#"keepword_notifications_total{kind="email",result="sent"} 3"#));
}

async fn retries_a_failing_webhook(url: &str) {
    let hook = HookReceiver::start(2).await;
    let store = Store::open(url).unwrap();
    let w = worker(store.clone(), support::free_port(), config());
    let now = t0();
    let body = serde_json::json!({"text": "At risk: conversation 9", "conversation_id": 9});
    enqueue(
        &store,
        new_webhook(&hook.url, body.clone(), "esc:9:0.75", now).unwrap(),
    );

    let r1 = w.step(now).await.unwrap();
    assert_eq!(r1.failed, 1);
    let row = &rows(&store)[0];
    assert!(
        row.last_error.as_deref().unwrap().contains("500"),
        "{row:?}"
    );
    let r2 = w.step(now + Duration::from_secs(60)).await.unwrap();
    assert_eq!(r2.failed, 1);
    let r3 = w.step(now + Duration::from_secs(120)).await.unwrap();
    assert_eq!((r3.sent, r3.pending), (1, 0));
    assert_eq!(
        w.step(now + Duration::from_secs(600))
            .await
            .unwrap()
            .claimed,
        0
    );

    assert_eq!(hook.requests(), 3);
    assert_eq!(hook.accepted(), vec![body]);
    let row = &rows(&store)[0];
    assert_eq!(row.attempts, 3);
    assert!(row.sent_at.is_some());
}

/// Two workers, each with its own pool (as two `keepword serve` processes),
/// drain one outbox concurrently: every row is claimed and delivered once.
async fn two_workers_deliver_each_row_once(url: &str) {
    let smtp = SmtpServer::start();
    let hook = HookReceiver::start(0).await;
    let store = Store::open(url).unwrap();
    let now = t0();
    for n in 0..100 {
        enqueue(
            &store,
            new_email(ack(n), "example.com", format!("ack:{n}"), now).unwrap(),
        );
        let body = serde_json::json!({"text": format!("alert {n}"), "n": n});
        enqueue(
            &store,
            new_webhook(&hook.url, body, format!("esc:{n}"), now).unwrap(),
        );
    }
    let small_batches = WorkerConfig {
        batch_size: 7,
        ..config()
    };
    let a = worker(Store::open(url).unwrap(), smtp.port, small_batches.clone());
    let b = worker(Store::open(url).unwrap(), smtp.port, small_batches);
    assert_eq!(
        a.step(now - Duration::from_secs(1)).await.unwrap().pending,
        200
    );
    assert!(exported(&a).contains("keepword_outbox_pending 200"));

    async fn drain(w: &OutboxWorker) -> Vec<StepReport> {
        let mut reports = Vec::new();
        loop {
            let r = w.step(Utc::now()).await.unwrap();
            let done = r.pending == 0;
            let idle = r.claimed == 0;
            reports.push(r);
            if done {
                return reports;
            }
            if idle {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let (ra, rb) = tokio::join!(drain(&a), drain(&b));
    let claimed_a: usize = ra.iter().map(|r| r.claimed).sum();
    let claimed_b: usize = rb.iter().map(|r| r.claimed).sum();
    let failed: usize = ra.iter().chain(&rb).map(|r| r.failed).sum();
    assert_eq!(failed, 0);
    assert_eq!(claimed_a + claimed_b, 200, "a: {claimed_a}, b: {claimed_b}");
    assert!(
        claimed_a > 0 && claimed_b > 0,
        "both workers took part: a {claimed_a}, b {claimed_b}"
    );

    let received = smtp.received();
    assert_eq!(received.len(), 100);
    let ids: HashSet<String> = received
        .iter()
        .map(|m| m.header("Message-ID").unwrap())
        .collect();
    assert_eq!(ids.len(), 100);
    let bodies = hook.accepted();
    assert_eq!(bodies.len(), 100);
    let ns: HashSet<i64> = bodies.iter().map(|b| b["n"].as_i64().unwrap()).collect();
    assert_eq!(ns.len(), 100);
    assert!(
        rows(&store)
            .iter()
            .all(|r| r.sent_at.is_some() && r.attempts == 1)
    );
    assert!(exported(&a).contains("keepword_outbox_pending 0"));
    assert!(exported(&b).contains("keepword_outbox_pending 0"));
}

/// The loop: an enqueue plus `wake.notify_one()` is delivered promptly even
/// though the idle poll is long, and shutdown stops it.
async fn run_wakes_on_notify_and_stops(url: &str) {
    let hook = HookReceiver::start(0).await;
    let store = Store::open(url).unwrap();
    let w = worker(
        store.clone(),
        support::free_port(),
        WorkerConfig {
            idle_poll: Duration::from_secs(600),
            ..config()
        },
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let task = tokio::spawn(w.run(shutdown.clone(), wake.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let body = serde_json::json!({"text": "woken"});
    enqueue(
        &store,
        new_webhook(&hook.url, body.clone(), "wake:1", Utc::now()).unwrap(),
    );
    wake.notify_one();
    assert!(
        support::eventually(Duration::from_secs(5), || hook.accepted().len() == 1).await,
        "the worker did not wake up"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the worker stops on shutdown")
        .unwrap();
}

/// A worker that claimed rows and died before sending (or before recording
/// the send) leaves them leased: they are delivered once the lease ends, not
/// lost and not sent early by another worker.
async fn a_dead_workers_lease_runs_out(url: &str) {
    let hook = HookReceiver::start(0).await;
    let store = Store::open(url).unwrap();
    let cfg = config();
    let lease = cfg.lease;
    let w = worker(store.clone(), support::free_port(), cfg);
    let now = t0();
    let body = serde_json::json!({"text": "lease"});
    enqueue(
        &store,
        new_webhook(&hook.url, body.clone(), "lease:1", now).unwrap(),
    );

    let claimed = store
        .with(|c| outbox::claim_due(c, now, now + lease, 10))
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 1);
    // The "dead" worker's claim hides the row from everyone until the lease ends.
    let r = w.step(now + lease / 2).await.unwrap();
    assert_eq!((r.claimed, r.pending), (0, 1));
    assert_eq!(
        r.next_due,
        Some(now + lease).map(|t| store::from_db(store::to_db(t)))
    );
    let r = w.step(now + lease + Duration::from_secs(1)).await.unwrap();
    assert_eq!((r.claimed, r.sent), (1, 1));
    assert_eq!(hook.accepted(), vec![body]);
    assert_eq!(rows(&store)[0].attempts, 2);
}

/// The lease is a fence: a claimer that stalled past its lease (SIGSTOP, a
/// partition) and whose row was claimed again meanwhile cannot record a
/// delivery or a failure for it afterwards; the new claimer's records
/// stand. A worker that lost its lease counts it.
async fn a_stalled_claimers_late_outcome_is_fenced_off(url: &str) {
    let hook = HookReceiver::start(0).await;
    let store = Store::open(url).unwrap();
    let cfg = config();
    let lease = cfg.lease;
    let now = t0();
    let body = serde_json::json!({"text": "fenced"});
    enqueue(
        &store,
        new_webhook(&hook.url, body.clone(), "fence:1", now).unwrap(),
    );
    let stalled_lease = now + lease;
    let stalled = store
        .with(|c| outbox::claim_due(c, now, stalled_lease, 10))
        .unwrap();
    assert_eq!(stalled.len(), 1);
    let id = stalled[0].id;

    // The lease ends; another claimer takes the row.
    let later = now + lease + Duration::from_secs(1);
    let fresh_lease = later + lease;
    let fresh = store
        .with(|c| outbox::claim_due(c, later, fresh_lease, 10))
        .unwrap();
    assert_eq!(fresh.len(), 1);

    // The stalled claimer wakes up and reports: nothing is recorded.
    let marked = store
        .with(|c| outbox::mark_delivered_many(c, &[id], stalled_lease, later))
        .unwrap();
    assert_eq!(marked, 0, "a delivery recorded under a lost lease");
    let failed = store
        .with(|c| outbox::mark_failed(c, id, stalled_lease, later + lease * 10, "late"))
        .unwrap();
    assert!(!failed, "a failure recorded under a lost lease");
    let row = &rows(&store)[0];
    assert!(row.sent_at.is_none());
    assert_eq!(row.last_error, None);
    assert_eq!(
        row.available_at,
        store::from_db(store::to_db(fresh_lease)),
        "the new claimer's lease was moved"
    );
    // The claimer holding the lease records as usual.
    let marked = store
        .with(|c| outbox::mark_delivered_many(c, &[id], fresh_lease, later))
        .unwrap();
    assert_eq!(marked, 1);

    // A worker whose claim was taken over while it sent counts the loss:
    // its send outlasts the lease because the test moves the claim away
    // before the worker records.
    let slow_hook = HookReceiver::slow(Duration::from_millis(800), None).await;
    enqueue(
        &store,
        new_webhook(&slow_hook.url, body.clone(), "fence:2", now).unwrap(),
    );
    let w = worker(store.clone(), support::free_port(), config());
    let step = {
        let w = &w;
        async move { w.step(later).await.unwrap() }
    };
    let takeover = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        store
            .with(|c| outbox::claim_due(c, later + lease * 2, later + lease * 3, 10))
            .unwrap()
    };
    let (r, taken) = tokio::join!(step, takeover);
    assert_eq!(taken.len(), 1, "the takeover claimed the row in flight");
    assert_eq!(r.claimed, 1);
    let text = exported(&w);
    assert!(
        text.contains("keepword_outbox_lease_lost_total 1"),
        "{text}"
    );
    assert!(
        rows(&store)
            .iter()
            .all(|r| r.dedupe_key != "fence:2" || r.sent_at.is_none()),
        "the row was recorded as sent by the worker that lost its lease"
    );
}

/// No transaction is held open across a network send: with PostgreSQL
/// ending every session that sits idle inside a transaction for 300 ms,
/// sends that take a second each are delivered and recorded, and the
/// store's sessions were not cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_transaction_is_held_open_across_a_send() {
    let db = crate::common::FreshPostgres::new();
    let name = db.url.rsplit('/').next().unwrap().to_string();
    {
        use diesel::{Connection, RunQueryDsl};
        let mut c = diesel::PgConnection::establish(&db.url).unwrap();
        diesel::sql_query(format!(
            "ALTER DATABASE \"{name}\" SET idle_in_transaction_session_timeout = '300ms'"
        ))
        .execute(&mut c)
        .unwrap();
        // The guard is on: a transaction left idle for 600 ms is ended.
        let mut c = diesel::PgConnection::establish(&db.url).unwrap();
        let held = c.transaction::<_, diesel::result::Error, _>(|c| {
            diesel::sql_query("SELECT 1").execute(c)?;
            std::thread::sleep(Duration::from_millis(600));
            diesel::sql_query("SELECT 1").execute(c)
        });
        assert!(
            held.is_err(),
            "idle_in_transaction_session_timeout is not in force"
        );
    }
    let store = Store::open(&db.url).unwrap();
    let slow = HookReceiver::slow(Duration::from_secs(1), None).await;
    let now = t0();
    for i in 0..3 {
        enqueue(
            &store,
            new_webhook(
                &slow.url,
                serde_json::json!({"n": i}),
                format!("slow:{i}"),
                now,
            )
            .unwrap(),
        );
    }
    let w = worker(store.clone(), support::free_port(), config());
    let r = w.step(now).await.unwrap();
    assert_eq!((r.claimed, r.sent, r.failed), (3, 3, 0));
    assert_eq!(slow.requests(), 3);
    assert!(
        rows(&store).iter().all(|r| r.sent_at.is_some()),
        "a delivery was not recorded: {:?}",
        rows(&store)
    );
}

/// An attempt whose outcome is unknown — the receiver took the request and
/// did not answer within the send timeout — is counted as uncertain and
/// retried with the same identity, so the receiver can tell the second
/// delivery is the first one again.
async fn an_unanswered_attempt_is_uncertain_and_retried_with_the_same_identity(url: &str) {
    let hook = HookReceiver::slow_first(1, Duration::from_secs(3)).await;
    let store = Store::open(url).unwrap();
    let cfg = WorkerConfig {
        send_timeout: Duration::from_secs(1),
        ..config()
    };
    let w = worker(store.clone(), support::free_port(), cfg.clone());
    let now = t0();
    enqueue(
        &store,
        new_webhook(
            &hook.url,
            serde_json::json!({"text": "maybe"}),
            "maybe:1",
            now,
        )
        .unwrap(),
    );
    let r = w.step(now).await.unwrap();
    assert_eq!((r.claimed, r.failed), (1, 1));
    let r = w.step(now + cfg.max_backoff).await.unwrap();
    assert_eq!(r.sent, 1);
    // The first request finishes at the receiver after the sender gave up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while hook.recorded().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            hook.recorded()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: Vec<_> = hook
        .recorded()
        .iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids[0], ids[1], "a retry with another identity");
    let text = exported(&w);
    assert!(
        text.contains("keepword_notifications_uncertain_total{kind=\"webhook\"} 1"),
        "{text}"
    );
}

/// A row that cannot be sent until a setting is added (no SMTP server
/// configured) says why and waits the longest back-off instead of
/// hammering; a row that can never be sent (an unreadable payload) is
/// refused for good: parked, not retried.
async fn missing_settings_wait_and_unreadable_rows_are_parked(url: &str) {
    let store = Store::open(url).unwrap();
    let senders = Senders {
        smtp: None,
        webhook: WebhookSender::new().unwrap(),
        slack: None,
    };
    let cfg = config();
    let max = cfg.max_backoff;
    let w = OutboxWorker::new(store.clone(), senders, cfg);
    let now = t0();
    let mut garbage =
        new_webhook("http://127.0.0.1:9/x", serde_json::json!({}), "bad:1", now).unwrap();
    garbage.payload = "{not json".into();
    enqueue(&store, garbage);
    enqueue(
        &store,
        new_email(ack(1), "example.com", "ack:1", now).unwrap(),
    );

    let r = w.step(now).await.unwrap();
    assert_eq!((r.claimed, r.failed, r.refused), (2, 1, 1));
    for row in rows(&store) {
        let error = row.last_error.clone().unwrap();
        if row.kind == "email" {
            assert!(error.contains("no SMTP sender"), "{error}");
            assert!(row.refused_at.is_none());
            let wait = (row.available_at - now).to_std().unwrap();
            assert!(
                wait >= max && wait <= max + Duration::from_secs(5),
                "{wait:?}"
            );
        } else {
            assert!(error.contains("unreadable payload"), "{error}");
            assert!(row.refused_at.is_some(), "{row:?}");
        }
    }
    // Only the email waits; the parked row is not pending and never claimed.
    assert_eq!(r.pending, 1);
    let r = w.step(now + max * 10).await.unwrap();
    assert_eq!(r.claimed, 1, "{r:?}");
}

/// A receiver's permanent refusal (HTTP 410) parks the row: it is not
/// retried however long the worker runs, the answer is kept, it is counted
/// as refused and left out of the backlog; sent again by an operator, it
/// goes out with the same identity.
async fn a_refused_notification_is_parked_until_sent_again(url: &str) {
    let hook = HookReceiver::refusing("410 Gone", "", 1, "").await;
    let store = Store::open(url).unwrap();
    let cfg = config();
    let w = worker(store.clone(), support::free_port(), cfg.clone());
    let now = t0();
    enqueue(
        &store,
        new_webhook(
            &hook.url,
            serde_json::json!({"text": "gone"}),
            "gone:1",
            now,
        )
        .unwrap(),
    );
    let r = w.step(now).await.unwrap();
    assert_eq!((r.claimed, r.refused, r.failed, r.pending), (1, 1, 0, 0));
    let row = rows(&store).remove(0);
    assert!(row.refused_at.is_some(), "{row:?}");
    assert!(row.sent_at.is_none());
    let error = row.last_error.clone().unwrap();
    assert!(error.contains("410 Gone"), "{error}");
    for later in [cfg.max_backoff, cfg.max_backoff * 100] {
        let r = w.step(now + later).await.unwrap();
        assert_eq!(r.claimed, 0, "a refused row was retried: {r:?}");
    }
    assert_eq!(hook.requests(), 1);
    let listed = store.with(|c| outbox::refused(c, 10)).unwrap();
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), [row.id]);
    let text = exported(&w);
    assert!(
        text.contains(r#"keepword_notifications_total{kind="webhook",result="refused"} 1"#),
        "{text}"
    );

    // Sent again (the receiver takes it now): same identity, recorded sent.
    let later = now + cfg.max_backoff * 200;
    assert!(
        store
            .transaction(|c| outbox::send_again(c, row.id, later))
            .unwrap()
    );
    assert!(
        !store
            .transaction(|c| outbox::send_again(c, row.id, later))
            .unwrap(),
        "only a refused row can be sent again"
    );
    let r = w.step(later).await.unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    let got = hook.recorded();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    let row = rows(&store).remove(0);
    assert!(row.sent_at.is_some() && row.refused_at.is_none(), "{row:?}");
    assert!(store.with(|c| outbox::refused(c, 10)).unwrap().is_empty());
}

/// A 429 or 503 with `Retry-After` is retried when the receiver said (not
/// on the back-off schedule), for generic webhooks, Teams, PagerDuty and
/// Opsgenie alike; a 429 without it backs off as usual.
async fn retry_after_is_honoured_by_every_http_target(url: &str) {
    let limited =
        HookReceiver::refusing("429 Too Many Requests", "Retry-After: 37\r\n", 100, "").await;
    let busy =
        HookReceiver::refusing("503 Service Unavailable", "Retry-After: 41\r\n", 100, "").await;
    let bare = HookReceiver::refusing("429 Too Many Requests", "", 100, "").await;
    let store = Store::open(url).unwrap();
    let endpoints = keepword::notify::Endpoints {
        pagerduty_url: format!("{}/v2/enqueue", limited.base),
        opsgenie_url: busy.base.clone(),
        signing_key: None,
    };
    let senders = Senders {
        smtp: None,
        webhook: WebhookSender::with_timeout(Duration::from_secs(5))
            .unwrap()
            .with_endpoints(endpoints),
        slack: None,
    };
    let cfg = WorkerConfig {
        base_backoff: Duration::from_secs(1),
        ..config()
    };
    let w = OutboxWorker::new(store.clone(), senders, cfg);
    let now = t0();
    let body = serde_json::json!({"text": "later"});
    enqueue(
        &store,
        new_webhook(&limited.url, body.clone(), "hook", now).unwrap(),
    );
    enqueue(
        &store,
        keepword::outbox::new_teams(&busy.url, body.clone(), "teams", now).unwrap(),
    );
    enqueue(
        &store,
        keepword::outbox::new_pagerduty(body.clone(), "pd", now),
    );
    enqueue(
        &store,
        keepword::outbox::new_opsgenie("k", "alias", false, body.clone(), "og", now),
    );
    enqueue(&store, new_webhook(&bare.url, body, "bare", now).unwrap());
    let r = w.step(now).await.unwrap();
    assert_eq!((r.claimed, r.failed), (5, 5), "{r:?}");
    for row in rows(&store) {
        let wait = (row.available_at - now).num_milliseconds();
        let said = match row.dedupe_key.as_str() {
            "hook" | "pd" => 37_000,
            "teams" | "og" => 41_000,
            // No Retry-After: the first back-off, 0.5–1 s.
            _ => {
                assert!((500..=1_000 + 5_000).contains(&wait), "{row:?}");
                continue;
            }
        };
        // The wait starts when the answer came (the send's real time).
        assert!(
            (said..said + 5_000).contains(&wait),
            "{}: waits {wait} ms, the receiver said {said}",
            row.dedupe_key
        );
        assert!(row.refused_at.is_none());
        let error = row.last_error.clone().unwrap();
        assert!(error.contains("retry after"), "{error}");
    }
}

/// A burst bigger than a batch, to one real receiver, with two workers (own
/// pools, as two processes) racing at the default tuning: every row goes out
/// exactly once, each worker's claims are whole batches of distinct rows,
/// and every delivered row is recorded sent after its one attempt.
async fn a_burst_is_delivered_once_by_racing_workers(url: &str) {
    let hook = HookReceiver::start(0).await;
    let store = Store::open(url).unwrap();
    let now = t0();
    let n = 450;
    for i in 0..n {
        let body = serde_json::json!({"text": format!("burst {i}"), "n": i});
        enqueue(
            &store,
            new_webhook(&hook.url, body, format!("burst:{i}"), now).unwrap(),
        );
    }
    let a = worker(Store::open(url).unwrap(), support::free_port(), config());
    let b = worker(Store::open(url).unwrap(), support::free_port(), config());
    async fn drain(w: &OutboxWorker) -> Vec<StepReport> {
        let mut reports = Vec::new();
        loop {
            let r = w.step(Utc::now()).await.unwrap();
            let done = r.pending == 0;
            let idle = r.claimed == 0;
            reports.push(r);
            if done {
                return reports;
            }
            if idle {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let (ra, rb) = tokio::join!(drain(&a), drain(&b));
    let all: Vec<&StepReport> = ra.iter().chain(&rb).collect();
    let claimed: usize = all.iter().map(|r| r.claimed).sum();
    let sent: usize = all.iter().map(|r| r.sent).sum();
    let failed: usize = all.iter().map(|r| r.failed + r.released).sum();
    assert_eq!((claimed, sent, failed), (n, n, 0), "{ra:?} {rb:?}");
    // Batches, not a row at a time: 450 rows take three claims of up to 200.
    assert!(
        all.iter().filter(|r| r.claimed > 0).count() <= 4,
        "{ra:?} {rb:?}"
    );
    assert!(all.iter().any(|r| r.claimed > 20), "{ra:?} {rb:?}");

    let bodies = hook.accepted();
    assert_eq!(bodies.len(), n);
    assert_eq!(hook.requests(), n);
    let ns: HashSet<i64> = bodies.iter().map(|b| b["n"].as_i64().unwrap()).collect();
    assert_eq!(ns.len(), n);
    for row in rows(&store) {
        assert!(row.sent_at.is_some(), "{row:?}");
        assert_eq!(row.attempts, 1, "{row:?}");
        assert_eq!(row.last_error, None);
    }
    let text = exported(&a);
    assert!(text.contains("keepword_outbox_pending 0"), "{text}");
    let count = |w: &OutboxWorker| -> usize {
        exported(w)
            .lines()
            .find(|l| {
                l.starts_with(r#"keepword_notifications_total{kind="webhook",result="sent"}"#)
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .unwrap_or(0)
    };
    assert_eq!(count(&a) + count(&b), n);
}

/// Sends run in parallel but never more than `per_receiver` at once to one
/// receiver, while another receiver has its own allowance: two slow
/// receivers (each request held 40 ms) share one in-flight counter.
async fn concurrency_is_bounded_per_receiver(url: &str) {
    let both = std::sync::Arc::new(support::Flight::default());
    let one = HookReceiver::slow(Duration::from_millis(40), Some(both.clone())).await;
    let two = HookReceiver::slow(Duration::from_millis(40), Some(both.clone())).await;
    let store = Store::open(url).unwrap();
    let now = t0();
    for i in 0..40 {
        for (name, hook) in [("one", &one), ("two", &two)] {
            let body = serde_json::json!({"text": format!("{name} {i}")});
            enqueue(
                &store,
                new_webhook(&hook.url, body, format!("{name}:{i}"), now).unwrap(),
            );
        }
    }
    let w = worker(
        store.clone(),
        support::free_port(),
        WorkerConfig {
            per_receiver: 3,
            ..config()
        },
    );
    let r = w.step(now).await.unwrap();
    assert_eq!((r.claimed, r.sent, r.failed, r.released), (80, 80, 0, 0));
    assert_eq!((one.accepted().len(), two.accepted().len()), (40, 40));
    for hook in [&one, &two] {
        let max = hook.max_in_flight();
        assert!(max <= 3, "{max} in flight to one receiver, bound 3");
        // Parallel, not one after another.
        assert!(max >= 2, "{max} in flight at most: sends did not overlap");
    }
    // The bound is per receiver, not for the whole worker.
    assert!(both.max() > 3, "{} in flight to both at most", both.max());
    assert!(both.max() <= 6, "{}", both.max());
    assert!(rows(&store).iter().all(|r| r.sent_at.is_some()));
}

/// The batched claim skips exactly what the one-row claim skipped: rows held
/// for a contact's working hours (`not_before` ahead) until then, and
/// warnings waiting for a digest (`digest_key`) always, even past their time.
async fn the_batch_claim_skips_held_and_digest_rows(url: &str) {
    let hook = HookReceiver::start(0).await;
    let store = Store::open(url).unwrap();
    let w = worker(store.clone(), support::free_port(), config());
    let now = t0();
    let routed = |key: String, routing: outbox::Routing| {
        let row =
            new_webhook(&hook.url, serde_json::json!({"key": key}), key.clone(), now).unwrap();
        assert!(
            store
                .transaction(|c| outbox::enqueue_routed(c, &row, &routing))
                .unwrap()
        );
    };
    for i in 0..30 {
        routed(format!("due:{i}"), outbox::Routing::default());
    }
    let opens = now + Duration::from_secs(3_600);
    for i in 0..5 {
        routed(
            format!("held:{i}"),
            outbox::Routing {
                not_before: Some(opens),
                ..Default::default()
            },
        );
        routed(
            format!("digest:{i}"),
            outbox::Routing {
                not_before: Some(now - Duration::from_secs(60)),
                digest_key: Some(format!("oncall@{i}")),
                ..Default::default()
            },
        );
    }
    let keys = || -> HashSet<String> {
        hook.accepted()
            .iter()
            .map(|b| b["key"].as_str().unwrap().to_string())
            .collect()
    };

    let r = w.step(now).await.unwrap();
    assert_eq!((r.claimed, r.sent), (30, 30), "{r:?}");
    // Held rows are not a backlog; digest warnings count as pending.
    assert_eq!(r.pending, 5, "{r:?}");
    assert!(keys().iter().all(|k| k.starts_with("due:")), "{:?}", keys());
    for row in rows(&store)
        .iter()
        .filter(|r| !r.dedupe_key.starts_with("due:"))
    {
        assert_eq!((row.attempts, row.sent_at), (0, None), "{row:?}");
    }

    // At opening time the held rows go; the digest warnings still do not.
    let r = w.step(opens + Duration::from_secs(1)).await.unwrap();
    assert_eq!((r.claimed, r.sent), (5, 5), "{r:?}");
    let got = keys();
    assert_eq!(got.len(), 35);
    assert!(got.iter().all(|k| !k.starts_with("digest:")), "{got:?}");
    for row in rows(&store)
        .iter()
        .filter(|r| r.dedupe_key.starts_with("digest:"))
    {
        assert_eq!((row.attempts, row.sent_at), (0, None), "{row:?}");
    }
}

/// A row still waiting for its busy receiver when a send could no longer
/// end inside the lease is given back, unattempted, and goes in the next
/// step; it is never sent while its lease may have run out. One send at a
/// time to a receiver that holds each for 1.5 s, sends that must start
/// within 2 s: two rows start, the third cannot.
async fn a_row_waiting_too_long_for_its_receiver_is_given_back(url: &str) {
    let hook = HookReceiver::slow(Duration::from_millis(1_500), None).await;
    let store = Store::open(url).unwrap();
    let cfg = WorkerConfig {
        per_receiver: 1,
        send_timeout: Duration::from_secs(2),
        lease: Duration::from_secs(4),
        ..config()
    };
    let w = OutboxWorker::new(
        store.clone(),
        Senders {
            smtp: None,
            webhook: WebhookSender::with_timeout(Duration::from_secs(5)).unwrap(),
            slack: None,
        },
        cfg,
    );
    let now = t0();
    for i in 0..3 {
        let body = serde_json::json!({"key": format!("slow:{i}")});
        enqueue(
            &store,
            new_webhook(&hook.url, body, format!("slow:{i}"), now).unwrap(),
        );
    }
    let r = w.step(now).await.unwrap();
    assert_eq!((r.claimed, r.released), (3, 1), "{r:?}");
    assert_eq!(r.sent + r.failed, 2, "{r:?}");
    assert_eq!(hook.requests(), 2);
    let given_back: Vec<OutboxRow> = rows(&store)
        .into_iter()
        .filter(|r| r.attempts == 0)
        .collect();
    assert_eq!(given_back.len(), 1, "{:?}", rows(&store));
    let back = &given_back[0];
    assert_eq!(
        (back.sent_at.as_ref(), back.last_error.as_ref()),
        (None, None)
    );
    // Due again at once, not at the end of its lease.
    assert!(back.available_at < now + Duration::from_secs(4), "{back:?}");
    let sent: HashSet<String> = hook
        .accepted()
        .iter()
        .map(|b| b["key"].as_str().unwrap().to_string())
        .collect();
    assert!(!sent.contains(&back.dedupe_key), "{sent:?}");

    let r = w.step(back.available_at).await.unwrap();
    assert_eq!((r.claimed, r.sent), (1, 1), "{r:?}");
    assert_eq!(
        store
            .with(|c| outbox::get(c, back.id))
            .unwrap()
            .unwrap()
            .attempts,
        1
    );
    assert_eq!(hook.requests(), 3);
}

// ------------------------------------------------------------------ backends

crate::both_backends!(
    async
    delivers_email_and_webhook,
    backs_off_while_smtp_is_down,
    retries_a_failing_webhook,
    two_workers_deliver_each_row_once,
    run_wakes_on_notify_and_stops,
    a_dead_workers_lease_runs_out,
    a_stalled_claimers_late_outcome_is_fenced_off,
    an_unanswered_attempt_is_uncertain_and_retried_with_the_same_identity,
    missing_settings_wait_and_unreadable_rows_are_parked,
    a_refused_notification_is_parked_until_sent_again,
    retry_after_is_honoured_by_every_http_target,
    a_burst_is_delivered_once_by_racing_workers,
    concurrency_is_bounded_per_receiver,
    the_batch_claim_skips_held_and_digest_rows,
    a_row_waiting_too_long_for_its_receiver_is_given_back,
);
