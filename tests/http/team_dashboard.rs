//! The team dashboard over HTTP: sessions, CSRF, sign-in limits, headers,
//! status codes, the queue's order and filters with a moved clock, actions
//! on the timeline, the wallboard, and the live stream — within one process
//! and, on PostgreSQL, across two.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures::StreamExt;
use keepword::clock::Clock;
use keepword::config::{Secret, Settings};
use serde_json::json;

use crate::common::app::{
    Backend, PASSWORD, Served, TOKEN, WALL_TOKEN, cookie_of, hidden, serve, serve_dashboard,
    spawn_dashboard,
};
use crate::support::eventually_async;

/// Tuesday 1 December 2026, 10:00 in Berlin.
fn tuesday_morning() -> Clock {
    Clock::manual(Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap())
}

async fn event(app: &Served, id: &str, from: &str, subject: &str) -> i64 {
    let (status, answer) = app
        .post(
            "/api/v1/events",
            &json!({
                "id": id, "channel": "tickets", "thread": format!("t-{id}"), "from": from,
                "direction": "inbound", "subject": subject, "body": "hello",
            }),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    answer["conversation_id"].as_i64().unwrap()
}

fn ids_in(html: &str) -> Vec<i64> {
    html.match_indices("<tr data-id=\"")
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn pages_without_a_session_redirect_to_login_and_show_nothing() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    let id = event(&app, "a", "jane@acme.com", "Secret subject").await;
    let http = Served::browser_like();
    for path in [
        "/".to_string(),
        "/?type=question".into(),
        format!("/conversations/{id}"),
        "/compliance".into(),
        "/compliance.csv".into(),
        "/rejected".into(),
        "/dashboard/queue".into(),
        "/dashboard/stream".into(),
        "/rejected/1/raw".into(),
    ] {
        let r = http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "{path}");
        let to = r.headers()["location"].to_str().unwrap().to_string();
        assert!(to.starts_with("/login?next="), "{path} → {to}");
        assert!(
            !r.text().await.unwrap().contains("Secret"),
            "{path} shows no data"
        );
    }
    // State-changing requests too, and a forged cookie is no session.
    for path in [format!("/conversations/{id}/solve"), "/logout".into()] {
        let r = http
            .post(format!("{}{path}", app.base))
            .header("cookie", format!("keepword_session={}", "a".repeat(64)))
            .form(&[("csrf", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303, "{path}");
    }
    let (_, detail) = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(detail["status"], "open");
    // The link of an escalation email: to the sign-in, then back to it.
    let link = format!("/conversations/{id}");
    let r = http
        .get(format!("{}{link}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], format!("/login?next={link}"));
    let form = http
        .get(format!("{}/login?next={link}", app.base))
        .send()
        .await
        .unwrap();
    let c = cookie_of(&form, "keepword_login").unwrap();
    let csrf = hidden(&form.text().await.unwrap(), "csrf").unwrap();
    let r = http
        .post(format!("{}/login", app.base))
        .header("cookie", &c)
        .form(&[
            ("password", PASSWORD),
            ("csrf", csrf.as_str()),
            ("next", link.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], link.as_str());
    let session = cookie_of(&r, "keepword_session").unwrap();
    let (status, page) = app.page(&session, &link).await;
    assert_eq!(status, 200);
    assert!(page.contains("Secret subject"));
    // After signing in, `next` brings the user back (and only to a local path).
    let form = http
        .get(format!("{}/login?next=/compliance", app.base))
        .send()
        .await
        .unwrap();
    let c = cookie_of(&form, "keepword_login").unwrap();
    let csrf = hidden(&form.text().await.unwrap(), "csrf").unwrap();
    for (next, expect) in [
        ("/compliance", "/compliance"),
        ("//evil.example/", "/"),
        ("https://evil.example", "/"),
    ] {
        let r = http
            .post(format!("{}/login", app.base))
            .header("cookie", &c)
            .form(&[
                ("password", PASSWORD),
                ("csrf", csrf.as_str()),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["location"], expect, "next={next}");
    }
    app.stop().await;
}

#[tokio::test]
async fn sign_in_sets_a_strict_cookie_refuses_wrong_passwords_and_limits_attempts() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    event(&app, "a", "jane@acme.com", "Secret subject").await;
    let http = Served::browser_like();
    let form = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_of(&form, "keepword_login").unwrap();
    let csrf = hidden(&form.text().await.unwrap(), "csrf").unwrap();
    let attempt = |password: &'static str, csrf: String, cookie: String| {
        let http = http.clone();
        let base = app.base.clone();
        async move {
            http.post(format!("{base}/login"))
                .header("cookie", cookie)
                .form(&[
                    ("password", password),
                    ("csrf", csrf.as_str()),
                    ("next", "/"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    // Without the login form's token: refused before the password is looked at.
    let r = attempt(PASSWORD, "forged".into(), login_cookie.clone()).await;
    assert_eq!(r.status().as_u16(), 403);

    let r = attempt("wrong", csrf.clone(), login_cookie.clone()).await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(cookie_of(&r, "keepword_session").is_none());
    let body = r.text().await.unwrap();
    assert!(body.contains("Wrong password") && !body.contains("Secret subject"));

    let r = attempt(PASSWORD, csrf.clone(), login_cookie.clone()).await;
    assert_eq!(r.status().as_u16(), 303);
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("keepword_session="))
        .unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain http public_url: {set}");
    let session = set.split(';').next().unwrap().to_string();
    let (status, page) = app.page(&session, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("Secret subject"));

    // Five failures from one address: the sixth attempt is refused even
    // with the right password, and says when to come back.
    for _ in 0..5 {
        assert_eq!(
            attempt("wrong", csrf.clone(), login_cookie.clone())
                .await
                .status()
                .as_u16(),
            401
        );
    }
    let r = attempt(PASSWORD, csrf.clone(), login_cookie.clone()).await;
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().contains_key("retry-after"));

    // Sign out ends the session.
    let csrf_session = hidden(&page, "csrf").unwrap();
    let r = http
        .post(format!("{}/logout", app.base))
        .header("cookie", &session)
        .form(&[("csrf", csrf_session.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(app.page(&session, "/").await.0, 303);
    app.stop().await;
}

#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let db = crate::common::app::FreshDatabase::new(Backend::Sqlite);
    let settings = Settings {
        database_url: db.url().to_string(),
        contract: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"),
        api_tokens: vec![Secret::new(TOKEN)],
        dashboard_password: Secret::new(PASSWORD),
        public_url: "https://support.example.com".into(),
        ..Default::default()
    };
    let app = serve(settings, tuesday_morning()).await;
    let http = Served::browser_like();
    let form = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let c = cookie_of(&form, "keepword_login").unwrap();
    let csrf = hidden(&form.text().await.unwrap(), "csrf").unwrap();
    let r = http
        .post(format!("{}/login", app.base))
        .header("cookie", c)
        .form(&[("password", PASSWORD), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        set.iter()
            .any(|v| v.starts_with("keepword_session=") && v.contains("Secure")),
        "{set:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn pages_send_security_headers_and_proper_status_codes() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    let cookie = app.sign_in().await;
    let http = Served::browser_like();
    for path in ["/", "/login", "/compliance", "/conversations/999"] {
        // Signed in, /login redirects: ask for it without the session.
        let cookie = if path == "/login" {
            ""
        } else {
            cookie.as_str()
        };
        let r = http
            .get(format!("{}{path}", app.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    // Unknown conversations and paths: a 404 page, not a stack of text.
    for path in ["/conversations/999", "/conversations/abc", "/no/such/page"] {
        let (status, body) = app.page(&cookie, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(body.contains("<h1>Not found</h1>"), "{path}: {body}");
    }
    // Bad filters and periods: 400 naming the problem.
    let (status, body) = app.page(&cookie, "/?health=purple").await;
    assert_eq!(status, 400);
    assert!(body.contains("health must be one of"), "{body}");
    let (status, body) = app.page(&cookie, "/?colour=red").await;
    assert_eq!(status, 400);
    assert!(body.contains("colour"), "{body}");
    let (status, body) = app.page(&cookie, "/compliance?from=2026-13-01").await;
    assert_eq!(status, 400);
    assert!(body.contains("`from` must be a date"), "{body}");
    app.stop().await;
}

async fn queue_order_filters_and_pages(backend: Backend) {
    let app = spawn_dashboard(backend, tuesday_morning()).await;
    let cookie = app.sign_in().await;
    // 10:00: an outage (30 m, around the clock) and an ACME question (2 h).
    let outage = event(&app, "u1", "ops@globex.example", "Checkout is down").await;
    let question = event(&app, "q1", "jane@acme.com", "Question about the invoice").await;
    // 10:40: a second outage, due 11:10.
    app.clock.advance(chrono::Duration::minutes(40));
    let outage2 = event(&app, "u2", "ops@globex.example", "Search is down").await;
    let (_, page) = app.page(&cookie, "/").await;
    assert_eq!(
        ids_in(&page),
        vec![outage, outage2, question],
        "by time left"
    );

    // 13:00: all three breached; the most late first.
    app.clock.advance(chrono::Duration::minutes(140));
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            let (_, page) = app.page(&cookie, "/?health=breached").await;
            ids_in(&page).len() == 3
        })
        .await,
        "the scheduler records the breaches"
    );
    let (_, page) = app.page(&cookie, "/").await;
    assert_eq!(
        ids_in(&page),
        vec![outage, outage2, question],
        "breached, most late first"
    );
    assert!(
        page.contains("<strong>3</strong> breached"),
        "counts per health"
    );
    assert!(
        page.contains("2 h 30 m late"),
        "the first outage is 2 h 30 m late"
    );
    let (_, page) = app.page(&cookie, "/?type=question").await;
    assert_eq!(ids_in(&page), vec![question]);
    let (_, page) = app.page(&cookie, "/?client=globex&health=breached").await;
    assert_eq!(ids_in(&page), vec![outage, outage2]);

    // Waiting on the client: the row says since when, and sorts after the dues.
    let (_, timeline) = app
        .page(&cookie, &format!("/conversations/{question}"))
        .await;
    let csrf = hidden(&timeline, "csrf").unwrap();
    let r = Served::browser_like()
        .post(format!("{}/conversations/{question}/wait", app.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let (_, page) = app.page(&cookie, "/").await;
    assert!(page.contains("waiting on client since Tue 13:00"), "{page}");

    // Pages: 60 more conversations; page 2 continues page 1 without overlap.
    let mut fresh = Vec::new();
    for i in 0..60 {
        fresh.push(
            event(
                &app,
                &format!("n{i}"),
                "eve@initech.example",
                &format!("Question {i}"),
            )
            .await,
        );
    }
    // The team answers the first and waits for the client: nothing of it is
    // counting any more, so it sorts after every due.
    let (status, _) = app
        .post(
            "/api/v1/events",
            &json!({
                "id": "n0-answer", "channel": "tickets", "thread": "t-n0", "from": "lead@example.com",
                "direction": "outbound", "awaiting_client": true, "subject": "Re: Question 0", "body": "Which one?",
            }),
        )
        .await;
    assert_eq!(status, 201);
    let (_, p1) = app.page(&cookie, "/").await;
    let (_, p2) = app.page(&cookie, "/?page=2").await;
    let (a, b) = (ids_in(&p1), ids_in(&p2));
    assert_eq!(a.len(), 50);
    assert_eq!(b.len(), 63 - 50);
    assert!(a.iter().all(|x| !b.contains(x)));
    assert!(
        p1.contains("63 conversations") && p1.contains("page 1 of 2"),
        "totals"
    );
    assert_eq!(
        a[..3],
        [outage, outage2, question],
        "still breached: the question's first response was never given"
    );
    assert_eq!(
        *b.last().unwrap(),
        fresh[0],
        "the one with nothing counting is last"
    );
    app.stop().await;
}

#[tokio::test]
async fn queue_order_filters_and_pages_sqlite() {
    queue_order_filters_and_pages(Backend::Sqlite).await;
}

#[tokio::test]
async fn queue_order_filters_and_pages_postgres() {
    queue_order_filters_and_pages(Backend::Postgres).await;
}

#[tokio::test]
async fn actions_need_the_csrf_token_and_are_recorded_on_the_timeline() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    let cookie = app.sign_in().await;
    let id = event(&app, "q", "jane@acme.com", "Question").await;
    let (_, page) = app.page(&cookie, &format!("/conversations/{id}")).await;
    let csrf = hidden(&page, "csrf").unwrap();
    let post = |action: &'static str, token: String| {
        let (base, cookie) = (app.base.clone(), cookie.clone());
        async move {
            Served::browser_like()
                .post(format!("{base}/conversations/{id}/{action}"))
                .header("cookie", cookie)
                .form(&[("csrf", token.as_str())])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post("solve", "not-the-token".into()).await, 403);
    assert_eq!(
        app.get(&format!("/api/v1/conversations/{id}")).await.1["status"],
        "open"
    );
    for (action, status) in [("wait", "pending"), ("reopen", "open"), ("solve", "solved")] {
        app.clock.advance(chrono::Duration::minutes(5));
        assert_eq!(post(action, csrf.clone()).await, 303, "{action}");
        assert_eq!(
            app.get(&format!("/api/v1/conversations/{id}")).await.1["status"],
            status
        );
    }
    assert_eq!(post("explode", csrf.clone()).await, 404);
    let (_, page) = app.page(&cookie, &format!("/conversations/{id}")).await;
    for line in [
        "dashboard: status set to waiting on client",
        "dashboard: status set to open",
        "dashboard: status set to solved",
        "resolution paused: marked waiting on client",
        "resolution resumed: reopened",
    ] {
        assert!(page.contains(line), "the timeline lists `{line}`: {page}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_wallboard_needs_its_token() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    event(&app, "a", "jane@acme.com", "Visible on the wall").await;
    let http = Served::browser_like();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let r = http.get(path).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = get(format!("{}/wall?token={WALL_TOKEN}", app.base)).await;
    assert_eq!(status, 200);
    assert!(body.contains("Visible on the wall"));
    assert!(
        !body.contains("Sign out") && !body.contains("name=\"csrf\""),
        "read-only"
    );
    for bad in ["/wall", "/wall?token=guess", "/wall/queue?token=guess"] {
        let (status, body) = get(format!("{}{bad}", app.base)).await;
        assert_eq!(status, 404, "{bad}");
        assert!(!body.contains("Visible on the wall"));
    }
    let r = http
        .get(format!("{}/dashboard/stream?token={WALL_TOKEN}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    drop(r);
    app.stop().await;
}

/// Reads the stream until a `change` event names `id`.
async fn stream_sees(
    mut body: impl futures::Stream<Item = reqwest::Result<actix_web::web::Bytes>> + Unpin,
    id: i64,
) -> bool {
    let mut seen = String::new();
    let wanted = format!("\"ids\":[{id}]");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, body.next()).await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if seen.contains("event: change") && seen.contains(&wanted) {
            return true;
        }
    }
    false
}

async fn open_stream(
    app: &Served,
    cookie: &str,
) -> impl futures::Stream<Item = reqwest::Result<actix_web::web::Bytes>> + Unpin {
    let r = Served::browser_like()
        .get(format!("{}/dashboard/stream", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let mut body = Box::pin(r.bytes_stream());
    // The hello comes first: the subscription is in place.
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: hello"));
    body
}

async fn the_stream_carries_each_commit(url: String) {
    let app = serve_dashboard(&url, tuesday_morning()).await;
    let cookie = app.sign_in().await;
    let body = open_stream(&app, &cookie).await;
    let id = event(&app, "live", "jane@acme.com", "Live one").await;
    assert!(stream_sees(body, id).await, "the change reaches the stream");
    app.stop().await;
}

crate::both_backends!(async the_stream_carries_each_commit);

#[tokio::test]
async fn a_commit_in_one_process_reaches_streams_of_another_on_postgres() {
    let db = crate::common::FreshPostgres::new();
    let a = serve_dashboard(&db.url, tuesday_morning()).await;
    let b = serve_dashboard(&db.url, tuesday_morning()).await;
    let cookie = b.sign_in().await;
    let body = open_stream(&b, &cookie).await;
    // Sessions live in the database: one made on B is good on A too.
    assert_eq!(a.page(&cookie, "/").await.0, 200);
    let id = event(&a, "cross", "jane@acme.com", "Written through A").await;
    assert!(
        stream_sees(body, id).await,
        "B's stream hears of A's commit"
    );
    a.stop().await;
    b.stop().await;
}

/// Issue 11 on the dashboard: the queue names clients above the urgent-share
/// limit and `/urgency` lists the requests with the rule that classified
/// each; a warning held for a contact's digest says so on the timeline, and
/// the pause budget is shown.
#[tokio::test]
async fn urgency_and_held_notifications_on_the_dashboard() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    let cookie = app.sign_in().await;
    // Globex: two urgent requests of three, far above the shipped 15%.
    event(&app, "g1", "ops@globex.example", "Checkout is down").await;
    event(&app, "g2", "ops@globex.example", "Search is down").await;
    event(
        &app,
        "g3",
        "ops@globex.example",
        "Question about the invoice",
    )
    .await;
    event(&app, "a1", "jane@acme.com", "Question about the footer").await;
    let (_, page) = app.page(&cookie, "/").await;
    assert!(
        page.contains("Above the urgent-share limit: Globex Logistics (67%)"),
        "{page}"
    );
    assert!(!page.contains("ACME Corp ("), "ACME is under the limit");
    let (status, page) = app.page(&cookie, "/urgency").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Globex Logistics: 67% urgent (2 of 3)"),
        "{page}"
    );
    assert!(
        page.contains("Checkout is down") && page.contains("urgent: keyword `down` in subject"),
        "{page}"
    );

    // A bug at 10:00: its 75% warning (11:30) to `delivery` waits for the
    // 14:00 digest.
    let bug = event(&app, "b1", "eve@initech.example", "Export is broken").await;
    app.clock.advance(chrono::Duration::minutes(91));
    let path = format!("/conversations/{bug}");
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            app.page(&cookie, &path)
                .await
                .1
                .contains("deferred until Tue 14:00")
        })
        .await,
        "the timeline says the warning waits for the digest: {}",
        app.page(&cookie, &path).await.1
    );
    let (_, page) = app.page(&cookie, &path).await;
    assert!(
        page.contains("at most 5d, then the resolution timer resumes by itself"),
        "{page}"
    );
    app.stop().await;
}
