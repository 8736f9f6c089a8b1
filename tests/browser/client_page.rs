//! The client's record page (README, "The client's record") in headless
//! Chromium: a week of history with kept and broken promises, read at 360
//! and 1280 px, checked with axe-core. The 1280 px
//! screenshot is the README's `docs/client-page.png`.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use keepword::clock::Clock;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::common::app::{Backend, TestApp, spawn_dashboard};

/// Monday 30 November 2026, 09:00 in Berlin.
fn monday_nine() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
}

async fn event(app: &TestApp, id: &str, thread: &str, at: DateTime<Utc>, fields: Value) -> Value {
    app.clock.set(at);
    let mut body = json!({"id": id, "channel": "tickets", "thread": thread, "at": at.to_rfc3339()});
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, answer) = app.post("/api/v1/events", &body).await;
    assert!(status == 201 || status == 200, "{status} {answer}");
    answer
}

#[tokio::test]
async fn the_client_page_reads_well_at_360_and_1280_pixels() {
    let clock = Clock::manual(monday_nine() - TimeDelta::days(30));
    let app = spawn_dashboard(Backend::Sqlite, clock.clone()).await;
    // Four weeks of requests: most answered in time, some late.
    let subjects = [
        "Please change the footer",
        "Invoice address for 2027",
        "Login broken on Safari",
        "New photos for the team page",
        "Export broken for large orders",
        "Question about the hosting renewal",
    ];
    let mut events = Vec::new();
    for week in 0..4i64 {
        for (i, subject) in subjects.iter().enumerate() {
            let start =
                monday_nine() - TimeDelta::days(7 * (3 - week)) + TimeDelta::hours(i as i64);
            let thread = format!("W{week}-{i}");
            events.push((start, format!("{thread}-o"), thread.clone(), json!({"direction": "inbound", "from": "jane@acme.com", "subject": subject, "body": "Please help."})));
            // Every third one waits too long for its first answer; some of
            // this week's are not answered yet.
            let answer = if (week + i as i64) % 3 == 0 { 5 } else { 1 };
            if week < 3 || i % 2 == 0 {
                events.push((
                    start + TimeDelta::hours(answer),
                    format!("{thread}-r"),
                    thread.clone(),
                    json!({"direction": "outbound", "from": "linda@example.com", "body": "Done."}),
                ));
            }
            // Earlier weeks' requests are resolved two days on.
            if week < 3 {
                events.push((
                    start + TimeDelta::days(2),
                    format!("{thread}-s"),
                    thread,
                    json!({"solve": true}),
                ));
            }
        }
    }
    events.sort_by_key(|e| e.0);
    let mut ids = std::collections::HashMap::new();
    for (at, id, thread, fields) in events {
        if fields.get("solve").is_some() {
            app.clock.set(at);
            let (status, detail) = app
                .post(
                    &format!("/api/v1/conversations/{}/solve", ids[&thread]),
                    &json!({}),
                )
                .await;
            assert_eq!(status, 200);
            assert_eq!(detail["status"], "solved", "{detail}");
            continue;
        }
        let answer = event(&app, &id, &thread, at, fields).await;
        if let Some(c) = answer["conversation_id"].as_i64() {
            ids.entry(thread).or_insert(c);
        }
    }
    let (_, solved) = app
        .get("/api/v1/conversations?status=solved&limit=100")
        .await;
    assert_eq!(
        solved["conversations"].as_array().map(Vec::len),
        Some(18),
        "{solved}"
    );
    clock.set(monday_nine() + TimeDelta::hours(8));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let contract = app.state.contract.current().contract.clone();
    let link = keepword::service::new_client_link(
        app.service.core.store(),
        &contract,
        "http://127.0.0.1",
        "acme",
        clock.now(),
    )
    .unwrap();
    let path = &link[link.find("/clients/").unwrap()..];
    let mut failing = Vec::new();
    for (width, height, name) in [(360, 1400, "client-360"), (1280, 2200, "client-1280")] {
        let b = Browser::start(width, height).await;
        b.goto(&format!("{}{path}", app.base)).await;
        let text = b.text().await;
        assert!(text.contains("ACME Corp"), "{text}");
        assert!(text.contains("Promises we broke"), "{text}");
        assert!(text.contains("Open now"), "{text}");
        let fits = b
            .eval("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            .await;
        assert_eq!(fits, json!(true), "no sideways scrolling at {width} px");
        let charts = b
            .eval("return document.querySelectorAll('svg.record-chart').length")
            .await;
        assert!(
            charts.as_u64().unwrap_or(0) >= 1,
            "a picture per request type"
        );
        let v = b.serious_violations().await;
        if !v.is_empty() {
            failing.push((name, v));
        }
        b.screenshot(name).await;
        b.close().await;
    }
    assert!(failing.is_empty(), "axe-core: {failing:#?}");
    app.stop().await;
}
