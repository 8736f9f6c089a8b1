//! A notification refused for good (a webhook answering 410 Gone) through
//! the real app: not retried, shown on the conversation's timeline, in the
//! API's notification outcome and on the Rejected page, and sent again from
//! there with the same identity once the receiver takes it.

use crate::common;
use crate::support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use keepword::clock::Clock;
use keepword::config::{Secret, Settings};
use serde_json::json;
use support::{HookReceiver, eventually};

async fn a_refused_alert_is_shown_and_sent_again(backend: common::app::Backend) {
    // The receiver is gone at first (410), and back after the fix.
    let hook = HookReceiver::refusing("410 Gone", "", 1, "").await;
    let dir = tempfile::tempdir().unwrap();
    let db = common::app::FreshDatabase::new(backend);
    let settings = Settings {
        database_url: db.url().to_string(),
        contract: common::app::one_alert_contract(dir.path(), &hook.url),
        api_tokens: vec![Secret::new(common::app::TOKEN)],
        dashboard_password: Secret::new(common::app::PASSWORD),
        ..Default::default()
    };
    let t0: DateTime<Utc> = "2026-12-07T10:00:00Z".parse().unwrap();
    let clock = Clock::manual(t0);
    let app = common::app::serve(settings, clock.clone()).await;
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
        conv["escalations"][0]["notifications"][0].clone()
    };
    assert!(
        support::eventually_async(Duration::from_secs(10), || async {
            outcome().await["outcome"] == "refused"
        })
        .await,
        "{}",
        outcome().await
    );
    let n = outcome().await;
    assert!(
        n["last_error"].as_str().unwrap().contains("410 Gone"),
        "{n}"
    );
    // Far past the longest back-off (the breach alert goes out meanwhile):
    // the refused one was sent once.
    let first = hook.recorded()[0].clone();
    let attempts = || {
        hook.recorded()
            .iter()
            .filter(|r| r.header("webhook-id") == first.header("webhook-id"))
            .count()
    };
    clock.set(t0 + chrono::Duration::hours(2));
    assert!(
        !eventually(Duration::from_secs(2), || attempts() > 1).await,
        "a refused alert was retried: {:?}",
        hook.recorded()
    );

    let cookie = app.sign_in().await;
    let (status, page) = app.page(&cookie, &format!("/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("oncall by webhook: refused (")
            && page.contains("410 Gone")
            && page.contains("— not retried"),
        "{page}"
    );
    let (_, rejected) = app.page(&cookie, "/rejected").await;
    assert!(rejected.contains("Refused notifications"), "{rejected}");
    assert!(
        rejected.contains(&format!("href=\"/conversations/{id}\"")),
        "{rejected}"
    );
    let marker = "action=\"/rejected/notifications/";
    let start = rejected.find(marker).expect("a Send again form") + marker.len();
    let row: i64 = rejected[start..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let csrf = common::app::hidden(&rejected, "csrf").unwrap();
    let send = |csrf: String| {
        let (base, cookie) = (app.base.clone(), cookie.clone());
        async move {
            common::app::Served::browser_like()
                .post(format!("{base}/rejected/notifications/{row}/send-again"))
                .header("cookie", cookie)
                .form(&[("csrf", csrf)])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send("forged".into()).await, 403);
    assert_eq!(send(csrf.clone()).await, 303);
    assert!(
        support::eventually_async(Duration::from_secs(10), || async {
            outcome().await["outcome"] == "sent"
        })
        .await,
        "{}",
        outcome().await
    );
    let again: Vec<_> = hook
        .recorded()
        .into_iter()
        .filter(|r| r.header("webhook-id") == first.header("webhook-id"))
        .collect();
    assert_eq!(
        again.iter().map(|r| r.status).collect::<Vec<_>>(),
        [410, 200]
    );
    assert_eq!(again[0].body, again[1].body);
    // Sent: no longer refused, and not again.
    assert_eq!(send(csrf).await, 404);
    let (_, rejected) = app.page(&cookie, "/rejected").await;
    assert!(
        rejected.contains("No notification was refused."),
        "{rejected}"
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"keepword_notifications_total{kind="webhook",result="refused"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_alert_is_shown_and_sent_again_sqlite() {
    a_refused_alert_is_shown_and_sent_again(common::app::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_alert_is_shown_and_sent_again_postgres() {
    a_refused_alert_is_shown_and_sent_again(common::app::Backend::Postgres).await;
}
