//! End to end over HTTP: ticket events in, SLA state out, escalation and
//! breach alerts through a real SMTP server and a webhook receiver — on
//! SQLite and on PostgreSQL.

use crate::common;
use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use hmac::{Hmac, Mac};
use keepword::clock::Clock;
use keepword::config::{Secret, Settings, Tls};
use serde_json::{Value, json};
use sha2::Sha256;

use support::{HookReceiver, SmtpServer, eventually};

const TOKEN: &str = "test-token";
const GITHUB_SECRET: &str = "gh-secret";

/// The app, served with the test's token and GitHub secret.
struct Running(common::app::Served);

impl std::ops::Deref for Running {
    type Target = common::app::Served;
    fn deref(&self) -> &common::app::Served {
        &self.0
    }
}

impl Running {
    async fn start(database_url: String, contract: PathBuf, smtp_port: u16) -> Running {
        let mut settings = Settings {
            database_url,
            contract,
            api_tokens: vec![Secret::new(TOKEN)],
            ..Default::default()
        };
        settings.smtp.port = smtp_port;
        settings.smtp.tls = Tls::None;
        settings.github.webhook_secret = Secret::new(GITHUB_SECRET);
        Running(common::app::serve(settings, Clock::system()).await)
    }

    async fn post_event(&self, body: &Value) -> (u16, Value) {
        self.post("/api/v1/events", body).await
    }

    async fn stop(self) {
        self.0.stop().await;
    }
}

fn ts(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A breach alert reaches a real SMTP server and a webhook receiver within a
/// second of its due; the 50% step that fell due before the event arrived
/// fires at once, marked late.
async fn breach_alert_end_to_end(database_url: String) {
    let smtp = SmtpServer::start();
    let hooks = HookReceiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let app = Running::start(
        database_url,
        common::fast_contract(dir.path(), &hooks.url),
        smtp.port,
    )
    .await;

    // Whole seconds: the SLA engine counts in seconds.
    let opened = Utc::now().trunc_subsecs(0) - chrono::Duration::seconds(57);
    let (status, body) = app
        .post_event(&json!({
            "id": "evt-1", "channel": "tickets", "thread": "T-1", "direction": "inbound",
            "from": "jane@acme.com", "subject": "Checkout is down", "body": "Customers cannot pay.",
            "at": opened.to_rfc3339(),
        }))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["conversation_id"].as_i64().unwrap();

    let (_, conv) = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(conv["request_type"], "urgent");
    assert_eq!(conv["classification"], "urgent: keyword `down` in subject");
    assert_eq!(conv["client"], "acme");
    assert_eq!(conv["channel_mismatch"], false);
    assert_eq!(conv["health"], "at_risk", "50% of the window has passed");
    let due = ts(&conv["next_due_at"]);
    assert_eq!((due - opened).num_seconds(), 60);

    // Wait for both steps (50% now, 100% at the due) at the webhook receiver.
    assert!(
        eventually(Duration::from_secs(10), || hooks.accepted().len() >= 2).await,
        "escalation webhooks did not arrive: {:?}",
        hooks.accepted()
    );
    let arrived = Utc::now();
    let bodies = hooks.accepted();
    let full = bodies
        .iter()
        .find(|b| b["step"] == "at:100%")
        .expect("the 100% step was posted");
    assert!(full["text"].as_str().unwrap().contains("ACME Corp"));
    assert_eq!(full["conversation_id"], id);
    assert!(
        (arrived - due).num_milliseconds() < 1_500,
        "breach webhook arrived {} ms after the due",
        (arrived - due).num_milliseconds()
    );

    let (_, conv) = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(conv["health"], "breached");
    let timers = conv["timers"].as_array().unwrap();
    let first = timers
        .iter()
        .find(|t| t["timer"] == "first_response")
        .unwrap();
    assert_eq!(first["status"], "breached");
    let steps = conv["escalations"].as_array().unwrap();
    let keys: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(keys.contains(&"first_response/0/at:50%"), "{keys:?}");
    assert!(keys.contains(&"first_response/0/at:100%"), "{keys:?}");
    assert!(keys.contains(&"first_response/0/breach"), "{keys:?}");
    for s in steps {
        let lateness = (ts(&s["fired_at"]) - ts(&s["due_at"])).num_milliseconds();
        if s["step"] == "first_response/0/at:50%" {
            assert_eq!(s["late"], true, "fell due before the event arrived");
        } else {
            assert!(lateness < 1_000, "{} fired {lateness} ms late", s["step"]);
            assert_eq!(s["late"], false);
        }
    }

    // The emails reach the real SMTP server.
    assert!(
        eventually(Duration::from_secs(10), || smtp.received().len() >= 2).await,
        "escalation emails did not arrive"
    );
    let mails = smtp.received();
    assert!(mails.iter().all(|m| m.rcpt_tos == ["oncall@example.com"]));
    assert!(
        mails
            .iter()
            .any(|m| m.header("Subject").unwrap().contains("window has run out")),
        "{:?}",
        mails
            .iter()
            .map(|m| m.header("Subject"))
            .collect::<Vec<_>>()
    );

    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"keepword_sla_breaches_total{client="acme",request_type="urgent",timer="first_response"} 1"#), "{metrics}");
    assert!(
        metrics.contains(r#"keepword_escalations_total{request_type="urgent",step="at:100%"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keepword_messages_total{channel="tickets",direction="inbound"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"keepword_conversations_open{health="breached",request_type="urgent"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("keepword_outbox_pending 0"), "{metrics}");

    // The team answers late: first_response is missed; then it is solved.
    let (status, _) = app
        .post_event(&json!({
            "id": "evt-2", "channel": "tickets", "thread": "T-1", "direction": "outbound",
            "from": "support@example.com", "body": "Looking into it.",
        }))
        .await;
    assert_eq!(status, 201);
    let r = app
        .http
        .post(format!("{}/api/v1/conversations/{id}/solve", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let conv: Value = r.json().await.unwrap();
    assert_eq!(conv["status"], "solved");
    let first = conv["timers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["timer"] == "first_response")
        .unwrap()
        .clone();
    assert_eq!(first["status"], "missed", "{conv:#}");
    let (_, list) = app
        .get("/api/v1/conversations?status=solved&client=acme&type=urgent")
        .await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 1);
    let (_, list) = app.get("/api/v1/conversations?health=breached").await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 0);
    app.stop().await;
}

crate::both_backends!(async breach_alert_end_to_end);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_get_clear_errors_and_duplicates_count_once() {
    let (_dir, url) = common::fresh_sqlite();
    let hooks = HookReceiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let app = Running::start(
        url,
        common::fast_contract(dir.path(), &hooks.url),
        support::free_port(),
    )
    .await;
    let events = format!("{}/api/v1/events", app.base);

    let r = app
        .http
        .post(&events)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no token");
    let r = app
        .http
        .post(&events)
        .bearer_auth("wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "wrong token");

    let r = app
        .http
        .post(&events)
        .bearer_auth(TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let (status, body) = app
        .post_event(&json!({"id": "x", "channel": 7, "direction": "sideways", "colour": "red"}))
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for f in ["channel", "thread", "direction", "colour"] {
        assert!(fields.contains(&f), "{f} not named in {body}");
    }

    let (status, body) = app
        .post_event(&json!({"id": "u1", "channel": "fax", "thread": "T", "direction": "inbound", "from": "a@acme.com"}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["fields"][0]["field"], "channel", "{body}");

    let big = "x".repeat(keepword::web::api::BODY_LIMIT + 1);
    let r = app
        .http
        .post(&events)
        .bearer_auth(TOKEN)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let event = json!({"id": "dup-1", "channel": "email", "thread": "T-9", "direction": "inbound",
                       "from": "bob@acme.com", "subject": "A question"});
    let (first, b1) = app.post_event(&event).await;
    let (second, b2) = app.post_event(&event).await;
    assert_eq!((first, second), (201, 200));
    assert_eq!(b2["duplicate"], true);
    assert_eq!(b1["message_id"], b2["message_id"]);
    let id = b1["conversation_id"].as_i64().unwrap();
    let (_, conv) = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(conv["messages"].as_array().unwrap().len(), 1);
    assert_eq!(conv["request_type"], "question");
    assert_eq!(conv["classification"], "question: default");

    // A channel the request type does not list is tracked and counted.
    let (_, b) = app
        .post_event(
            &json!({"id": "mm-1", "channel": "email", "thread": "T-10", "direction": "inbound",
                            "from": "bob@acme.com", "subject": "Server down"}),
        )
        .await;
    let (_, conv) = app
        .get(&format!("/api/v1/conversations/{}", b["conversation_id"]))
        .await;
    assert_eq!(conv["channel_mismatch"], true);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(
            r#"keepword_channel_mismatches_total{channel="email",request_type="urgent"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"keepword_ingest_rejected_total{channel="api",reason="invalid"} 1"#),
        "{metrics}"
    );

    let (status, _) = app.get("/api/v1/conversations/999999").await;
    assert_eq!(status, 404);
    let (status, body) = app.get("/api/v1/conversations?health=sad").await;
    assert_eq!(status, 422);
    assert_eq!(body["fields"][0]["field"], "health");
    app.stop().await;
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_webhooks_with_real_payloads() {
    let (_dir, url) = common::fresh_sqlite();
    let hooks = HookReceiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let app = Running::start(
        url,
        common::fast_contract(dir.path(), &hooks.url),
        support::free_port(),
    )
    .await;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github");
    let post =
        |event: &'static str, delivery: &'static str, body: Vec<u8>, signature: Option<String>| {
            let mut r = app
                .http
                .post(format!("{}/webhooks/github", app.base))
                .header("X-GitHub-Event", event)
                .header("X-GitHub-Delivery", delivery)
                .header("Content-Type", "application/json")
                .body(body);
            if let Some(s) = signature {
                r = r.header("X-Hub-Signature-256", s);
            }
            r.send()
        };
    let opened = std::fs::read(fixtures.join("issues.opened.1.json")).unwrap();

    let r = post("issues", "d-0", opened.clone(), None).await.unwrap();
    assert_eq!(r.status(), 401, "unsigned");
    let mut tampered = opened.clone();
    tampered[10] ^= 1;
    let r = post("issues", "d-0", tampered, Some(sign(&opened)))
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "body changed after signing");

    let r = post("issues", "d-1", opened.clone(), Some(sign(&opened)))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let r = post("issues", "d-1", opened.clone(), Some(sign(&opened)))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the same delivery twice is one event");
    let again: Value = r.json().await.unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message_id"], created["message_id"]);

    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_vec();
    let r = post("ping", "d-2", ping.clone(), Some(sign(&ping)))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let (_, conv) = app
        .get(&format!(
            "/api/v1/conversations/{}",
            created["conversation_id"]
        ))
        .await;
    assert_eq!(conv["channel"], "tickets");
    let v: Value = serde_json::from_slice(&opened).unwrap();
    assert_eq!(conv["subject"], v["issue"]["title"]);
    assert_eq!(
        conv["thread"],
        format!(
            "{}#{}",
            v["repository"]["full_name"].as_str().unwrap(),
            v["issue"]["number"]
        )
    );
    let metrics = app.metrics().await;
    assert!(
        metrics
            .contains(r#"keepword_webhook_events_ignored_total{event="ping",source="github"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}
