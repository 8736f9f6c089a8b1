//! Urgency and focus (README) through the real service, store and outbox
//! worker on both backends, with a clock the test moves: notifications
//! wait for the contact's working hours (across a weekend and a DST change),
//! true urgencies go out at 03:00, the night's warnings arrive as one digest
//! at 09:30 through a real SMTP server, and `max_pause` resumes the
//! resolution timer exactly at its limit.

use crate::common;
use crate::support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use keepword::config::{Secret, SmtpSettings, Tls};
use keepword::ingest::IncomingEvent;
use keepword::notify::{OutboxWorker, Senders, SmtpSender, WebhookSender, WorkerConfig};
use keepword::service::Service;
use keepword::sla::Direction;
use keepword::store::{OutboxRow, outbox};
use support::{HookReceiver, SmtpServer};

const FOCUS: &str = include_str!("../fixtures/contracts/focus.toml");

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn service(url: &str, hook: &HookReceiver) -> Service {
    common::service_with_contract(url, &FOCUS.replace("WEBHOOK_URL", &hook.url))
}

fn worker(s: &Service, smtp: &SmtpServer) -> OutboxWorker {
    let settings = SmtpSettings {
        host: "127.0.0.1".into(),
        port: smtp.port,
        tls: Tls::None,
        username: String::new(),
        password: Secret::default(),
        password_file: None,
        from: "Northwind Support <support@example.com>".parse().unwrap(),
        ca_file: None,
        auth: Default::default(),
        oauth: None,
    };
    let senders = Senders {
        smtp: Some(SmtpSender::new(&settings).unwrap()),
        webhook: WebhookSender::with_timeout(Duration::from_secs(5)).unwrap(),
        slack: None,
    };
    let config = WorkerConfig {
        send_timeout: Duration::from_secs(10),
        ..WorkerConfig::default()
    };
    OutboxWorker::new(s.core.store().clone(), senders, config)
}

/// A new ticket from ACME opened at `when`.
fn open(s: &Service, thread: &str, subject: &str, when: &str) -> i64 {
    let e = IncomingEvent {
        idempotency_key: format!("open-{thread}"),
        channel: "tickets".into(),
        thread: thread.into(),
        direction: Some(Direction::Inbound),
        from: "jane@acme.com".into(),
        client: None,
        client_hint: None,
        subject: subject.into(),
        body: String::new(),
        priority: None,
        status: None,
        awaiting_client: false,
        at: at(when),
    };
    s.intake
        .record_event(e, None, at(when))
        .unwrap()
        .conversation_id
        .unwrap()
}

fn rows(s: &Service) -> Vec<OutboxRow> {
    s.core.store().with(outbox::all).unwrap()
}

/// Rows of one contact's notifications of one step kind (`at:25%`, `breach`…).
fn of(s: &Service, contact: &str, step_suffix: &str) -> Vec<OutboxRow> {
    rows(s)
        .into_iter()
        .filter(|r| r.contact.as_deref() == Some(contact))
        .filter(|r| r.step.as_deref().is_some_and(|k| k.ends_with(step_suffix)))
        .collect()
}

fn deferred_total(s: &Service, reason: &str) -> u64 {
    let text = s.reads.metrics().render();
    let prefix = format!("keepword_notifications_deferred_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

fn subjects(smtp: &SmtpServer) -> Vec<String> {
    smtp.received()
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect()
}

// ---------------------------------------------------------------- scenarios

/// A warning of a type on a 24x7 calendar falls on Friday night; the head
/// works office hours and has no digest, so it waits until Monday 09:00
/// Berlin — which after the end of summer time on Sunday 25 October is 08:00
/// UTC, not 07:00. The breach on Saturday morning waits for the same opening.
async fn a_warning_waits_for_the_next_opening_across_a_weekend_and_dst(url: String) {
    let hook = HookReceiver::start(0).await;
    let smtp = SmtpServer::start();
    let s = service(&url, &hook);
    let w = worker(&s, &smtp);
    // Friday 23 October 2026, 19:00 CEST: 25% of 12 h at 22:00 CEST
    // (20:00 UTC), the due on Saturday 07:00 CEST.
    let id = open(&s, "N-1", "Nightly backup failed", "2026-10-23T17:00:00Z");
    s.deadlines.due_work(at("2026-10-23T20:00:00Z")).unwrap();
    let monday_nine = at("2026-10-26T08:00:00Z");
    let warning = of(&s, "head", "/at:25%");
    assert_eq!(warning.len(), 1, "head has email only: {:?}", rows(&s));
    assert_eq!(warning[0].not_before, Some(monday_nine), "{:?}", warning[0]);
    assert_eq!(warning[0].available_at, monday_nine);
    assert_eq!(warning[0].kind, "email");
    assert_eq!(deferred_total(&s, "hours"), 1);
    // The digester's warning waits for its Monday 09:30 digest instead.
    let digest = of(&s, "digester", "/at:25%");
    assert_eq!(digest.len(), 1);
    assert_eq!(digest[0].not_before, Some(at("2026-10-26T08:30:00Z")));

    // Saturday 07:00 CEST the breach: not a warning, so no digest, but the
    // digester's and the head's hours are closed all the same.
    s.deadlines.due_work(at("2026-10-24T05:00:00Z")).unwrap();
    let breach: Vec<OutboxRow> = of(&s, "head", "/breach")
        .into_iter()
        .chain(of(&s, "digester", "/breach"))
        .collect();
    assert_eq!(breach.len(), 3, "head: email; digester: email and webhook");
    assert!(breach.iter().all(|r| r.not_before == Some(monday_nine)));
    assert_eq!(deferred_total(&s, "hours"), 3, "one per contact and step");

    // The timeline says so.
    let d = s.reads.conversation_detail(id).unwrap();
    let step = d
        .escalations
        .iter()
        .find(|e| e.step.ends_with("/at:25%"))
        .unwrap();
    assert_eq!(step.deferred_until, Some(at("2026-10-26T08:30:00Z")));
    assert_eq!(step.notifications.len(), 2);
    let json = serde_json::to_value(&d).unwrap();
    let breach_step = json["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["step"].as_str().unwrap().ends_with("/breach"))
        .unwrap();
    assert_eq!(breach_step["deferred_until"], "2026-10-26T08:00:00Z");

    // The worker sends nothing over the weekend, across the DST change…
    for now in [
        "2026-10-24T09:00:00Z",
        "2026-10-26T07:00:00Z",
        "2026-10-26T07:59:59Z",
    ] {
        let report = w.step(at(now)).await.unwrap();
        assert_eq!(report.pending, 0, "held rows are no backlog: {report:?}");
        assert_eq!(report.next_due, Some(monday_nine), "the worker wakes then");
        assert!(
            smtp.received().is_empty(),
            "sent at {now}: {:?}",
            subjects(&smtp)
        );
        assert!(hook.accepted().is_empty());
    }
    // …and all of it at Monday 09:00 Berlin, once.
    w.step(monday_nine).await.unwrap();
    let sent = subjects(&smtp);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent.iter().filter(|x| x.contains("BREACHED")).count(), 2);
    assert_eq!(
        sent.iter()
            .filter(|x| x.contains("25% of window used"))
            .count(),
        1
    );
    let warning_mail = smtp
        .received()
        .into_iter()
        .find(|m| m.header("Subject").unwrap().contains("25% of window used"))
        .unwrap();
    assert!(
        warning_mail.data.replace("=\r\n", "").contains(
            "Held for your working hours until Mon 26 Oct 09:00 CET; it fell due at Fri 23 Oct 22:00 CEST."
        ),
        "{}",
        warning_mail.data
    );
    let webhooks = hook.accepted();
    assert_eq!(webhooks.len(), 1);
    assert_eq!(webhooks[0]["event"], "breach");
    assert_eq!(webhooks[0]["deferred_until"], "2026-10-26T08:00:00+00:00");
    w.step(monday_nine + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(smtp.received().len(), 3, "nothing twice");
}

/// An urgent step goes out at 03:00, and so does the urgent breach; a
/// non-urgent breach at night waits for the office, while its `page = true`
/// step goes out at once.
async fn urgencies_page_at_night_and_the_rest_waits(url: String) {
    let hook = HookReceiver::start(0).await;
    let smtp = SmtpServer::start();
    let s = service(&url, &hook);
    let w = worker(&s, &smtp);
    // Tuesday 1 December 14:00 CET: a night job ticket, due Wednesday 02:00.
    let night = open(&s, "N-2", "Backup failed again", "2026-12-01T13:00:00Z");
    // Wednesday 02:45 CET: production down. 50% (15 min) at 03:00.
    let urgent = open(&s, "U-1", "Shop is down", "2026-12-02T01:45:00Z");
    assert_eq!(
        s.reads
            .conversation_detail(urgent)
            .unwrap()
            .summary
            .request_type,
        "urgent"
    );

    // 02:00 CET: the night ticket breaches; nobody is woken for that.
    s.deadlines.due_work(at("2026-12-02T01:00:00Z")).unwrap();
    let nine = at("2026-12-02T08:00:00Z");
    let breach = of(&s, "head", "/breach");
    assert_eq!(breach.len(), 1);
    assert_eq!(breach[0].not_before, Some(nine));
    w.step(at("2026-12-02T01:00:00Z")).await.unwrap();
    assert!(smtp.received().is_empty(), "{:?}", subjects(&smtp));

    // 03:00 CET: the urgent 50% step (to the office-hours lead: it pages),
    // and the night ticket's page = true step, 1 h after its due, to head.
    s.deadlines.due_work(at("2026-12-02T02:00:00Z")).unwrap();
    let lead_step = of(&s, "lead", "/at:50%");
    assert_eq!(lead_step.len(), 2, "lead: email and webhook");
    assert!(lead_step.iter().all(|r| r.not_before.is_none()));
    let page = of(&s, "head", "/after_due:1h");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].not_before, None);
    w.step(at("2026-12-02T02:00:00Z")).await.unwrap();
    let sent = subjects(&smtp);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter()
            .any(|x| x.contains("50% of window used") && x.contains(&format!("#{urgent}")))
    );
    assert!(
        sent.iter()
            .any(|x| x.contains("overdue by 1h") && x.contains(&format!("#{night}")))
    );
    let to_lead = smtp
        .received()
        .into_iter()
        .find(|m| m.rcpt_tos.contains(&"lead@example.com".to_string()))
        .unwrap();
    assert!(to_lead.header("Subject").unwrap().contains("Shop is down"));

    // 03:15 CET: the urgent breach goes out at once too.
    s.deadlines.due_work(at("2026-12-02T02:15:00Z")).unwrap();
    let urgent_breach = of(&s, "lead", "/breach");
    assert_eq!(urgent_breach.len(), 2);
    assert!(urgent_breach.iter().all(|r| r.not_before.is_none()));
    w.step(at("2026-12-02T02:15:00Z")).await.unwrap();
    assert_eq!(smtp.received().len(), 3, "{:?}", subjects(&smtp));

    // At 09:00 the night ticket's breach reaches head and digester (and the
    // head's warning of 17:00 yesterday, held since).
    w.step(nine - chrono::Duration::seconds(1)).await.unwrap();
    assert_eq!(smtp.received().len(), 3);
    w.step(nine).await.unwrap();
    assert_eq!(smtp.received().len(), 6, "{:?}", subjects(&smtp));
    let late: Vec<_> = smtp
        .received()
        .iter()
        .filter(|m| {
            let subject = m.header("Subject").unwrap_or_default();
            subject.contains("BREACHED") && subject.contains(&format!("#{night}"))
        })
        .map(|m| m.rcpt_tos[0].clone())
        .collect();
    assert_eq!(late.len(), 2, "{late:?}");
    assert!(late.contains(&"head@example.com".to_string()));
    assert!(late.contains(&"digest@example.com".to_string()));
}

/// Three warnings fall due in the night; the digester gets them in one email
/// (and one webhook) at 09:30, each with client, timer, time left and link.
async fn the_nights_warnings_arrive_as_one_digest_at_0930(url: String) {
    let hook = HookReceiver::start(0).await;
    let smtp = SmtpServer::start();
    let s = service(&url, &hook);
    let w = worker(&s, &smtp);
    // Monday 7 December 21:00, 22:30 and Tuesday 00:00 CET; 25% of 12 h is
    // 3 h: warnings at 00:00, 01:30 and 03:00; dues at 09:00, 10:30, 12:00.
    let ids = [
        open(&s, "D-1", "Backup of shop failed", "2026-12-07T20:00:00Z"),
        open(&s, "D-2", "Backup of CRM failed", "2026-12-07T21:30:00Z"),
        open(&s, "D-3", "Backup of wiki failed", "2026-12-07T23:00:00Z"),
    ];
    let digest_time = at("2026-12-08T08:30:00Z");
    for (now, n) in [
        ("2026-12-07T23:00:00Z", 1),
        ("2026-12-08T00:30:00Z", 2),
        ("2026-12-08T02:00:00Z", 3),
    ] {
        let report = s.deadlines.due_work(at(now)).unwrap();
        let waiting = of(&s, "digester", "/at:25%");
        assert_eq!(waiting.len(), n, "one digest item per warning at {now}");
        assert!(waiting.iter().all(|r| r.kind == "digest"
            && r.not_before == Some(digest_time)
            && r.sent_at.is_none()));
        assert!(
            report.next_check.is_some_and(|c| c <= digest_time),
            "the scheduler wakes for the digest: {report:?}"
        );
        w.step(at(now)).await.unwrap();
        assert!(smtp.received().is_empty(), "nothing at night");
    }
    assert_eq!(deferred_total(&s, "digest"), 3);
    let d = s.reads.conversation_detail(ids[0]).unwrap();
    let warning = d
        .escalations
        .iter()
        .find(|e| e.step.ends_with("/at:25%"))
        .unwrap();
    assert_eq!(warning.deferred_until, Some(digest_time));
    assert_eq!(warning.notifications[0].kind, "digest");

    // 09:00: the first ticket breaches, in office hours: at once, alone.
    s.deadlines.due_work(at("2026-12-08T08:00:00Z")).unwrap();
    w.step(at("2026-12-08T08:00:00Z")).await.unwrap();
    assert!(subjects(&smtp).iter().all(|x| !x.contains("Digest")));

    // 09:29:59 nothing; 09:30 the digest.
    s.deadlines
        .due_work(digest_time - chrono::Duration::seconds(1))
        .unwrap();
    w.step(digest_time - chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(subjects(&smtp).iter().all(|x| !x.contains("Digest")));
    s.deadlines.due_work(digest_time).unwrap();
    w.step(digest_time).await.unwrap();
    let digests: Vec<_> = smtp
        .received()
        .into_iter()
        .filter(|m| m.header("Subject").unwrap_or_default().contains("Digest"))
        .collect();
    assert_eq!(digests.len(), 1, "{:?}", subjects(&smtp));
    let mail = &digests[0];
    assert_eq!(mail.rcpt_tos, vec!["digest@example.com".to_string()]);
    assert_eq!(
        mail.header("Subject").unwrap(),
        "[keepword] Digest for digester: 3 warnings (Tue 08 Dec 09:30)"
    );
    let body = mail.data.replace("=\r\n", "").replace("\r\n", "\n");
    for (id, subject, left) in [
        (ids[0], "Backup of shop failed", "30 m past due"),
        (ids[1], "Backup of CRM failed", "1 h business time left"),
        (
            ids[2],
            "Backup of wiki failed",
            "2 h 30 m business time left",
        ),
    ] {
        assert!(body.contains(&format!("#{id} ACME Corp")), "{body}");
        assert!(body.contains(subject), "{body}");
        assert!(body.contains(left), "{id}: {left} in {body}");
        assert!(
            body.contains(&format!("http://keepword.test/conversations/{id}")),
            "{body}"
        );
    }
    assert!(body.contains("first response 25% of window used"), "{body}");
    let webhooks: Vec<_> = hook
        .accepted()
        .into_iter()
        .filter(|b| b["event"] == "digest")
        .collect();
    assert_eq!(webhooks.len(), 1);
    let items = webhooks[0]["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["conversation_id"], ids[0]);
    assert_eq!(items[1]["business_seconds_left"], 3600);
    assert_eq!(items[0]["timer"], "first_response");
    assert_eq!(items[0]["client"], "acme");
    assert!(
        of(&s, "digester", "/at:25%")
            .iter()
            .all(|r| r.sent_at == Some(digest_time))
    );

    // Exactly once: later steps make no second digest.
    for m in [1, 5, 60] {
        let later = digest_time + chrono::Duration::minutes(m);
        s.deadlines.due_work(later).unwrap();
        w.step(later).await.unwrap();
    }
    assert_eq!(
        smtp.received()
            .iter()
            .filter(|m| m.header("Subject").unwrap_or_default().contains("Digest"))
            .count(),
        1
    );
    assert_eq!(
        hook.accepted()
            .iter()
            .filter(|b| b["event"] == "digest")
            .count(),
        1
    );
}

/// `max_pause = "1d"`: waiting on the client stops resolution for one
/// business day at most; it resumes by itself exactly then, the scheduler
/// looks at that instant, and the paused time is reported and measured.
async fn max_pause_resumes_resolution_exactly_at_the_limit(url: String) {
    let hook = HookReceiver::start(0).await;
    let s = service(&url, &hook);
    // Friday 4 December 2026 15:00 CET a question; 16:00 we ask back.
    let id = open(
        &s,
        "Q-1",
        "Can you change the logo?",
        "2026-12-04T14:00:00Z",
    );
    let mut ask = IncomingEvent {
        idempotency_key: "ask-Q-1".into(),
        channel: "tickets".into(),
        thread: "Q-1".into(),
        direction: Some(Direction::Outbound),
        from: "team@example.com".into(),
        client: None,
        client_hint: None,
        subject: "Which colour?".into(),
        body: String::new(),
        priority: None,
        status: None,
        awaiting_client: true,
        at: at("2026-12-04T15:00:00Z"),
    };
    s.intake
        .record_event(ask.clone(), None, at("2026-12-04T15:00:00Z"))
        .unwrap();
    let resolution = |s: &Service| {
        s.reads
            .conversation_detail(id)
            .unwrap()
            .summary
            .timers
            .into_iter()
            .find(|t| t.timer == "resolution")
            .unwrap()
    };
    assert_eq!(resolution(&s).status, "paused");
    // One business day from Friday 16:00 is Monday 16:00 CET.
    let limit = at("2026-12-07T15:00:00Z");
    let report = s.deadlines.due_work(at("2026-12-05T12:00:00Z")).unwrap();
    assert_eq!(report.next_check, Some(limit), "{report:?}");
    let report = s
        .deadlines
        .due_work(limit - chrono::Duration::seconds(1))
        .unwrap();
    assert_eq!(report.fired, 0);
    assert_eq!(resolution(&s).status, "paused");
    s.deadlines.due_work(limit).unwrap();
    assert_eq!(resolution(&s).status, "running");
    let d = s.reads.conversation_detail(id).unwrap();
    assert_eq!(d.summary.status, "pending", "still waiting on the client");
    assert_eq!(d.pause.resumed_by_max_pause_at, Some(limit));
    assert_eq!(d.pause.paused_business_seconds, 8 * 3600);
    assert_eq!(d.pause.max_pause.as_deref(), Some("1d"));
    // 5 business days from Friday 15:00 is Friday 11 December 15:00; 8 h of
    // pause move the due to Monday 14 December 15:00 CET.
    assert_eq!(resolution(&s).due_at, Some(at("2026-12-14T14:00:00Z")));

    // Asking again pauses nothing: the budget is spent.
    ask.idempotency_key = "ask-again".into();
    ask.at = at("2026-12-08T09:00:00Z");
    s.intake
        .record_event(ask, None, at("2026-12-08T09:00:00Z"))
        .unwrap();
    assert_eq!(resolution(&s).status, "running");

    s.deadlines.solve(id, at("2026-12-08T10:00:00Z")).unwrap();
    let text = s.reads.metrics().render();
    assert!(
        text.contains("keepword_sla_paused_business_seconds_sum{request_type=\"question\"} 28800"),
        "{text}"
    );
    assert!(
        text.contains("keepword_sla_paused_business_seconds_count{request_type=\"question\"} 1"),
        "{text}"
    );
}

crate::both_backends!(
    async a_warning_waits_for_the_next_opening_across_a_weekend_and_dst,
    urgencies_page_at_night_and_the_rest_waits,
    the_nights_warnings_arrive_as_one_digest_at_0930,
    max_pause_resumes_resolution_exactly_at_the_limit,
);

/// Cost of the urgent share at scrape time over a year of history
/// (`cargo test --test storage -- --ignored urgent_share_cost --nocapture`).
fn urgent_share_cost(url: &str) {
    use diesel::RunQueryDsl;
    const PER_DAY: usize = 600;
    const DAYS: i64 = 365;
    let s = common::service_with_contract(url, &FOCUS.replace("WEBHOOK_URL", "http://x.test/h"));
    let version = s.core.contract().current().version.clone();
    let now = at("2026-12-10T00:00:00Z");
    s.core
        .store()
        .with(|c| {
            for client in ["acme", "globex", "initech"] {
                keepword::store::upsert_client(c, client, client, now)?;
            }
            Ok(())
        })
        .unwrap();
    let started = std::time::Instant::now();
    for day in 0..DAYS {
        let mut values = Vec::with_capacity(PER_DAY);
        for i in 0..PER_DAY {
            let when = (now - chrono::Duration::days(day)
                + chrono::Duration::seconds(i as i64 * 97))
            .naive_utc()
            .format("%Y-%m-%d %H:%M:%S");
            let client = ["acme", "globex", "initech"][i % 3];
            // ACME files half its requests as urgent; the others none.
            let kind = if i % 6 == 0 { "urgent" } else { "question" };
            values.push(format!(
                "('tickets', 't{day}-{i}', '{client}', 's', '{kind}', '{kind}: default', '{version}', 'open', false, '{when}', '{when}', 'on_track', 's', '')"
            ));
        }
        let sql = format!(
            "INSERT INTO conversations (channel, thread_key, client_id, subject, request_type, classification, contract_version, status, channel_mismatch, opened_at, updated_at, health, subject_key, opener) VALUES {}",
            values.join(", ")
        );
        s.core
            .store()
            .with(|c| Ok(diesel::sql_query(sql).execute(c)?))
            .unwrap();
    }
    let loaded = started.elapsed();
    let mut times = Vec::new();
    let mut shares = Vec::new();
    for _ in 0..20 {
        let t = std::time::Instant::now();
        shares = s.reads.urgent_shares(now).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let acme = shares.iter().find(|x| x.client == "acme").unwrap();
    assert!(acme.conversations >= 30 * PER_DAY as i64 / 3);
    let t = std::time::Instant::now();
    let report = s.reads.urgent_inflation(now).unwrap();
    let inflation = t.elapsed();
    assert_eq!(report.above_limit.len(), 1);
    assert_eq!(report.above_limit[0].share.client, "acme");
    assert_eq!(report.above_limit[0].requests.len() as i64, acme.urgent);
    eprintln!(
        "urgent share over {} conversations ({} in the window): median {:?}, max {:?}; urgent_inflation with {} requests listed: {:?} (loaded in {:?})",
        PER_DAY as i64 * DAYS,
        shares.iter().map(|x| x.conversations).sum::<i64>(),
        times[times.len() / 2],
        times[times.len() - 1],
        report
            .above_limit
            .iter()
            .map(|c| c.requests.len())
            .sum::<usize>(),
        inflation,
        loaded,
    );
}

#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
fn urgent_share_cost_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    urgent_share_cost(&url);
}

#[test]
#[ignore = "a measurement, not a check: run with --ignored --nocapture"]
fn urgent_share_cost_postgres() {
    let db = common::FreshPostgres::new();
    urgent_share_cost(&db.url);
}
