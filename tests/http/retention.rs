//! `[retention] bodies` inside `keepword serve`: the daily job runs at start
//! and again when a day of the service's clock has passed, removes what is
//! older, counts it in `keepword_retention_deleted_total`, and the API then
//! shows the message without its body while its SLA facts stay.

use std::time::Duration;

use chrono::TimeZone;
use keepword::clock::Clock;
use keepword::config::Days;
use serde_json::json;

use crate::common;
use crate::support::eventually_async;

async fn the_daily_job_removes_bodies_past_the_period(url: String) {
    let start = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let clock = Clock::manual(start);
    let mut settings = common::app::dashboard_settings(&url);
    settings.retention.bodies = Days::new(365);
    let app = common::app::serve(settings, clock.clone()).await;
    let (status, body) = app
        .post(
            "/api/v1/events",
            &json!({
                "id": "evt-1", "channel": "tickets", "thread": "T-1", "direction": "inbound",
                "from": "jane@acme.com", "subject": "Checkout is down",
                "body": "Customers cannot pay.", "at": start.to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["conversation_id"].as_i64().unwrap();
    let body_of = |v: &serde_json::Value| v["messages"][0]["body"].as_str().map(str::to_string);

    // Half a year on: the day's run keeps it.
    clock.advance(chrono::Duration::days(180));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, conv) = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(
        body_of(&conv).as_deref(),
        Some("Customers cannot pay."),
        "{conv}"
    );

    // A year and a day after it arrived.
    clock.advance(chrono::Duration::days(186));
    let counted = "keepword_retention_deleted_total{kind=\"message_bodies\"} 1";
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            app.metrics().await.contains(counted)
        })
        .await,
        "{}",
        app.metrics().await
    );
    let (_, conv) = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(body_of(&conv).as_deref(), Some(""), "{conv}");
    assert_eq!(conv["subject"], "Checkout is down");
    assert_eq!(conv["messages"][0]["direction"], "inbound", "{conv}");
    app.stop().await;
}

crate::both_backends!(async the_daily_job_removes_bodies_past_the_period);
