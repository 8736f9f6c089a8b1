//! The Rejected page's refused notifications as an operator uses them, in
//! headless Chromium: the refusal is listed with the receiver's answer
//! (shown as text, however hostile), the page passes axe-core while the
//! list is populated, and "Send again" delivers it and empties the list.

use std::time::Duration;

use chrono::{DateTime, Utc};
use keepword::clock::Clock;
use keepword::config::{Secret, Settings};
use serde_json::json;

use crate::browser::Browser;
use crate::common::app::{self, Backend, FreshDatabase, PASSWORD, TOKEN};
use crate::support::{self, HookReceiver};

/// The receiver's answer to the refused alert: a page's worth of markup
/// that must reach the operator as text.
const HOSTILE_ANSWER: &str = "<img src=x onerror=\"window.__pwned = 3\"> endpoint retired";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_alert_is_listed_accessible_and_sent_again_from_the_page() {
    // Gone (410, with a hostile answer) at first; back after the fix.
    let hook = HookReceiver::refusing_saying("410 Gone", HOSTILE_ANSWER, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let db = FreshDatabase::new(Backend::Sqlite);
    let settings = Settings {
        database_url: db.url().to_string(),
        contract: app::one_alert_contract(dir.path(), &hook.url),
        api_tokens: vec![Secret::new(TOKEN)],
        dashboard_password: Secret::new(PASSWORD),
        ..Default::default()
    };
    let t0: DateTime<Utc> = "2026-12-07T10:00:00Z".parse().unwrap();
    let clock = Clock::manual(t0);
    let app = app::serve(settings, clock.clone()).await;
    let (status, body) = app
        .post(
            "/api/v1/events",
            &json!({
                "id": "evt-1", "channel": "tickets", "thread": "T-1", "direction": "inbound",
                "from": "jane@acme.com", "subject": "Shop is down", "at": t0.to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["conversation_id"].as_i64().unwrap();
    clock.set(t0 + chrono::Duration::seconds(30));
    let outcome = || async {
        let (_, conv) = app.get(&format!("/api/v1/conversations/{id}")).await;
        conv["escalations"][0]["notifications"][0]["outcome"].clone()
    };
    assert!(
        support::eventually_async(Duration::from_secs(10), || async {
            outcome().await == "refused"
        })
        .await,
        "{}",
        outcome().await
    );

    let b = Browser::start(1280, 900).await;
    b.sign_in(&app.base, PASSWORD).await;
    b.goto(&format!("{}/rejected", app.base)).await;
    let text = b.text().await;
    // What the operator reads: what was refused, by whom, the answer as
    // text, and where it came from.
    let rows = b
        .eval("return [...document.querySelectorAll('#refused ~ table tbody tr')].map(r => r.innerText)")
        .await;
    let rows: Vec<String> = serde_json::from_value(rows).unwrap();
    assert_eq!(rows.len(), 1, "one refused notification: {text}");
    assert!(
        rows[0].contains("by webhook") && rows[0].contains("oncall") && rows[0].contains("410"),
        "{rows:?}"
    );
    assert!(
        rows[0].contains(HOSTILE_ANSWER),
        "the answer as text: {rows:?}"
    );
    assert_eq!(
        b.eval("return document.querySelectorAll('table.rejected img').length")
            .await,
        json!(0),
        "no element made of the receiver's answer"
    );
    assert_eq!(
        b.eval("return window.__pwned === undefined").await,
        json!(true)
    );
    assert!(
        rows[0].contains(&format!("#{id}")),
        "the conversation it belongs to: {rows:?}"
    );
    let violations = b.serious_violations().await;
    assert!(violations.is_empty(), "axe-core: {violations:#?}");
    b.screenshot("rejected-refused").await;

    // Fixed at the receiver: send it again from the page.
    b.click("#refused ~ table button[type=submit]").await;
    b.wait_for(
        "return document.body.innerText.includes('No notification was refused.')",
        Duration::from_secs(10),
        "the list to empty after Send again",
    )
    .await;
    assert!(
        support::eventually_async(Duration::from_secs(10), || async {
            outcome().await == "sent"
        })
        .await,
        "{}",
        outcome().await
    );
    let seen: Vec<u16> = hook.recorded().iter().map(|r| r.status).collect();
    assert_eq!(seen[..2], [410, 200], "refused once, then taken: {seen:?}");
    let first = &hook.recorded()[0];
    assert_eq!(
        first.header("webhook-id"),
        hook.recorded()[1].header("webhook-id"),
        "sent again with the same identity"
    );
    b.close().await;
}
