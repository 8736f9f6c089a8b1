//! A week of one conversation with a clock the test moves, through the real
//! service and store (both backends): Christmas holidays, a weekend, a
//! breach, a late answer, a follow-up, a question to the client, solving.

use crate::common;

use chrono::{DateTime, Utc};
use keepword::ingest::IncomingEvent;
use keepword::service::Service;
use keepword::sla::{Direction, TicketStatus};
use keepword::store::{self};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn event(id: &str, direction: Option<Direction>, when: &str) -> IncomingEvent {
    IncomingEvent {
        idempotency_key: id.into(),
        channel: "email".into(),
        thread: "initech-footer".into(),
        direction,
        from: "peter@initech.example".into(),
        client: None,
        client_hint: None,
        subject: "Can you update the footer?".into(),
        body: "The address changed.".into(),
        priority: None,
        status: None,
        awaiting_client: false,
        at: at(when),
    }
}

fn timer<'a>(
    d: &'a keepword::service::ConversationDetail,
    kind: &str,
    seq: i32,
) -> &'a keepword::service::TimerView {
    d.summary
        .timers
        .iter()
        .find(|t| t.timer == kind && t.seq == seq)
        .unwrap_or_else(|| panic!("no {kind}/{seq} in {:?}", d.summary.timers))
}

fn pending(s: &Service) -> i64 {
    s.core.store().with(store::outbox_pending).unwrap()
}

fn scenario(url: &str) {
    let s = common::shipped_service(url);
    // Wednesday 23 December, 15:00 Berlin: two business hours left before
    // Christmas; 24–26 are holidays, 27 is a Sunday.
    let opened = "2026-12-23T14:00:00Z";
    let r = s
        .intake
        .record_event(
            event("m1", Some(Direction::Inbound), opened),
            None,
            at(opened),
        )
        .unwrap();
    assert!(r.conversation_created);
    let id = r.conversation_id.unwrap();
    let d = s.reads.conversation_detail(id).unwrap();
    assert_eq!(d.summary.client, "initech");
    assert_eq!(d.summary.request_type, "question");
    assert_eq!(d.summary.classification, "question: default");
    // 4 business hours: Wed 15:00–17:00, then Mon 28 09:00–11:00.
    assert_eq!(
        timer(&d, "first_response", 0).due_at,
        Some(at("2026-12-28T10:00:00Z"))
    );
    assert_eq!(d.summary.health, "on_track");

    // Over the holidays nothing is due; the scheduler's next look is the 75%
    // step on Monday 10:00 Berlin.
    let report = s.deadlines.due_work(at("2026-12-26T12:00:00Z")).unwrap();
    assert_eq!(report.fired, 0);
    assert_eq!(report.next_check, Some(at("2026-12-28T09:00:00Z")));
    assert_eq!(pending(&s), 0);

    let report = s.deadlines.due_work(at("2026-12-28T09:00:00Z")).unwrap();
    assert_eq!(report.fired, 1, "the 75% step");
    assert_eq!(pending(&s), 1, "lead: one email");
    let d = s.reads.conversation_detail(id).unwrap();
    assert_eq!(d.summary.health, "at_risk");
    assert_eq!(d.escalations[0].step, "first_response/0/at:75%");
    assert!(!d.escalations[0].late);

    // Running the same step again fires nothing twice.
    assert_eq!(
        s.deadlines
            .due_work(at("2026-12-28T09:30:00Z"))
            .unwrap()
            .fired,
        0
    );

    let report = s.deadlines.due_work(at("2026-12-28T10:00:00Z")).unwrap();
    assert_eq!(report.fired, 1, "the breach");
    assert_eq!(
        pending(&s),
        2,
        "no 100% step in the contract: the breach alerts the lead"
    );
    let d = s.reads.conversation_detail(id).unwrap();
    assert_eq!(d.summary.health, "breached");
    assert_eq!(timer(&d, "first_response", 0).status, "breached");

    // The team answers at 11:30 Berlin: missed.
    s.intake
        .record_event(
            event("m2", Some(Direction::Outbound), "2026-12-28T10:30:00Z"),
            None,
            at("2026-12-28T10:30:00Z"),
        )
        .unwrap();
    let d = s.reads.conversation_detail(id).unwrap();
    let first = timer(&d, "first_response", 0);
    assert_eq!(first.status, "missed");
    assert_eq!(first.stopped_at, Some(at("2026-12-28T10:30:00Z")));
    assert_eq!(d.summary.health, "on_track");

    // The client follows up Tuesday 16:00: next_response, 8 business hours:
    // Tue 16:00–17:00, Wed 30 09:00–16:00 (the 31st is a holiday anyway).
    s.intake
        .record_event(
            event("m3", Some(Direction::Inbound), "2026-12-29T15:00:00Z"),
            None,
            at("2026-12-29T15:00:00Z"),
        )
        .unwrap();
    let d = s.reads.conversation_detail(id).unwrap();
    assert_eq!(
        timer(&d, "next_response", 0).due_at,
        Some(at("2026-12-30T15:00:00Z"))
    );

    // A duplicate delivery changes nothing.
    let dup = s
        .intake
        .record_event(
            event("m3", Some(Direction::Inbound), "2026-12-29T15:00:00Z"),
            None,
            at("2026-12-29T15:01:00Z"),
        )
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(s.reads.conversation_detail(id).unwrap().messages.len(), 3);

    // Wednesday 10:00 Berlin the team asks the client something: the response
    // is met and resolution waits on the client.
    let mut question = event("m4", Some(Direction::Outbound), "2026-12-30T09:00:00Z");
    question.awaiting_client = true;
    s.intake
        .record_event(question, None, at("2026-12-30T09:00:00Z"))
        .unwrap();
    let d = s.reads.conversation_detail(id).unwrap();
    assert_eq!(timer(&d, "next_response", 0).status, "met");
    assert_eq!(timer(&d, "resolution", 0).status, "paused");
    assert_eq!(d.summary.status, "pending");

    // Solved from the API on Wednesday 11:00 Berlin.
    s.deadlines.solve(id, at("2026-12-30T10:00:00Z")).unwrap();
    let d = s.reads.conversation_detail(id).unwrap();
    assert_eq!(d.summary.status, "solved");
    assert_eq!(d.summary.solved_at, Some(at("2026-12-30T10:00:00Z")));
    assert_eq!(timer(&d, "resolution", 0).status, "met");
    assert_eq!(
        s.deadlines
            .due_work(at("2027-01-15T00:00:00Z"))
            .unwrap()
            .fired,
        0,
        "nothing is left to fire"
    );

    // A status-only event (a ticket closed without a comment) is stored too.
    let mut reopen = event("m5", None, "2027-01-04T10:00:00Z");
    reopen.status = Some(TicketStatus::Open);
    s.intake
        .record_event(reopen, None, at("2027-01-04T10:00:00Z"))
        .unwrap();
    assert_eq!(
        s.reads.conversation_detail(id).unwrap().summary.status,
        "open"
    );
}

crate::both_backends!(scenario);

/// Importing old history records its long-past steps (late) without
/// alerting anyone; a recent one still alerts.
#[test]
fn long_past_steps_are_recorded_without_alerts() {
    let (_dir, url) = common::fresh_sqlite();
    let s = common::shipped_service(&url);
    let now = at("2026-12-01T12:00:00Z");
    let mut old = event("old-1", Some(Direction::Inbound), "2026-11-27T12:00:00Z");
    old.thread = "old".into();
    old.subject = "Production is down".into();
    let id = s
        .intake
        .record_event(old, None, now)
        .unwrap()
        .conversation_id
        .unwrap();
    let d = s.reads.conversation_detail(id).unwrap();
    assert_eq!(d.summary.request_type, "urgent");
    assert!(
        d.escalations.len() >= 3,
        "steps recorded: {:?}",
        d.escalations
    );
    assert!(d.escalations.iter().all(|e| e.late));
    assert_eq!(pending(&s), 0, "nobody is alerted about dues days ago");

    let mut recent = event("new-1", Some(Direction::Inbound), "2026-12-01T11:40:00Z");
    recent.thread = "new".into();
    recent.subject = "Production is down".into();
    s.intake.record_event(recent, None, now).unwrap();
    assert!(
        pending(&s) > 0,
        "the 50% step of a twenty-minute-old outage alerts"
    );
}

/// The clock is one seam (issue 7): the real app over HTTP, with a manual
/// clock the test moves over a weekend in an instant. The handler stamps the
/// event with the clock's now, and the scheduler, asleep until the due,
/// wakes when the clock moves past it and records the breach at the clock's
/// time — no real waiting.
async fn a_moved_clock_breaches_over_the_weekend(backend: common::app::Backend) {
    // The shipped contract alerts by email only: alerts stay on loopback
    // (an SMTP port nobody serves).
    let path =
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config/contract.toml"));
    // Friday 4 December 2026, 16:00 in Berlin.
    let clock = keepword::clock::Clock::manual(at("2026-12-04T15:00:00Z"));
    let app = common::app::spawn_app(backend, path, 9, clock.clone()).await;

    let (status, body) = app
        .post(
            "/api/v1/events",
            &serde_json::json!({
                "id": "c-1", "channel": "tickets", "thread": "C-1", "direction": "inbound",
                "from": "peter@initech.example", "subject": "Footer",
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["conversation_id"].as_i64().unwrap();
    let first_response = |d: &serde_json::Value| {
        d["timers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["timer"] == "first_response")
            .cloned()
            .unwrap()
    };
    let (_, d) = app.get(&format!("/api/v1/conversations/{id}")).await;
    // 4 business hours: Friday 16:00–17:00, then Monday 09:00–12:00 Berlin.
    assert_eq!(first_response(&d)["due_at"], "2026-12-07T11:00:00Z", "{d}");
    assert_eq!(first_response(&d)["status"], "running");

    clock.set(at("2026-12-07T11:00:01Z"));
    let breached = {
        let mut breached = false;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            let (_, d) = app.get(&format!("/api/v1/conversations/{id}")).await;
            // The detail reads the conversation and its timers in two
            // statements, so a refresh may commit between them: wait for
            // both to show the breach.
            if first_response(&d)["status"] == "breached" && d["health"] == "breached" {
                let breach = d["escalations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["step"].as_str().unwrap().ends_with("/breach"))
                    .cloned()
                    .unwrap();
                // Recorded at the clock's time, not the wall clock's.
                assert_eq!(breach["fired_at"], "2026-12-07T11:00:01Z", "{breach}");
                breached = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        breached
    };
    assert!(breached, "the scheduler did not follow the moved clock");
    app.stop().await;
}

#[tokio::test]
async fn a_moved_clock_breaches_over_the_weekend_sqlite() {
    a_moved_clock_breaches_over_the_weekend(common::app::Backend::Sqlite).await;
}

#[tokio::test]
async fn a_moved_clock_breaches_over_the_weekend_postgres() {
    a_moved_clock_breaches_over_the_weekend(common::app::Backend::Postgres).await;
}
