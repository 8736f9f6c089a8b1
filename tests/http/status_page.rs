//! The client's status page (README, "HTTP API") over HTTP with a moved clock: the
//! link the 201 of a new ticket conversation carries opens it; each state
//! says the right sentence; nothing internal is on it; unknown and
//! malformed tokens are a plain 404; robots and referrers are kept out.

use crate::common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};
use keepword::clock::Clock;
use keepword::contract::Timer;
use serde_json::{Value, json};

use common::app::{Backend, TestApp, spawn_app};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml")
}

/// Monday 30 November 2026, 09:00 in Berlin.
fn monday_nine() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
}

struct Page {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    /// The body with the entities minijinja's escaping writes decoded.
    fn decoded(&self) -> String {
        decode(&self.body)
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The page's text with tags removed and white space collapsed, so a
    /// sentence split across elements still reads as one.
    fn text(&self) -> String {
        text_of(&self.body)
    }
}

/// `html` with the entities minijinja's escaping writes decoded.
pub(crate) fn decode(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The text of `html`, tags removed and white space collapsed.
pub(crate) fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in decode(html).chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn open(app: &TestApp, url: &str) -> Page {
    let r = app.http.get(url).send().await.unwrap();
    Page {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

/// Posts a ticket event at the clock's time.
async fn event(app: &TestApp, id: &str, thread: &str, fields: Value) -> Value {
    let mut body = json!({
        "id": id, "channel": "tickets", "thread": thread,
        "at": app.clock.now().to_rfc3339(),
    });
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, answer) = app.post("/api/v1/events", &body).await;
    assert!(status == 201 || status == 200, "{status} {answer}");
    answer
}

fn berlin(t: DateTime<chrono_tz::Tz>) -> String {
    t.format("%a %-d %b, %H:%M %Z").to_string()
}

async fn each_state_says_the_right_sentence(backend: Backend) {
    let clock = Clock::manual(monday_nine());
    let app = spawn_app(backend, shipped(), 1, clock.clone()).await;
    let contract = app.state.contract.current().contract.clone();

    let created = event(
        &app,
        "e1",
        "T-1",
        json!({"direction": "inbound", "from": "jane@acme.com",
               "subject": "Please change the footer", "body": "The footer says 2025."}),
    )
    .await;
    let url = created["status_url"]
        .as_str()
        .unwrap_or_else(|| panic!("the 201 carries status_url: {created}"))
        .to_string();
    assert!(
        url.starts_with("http://127.0.0.1:8080/status/"),
        "{{public_url}}/status/{{token}}: {url}"
    );
    let local = url.replace("http://127.0.0.1:8080", &app.base);

    // Waiting for the first reply: ACME's 2-hour override, in Berlin time.
    let page = open(&app, &local).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let text = page.text();
    assert!(
        text.contains("We will reply by Mon 30 Nov, 11:00 CET."),
        "{text}"
    );
    assert!(text.contains("Please change the footer"), "{text}");
    assert!(text.contains("Questions and change requests"), "{text}");
    assert!(
        text.contains("Everything that is not urgent and not a bug"),
        "the definition: {text}"
    );
    assert!(
        text.contains("We reply within 2 business hours"),
        "the promise with the override, from the contract's wording: {text}"
    );
    assert!(
        text.contains("+49 30 1234567 (24/7)"),
        "the urgent channel: {text}"
    );
    assert!(
        page.decoded()
            .contains("href=\"https://support.example.com/contract\""),
        "the contract link"
    );
    assert!(!text.contains("broke"), "nothing broken yet: {text}");

    // The team answers at 10:12: answered, and the resolution's due.
    clock.set(monday_nine() + Duration::minutes(72));
    event(
        &app,
        "e2",
        "T-1",
        json!({"direction": "outbound", "from": "linda@example.com", "body": "Done, Linda"}),
    )
    .await;
    let resolve_by = contract
        .due("question", Some("acme"), Timer::Resolution, monday_nine())
        .unwrap();
    let text = open(&app, &local).await.text();
    assert!(
        text.contains(&format!(
            "Answered Mon 30 Nov, 10:12 CET; we resolve it by {}.",
            berlin(resolve_by)
        )),
        "{text}"
    );

    // A question to the client at 10:30 pauses it.
    clock.set(monday_nine() + Duration::minutes(90));
    event(
        &app,
        "e3",
        "T-1",
        json!({"direction": "outbound", "from": "linda@example.com",
               "body": "Which year?", "awaiting_client": true}),
    )
    .await;
    clock.set(monday_nine() + Duration::hours(20));
    let text = open(&app, &local).await.text();
    assert!(
        text.contains("Paused: waiting for your reply since Mon 30 Nov, 10:30 CET."),
        "{text}"
    );

    // The client answers on Tuesday at 09:15: the next reply is owed.
    clock.set(monday_nine() + Duration::hours(24) + Duration::minutes(15));
    event(
        &app,
        "e4",
        "T-1",
        json!({"direction": "inbound", "from": "jane@acme.com", "body": "2026, please"}),
    )
    .await;
    let answer_by = contract
        .due("question", Some("acme"), Timer::NextResponse, clock.now())
        .unwrap();
    let text = open(&app, &local).await.text();
    assert!(
        text.contains(&format!(
            "You wrote again on Tue 1 Dec, 09:15 CET. We will answer by {}.",
            berlin(answer_by)
        )),
        "{text}"
    );

    // Solved at 11:00 on Tuesday.
    clock.set(monday_nine() + Duration::hours(26));
    let (status, _) = app
        .post(
            &format!("/api/v1/conversations/{}/solve", created["conversation_id"]),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let text = open(&app, &local).await.text();
    assert!(text.contains("Resolved on Tue 1 Dec, 11:00 CET."), "{text}");
    assert!(!text.contains("broke"), "every promise kept: {text}");

    // A second conversation whose first reply runs late.
    clock.set(monday_nine());
    let late = event(
        &app,
        "l1",
        "T-2",
        json!({"direction": "inbound", "from": "jane@acme.com", "subject": "Menu order"}),
    )
    .await;
    let late_url = late["status_url"]
        .as_str()
        .unwrap()
        .replace("http://127.0.0.1:8080", &app.base);
    assert_ne!(late_url, local, "one token per conversation");
    clock.set(monday_nine() + Duration::minutes(150));
    let text = open(&app, &late_url).await.text();
    assert!(
        text.contains("We were to reply by Mon 30 Nov, 11:00 CET. We are late"),
        "{text}"
    );
    assert!(
        text.contains(
            "We broke our promise: we were to reply by Mon 30 Nov, 11:00 CET, and we have not yet."
        ),
        "{text}"
    );
    assert!(
        !text.contains("Please change the footer"),
        "no other conversation: {text}"
    );
    clock.set(monday_nine() + Duration::minutes(165));
    event(
        &app,
        "l2",
        "T-2",
        json!({"direction": "outbound", "from": "linda@example.com", "body": "Sorry"}),
    )
    .await;
    let text = open(&app, &late_url).await.text();
    assert!(
        text.contains(
            "We broke our promise: we were to reply by Mon 30 Nov, 11:00 CET; we did so only on Mon 30 Nov, 11:45 CET."
        ),
        "{text}"
    );

    // A bug promises an update every business day: the page says by when.
    clock.set(monday_nine());
    let bug = event(
        &app,
        "b1",
        "T-3",
        json!({"direction": "inbound", "from": "jane@acme.com", "subject": "Checkout button broken"}),
    )
    .await;
    let bug_url = bug["status_url"]
        .as_str()
        .unwrap()
        .replace("http://127.0.0.1:8080", &app.base);
    let text = open(&app, &bug_url).await.text();
    assert!(
        !text.contains("Next update by"),
        "the first reply, due sooner, is the news: {text}"
    );
    clock.set(monday_nine() + Duration::minutes(30));
    event(
        &app,
        "b2",
        "T-3",
        json!({"direction": "outbound", "from": "linda@example.com", "body": "Looking into it"}),
    )
    .await;
    let update_by = contract
        .due("bug", Some("acme"), Timer::PeriodicUpdate, clock.now())
        .unwrap();
    let text = open(&app, &bug_url).await.text();
    assert!(
        text.contains(&format!("Next update by {}.", berlin(update_by))),
        "{text}"
    );
    assert!(
        text.contains("While we work on it, we update you at least once every business day."),
        "the promise in the contract's words: {text}"
    );
    app.stop().await;
}

async fn nothing_internal_is_on_the_page(backend: Backend) {
    let clock = Clock::manual(monday_nine());
    let app = spawn_app(backend, shipped(), 1, clock.clone()).await;
    let created = event(
        &app,
        "i1",
        "T-9",
        json!({"direction": "inbound", "from": "jane@acme.com",
               "subject": "Login is slow", "body": "Since this morning."}),
    )
    .await;
    event(
        &app,
        "i2",
        "T-9",
        json!({"direction": "internal", "from": "linda.member@example.com",
               "body": "INTERNAL-NOTE: the client is difficult"}),
    )
    .await;
    event(
        &app,
        "o1",
        "T-10",
        json!({"direction": "inbound", "from": "bob@initech.example",
               "subject": "OTHER-CONVERSATION subject"}),
    )
    .await;
    // Past 75% of the window: the lead's escalation step has fired.
    clock.set(monday_nine() + Duration::minutes(100));
    event(
        &app,
        "i3",
        "T-9",
        json!({"direction": "outbound", "from": "linda.member@example.com",
               "body": "TEAM-REPLY-BODY, Linda Member"}),
    )
    .await;
    let id = created["conversation_id"].as_i64().unwrap();
    let (_, detail) = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert!(
        !detail["escalations"].as_array().unwrap().is_empty(),
        "an escalation step fired, so there is something to leak: {detail}"
    );
    let url = created["status_url"]
        .as_str()
        .unwrap()
        .replace("http://127.0.0.1:8080", &app.base);
    let page = open(&app, &url).await;
    assert_eq!(page.status, 200);
    let lower = page.body.to_lowercase();
    for secret in [
        "internal-note",
        "difficult",
        "linda",
        "team-reply-body",
        "other-conversation",
        "lead@example.com",
        "oncall",
        "head@example.com",
        "chat.example.com",
        "escalat",
        "at:75%",
        "jane@acme.com",
        "classification",
        "keyword",
    ] {
        assert!(
            !lower.contains(secret),
            "`{secret}` is on the page:\n{}",
            page.body
        );
    }
    app.stop().await;
}

async fn unknown_and_malformed_tokens_are_a_plain_404(backend: Backend) {
    let clock = Clock::manual(monday_nine());
    let app = spawn_app(backend, shipped(), 1, clock.clone()).await;
    let created = event(
        &app,
        "n1",
        "T-1",
        json!({"direction": "inbound", "from": "jane@acme.com", "subject": "Hello"}),
    )
    .await;
    let url = created["status_url"].as_str().unwrap().to_string();
    let token = url.rsplit('/').next().unwrap().to_string();
    let good = open(&app, &format!("{}/status/{token}", app.base)).await;
    assert_eq!(good.status, 200);
    {
        let page = &good;
        assert_eq!(page.header("x-robots-tag"), "noindex, nofollow");
        assert_eq!(page.header("referrer-policy"), "no-referrer");
        assert!(page.header("cache-control").contains("no-store"));
        assert!(
            page.body
                .contains("<meta name=\"robots\" content=\"noindex")
        );
        assert!(page.body.contains("<html lang=\"en\">"));
        assert!(page.body.contains("<title>"));
        assert!(page.body.contains("/static/status.css"));
        assert!(!page.body.contains("<script"), "no script");
        assert!(!page.body.contains("style="), "no inline style");
    }
    // Another token of the right shape, one digit changed, its upper-case
    // spelling, one too short or long, and junk.
    let flipped = {
        let mut t = token.clone().into_bytes();
        t[0] = if t[0] == b'0' { b'1' } else { b'0' };
        String::from_utf8(t).unwrap()
    };
    for bad in [
        flipped,
        token.to_uppercase(),
        token[..token.len() - 1].to_string(),
        format!("{token}0"),
        "x".into(),
        "%27%20OR%201%3D1".into(),
        "..%2F..%2Fcontract".into(),
    ] {
        let page = open(&app, &format!("{}/status/{bad}", app.base)).await;
        assert_eq!(page.status, 404, "{bad}");
        assert!(page.body.contains("Page not found"), "{bad}: {}", page.body);
        assert!(!page.body.contains("Hello"), "{bad}");
        assert_eq!(page.header("x-robots-tag"), "noindex, nofollow");
        assert_eq!(page.header("referrer-policy"), "no-referrer");
    }
    // Issue 25 item 12: the addresses beside the page get the same 404 with
    // the same headers, not the dashboard's.
    for path in [
        "/status".to_string(),
        "/status/".into(),
        format!("/status/{token}/"),
        format!("/status/{token}/x"),
    ] {
        let page = open(&app, &format!("{}{path}", app.base)).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(
            page.body.contains("Page not found"),
            "{path}: {}",
            page.body
        );
        assert!(!page.body.contains("Hello"), "{path}");
        assert_eq!(page.header("x-robots-tag"), "noindex, nofollow", "{path}");
        assert_eq!(page.header("referrer-policy"), "no-referrer", "{path}");
        assert!(page.header("cache-control").contains("no-store"), "{path}");
    }
    let css = app
        .http
        .get(format!("{}/static/status.css", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.text().await.unwrap().contains("max-width"));

    // The token is in the database only as its hash.
    let hash = keepword::service::token_hash(&token);
    let stored: Vec<String> = app
        .service
        .core
        .store()
        .with(|c| {
            use diesel::prelude::*;
            use keepword::store::schema::status_links::dsl::*;
            Ok(status_links.select(token_hash).load::<String>(c)?)
        })
        .unwrap();
    assert_eq!(stored, vec![hash]);
    app.stop().await;
}

mod each_state {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        each_state_says_the_right_sentence(Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        each_state_says_the_right_sentence(Backend::Postgres).await;
    }
}

mod nothing_internal {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        nothing_internal_is_on_the_page(Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        nothing_internal_is_on_the_page(Backend::Postgres).await;
    }
}

mod not_found {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        unknown_and_malformed_tokens_are_a_plain_404(Backend::Sqlite).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        unknown_and_malformed_tokens_are_a_plain_404(Backend::Postgres).await;
    }
}
