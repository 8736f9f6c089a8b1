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
/// unknown, counted, and the retry carries the same Message-ID.
async fn smtp_slow_end_of_data(url: &str) {
    let history = support::recorders::History::default();
    let smtp = SmtpRecorder::start(
        &history,
        |_| None,
        |n| match n {
            0 => SmtpAct::Slow(Duration::from_secs(4)),
            _ => SmtpAct::Accept,
        },
    )
    .await;
    let mut rig = Rig::start(url, smtp.port);
    rig.history = history;
    rig.email("smtp-slow-0", "ann@client.test", Must::Deliver);
    rig.settle(SETTLE).await;
    // Wait for the retry: the first attempt alone already counts as taken.
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
        "the reply to the end of DATA held 4 s against a 2 s send timeout",
        rig.started,
    );
    report.assert_kept();
    assert_eq!(
        report.duplicated_same_identity,
        ["smtp-slow-0 ×2"],
        "{report:#?}"
    );
    assert_eq!(
        rig.metric("keepword_notifications_uncertain_total{kind=\"email\"}"),
        1
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
