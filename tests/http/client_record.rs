//! The client's record (README, "The client's record") over HTTP with a
//! moved clock: the link `keepword client link` prints opens the page; the
//! page counts as the compliance report counts; every kind of broken
//! promise is said; nothing internal or of another client is on it; the
//! old link dies with a new one; `?by=author` matches a hand count; the
//! monthly report and the weekly digest reach the SMTP server once across
//! a restart and a second process.

use crate::common;
use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use keepword::clock::Clock;
use keepword::config::{Secret, Settings, Tls};
use serde_json::{Value, json};

use common::app::{PASSWORD, Served, TOKEN, serve};
use support::{SmtpServer, eventually};

/// Monday 30 November 2026, 09:00 in Berlin.
fn monday_nine() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
}

fn shipped_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"))
        .unwrap()
}

/// The shipped contract with ACME's monthly report and the team's weekly
/// digest switched on.
pub fn reporting_contract(dir: &Path) -> PathBuf {
    let text = shipped_text()
        .replacen(
            "urgent_share_limit = \"15%\"",
            "urgent_share_limit = \"15%\"\nweekly_digest = { to = [\"lead\"], day = \"mon\", at = \"09:00\" }",
            1,
        )
        .replacen(
            "domains = [\"acme.com\"]",
            "domains = [\"acme.com\"]\nreport_to = [\"cto@acme.com\"]",
            1,
        );
    let path = dir.join("contract.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn settings(url: &str, contract: PathBuf, smtp_port: u16) -> Settings {
    let mut s = Settings {
        database_url: url.to_string(),
        contract,
        api_tokens: vec![Secret::new(TOKEN)],
        dashboard_password: Secret::new(PASSWORD),
        ..Default::default()
    };
    s.smtp.port = smtp_port;
    s.smtp.tls = Tls::None;
    s
}

/// Posts a ticket event at `at`, with the clock moved there first.
async fn event(app: &Served, id: &str, thread: &str, at: DateTime<Utc>, fields: Value) {
    app.service.core.clock().set(at);
    let mut body = json!({"id": id, "channel": "tickets", "thread": thread, "at": at.to_rfc3339()});
    for (k, v) in fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, answer) = app.post("/api/v1/events", &body).await;
    assert!(status == 201 || status == 200, "{status} {answer}");
}

fn opened(subject: &str, from: &str) -> Value {
    json!({"direction": "inbound", "from": from, "subject": subject, "body": "Please help."})
}

fn reply(from: &str) -> Value {
    json!({"direction": "outbound", "from": from, "body": "Done."})
}

const LINDA: &str = "linda.marsh@example.com";
const TOM: &str = "tom.quill@example.com";

/// The week of history every test here reads: ACME's requests with each
/// kind of broken promise, another client's, internal notes; replies by
/// two team members. Times are Berlin business hours on Mon 30 Nov.
async fn history(app: &Served) {
    let at = |h: i64, m: i64| monday_nine() + TimeDelta::hours(h) + TimeDelta::minutes(m);
    // ACME question, answered in 1 h 12 m by Linda (kept, 2 h override),
    // and again later.
    event(
        app,
        "a1",
        "T-1",
        at(0, 0),
        opened("Please change the footer", "jane@acme.com"),
    )
    .await;
    event(app, "a2", "T-1", at(1, 12), reply(LINDA)).await;
    event(app, "a3", "T-1", at(6, 0), reply(LINDA)).await;
    // ACME question at 09:30 answered at 13:00 by Tom: first response
    // broken, kept 1 h 30 m late.
    event(
        app,
        "b1",
        "T-2",
        at(0, 30),
        opened("Invoice address", "jane@acme.com"),
    )
    .await;
    event(app, "b2", "T-2", at(4, 0), reply(TOM)).await;
    // ACME bug at 10:00 answered at 11:00 by Linda; the client writes
    // again at 14:00 and nobody answers: next response, updates and the
    // resolution run late.
    event(
        app,
        "c1",
        "T-3",
        at(1, 0),
        opened("Login broken", "jane@acme.com"),
    )
    .await;
    event(app, "c2", "T-3", at(2, 0), reply(LINDA)).await;
    event(
        app,
        "c3",
        "T-3",
        at(2, 10),
        json!({"direction": "internal", "from": LINDA, "body": "INTERNAL-NOTE-7731: escalate to the head"}),
    )
    .await;
    event(
        app,
        "c4",
        "T-3",
        at(5, 0),
        json!({"direction": "inbound", "from": "jane@acme.com", "body": "Still broken"}),
    )
    .await;
    // ACME bug at 11:00 answered in 20 m by Linda.
    event(
        app,
        "d1",
        "T-4",
        at(2, 0),
        opened("Export broken", "jane@acme.com"),
    )
    .await;
    event(app, "d2", "T-4", at(2, 20), reply(LINDA)).await;
    // Globex: answered by Tom in 1 h 30 m and 30 m.
    event(
        app,
        "g1",
        "G-1",
        at(2, 0),
        opened("Globex warehouse migration plan", "ops@globex.example"),
    )
    .await;
    event(app, "g2", "G-1", at(3, 30), reply(TOM)).await;
    event(
        app,
        "h1",
        "G-2",
        at(5, 0),
        opened("Globex pallet labels", "ops@globex.example"),
    )
    .await;
    event(app, "h2", "G-2", at(5, 30), reply(TOM)).await;
}

/// `keepword client link ID`, as a user runs it.
fn client_link(url: &str, contract: &Path, id: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keepword"))
        .args(["client", "link", id])
        .env_remove("KEEPWORD_CONFIG")
        .env("KEEPWORD_DATABASE_URL", url)
        .env("KEEPWORD_CONTRACT", contract)
        .env("KEEPWORD_PUBLIC_URL", "https://status.example.com")
        .output()
        .unwrap()
}

fn link_of(out: &std::process::Output) -> String {
    // The status too: a process ended by a signal writes nothing.
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let link = String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim()
        .to_string();
    assert!(
        link.starts_with("https://status.example.com/clients/"),
        "{link}"
    );
    link
}

async fn get(app: &Served, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let r = app
        .http
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

use crate::status_page::{decode, text_of as text};

/// `(type, timer)` → (met, missed + breached) of one client in the CSV.
fn csv_figures(csv: &str, client: &str) -> BTreeMap<(String, String), (usize, usize)> {
    let mut out = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f[1] != client {
            continue;
        }
        let n = |i: usize| f[i].parse::<usize>().unwrap();
        out.insert((f[0].to_string(), f[3].to_string()), (n(5), n(6) + n(7)));
    }
    out
}

async fn the_page_keeps_the_record_and_nothing_internal(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let contract = reporting_contract(dir.path());
    let clock = Clock::manual(monday_nine() - TimeDelta::hours(1));
    let app = serve(settings(&url, contract.clone(), 1), clock.clone()).await;
    history(&app).await;
    // Friday 4 December, 12:00 in Berlin: every late promise is late.
    clock.set(Utc.with_ymd_and_hms(2026, 12, 4, 11, 0, 0).unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let link = link_of(&client_link(&url, &contract, "acme"));
    let path = link.replace("https://status.example.com", "");
    let (status, headers, html) = get(&app, &path).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(headers["x-robots-tag"], "noindex, nofollow");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-store")
    );
    assert!(html.contains("<meta name=\"robots\" content=\"noindex, nofollow\">"));
    assert!(!html.contains("<script"), "no script");
    let page = text(&html);
    assert!(page.contains("ACME Corp"), "{page}");

    // Every kind of broken promise, said plainly.
    for sentence in [
        "first response on Invoice address (Questions and change requests) was due Mon 30 Nov 2026, 11:30 CET; kept Mon 30 Nov 2026, 13:00 CET, 1 h 30 m late",
        "next response on Login broken (Bugs in delivered work) was due Tue 1 Dec 2026, 10:00 CET; not kept yet, 26 h late so far",
        "resolution on Login broken (Bugs in delivered work) was due Thu 3 Dec 2026, 10:00 CET; not kept yet",
        "updates on Login broken (Bugs in delivered work) was due",
        "resolution on Export broken (Bugs in delivered work) was due Thu 3 Dec 2026, 11:00 CET; not kept yet",
    ] {
        assert!(page.contains(sentence), "missing {sentence:?} in {page}");
    }
    // The open requests, in the status page's sentences, linked under the
    // client's own address.
    assert!(page.contains("Open now (4)"), "{page}");
    assert!(page.contains("You wrote again on Mon 30 Nov, 14:00 CET. We were to answer by Tue 1 Dec, 10:00 CET; we are late, and we are on it."), "{page}");
    let request_link = format!("{path}/requests/");
    let decoded = decode(&html);
    assert!(decoded.contains(&request_link), "{decoded}");
    let start = decoded.find(&request_link).unwrap();
    let end = start + decoded[start..].find('"').unwrap();
    let (status, _, request) = get(&app, &decoded[start..end]).await;
    assert_eq!(status, 200);
    assert!(
        text(&request).contains("Our promise"),
        "the status page: {request}"
    );
    // A request of another client is not reachable under ACME's link.
    let globex_id = {
        let (_, list) = app.get("/api/v1/conversations?client=globex").await;
        list["conversations"][0]["id"]
            .as_i64()
            .expect("globex conversation")
    };
    assert_eq!(
        get(&app, &format!("{path}/requests/{globex_id}")).await.0,
        404
    );
    // The picture and its words.
    assert!(html.contains("<svg class=\"record-chart\""), "{html}");
    assert!(
        page.contains("Bugs in delivered work: over 13 weeks"),
        "{page}"
    );
    // The agreement, with ACME's override; the contract versions.
    assert!(page.contains("We reply within 2 business hours"), "{page}");
    assert!(
        page.contains("Bugs now come with a daily progress update"),
        "the decision: {page}"
    );

    // Nothing internal, nothing of another client.
    let lower = html.to_lowercase();
    for secret in [
        "linda",
        "tom.quill",
        "marsh",
        "quill",
        "internal-note",
        "escalate",
        "oncall",
        "lead@example.com",
        "head@example.com",
        "delivery@example.com",
        "jane@acme.com",
        "globex",
        "warehouse",
        "pallet",
        "initech",
    ] {
        assert!(!lower.contains(secret), "{secret} on the client page");
    }

    // The same figures as the compliance report for the same period.
    let cookie = app.sign_in().await;
    let today = clock.now().date_naive();
    let from = today + TimeDelta::days(1) - TimeDelta::days(90);
    let to = today + TimeDelta::days(1);
    let (status, csv) = app
        .page(&cookie, &format!("/compliance.csv?from={from}&to={to}"))
        .await;
    assert_eq!(status, 200);
    let expected = csv_figures(&csv, "acme");
    assert!(!expected.is_empty(), "{csv}");
    let record = app
        .service
        .reads
        .client_record("acme", from, to, clock.now())
        .unwrap();
    let mut shown = BTreeMap::new();
    for t in &record.types {
        for k in &t.kinds {
            let timer = if k.promise == "updates" {
                "periodic update".to_string()
            } else {
                k.promise.clone()
            };
            shown.insert((t.id.clone(), timer), (k.kept, k.broken));
        }
    }
    assert_eq!(shown, expected, "the page and /compliance.csv disagree");
    let bug = record.types.iter().find(|t| t.id == "bug").unwrap();
    for k in &bug.kinds {
        assert!(
            page.contains(&format!("{} {} {}", k.promise, k.kept, k.broken)),
            "row {:?} in {page}",
            k
        );
    }

    // The team's view, signed in, linked from the queue's client filter.
    let (status, queue) = app.page(&cookie, "/?client=acme").await;
    assert_eq!(status, 200);
    assert!(decode(&queue).contains("href=\"/record/acme\""), "{queue}");
    let (status, team) = app.page(&cookie, "/record/acme").await;
    assert_eq!(status, 200);
    assert!(text(&team).contains("As ACME Corp sees it"));
    let (status, _) = app.page("", "/record/acme").await;
    assert_eq!(status, 303, "signed out: to the sign-in");

    // A new link revokes the old one; unknown and malformed tokens are a
    // plain 404 with the same headers.
    let new = link_of(&client_link(&url, &contract, "acme"));
    let (status, headers, body) = get(&app, &path).await;
    assert_eq!(status, 404, "the old link is revoked");
    assert_eq!(headers["x-robots-tag"], "noindex, nofollow");
    assert!(!body.contains("ACME"));
    assert_eq!(
        get(&app, &new.replace("https://status.example.com", ""))
            .await
            .0,
        200
    );
    for bad in [
        "/clients/0000000000000000000000000000000000000000",
        "/clients/xyz",
        "/clients/",
        "/clients/a/b/c/d",
    ] {
        let (status, headers, _) = get(&app, bad).await;
        assert_eq!(status, 404, "{bad}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{bad}");
    }
    let out = client_link(&url, &contract, "acne");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("client `acne`") && err.contains("acme"),
        "{err}"
    );

    // Who answered: replies, first responses, median, by hand.
    let (status, csv) = app
        .page(
            &cookie,
            &format!("/compliance.csv?from={from}&to={to}&by=author"),
        )
        .await;
    assert_eq!(status, 200);
    let rows: BTreeMap<&str, &str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').unwrap())
        .collect();
    // Linda: T-1 twice, T-3, T-4 (the internal note is no reply); first
    // responses 72, 60 and 20 minutes: median 60. Tom: T-2, G-1, G-2;
    // 210, 90 and 30 minutes: median 90.
    assert_eq!(rows.get(LINDA), Some(&"4,3,3600"), "{csv}");
    assert_eq!(rows.get(TOM), Some(&"3,3,5400"), "{csv}");
    assert_eq!(rows.len(), 2, "{csv}");
    let (status, html) = app
        .page(
            &cookie,
            &format!("/compliance?from={from}&to={to}&by=author"),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        text(&html).contains(&format!("{TOM} 3 3 1 h 30 m")),
        "{html}"
    );
    app.stop().await;
}

crate::both_backends!(async the_page_keeps_the_record_and_nothing_internal);

/// The list items of the page's "Promises we broke", as text.
fn broken_items(html: &str) -> Vec<String> {
    let start = html.find("id=\"broken\"").expect("the broken promises");
    let end = start + html[start..].find("id=\"promises\"").unwrap();
    html[start..end]
        .split("<li>")
        .skip(1)
        .map(|li| text(&li[..li.find("</li>").unwrap()]))
        .collect()
}

/// The href of the link whose text is `words`.
fn href_of(html: &str, words: &str) -> Option<String> {
    let html = decode(html);
    let end = html.find(&format!(">{words}</a>"))?;
    let start = html[..end].rfind("href=\"")? + "href=\"".len();
    let len = html[start..].find('"')?;
    Some(html[start..start + len].to_string())
}

/// More broken promises than a page lists: the page shows the 50 most
/// recent with the count, and "Older" leads to the rest; across the pages
/// every broken promise is listed exactly once, the newest due first.
async fn the_broken_promises_are_paged(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let contract = reporting_contract(dir.path());
    let clock = Clock::manual(monday_nine() - TimeDelta::hours(1));
    let app = serve(settings(&url, contract.clone(), 1), clock.clone()).await;
    // 60 ACME questions nobody answers, one a minute from Monday 09:00.
    for i in 0..60 {
        let at = monday_nine() + TimeDelta::minutes(i);
        event(
            &app,
            &format!("q{i}"),
            &format!("Q-{i}"),
            at,
            opened(&format!("Question number {i}"), "jane@acme.com"),
        )
        .await;
    }
    // Friday: every first response overdue, once the scheduler (running
    // beside this step) has looked at every conversation and nothing more
    // changes.
    clock.set(Utc.with_ymd_and_hms(2026, 12, 4, 11, 0, 0).unwrap());
    let (from, to) = keepword::service::record_period(90, clock.now());
    let read = || {
        app.service.deadlines.due_work(clock.now()).unwrap();
        app.service
            .reads
            .client_record("acme", from, to, clock.now())
            .unwrap()
    };
    let mut before = usize::MAX;
    assert!(
        eventually(Duration::from_secs(10), || {
            let r = read();
            let first = r
                .types
                .iter()
                .flat_map(|t| &t.kinds)
                .filter(|k| k.promise == "first response")
                .map(|k| k.broken)
                .sum::<usize>();
            let settled = first == 60 && r.broken == before;
            before = r.broken;
            settled
        })
        .await,
        "every first response overdue"
    );
    let record = read();
    assert!(record.broken > 50, "{}", record.broken);

    let link = link_of(&client_link(&url, &contract, "acme"));
    let path = link.replace("https://status.example.com", "");
    let (status, _, first) = get(&app, &path).await;
    assert_eq!(status, 200);
    let page = text(&first);
    assert!(
        page.contains(&format!(
            "{} in this period, the most recent first; 1–50 shown",
            record.broken
        )),
        "{page}"
    );
    let mut items = broken_items(&first);
    assert_eq!(items.len(), 50);
    assert!(
        items[0].contains("Question number 59") && items[49].contains("Question number 10"),
        "newest due first: {items:?}"
    );
    assert!(href_of(&first, "More recent").is_none());
    let older = href_of(&first, "Older").expect("a link to the older ones");
    assert_eq!(older, format!("{path}?days=90&broken=2"));
    let (status, _, second) = get(&app, &older).await;
    assert_eq!(status, 200);
    let more = broken_items(&second);
    assert_eq!(more.len(), record.broken - 50);
    assert!(href_of(&second, "Older").is_none(), "the last page");
    assert_eq!(
        href_of(&second, "More recent"),
        Some(format!("{path}?days=90&broken=1"))
    );
    items.extend(more);
    let mut once = items.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), items.len(), "each listed once");
    for i in 0..60 {
        assert!(
            items
                .iter()
                .any(|x| x.contains(&format!("on Question number {i} "))),
            "question {i} listed"
        );
    }
    // A page past the last says so and links back; the period is kept.
    let (status, _, past) = get(&app, &format!("{path}?days=90&broken=9")).await;
    assert_eq!(status, 200);
    assert!(broken_items(&past).is_empty());
    assert!(text(&past).contains("No more in this period"), "{past}");
    let (status, _, huge) = get(&app, &format!("{path}?broken={}", usize::MAX)).await;
    assert_eq!(status, 200, "{huge}");
    assert!(text(&huge).contains("No more in this period"));
    let (_, _, year) = get(&app, &format!("{path}?days=365&broken=2")).await;
    assert_eq!(broken_items(&year).len(), record.broken - 50);
    // The team's view pages alike.
    let cookie = app.sign_in().await;
    let (status, team) = app.page(&cookie, "/record/acme?days=90&broken=2").await;
    assert_eq!(status, 200);
    assert_eq!(broken_items(&team).len(), record.broken - 50);
    assert_eq!(
        href_of(&team, "More recent"),
        Some("?days=90&broken=1".to_string())
    );
    app.stop().await;
}

crate::both_backends!(async the_broken_promises_are_paged);

/// The reports and digests received, by subject (escalation alerts of the
/// same history are not counted).
fn subjects(smtp: &SmtpServer) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for m in reports(smtp) {
        let subject = m.header("Subject").unwrap_or_default();
        *out.entry(subject).or_insert(0) += 1;
    }
    out
}

fn reports(smtp: &SmtpServer) -> Vec<support::Received> {
    smtp.received()
        .into_iter()
        .filter(|m| {
            m.header("Subject").is_some_and(|s| {
                s.starts_with("ACME Corp: our record") || s.starts_with("Our week ")
            })
        })
        .collect()
}

/// Waits until every report and digest in the outbox is recorded as sent:
/// the test moves the clock by days, and a row whose send is not recorded
/// yet would see its lease run out at once and go again (a real clock
/// does not jump a week in a millisecond).
async fn settled(app: &Served) {
    let store = app.service.core.store().clone();
    let done = eventually(Duration::from_secs(10), || {
        store
            .with(keepword::store::outbox::all)
            .unwrap()
            .iter()
            .filter(|r| {
                r.dedupe_key.starts_with("client-report:")
                    || r.dedupe_key.starts_with("weekly-digest:")
            })
            .all(|r| r.sent_at.is_some())
    })
    .await;
    assert!(done, "reports not recorded as sent");
}

async fn reports_go_out_once_across_a_restart_and_a_second_process(url: String) {
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let contract = reporting_contract(dir.path());
    // Monday 30 November, 08:00 in Berlin: November's first business day
    // (Mon 2 Nov) is past, so October's report goes at start; this week's
    // digest (09:00) is not due yet.
    let clock = Clock::manual(monday_nine() - TimeDelta::hours(1));
    let first = serve(settings(&url, contract.clone(), smtp.port), clock.clone()).await;
    assert!(
        eventually(Duration::from_secs(10), || reports(&smtp).len() == 1).await,
        "October's report at start: {:?}",
        subjects(&smtp)
    );
    settled(&first).await;
    // Monday 09:00: the week's digest.
    clock.set(monday_nine());
    assert!(
        eventually(Duration::from_secs(10), || reports(&smtp).len() == 2).await,
        "{:?}",
        subjects(&smtp)
    );
    settled(&first).await;
    history(&first).await;
    // A restart, and a second process beside it.
    first.stop().await;
    let again = serve(settings(&url, contract.clone(), smtp.port), clock.clone()).await;
    let second = serve(settings(&url, contract.clone(), smtp.port), clock.clone()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reports(&smtp).len(), 2, "{:?}", subjects(&smtp));
    settled(&again).await;
    // Tuesday 1 December, 09:00 in Berlin: December's first business day.
    clock.set(Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 1).unwrap());
    assert!(
        eventually(Duration::from_secs(10), || reports(&smtp).len() == 3).await,
        "{:?}",
        subjects(&smtp)
    );
    settled(&again).await;
    // Monday 7 December, 09:00: the next digest.
    clock.set(Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 1).unwrap());
    assert!(
        eventually(Duration::from_secs(10), || reports(&smtp).len() == 4).await,
        "{:?}",
        subjects(&smtp)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = subjects(&smtp);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.values().all(|n| *n == 1), "each once: {got:?}");
    // Globex and Initech have no `report_to`: no report.
    assert!(
        smtp.received().iter().all(|m| m
            .header("Subject")
            .is_none_or(|s| !s.contains("our record") || s.starts_with("ACME Corp"))),
        "{:?}",
        smtp.received()
            .iter()
            .map(|m| m.header("Subject"))
            .collect::<Vec<_>>()
    );
    let mail = reports(&smtp);
    let november = mail
        .iter()
        .find(|m| {
            m.header("Subject")
                .is_some_and(|s| s.contains("November 2026"))
        })
        .expect("November's report");
    assert_eq!(november.rcpt_tos, ["cto@acme.com"]);
    let body = november.data.replace("=\r\n", "").replace("=3D", "=");
    assert!(
        body.contains("Invoice address"),
        "the broken promise: {body}"
    );
    assert!(!body.contains("Globex"), "another client's: {body}");
    assert!(
        !body.to_lowercase().contains("linda"),
        "a team member: {body}"
    );
    // The link it carries opens the page.
    let start = body.find("/clients/").expect("the link");
    let token: String = body[start + 9..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(token.len(), 40, "{body}");
    assert_eq!(get(&again, &format!("/clients/{token}")).await.0, 200);
    let digest = mail
        .iter()
        .find(|m| m.header("Subject").is_some_and(|s| s.contains("2026-W50")))
        .expect("the digest of week 50");
    assert_eq!(digest.rcpt_tos, ["lead@example.com"]);
    let body = digest.data.replace("=\r\n", "").replace("=3D", "=");
    for expected in [
        "ACME Corp",
        "Globex Logistics",
        "Login broken",
        "/conversations/",
    ] {
        assert!(body.contains(expected), "{expected} in the digest: {body}");
    }
    second.stop().await;
    again.stop().await;
}

crate::both_backends!(async reports_go_out_once_across_a_restart_and_a_second_process);

/// The built binary with the system clock: December's report (its first
/// business day is past) and today's digest (at 00:00) go out at start; a
/// `kill -9`, then two processes on the same PostgreSQL: still once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_go_out_once_across_kill_nine_and_two_processes() {
    use chrono::Datelike;
    use common::binary::{serve_binary, sigterm, wait_exit};
    let db = common::FreshPostgres::new();
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let now = keepword::clock::Clock::system()
        .now()
        .with_timezone(&chrono_tz::Europe::Berlin);
    let today = now.weekday();
    let last_month = (now.date_naive().with_day(1).unwrap() - TimeDelta::days(1)).format("%B %Y");
    let day =
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][today.num_days_from_monday() as usize];
    let contract = reporting_contract(dir.path());
    let text = std::fs::read_to_string(&contract).unwrap().replace(
        "day = \"mon\", at = \"09:00\"",
        &format!("day = \"{day}\", at = \"00:00\""),
    );
    std::fs::write(&contract, text).unwrap();
    let start = || {
        serve_binary(
            dir.path(),
            &[
                ("KEEPWORD_BIND", "127.0.0.1:0"),
                ("KEEPWORD_DATABASE_URL", db.url.as_str()),
                ("KEEPWORD_CONTRACT", contract.to_str().unwrap()),
                ("KEEPWORD_API_TOKENS", TOKEN),
                ("KEEPWORD_SMTP__PORT", &smtp.port.to_string()),
            ],
        )
    };
    let mut first = start();
    assert!(
        eventually(Duration::from_secs(15), || reports(&smtp).len() == 2).await,
        "the report and the digest at start: {:?}",
        subjects(&smtp)
    );
    first.child.kill().unwrap(); // SIGKILL: no shutdown path runs
    first.child.wait().unwrap();
    let mut again = start();
    let mut second = start();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = subjects(&smtp);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.values().all(|n| *n == 1), "each once: {got:?}");
    let report = format!("ACME Corp: our record for {last_month}");
    assert!(got.keys().any(|s| s.contains(&report)), "{got:?}");
    assert!(got.keys().any(|s| s.starts_with("Our week ")), "{got:?}");
    for p in [&mut again, &mut second] {
        sigterm(&p.child);
        assert!(wait_exit(&mut p.child, Duration::from_secs(20)).success());
    }
}
