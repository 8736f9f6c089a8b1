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
    Backend, PASSWORD, Served, WALL_TOKEN, cookie_of, dashboard_settings, hidden, serve,
    serve_dashboard, spawn_dashboard,
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
        "/urgency".into(),
        "/connections".into(),
        "/record/acme".into(),
        "/compliance?by=author".into(),
        "/compliance/conversations?outcome=all".into(),
        format!("/conversations/{id}/messages/1"),
        "/oauth/callback?code=x&state=y".into(),
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
    for path in [
        format!("/conversations/{id}/solve"),
        "/logout".into(),
        "/connections/sign-in".into(),
    ] {
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

/// Issue 25 item 2: `next` is read as a browser reads it (tabs and newlines
/// dropped, `\` as `/`) and kept only on this origin; control characters
/// are a 400 page before any session is made.
#[tokio::test]
async fn next_after_sign_in_stays_on_this_site_as_a_browser_reads_it() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    let http = Served::browser_like();
    let form = app.login_form().await;
    let sign_in = |next: &'static str| app.post_login(&form, PASSWORD, next);
    let base = reqwest::Url::parse(&app.base).unwrap();
    for next in [
        "/\\evil.example",
        "\\/evil.example",
        "/.//evil.example",
        "/./\\evil.example",
        "https:evil.example",
        "http:/\\evil.example",
        " //evil.example",
        "/compliance?from=2026-11-01#top",
    ] {
        let r = sign_in(next).await;
        assert_eq!(r.status().as_u16(), 303, "{next:?}");
        let to = r.headers()["location"].to_str().unwrap().to_string();
        let resolved = base.join(&to).unwrap();
        assert_eq!(resolved.origin(), base.origin(), "{next:?} → {to}");
        assert!(
            to.starts_with('/') && !to.starts_with("//"),
            "{next:?} → {to}"
        );
    }
    let r = sign_in("/compliance?from=2026-11-01#top").await;
    assert_eq!(r.headers()["location"], "/compliance?from=2026-11-01#top");
    for next in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\nSet-Cookie: a=b",
        "/\u{7f}x",
    ] {
        let r = sign_in(next).await;
        assert_eq!(r.status().as_u16(), 400, "{next:?}");
        assert!(cookie_of(&r, "keepword_session").is_none(), "{next:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains("control characters"), "{body}");
    }
    // The link itself, signed out and signed in.
    let session = app.sign_in().await;
    for cookie in ["", session.as_str()] {
        let r = http
            .get(format!("{}/login?next=/%09/evil.example", app.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "cookie `{cookie}`");
        assert!(r.headers().get("location").is_none());
    }
    let r = http
        .get(format!("{}/login?next=/\\evil.example", app.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/");
    app.stop().await;
}

/// Issue 25 item 1: an app whose password is empty (settings built without
/// the config's checks) signs nobody in, an empty form field included.
#[tokio::test]
async fn an_empty_password_signs_nobody_in() {
    let db = crate::common::app::FreshDatabase::new(Backend::Sqlite);
    let settings = Settings {
        dashboard_password: Secret::new(""),
        ..dashboard_settings(db.url())
    };
    let app = serve(settings, tuesday_morning()).await;
    let form = app.login_form().await;
    let r = app.post_login(&form, "", "/").await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(cookie_of(&r, "keepword_session").is_none());
    app.stop().await;
}

#[tokio::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let db = crate::common::app::FreshDatabase::new(Backend::Sqlite);
    let settings = Settings {
        public_url: "https://support.example.com".parse().unwrap(),
        ..dashboard_settings(db.url())
    };
    let app = serve(settings, tuesday_morning()).await;
    let form = app.login_form().await;
    let r = app.post_login(&form, PASSWORD, "/").await;
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

/// Issue 25 items 8 and 9: dates outside the calendar's years and pages
/// beyond any queue are a 400 naming the parameter (they panicked, or gave
/// a 503 on PostgreSQL); a page past the end is empty.
async fn far_dates_and_pages_are_refused_naming_the_parameter(url: String) {
    let app = serve_dashboard(&url, tuesday_morning()).await;
    let cookie = app.sign_in().await;
    event(&app, "a", "jane@acme.com", "Question about the invoice").await;
    for (path, named) in [
        ("/compliance?to=-262143-01-01", "`to` must be a date"),
        ("/compliance.csv?to=-262143-01-01", "`to` must be a date"),
        (
            "/compliance/conversations?to=-262143-01-01",
            "`to` must be a date",
        ),
        ("/compliance?from=-262143-01-01", "`from` must be a date"),
        ("/compliance?to=%2B262142-12-31", "`to` must be a date"),
        ("/compliance?to=10000-01-01", "`to` must be a date"),
        (
            "/compliance.csv?from=9999-12-01&to=9999-12-31",
            "`to` must be a date",
        ),
        ("/compliance?from=1899-12-31", "`from` must be a date"),
    ] {
        let (status, body) = app.page(&cookie, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(named), "{path}: {body}");
    }
    for path in [
        "/compliance?from=2199-01-01&to=2199-12-30",
        "/compliance.csv?from=1900-01-02&to=1900-02-01",
    ] {
        assert_eq!(app.page(&cookie, path).await.0, 200, "{path}");
    }
    let (status, list) = app
        .page(
            &cookie,
            "/compliance/conversations?from=2026-11-01&to=2026-12-02",
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        list.contains("Question about the invoice</a> · acme · open"),
        "{list}"
    );
    for path in [
        "/?page=9223372036854775807".to_string(),
        "/?page=1000001".into(),
        "/?page=0".into(),
        "/dashboard/queue?page=9223372036854775807".into(),
        format!("/wall?token={WALL_TOKEN}&page=9223372036854775807"),
        format!("/wall/queue?token={WALL_TOKEN}&page=4611686018427387904"),
    ] {
        let (status, body) = app.page(&cookie, &path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body.contains("page must be between 1 and"),
            "{path}: {body}"
        );
    }
    let (status, body) = app.page(&cookie, "/?page=1000000").await;
    assert_eq!(status, 200);
    assert!(ids_in(&body).is_empty(), "past the end: an empty page");
    let (_, body) = app.page(&cookie, "/?page=1").await;
    assert_eq!(ids_in(&body).len(), 1);
    app.stop().await;
}

crate::both_backends!(async far_dates_and_pages_are_refused_naming_the_parameter);

/// Issue 25 items 7 and 11: `HEAD` answers as `GET` without the body on
/// every page (it was a 404, `/healthz` included; the live stream ends at
/// once); raw rejected mail is never cached.
#[tokio::test]
async fn head_answers_as_get_without_a_body_and_raw_mail_is_not_cached() {
    let app = spawn_dashboard(Backend::Sqlite, tuesday_morning()).await;
    let cookie = app.sign_in().await;
    let raw = b"From: someone@acme.com\r\n\r\nraw client mail".to_vec();
    let now = app.clock.now();
    let stored = raw.clone();
    let id = app
        .service
        .core
        .store()
        .with(move |c| {
            keepword::store::reject_input(c, "email", "parse", "unreadable", &stored, now)?;
            Ok(keepword::store::rejected_inputs(c, 10)?[0].id)
        })
        .unwrap();
    let r = Served::browser_like()
        .get(format!("{}/rejected/{id}/raw", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.bytes().await.unwrap().to_vec(), raw);

    let http = Served::browser_like();
    for path in [
        "/healthz".to_string(),
        "/readyz".into(),
        "/metrics".into(),
        "/contract".into(),
        "/contract.md".into(),
        "/api/v1/openapi.json".into(),
        "/static/dashboard.css".into(),
        "/status/no-such-token".into(),
        "/".into(),
        "/compliance".into(),
        format!("/rejected/{id}/raw"),
        format!("/wall?token={WALL_TOKEN}"),
        "/dashboard/stream".into(),
    ] {
        let url = format!("{}{path}", app.base);
        let get = http
            .get(&url)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        let head = tokio::time::timeout(Duration::from_secs(5), async {
            let r = http
                .head(&url)
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            let (status, headers) = (r.status(), r.headers().clone());
            (status, headers, r.bytes().await.unwrap())
        })
        .await
        .unwrap_or_else(|_| panic!("HEAD {path} did not end"));
        assert_eq!(head.0, get.status(), "{path}");
        assert_eq!(
            head.1.get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert!(head.2.is_empty(), "{path}");
    }
    // Signed out, a page still redirects to the sign-in.
    let r = http.head(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    app.stop().await;
}

/// The timeline's links to the whole text of its messages.
fn whole_text_links(html: &str, id: i64) -> Vec<String> {
    let href = format!("href=\"/conversations/{id}/messages/");
    html.match_indices(&href)
        .map(|(i, _)| {
            let rest = &html[i + "href=\"".len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

/// Issue 25 item 4: the timeline bounds what it renders — a long body is
/// cut with a link to its whole text, a long thread is paged — so five
/// bodies of 1 MiB make a page of a few kilobytes, not 5 MiB.
async fn the_timeline_cuts_long_bodies_and_pages_long_threads(url: String) {
    let app = serve_dashboard(&url, tuesday_morning()).await;
    let cookie = app.sign_in().await;
    // Multi-byte text: the cut counts characters.
    let long = "ä".repeat((1 << 20) / 2 - 64);
    let mut id = 0;
    for i in 0..5 {
        let (status, answer) = app
            .post(
                "/api/v1/events",
                &json!({
                    "id": format!("big-{i}"), "channel": "tickets", "thread": "t-big",
                    "from": "jane@acme.com", "direction": "inbound",
                    "subject": "Logs attached", "body": format!("{i}:{long}"),
                }),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        id = answer["conversation_id"].as_i64().unwrap();
    }
    let (status, page) = app.page(&cookie, &format!("/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert!(page.len() < 200_000, "a page of {} bytes", page.len());
    let links = whole_text_links(&page, id);
    assert_eq!(links.len(), 5, "each long body links to its whole text");
    let (status, whole) = app.page(&cookie, &links[4]).await;
    assert_eq!(status, 200);
    assert_eq!(whole, format!("4:{long}"));
    let r = Served::browser_like()
        .get(format!("{}{}", app.base, links[4]))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "no-store");
    // Signed out: no text.
    let r = Served::browser_like()
        .get(format!("{}{}", app.base, links[4]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    // Another conversation's message is not reachable through this one.
    let other = event(&app, "other", "eve@initech.example", "Other").await;
    let (status, _) = app
        .page(
            &cookie,
            &links[4].replace(&format!("/{id}/"), &format!("/{other}/")),
        )
        .await;
    assert_eq!(status, 404);

    // A long thread: 150 short replies more, read a page at a time.
    for i in 0..150 {
        let (status, answer) = app
            .post(
                "/api/v1/events",
                &json!({
                    "id": format!("more-{i}"), "channel": "tickets", "thread": "t-big",
                    "from": "jane@acme.com", "direction": "inbound",
                    "subject": "Logs attached", "body": format!("reply number {i}"),
                }),
            )
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    let (_, first) = app.page(&cookie, &format!("/conversations/{id}")).await;
    let entries = |html: &str| html.matches("<li class=\"item ").count();
    assert!(entries(&first) <= 100, "{}", entries(&first));
    assert!(first.contains("reply number 0") && !first.contains("reply number 149"));
    assert!(first.contains("page 1 of 2"), "the pager");
    let (_, second) = app
        .page(&cookie, &format!("/conversations/{id}?page=2"))
        .await;
    assert!(second.contains("reply number 149"));
    assert!(entries(&first) + entries(&second) >= 155);
    let (status, past) = app
        .page(&cookie, &format!("/conversations/{id}?page=3"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(entries(&past), 0, "past the end: an empty page");
    let (status, _) = app
        .page(
            &cookie,
            &format!("/conversations/{id}?page=9223372036854775807"),
        )
        .await;
    assert_eq!(status, 400);
    app.stop().await;
}

crate::both_backends!(async the_timeline_cuts_long_bodies_and_pages_long_threads);

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

/// Whether the stream ends (the server closes it) within `wait`.
async fn ends_within(
    mut body: impl futures::Stream<Item = reqwest::Result<actix_web::web::Bytes>> + Unpin,
    wait: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(None) | Ok(Some(Err(_))) => return true,
            Err(_) => return false,
        }
    }
}

/// Issue 25 item 5: a signed-in user's live stream ends with the session:
/// at once on signing out, within a tick once it expired.
async fn the_stream_ends_when_the_session_ends(url: String) {
    let clock = tuesday_morning();
    let app = serve_dashboard(&url, clock.clone()).await;
    let cookie = app.sign_in().await;
    let body = open_stream(&app, &cookie).await;
    let (_, page) = app.page(&cookie, "/").await;
    let csrf = hidden(&page, "csrf").unwrap();
    let r = Served::browser_like()
        .post(format!("{}/logout", app.base))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        ends_within(body, Duration::from_secs(3)).await,
        "signed out: the stream ends"
    );

    let cookie = app.sign_in().await;
    let body = open_stream(&app, &cookie).await;
    clock.advance(chrono::Duration::hours(13));
    assert!(
        ends_within(
            body,
            keepword::web::dashboard::STREAM_TICK * 2 + Duration::from_secs(2)
        )
        .await,
        "expired: the stream ends"
    );
    app.stop().await;
}

crate::both_backends!(async the_stream_ends_when_the_session_ends);

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
