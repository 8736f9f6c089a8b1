//! The team dashboard as a person uses it, in headless Chromium.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use keepword::clock::Clock;
use serde_json::json;

use crate::browser::Browser;
use crate::common::app::{Backend, PASSWORD, TestApp, WALL_TOKEN, spawn_dashboard};

/// Tuesday 1 December 2026, 10:00 in Berlin: the business calendar is open.
fn tuesday_morning() -> Clock {
    Clock::manual(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap())
}

async fn event(app: &TestApp, id: &str, from: &str, subject: &str, priority: Option<&str>) -> i64 {
    let mut body = json!({
        "id": id, "channel": "tickets", "thread": format!("thread-{id}"), "from": from,
        "direction": "inbound", "subject": subject, "body": format!("Body of {id}: <script>window.__pwned = 2</script>"),
    });
    if let Some(p) = priority {
        body["priority"] = json!(p);
    }
    let (status, answer) = app.post("/api/v1/events", &body).await;
    assert_eq!(status, 201, "{answer}");
    answer["conversation_id"].as_i64().unwrap()
}

#[tokio::test]
async fn sign_in_queue_order_hostile_input_filters_live_update_and_keys() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    let question = event(
        &app,
        "q1",
        "ann@acme.com",
        "Question about contract renewal",
        None,
    )
    .await;
    let hostile = event(
        &app,
        "x1",
        "bob@initech.example",
        "<img src=x onerror=\"window.__pwned = 1\"> broken export",
        None,
    )
    .await;
    let urgent = event(&app, "u1", "ops@globex.example", "Checkout is down", None).await;
    let b = Browser::start(1280, 900).await;

    // Without a session: the login page, and no data.
    b.goto(&format!("{}/", app.base)).await;
    assert!(b.url().await.contains("/login"), "{}", b.url().await);
    b.sign_in(&app.base, "not the password").await;
    let text = b.text().await;
    assert!(text.contains("Wrong password"), "{text}");
    for secret in ["Checkout is down", "contract renewal", "ACME"] {
        assert!(
            !text.contains(secret),
            "a refused sign-in shows {secret}: {text}"
        );
    }

    b.sign_in(&app.base, PASSWORD).await;
    b.wait_for(
        "return !!document.querySelector('table.queue')",
        Duration::from_secs(5),
        "the queue",
    )
    .await;
    let order = b
        .eval("return [...document.querySelectorAll('tr[data-id]')].map(r => Number(r.dataset.id))")
        .await;
    let order: Vec<i64> = serde_json::from_value(order).unwrap();
    // Urgent (30 business minutes) first, then the bug (Initech: 4 h), then
    // the question (ACME: 2 h first response) — by time left.
    assert_eq!(order[0], urgent, "the urgent request is on top: {order:?}");
    assert!(order.contains(&question) && order.contains(&hostile));
    let text = b.text().await;
    assert!(text.contains("first response"), "{text}");
    assert!(text.contains("left"), "{text}");
    assert!(
        text.contains("Globex Logistics"),
        "client names, not ids: {text}"
    );

    // The hostile subject is text: no element made of it, nothing ran.
    assert!(
        text.contains("<img src=x onerror="),
        "shown as text: {text}"
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('td.subject img').length")
            .await,
        json!(0)
    );
    assert_eq!(
        b.eval("return window.__pwned === undefined").await,
        json!(true)
    );
    b.screenshot("queue").await;

    // Live: a new request appears without a reload.
    b.eval("window.__no_reload = 'still here'; return true")
        .await;
    b.wait_for(
        "return document.getElementById('heard').textContent.includes('last heard')",
        Duration::from_secs(5),
        "the stream to connect",
    )
    .await;
    let fresh = event(
        &app,
        "u2",
        "ops@globex.example",
        "Payments are down too",
        Some("urgent"),
    )
    .await;
    let took = b
        .wait_for(
            &format!("return !!document.querySelector('tr[data-id=\"{fresh}\"]')"),
            Duration::from_secs(10),
            "the new conversation to appear",
        )
        .await;
    eprintln!("live update visible after {took:?}");
    assert_eq!(
        b.eval("return window.__no_reload").await,
        json!("still here")
    );

    // Keys: j, j, k selects the first row; Enter opens it.
    b.keys("j").await;
    b.keys("j").await;
    let second = b
        .eval("return document.querySelector('tr.selected').dataset.id")
        .await;
    b.keys("k").await;
    let first = b
        .eval("return document.querySelector('tr.selected').dataset.id")
        .await;
    assert_ne!(first, second);
    assert_eq!(
        first,
        b.eval("return document.querySelector('tr[data-id]').dataset.id")
            .await
    );
    b.keys("\u{E007}").await; // WebDriver's Enter
    b.wait_for(
        &format!(
            "return location.pathname === '/conversations/{}'",
            first.as_str().unwrap()
        ),
        Duration::from_secs(5),
        "Enter to open the selected conversation",
    )
    .await;

    // A filter is a URL.
    b.goto(&format!("{}/?type=question", app.base)).await;
    let ids: Vec<i64> = serde_json::from_value(
        b.eval(
            "return [...document.querySelectorAll('tr[data-id]')].map(r => Number(r.dataset.id))",
        )
        .await,
    )
    .unwrap();
    assert_eq!(ids, vec![question], "only the question");
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn timeline_explains_the_due_and_the_solve_button_solves() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    let id = event(
        &app,
        "q1",
        "ann@acme.com",
        "Question about contract renewal",
        None,
    )
    .await;
    let b = Browser::start(1280, 900).await;
    b.sign_in(&app.base, PASSWORD).await;
    b.goto(&format!("{}/conversations/{id}", app.base)).await;
    let text = b.text().await;
    assert!(text.contains("first response started"), "{text}");
    assert!(text.contains("Why is it due then?"), "{text}");
    // ACME's override: first response within 2 business hours from 10:00.
    assert!(text.contains("first response: due Tue 12:00"), "{text}");
    assert!(
        text.contains("10:00–12:00 (2 h)"),
        "the counted span: {text}"
    );
    assert!(text.contains("If the client replies now"), "{text}");
    assert!(
        text.contains("<script>window.__pwned = 2</script>"),
        "the body is text: {text}"
    );
    assert_eq!(
        b.eval("return window.__pwned === undefined").await,
        json!(true)
    );
    b.screenshot("timeline").await;

    b.click("#solve").await;
    b.wait_for(
        "return document.body.innerText.includes('status set to solved')",
        Duration::from_secs(5),
        "the solve to show on the timeline",
    )
    .await;
    let (_, detail) = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(detail["status"], "solved", "{detail}");
    b.close().await;
    app.stop().await;
}

#[tokio::test]
async fn pages_have_no_serious_accessibility_violations() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    let id = event(
        &app,
        "q1",
        "ann@acme.com",
        "Question about contract renewal",
        None,
    )
    .await;
    event(&app, "u1", "ops@globex.example", "Checkout is down", None).await;
    let b = Browser::start(1280, 900).await;
    b.goto(&format!("{}/login", app.base)).await;
    let mut report = Vec::new();
    report.push(("login", b.serious_violations().await));
    b.screenshot("login").await;
    b.sign_in(&app.base, PASSWORD).await;
    for (name, path) in [
        ("queue", "/".to_string()),
        ("timeline", format!("/conversations/{id}")),
        ("compliance", "/compliance".to_string()),
        ("rejected", "/rejected".to_string()),
        ("urgency", "/urgency".to_string()),
        ("connections", "/connections".to_string()),
        ("wall", format!("/wall?token={WALL_TOKEN}")),
    ] {
        b.goto(&format!("{}{path}", app.base)).await;
        report.push((name, b.serious_violations().await));
        b.screenshot(name).await;
    }
    b.close().await;
    // Narrow: a phone.
    let phone = Browser::start(360, 800).await;
    phone.sign_in(&app.base, PASSWORD).await;
    phone.goto(&format!("{}/", app.base)).await;
    report.push(("queue-narrow", phone.serious_violations().await));
    phone.screenshot("queue-narrow").await;
    let overflow = phone
        .eval("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(overflow, json!(true), "no sideways scrolling on a phone");
    phone.close().await;
    let failing: Vec<_> = report.iter().filter(|(_, v)| !v.is_empty()).collect();
    assert!(failing.is_empty(), "axe-core: {failing:#?}");
    app.stop().await;
}

/// The client's status page (README, "HTTP API"), opened from the link the API hands
/// out: readable on a phone and on a desktop, and accessible.
#[tokio::test]
async fn the_status_page_reads_well_at_360_and_1280_pixels() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    let (status, answer) = app
        .post(
            "/api/v1/events",
            &json!({
                "id": "s1", "channel": "tickets", "thread": "status-1", "from": "ann@acme.com",
                "direction": "inbound", "subject": "Question about contract renewal", "body": "When does it end?",
            }),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let url = answer["status_url"]
        .as_str()
        .expect("a status_url for the new conversation")
        .to_string();
    let path = &url[url.find("/status/").unwrap()..];
    let mut failing = Vec::new();
    for (width, name) in [(360, "status-360"), (1280, "status-1280")] {
        let b = Browser::start(width, 800).await;
        b.goto(&format!("{}{path}", app.base)).await;
        let text = b.text().await;
        assert!(text.contains("Question about contract renewal"), "{text}");
        assert!(
            text.contains("we will reply by") || text.contains("We will reply by"),
            "{text}"
        );
        let fits = b
            .eval("return document.documentElement.scrollWidth <= window.innerWidth + 1")
            .await;
        assert_eq!(fits, json!(true), "no sideways scrolling at {width} px");
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
