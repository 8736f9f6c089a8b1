//! Dashboard benchmarks, run by `./scripts/bench dashboard`; by hand:
//!
//!   cargo bench --bench dashboard -- queue N DATABASE_URL
//!       seeds N open conversations by SQL (three clients, three request
//!       types, dues spread over a week, 10% breached, 10% at risk), serves
//!       the real app in-process on that database, signs in, and times
//!       sequential GETs of the queue (first page, a filtered page, a deep
//!       page) against GET /healthz in the same run.
//!   cargo bench --bench dashboard -- fanout STREAMS ROUNDS DATABASE_URL
//!       opens STREAMS live streams (/dashboard/stream), then ROUNDS times
//!       posts one event and times, from the POST's answer (the commit), until
//!       the last stream has the change. Baseline: the same with one stream.
//!
//!   cargo bench --bench dashboard -- client N DATABASE_URL
//!       seeds N conversations of one client (ACME) opened over the last 80
//!       days — 10% open, first responses kept or broken, resolutions — with
//!       their timers, by SQL; issues the client's link and times sequential
//!       GETs of its page (`/clients/{token}`, 90 and 365 days) against GET
//!       /healthz and a status page of the same database in the same run.
//!
//!   cargo bench --bench dashboard -- history N EMPTY_URL FULL_URL
//!       a year of a busy agency, bulk-loaded by SQL into FULL_URL: N
//!       conversations opened over the last 365 days on three channels
//!       (email, tickets, slack), heavy-tailed threads (1 to 8 messages, one
//!       in a hundred 30 to 60; 5 on average) with bodies, raw mail on one
//!       email message in five and a 32 KB attachment on one in 500,
//!       first-response, next-response and resolution timers met, missed,
//!       paused and running, a backlog of recent unsolved conversations,
//!       repeated subjects, plus one 1,000-message thread with a status
//!       link; then VACUUM ANALYZE. EMPTY_URL gets only that thread. Then,
//!       on each in turn, the real app in-process (the compliance
//!       summaries' rebuild by its job waited for and timed) and
//!       sequential GETs:
//!       /healthz (baseline), the queue (first page, filtered, deep), the
//!       long thread's timeline, compliance for a month and for the year,
//!       /metrics, the status page, ACME's client page (90 and 365 days),
//!       the API list; 300 new-thread events POSTed one at a time; 2,000
//!       real-shape mails through the email intake.
//!   cargo bench --bench dashboard -- history-seed N URL
//!       the load alone (a big database made once, measured many times).
//!   cargo bench --bench dashboard -- history-ingest LABEL URL
//!       the events and email ingest of `history` alone on a database
//!       seeded before, with the WAL PostgreSQL wrote during it.
//!   cargo bench --bench dashboard -- history-compare EMPTY_URL FULL_URL
//!       the measurements of `history` on FULL_URL, seeded before, and on
//!       EMPTY_URL, seeded now with the long thread only.
//! DATABASE_URL is `sqlite://FILE` (created) or a PostgreSQL database that
//! exists and is empty. Every result is one line starting with `RESULT `.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use futures::StreamExt;
use keepword::app::Application;
use keepword::clock::Clock;
use keepword::config::{Secret, Settings};
use keepword::service::{LoadedContract, record_version};
use keepword::store::{AnyConnection, Store};
use tokio_util::sync::CancellationToken;

// Shared with benches/imap_ingest.rs, which uses the rest of it.
#[allow(dead_code)]
#[path = "mailshape/mod.rs"]
mod mailshape;

const PASSWORD: &str = "bench password";
const TOKEN: &str = "bench-token";

fn contract_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "RESULT {label}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        ms.len(),
        percentile(&ms, 50.0),
        percentile(&ms, 90.0),
        percentile(&ms, 99.0),
        ms.last().unwrap()
    );
}

/// N open conversations straight into the tables, as the engine would have
/// left them (next due, its timer, health).
fn seed(url: &str, n: usize) {
    let store = Store::open(url).expect("database");
    let loaded = LoadedContract::load(&contract_path()).unwrap();
    // Conversations name their contract version: it is recorded first, as
    // `keepword serve` does at start.
    record_version(&store, &loaded, chrono::Utc::now()).expect("contract version");
    let version = loaded.version.clone();
    let started = Instant::now();
    store
        .with(|c| {
            let sql = match c {
                AnyConnection::Postgresql(_) => format!(
                    "INSERT INTO clients (id, name, created_at) VALUES ('acme','ACME Corp', now()), ('globex','Globex Logistics', now()), ('initech','Initech', now()) ON CONFLICT DO NOTHING;
                     INSERT INTO conversations (channel, thread_key, client_id, subject, request_type, classification,
                         contract_version, status, opened_at, updated_at, health, next_check_at, next_due_at, next_timer)
                       SELECT 'email', 'seed-' || i, (ARRAY['acme','globex','initech'])[1 + i % 3],
                              'Question about invoice ' || i, (ARRAY['question','bug','urgent'])[1 + (i / 3) % 3],
                              'question: default', '{version}', 'open',
                              now() at time zone 'utc', now() at time zone 'utc',
                              CASE WHEN i % 10 = 0 THEN 'breached' WHEN i % 10 = 1 THEN 'at_risk' ELSE 'on_track' END,
                              (now() at time zone 'utc') + (((i * 7919) % 604800) - 60480) * interval '1 second',
                              (now() at time zone 'utc') + (((i * 7919) % 604800) - 60480) * interval '1 second',
                              'first_response'
                       FROM generate_series(1, {n}) i;
                     ANALYZE;"
                ),
                AnyConnection::Sqlite(_) => format!(
                    "INSERT OR IGNORE INTO clients (id, name, created_at) VALUES ('acme','ACME Corp', datetime('now')), ('globex','Globex Logistics', datetime('now')), ('initech','Initech', datetime('now'));
                     WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
                     INSERT INTO conversations (channel, thread_key, client_id, subject, request_type, classification,
                         contract_version, status, opened_at, updated_at, health, next_check_at, next_due_at, next_timer)
                       SELECT 'email', 'seed-' || i,
                              CASE i % 3 WHEN 0 THEN 'acme' WHEN 1 THEN 'globex' ELSE 'initech' END,
                              'Question about invoice ' || i,
                              CASE (i / 3) % 3 WHEN 0 THEN 'question' WHEN 1 THEN 'bug' ELSE 'urgent' END,
                              'question: default', '{version}', 'open', datetime('now'), datetime('now'),
                              CASE WHEN i % 10 = 0 THEN 'breached' WHEN i % 10 = 1 THEN 'at_risk' ELSE 'on_track' END,
                              datetime('now', ((i * 7919) % 604800 - 60480) || ' seconds'),
                              datetime('now', ((i * 7919) % 604800 - 60480) || ' seconds'),
                              'first_response'
                       FROM s;
                     ANALYZE;"
                ),
            };
            batch(c, &sql)
        })
        .expect("seeding");
    println!(
        "RESULT seeded {n} open conversations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Runs several `;`-separated statements (the seeding SQL) on either backend.
fn batch(c: &mut AnyConnection, sql: &str) -> Result<(), keepword::store::StoreError> {
    match c {
        AnyConnection::Postgresql(pg) => pg.batch_execute(sql),
        AnyConnection::Sqlite(lite) => lite.batch_execute(sql),
    }
    .map_err(keepword::store::StoreError::Query)
}

async fn serve(
    url: &str,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    keepword::web::AppState,
    keepword::service::Service,
) {
    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: url.to_string(),
        contract: contract_path(),
        api_tokens: vec![Secret::new(TOKEN)],
        dashboard_password: Secret::new(PASSWORD),
        ..Default::default()
    };
    let app = Application::build_with_clock(settings, Clock::system())
        .await
        .expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    let service = app.service().clone();
    let token = app.shutdown();
    let task = tokio::spawn(app.run_until_stopped(None));
    (base, token, task, state, service)
}

async fn sign_in(http: &reqwest::Client, base: &str) -> String {
    let form = http.get(format!("{base}/login")).send().await.unwrap();
    let login = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("keepword_login="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = form.text().await.unwrap();
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).unwrap() + marker.len();
    let csrf = &html[at..at + 64];
    let r = http
        .post(format!("{base}/login"))
        .header("cookie", login)
        .form(&[("password", PASSWORD), ("csrf", csrf)])
        .send()
        .await
        .unwrap();
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("keepword_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// A client that does not follow redirects, and its session cookie.
async fn signed_in(base: &str) -> (reqwest::Client, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&http, base).await;
    (http, cookie)
}

async fn time_gets(http: &reqwest::Client, url: &str, cookie: &str, n: usize) -> Vec<f64> {
    // Slow pages (a year's compliance at 2 million) are measured a few
    // times: one warm-up for them.
    let warm = if n <= 10 { 1 } else { 20 };
    for _ in 0..warm {
        http.get(url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = http.get(url).header("cookie", cookie).send().await.unwrap();
        assert!(r.status().is_success(), "{url}: {}", r.status());
        r.bytes().await.unwrap();
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

async fn queue(n: usize, url: &str) {
    seed(url, n);
    let (base, token, task, _, _service) = serve(url).await;
    let (http, cookie) = signed_in(&base).await;
    let rounds = 200;
    summary(
        "GET /healthz (baseline)",
        time_gets(&http, &format!("{base}/healthz"), &cookie, rounds).await,
    );
    let body = http
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows = body.matches("<tr data-id=").count();
    println!("RESULT queue page rows: {rows}; page bytes: {}", body.len());
    summary(
        "GET / (first page of 50)",
        time_gets(&http, &format!("{base}/"), &cookie, rounds).await,
    );
    summary(
        "GET /?client=acme&health=breached",
        time_gets(
            &http,
            &format!("{base}/?client=acme&health=breached"),
            &cookie,
            rounds,
        )
        .await,
    );
    summary(
        "GET /?page=1000 (rows 49,951-50,000)",
        time_gets(&http, &format!("{base}/?page=1000"), &cookie, rounds).await,
    );
    summary(
        "GET /dashboard/queue (live refresh)",
        time_gets(&http, &format!("{base}/dashboard/queue"), &cookie, rounds).await,
    );
    token.cancel();
    let _ = task.await;
}

async fn fanout(streams: usize, rounds: usize, url: &str) {
    let (base, token, task, state, _service) = serve(url).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&http, &base).await;
    for (label, count) in [
        ("1 stream (baseline)", 1usize),
        (&*format!("{streams} streams"), streams),
    ] {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String, Instant)>();
        let stop = CancellationToken::new();
        for k in 0..count {
            let (http, base, cookie, tx, stop) = (
                http.clone(),
                base.clone(),
                cookie.clone(),
                tx.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let r = http
                    .get(format!("{base}/dashboard/stream"))
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap();
                let mut body = r.bytes_stream();
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        chunk = body.next() => match chunk {
                            Some(Ok(c)) => {
                                let text = String::from_utf8_lossy(&c).to_string();
                                if text.contains("event: change") {
                                    let _ = tx.send((k, text, Instant::now()));
                                }
                            }
                            _ => break,
                        }
                    }
                }
            });
        }
        let wait = Instant::now();
        while state.changes.subscribers() < count && wait.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut results = Vec::new();
        let mut posts = Vec::new();
        for round in 0..rounds {
            let id = format!("fan-{count}-{round}");
            let body = serde_json::json!({"id": id, "channel": "tickets", "thread": id, "from": "jane@acme.com",
                "direction": "inbound", "subject": "Fan-out", "body": "x"});
            let sent = Instant::now();
            let r = http
                .post(format!("{base}/api/v1/events"))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let committed = Instant::now();
            posts.push(committed.duration_since(sent).as_secs_f64() * 1000.0);
            let conv = r.json::<serde_json::Value>().await.unwrap()["conversation_id"]
                .as_i64()
                .unwrap();
            let needle = format!("{conv}");
            let mut got = std::collections::HashSet::new();
            let mut last = committed;
            while got.len() < count {
                match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                    Ok(Some((k, text, at))) if text.contains(&needle) => {
                        got.insert(k);
                        last = at;
                    }
                    Ok(Some(_)) => {}
                    _ => panic!("only {} of {count} streams had the change", got.len()),
                }
            }
            // From the POST's start: the commit lies inside the POST, and a
            // stream may hear of it before the POST's answer is read.
            results.push(last.saturating_duration_since(sent).as_secs_f64() * 1000.0);
        }
        summary(
            &format!("POST /api/v1/events round trip ({label} open)"),
            posts,
        );
        summary(
            &format!("POST sent → last of {label} has the change"),
            results,
        );
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    token.cancel();
    let _ = task.await;
}

/// N conversations of ACME over the last 80 days, with their timers.
fn seed_client(url: &str, n: usize) {
    let store = Store::open(url).expect("database");
    let loaded = LoadedContract::load(&contract_path()).unwrap();
    record_version(&store, &loaded, chrono::Utc::now()).expect("contract version");
    let version = loaded.version.clone();
    let started = Instant::now();
    store
        .with(|c| {
            let sql = match c {
                AnyConnection::Postgresql(_) => format!(
                    "INSERT INTO clients (id, name, created_at) VALUES ('acme','ACME Corp', now()) ON CONFLICT DO NOTHING;
                     INSERT INTO conversations (channel, thread_key, client_id, subject, request_type, classification,
                         contract_version, status, opened_at, updated_at, health, next_check_at, next_due_at, next_timer)
                       SELECT 'email', 'seed-' || i, 'acme', 'Question about invoice ' || i,
                              (ARRAY['question','bug','urgent'])[1 + i % 3], 'question: default', '{version}',
                              CASE WHEN i % 10 = 0 THEN 'open' ELSE 'solved' END,
                              (now() at time zone 'utc') - ((i * 7919) % 6912000) * interval '1 second',
                              now() at time zone 'utc', 'on_track', NULL,
                              CASE WHEN i % 10 = 0 THEN (now() at time zone 'utc') + (i % 86400) * interval '1 second' END,
                              CASE WHEN i % 10 = 0 THEN 'resolution' ELSE '' END
                       FROM generate_series(1, {n}) i;
                     INSERT INTO timers (conversation_id, kind, seq, status, started_at, due_at, stopped_at)
                       SELECT id, 'first_response', 0, CASE WHEN id % 7 = 0 THEN 'missed' ELSE 'met' END,
                              opened_at, opened_at + interval '2 hours',
                              opened_at + CASE WHEN id % 7 = 0 THEN interval '3 hours' ELSE interval '40 minutes' END
                       FROM conversations WHERE client_id = 'acme';
                     INSERT INTO timers (conversation_id, kind, seq, status, started_at, due_at, stopped_at)
                       SELECT id, 'resolution', 0, CASE WHEN status = 'open' THEN 'running' ELSE 'met' END,
                              opened_at, opened_at + interval '3 days',
                              CASE WHEN status = 'open' THEN NULL ELSE opened_at + interval '1 day' END
                       FROM conversations WHERE client_id = 'acme';
                     ANALYZE;"
                ),
                AnyConnection::Sqlite(_) => format!(
                    "INSERT OR IGNORE INTO clients (id, name, created_at) VALUES ('acme','ACME Corp', datetime('now'));
                     WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
                     INSERT INTO conversations (channel, thread_key, client_id, subject, request_type, classification,
                         contract_version, status, opened_at, updated_at, health, next_check_at, next_due_at, next_timer)
                       SELECT 'email', 'seed-' || i, 'acme', 'Question about invoice ' || i,
                              CASE i % 3 WHEN 0 THEN 'question' WHEN 1 THEN 'bug' ELSE 'urgent' END,
                              'question: default', '{version}',
                              CASE WHEN i % 10 = 0 THEN 'open' ELSE 'solved' END,
                              datetime('now', '-' || ((i * 7919) % 6912000) || ' seconds'),
                              datetime('now'), 'on_track', NULL,
                              CASE WHEN i % 10 = 0 THEN datetime('now', (i % 86400) || ' seconds') END,
                              CASE WHEN i % 10 = 0 THEN 'resolution' ELSE '' END
                       FROM s;
                     INSERT INTO timers (conversation_id, kind, seq, status, started_at, due_at, stopped_at)
                       SELECT id, 'first_response', 0, CASE WHEN id % 7 = 0 THEN 'missed' ELSE 'met' END,
                              opened_at, datetime(opened_at, '+2 hours'),
                              datetime(opened_at, CASE WHEN id % 7 = 0 THEN '+3 hours' ELSE '+40 minutes' END)
                       FROM conversations WHERE client_id = 'acme';
                     INSERT INTO timers (conversation_id, kind, seq, status, started_at, due_at, stopped_at)
                       SELECT id, 'resolution', 0, CASE WHEN status = 'open' THEN 'running' ELSE 'met' END,
                              opened_at, datetime(opened_at, '+3 days'),
                              CASE WHEN status = 'open' THEN NULL ELSE datetime(opened_at, '+1 day') END
                       FROM conversations WHERE client_id = 'acme';
                     ANALYZE;"
                ),
            };
            batch(c, &sql)
        })
        .expect("seeding");
    println!(
        "RESULT seeded {n} conversations of one client (with timers) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The status token of the long thread (its SHA-256 is what is stored).
const LONG_TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

/// `n` conversations of a year, and the long thread (see the module doc).
fn seed_history(url: &str, n: usize) {
    let store = Store::open(url).expect("database");
    let loaded = LoadedContract::load(&contract_path()).unwrap();
    record_version(&store, &loaded, chrono::Utc::now()).expect("contract version");
    let v = loaded.version.clone();
    let hash = keepword::service::token_hash(LONG_TOKEN);
    let started = Instant::now();
    let pg = matches!(store.backend(), keepword::store::Backend::Postgres);
    // What differs per backend: the row source, instants, and arrays.
    let (series, now, ago, pick_client, pick_type, pick_subject) = if pg {
        (
            format!("generate_series(1, {n}) i"),
            "(now() AT TIME ZONE 'utc')".to_string(),
            format!("(now() AT TIME ZONE 'utc') - (31536000.0 * i / {n}) * interval '1 second'"),
            "(ARRAY['acme','globex','initech'])[1 + i % 3]",
            "(ARRAY['question','bug','urgent'])[1 + (i / 7) % 3]",
            "(ARRAY['Invoice question','Cannot log in to the portal','Export is broken','Checkout is down','Question about the footer'])[1 + (i / 3) % 5]",
        )
    } else {
        (
            format!(
                "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s WHERE i <= {n})"
            ),
            "datetime('now')".to_string(),
            format!("datetime('now', '-' || (31536000 * i / {n}) || ' seconds')"),
            "CASE i % 3 WHEN 0 THEN 'acme' WHEN 1 THEN 'globex' ELSE 'initech' END",
            "CASE (i / 7) % 3 WHEN 0 THEN 'question' WHEN 1 THEN 'bug' ELSE 'urgent' END",
            "CASE (i / 3) % 5 WHEN 0 THEN 'Invoice question' WHEN 1 THEN 'Cannot log in to the portal' WHEN 2 THEN 'Export is broken' WHEN 3 THEN 'Checkout is down' ELSE 'Question about the footer' END",
        )
    };
    let plus = |t: &str, secs: &str| {
        if pg {
            format!("{t} + ({secs}) * interval '1 second'")
        } else {
            format!("datetime({t}, ({secs}) || ' seconds')")
        }
    };
    let insert_or_ignore = if pg { "INSERT" } else { "INSERT OR IGNORE" };
    let on_conflict = if pg { "ON CONFLICT DO NOTHING" } else { "" };
    let from_series = if pg {
        format!("FROM {series}")
    } else {
        format!("FROM {series} AS s")
    };
    // The backlog an agency has: of the last three weeks' conversations two
    // in five are unsolved (one open, one waiting on the client), and one in
    // 200 older ones was never closed.
    let recent = format!("(i * 365 < {n} * 21)");
    let status = format!(
        "CASE WHEN ({recent} AND i % 5 = 0) OR i % 200 = 0 THEN 'open' WHEN {recent} AND i % 5 = 1 THEN 'pending' ELSE 'solved' END"
    );
    // Open ones are due from a day ago (breached) to a day ahead.
    let open_due = plus(&now, "(i % 172800) * 7919 % 172800 - 86400");
    let day = plus(&ago, "86400");
    let paused_since = plus(&ago, "7200");
    let sql = format!(
        "{insert_or_ignore} INTO clients (id, name, created_at) VALUES ('acme','ACME Corp', {now}), ('globex','Globex Logistics', {now}), ('initech','Initech', {now}) {on_conflict};
         INSERT INTO conversations (channel, thread_key, client_id, subject, request_type, classification,
             contract_version, status, opened_at, updated_at, solved_at, health, next_check_at, subject_key,
             opener, last_message_at, next_due_at, next_timer, paused_since)
           SELECT channel, CASE WHEN channel = 'slack' THEN 'C0' || (i % 3) || ':' || i || '.000100' ELSE 'h-' || i END,
                  client_id, subject, request_type, 'question: default', '{v}', status, opened_at, opened_at,
                  CASE WHEN status = 'solved' THEN day END,
                  CASE WHEN status <> 'open' THEN 'on_track' WHEN due < {now} THEN 'breached'
                       WHEN i % 2 = 0 THEN 'at_risk' ELSE 'on_track' END,
                  CASE WHEN status = 'open' THEN due END, lower(subject), opener, opened_at,
                  CASE WHEN status = 'open' THEN due END,
                  CASE WHEN status = 'open' THEN 'first_response' ELSE '' END,
                  CASE WHEN status = 'pending' THEN paused END
           FROM (SELECT i, CASE WHEN (i / 5) % 10 < 7 THEN 'email' WHEN (i / 5) % 10 < 9 THEN 'tickets' ELSE 'slack' END AS channel,
                        {pick_client} AS client_id, {pick_subject} || ' #' || (i % 977) AS subject,
                        {pick_type} AS request_type, {status} AS status,
                        {ago} AS opened_at, {day} AS day, {paused_since} AS paused, {open_due} AS due,
                        'person' || (i % 5000) || '@' || {pick_client} || '.com' AS opener
                 {from_series}) g;
         INSERT INTO conversations (channel, thread_key, client_id, subject, request_type, classification,
             contract_version, status, opened_at, updated_at, health, next_check_at, subject_key, opener,
             last_message_at, next_due_at, next_timer)
           VALUES ('email', 'long-thread', 'acme', 'The long thread', 'question', 'question: default', '{v}',
                   'open', {now}, {now}, 'on_track', NULL, 'the long thread', 'long@acme.com', {now}, NULL, '');
         INSERT INTO status_links (token_hash, conversation_id, created_at)
           SELECT '{hash}', id, {now} FROM conversations WHERE thread_key = 'long-thread';
         ANALYZE;"
    );
    // Heavy-tailed threads: most conversations 1 to 8 messages, one in a
    // hundred 30 to 60, the long thread 1,000 (about 5 on average). A body
    // per message; the raw mail of one email message in five (headers and
    // text), and an attachment (32 KB of incompressible text) on one in 500.
    // Timers: a first response per conversation (met, missed one in seven,
    // running or breached while open), a next response on threads of three
    // messages or more, a resolution (met, missed one in 13, paused while
    // waiting on the client, running while open).
    let (at, j_rows) = if pg {
        (
            "c.opened_at + j * interval '20 minutes'",
            "generate_series(0, CASE WHEN c.thread_key = 'long-thread' THEN 999 WHEN c.id % 100 = 0 THEN 29 + c.id % 31 ELSE c.id % 8 END) j",
        )
    } else {
        (
            "datetime(c.opened_at, '+' || (j * 1200) || ' seconds')",
            // An indexed table of numbers: a range of it per conversation,
            // not a scan of a thousand rows each.
            "nums",
        )
    };
    let within = if pg {
        "TRUE"
    } else {
        "j <= CASE WHEN c.thread_key = 'long-thread' THEN 999 WHEN c.id % 100 = 0 THEN 29 + c.id % 31 ELSE c.id % 8 END"
    };
    let t = |col: &str, secs: i64| {
        if pg {
            format!("{col} + interval '{secs} seconds'")
        } else {
            format!("datetime({col}, '+{secs} seconds')")
        }
    };
    let details = if pg {
        "repeat(' and the details of it', 8)"
    } else {
        "replace(hex(zeroblob(8)), '00', ' and the details of it')"
    };
    let (crlf, raw_of, attachment) = if pg {
        (
            "E'\\r\\n'",
            "convert_to",
            "(SELECT string_agg(md5(m.id::text || '.' || g), '') FROM generate_series(1, 1000) g)",
        )
    } else {
        ("char(13, 10)", "", "hex(randomblob(16000))")
    };
    let raw_text = format!(
        "'From: ' || m.sender || {crlf} || 'To: support@example.com' || {crlf} || 'Subject: ' || m.subject || {crlf}
         || 'Message-ID: ' || m.message_id || {crlf} || 'MIME-Version: 1.0' || {crlf}
         || 'Content-Type: multipart/mixed; boundary=b' || {crlf} || {crlf} || '--b' || {crlf}
         || 'Content-Type: text/plain; charset=utf-8' || {crlf} || {crlf} || m.body || {crlf}
         || CASE WHEN m.id % 500 = 0 THEN '--b' || {crlf} || 'Content-Type: application/pdf' || {crlf}
              || 'Content-Transfer-Encoding: base64' || {crlf} || {crlf} || {attachment} || {crlf} ELSE '' END
         || '--b--' || {crlf}"
    );
    let raw = if pg {
        format!("{raw_of}({raw_text}, 'UTF8')")
    } else {
        format!("CAST({raw_text} AS BLOB)")
    };
    let falsy = if pg { "false" } else { "0" };
    let nums = if pg {
        ""
    } else {
        "CREATE TEMP TABLE nums (j INTEGER PRIMARY KEY);
         INSERT INTO nums WITH RECURSIVE s(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM s WHERE j < 999) SELECT j FROM s;"
    };
    let (fr_due, fr_early, fr_late) = (
        t("opened_at", 4 * 3600),
        t("opened_at", 3600),
        t("opened_at", 6 * 3600),
    );
    let (nr_start, nr_due, nr_early, nr_late) = (
        t("opened_at", 2400),
        t("opened_at", 2400 + 4 * 3600),
        t("opened_at", 2400 + 3600),
        t("opened_at", 2400 + 6 * 3600),
    );
    let (res_due, res_met, res_late) = (
        t("opened_at", 3 * 86400),
        t("opened_at", 86400),
        t("opened_at", 4 * 86400),
    );
    let msg_sql = format!(
        "{nums}
         INSERT INTO messages (conversation_id, channel, external_id, direction, sender, recipients, subject,
             message_id, refs, sent_at, received_at, awaiting_client)
           SELECT c.id, c.channel, c.thread_key || '-' || j, CASE WHEN j % 2 = 0 THEN 'inbound' ELSE 'outbound' END,
                  CASE WHEN j % 2 = 0 THEN c.opener ELSE 'lead@example.com' END, '', c.subject,
                  '<' || c.thread_key || '.' || j || '@acme.com>', '', {at}, {at}, {falsy}
           FROM conversations c CROSS JOIN {j_rows} WHERE {within};
         INSERT INTO message_bodies (message_id, body, raw)
           SELECT m.id, m.body, CASE WHEN m.channel = 'email' AND m.id % 5 = 0 THEN {raw} END
           FROM (SELECT id, channel, sender, subject, message_id, 'Hello, about ' || subject || {details} AS body
                 FROM messages) m;
         INSERT INTO timers (conversation_id, kind, seq, status, started_at, due_at, stopped_at)
           SELECT id, 'first_response', 0,
                  CASE WHEN status = 'open' THEN CASE WHEN health = 'breached' THEN 'breached' ELSE 'running' END
                       WHEN id % 7 = 0 THEN 'missed' ELSE 'met' END,
                  opened_at, CASE WHEN status = 'open' THEN next_due_at ELSE {fr_due} END,
                  CASE WHEN status <> 'open' THEN CASE WHEN id % 7 = 0 THEN {fr_late} ELSE {fr_early} END END
           FROM conversations;
         INSERT INTO timers (conversation_id, kind, seq, status, started_at, due_at, stopped_at)
           SELECT id, 'next_response', 0, CASE WHEN id % 11 = 0 THEN 'missed' ELSE 'met' END,
                  {nr_start}, {nr_due}, CASE WHEN id % 11 = 0 THEN {nr_late} ELSE {nr_early} END
           FROM conversations WHERE status = 'solved' AND id % 8 >= 2;
         INSERT INTO timers (conversation_id, kind, seq, status, started_at, due_at, stopped_at)
           SELECT id, 'resolution', 0,
                  CASE WHEN status = 'open' THEN 'running' WHEN status = 'pending' THEN 'paused'
                       WHEN id % 13 = 0 THEN 'missed' ELSE 'met' END,
                  opened_at, CASE WHEN status = 'pending' THEN NULL ELSE {res_due} END,
                  CASE WHEN status = 'solved' THEN CASE WHEN id % 13 = 0 THEN {res_late} ELSE {res_met} END END
           FROM conversations;"
    );
    store
        .with(|c| {
            for sql in [&sql, &msg_sql] {
                batch(c, sql)?;
            }
            // What autovacuum does after a load: the statistics, and (on
            // PostgreSQL) the visibility map that index-only scans need.
            batch(c, if pg { "VACUUM ANALYZE" } else { "ANALYZE" })
        })
        .expect("seeding the history");
    println!(
        "RESULT history seeded n={n} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A new link to ACME's page (`/clients/{token}`).
fn acme_link(service: &keepword::service::Service, base: &str) -> String {
    let contract = service.core.contract().current().contract.clone();
    keepword::service::new_client_link(
        service.core.store(),
        &contract,
        base,
        "acme",
        chrono::Utc::now(),
    )
    .expect("a client link")
}

async fn client(n: usize, url: &str) {
    seed_client(url, n);
    let (base, token, task, _state, service) = serve(url).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let link = acme_link(&service, &base);
    // A status page of the same database, for a second baseline.
    let (status, answer) = {
        let r = http
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(TOKEN)
            .json(
                &serde_json::json!({"id": "b1", "channel": "tickets", "thread": "bench-1",
                "direction": "inbound", "from": "jane@acme.com", "subject": "Bench", "body": "x"}),
            )
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<serde_json::Value>().await.unwrap())
    };
    assert!(status.is_success(), "{answer}");
    let status_page = answer["status_url"].as_str().unwrap().to_string();
    let status_path = &status_page[status_page.find("/status/").unwrap()..];
    let rounds = 100;
    summary(
        "GET /healthz (baseline)",
        time_gets(&http, &format!("{base}/healthz"), "", rounds).await,
    );
    summary(
        "GET /status/{token} (baseline: one request's page)",
        time_gets(&http, &format!("{base}{status_path}"), "", rounds).await,
    );
    let body = http.get(&link).send().await.unwrap().text().await.unwrap();
    println!(
        "RESULT client page bytes: {}; broken promises listed: {}",
        body.len(),
        body.matches("was due").count()
    );
    summary(
        &format!("GET /clients/{{token}} (90 days, {n} conversations)"),
        time_gets(&http, &link, "", rounds).await,
    );
    summary(
        &format!("GET /clients/{{token}}?days=365 ({n} conversations)"),
        time_gets(&http, &format!("{link}?days=365"), "", rounds).await,
    );
    token.cancel();
    let _ = task.await;
}

async fn history(n: usize, empty: &str, full: &str) {
    seed_history(empty, 0);
    seed_history(full, n);
    for (label, url) in [("empty", empty), ("history", full)] {
        measure_history(label, url).await;
    }
}

/// The reading paths and the events API of a database seeded by
/// [`seed_history`], each timed (see the module doc).
async fn measure_history(label: &str, url: &str) {
    {
        let (base, token, task, _state, service) = serve(url).await;
        // The seeding marked every day of the compliance summaries stale
        // (the timers' triggers); the served app's job rebuilds them
        // (README, "A year of history"). Timed, and waited for, so that
        // the report below reads summaries.
        let started = Instant::now();
        let stale = |s: &keepword::service::Service| s.deadlines.tally_stale_days().unwrap();
        let days = stale(&service);
        while stale(&service) > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "RESULT {label} compliance summaries: {days} stale days rebuilt by the job in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let (http, cookie) = signed_in(&base).await;
        let long = service
            .core
            .store()
            .with(|c| {
                use diesel::prelude::*;
                use keepword::store::schema::conversations::dsl as k;
                Ok(k::conversations
                    .filter(k::thread_key.eq("long-thread"))
                    .select(k::id)
                    .first::<i64>(c)?)
            })
            .unwrap();
        let today = chrono::Utc::now().date_naive();
        let month = format!(
            "from={}&to={}",
            today - chrono::Days::new(30),
            today + chrono::Days::new(1)
        );
        let year = format!(
            "from={}&to={}",
            today - chrono::Days::new(365),
            today + chrono::Days::new(1)
        );
        let rounds = 50;
        for (name, path, r) in [
            ("GET /healthz (baseline)", "/healthz".to_string(), rounds),
            ("GET / (queue, first page)", "/".to_string(), rounds),
            (
                "GET /?client=acme&health=breached",
                "/?client=acme&health=breached".to_string(),
                rounds,
            ),
            (
                "GET /?page=200 (deep page)",
                "/?page=200".to_string(),
                rounds,
            ),
            (
                "GET /conversations/LONG (1,000 messages)",
                format!("/conversations/{long}"),
                rounds,
            ),
            (
                "GET /compliance (a month)",
                format!("/compliance?{month}"),
                10,
            ),
            (
                "GET /compliance (the year)",
                format!("/compliance?{year}"),
                5,
            ),
            ("GET /metrics", "/metrics".to_string(), rounds),
            ("GET /status/TOKEN", format!("/status/{LONG_TOKEN}"), rounds),
        ] {
            summary(
                &format!("{label} {name}"),
                time_gets(&http, &format!("{base}{path}"), &cookie, r).await,
            );
        }
        // The client's page (issue 28) of the busiest client: 90 days (the
        // default) and the year.
        let link = acme_link(&service, &base);
        let page = http.get(&link).send().await.unwrap().text().await.unwrap();
        println!("RESULT {label} client page, 90 days: {} bytes", page.len());
        summary(
            &format!("{label} GET /clients/{{token}} (90 days)"),
            time_gets(&http, &link, "", 20).await,
        );
        summary(
            &format!("{label} GET /clients/{{token}}?days=365"),
            time_gets(&http, &format!("{link}?days=365"), "", 5).await,
        );
        // The API with its bearer token (the cookie is ignored there).
        let mut ms = Vec::new();
        for i in 0..rounds + 20 {
            let t = Instant::now();
            let r = http
                .get(format!("{base}/api/v1/conversations"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.unwrap();
            if i >= 20 {
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        summary(&format!("{label} GET /api/v1/conversations"), ms);
        ingest(label, &base, &http, &service).await;
        token.cancel();
        let _ = task.await;
    }
}

/// Ingest on a database: 300 new-thread events POSTed one at a time, then
/// 2,000 real-shape mails through the email intake.
async fn ingest(
    label: &str,
    base: &str,
    http: &reqwest::Client,
    service: &keepword::service::Service,
) {
    let mut ms = Vec::new();
    let t0 = Instant::now();
    // New ids at each run: a database measured again takes them as new.
    let run = chrono::Utc::now().timestamp();
    for i in 0..300 {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({
                "id": format!("{label}-{run}-ev-{i}"), "channel": "tickets", "thread": format!("{label}-{run}-T-{i}"),
                "direction": "inbound", "from": "jane@acme.com", "subject": format!("New question {i}"),
                "body": "Hello.", "at": chrono::Utc::now().to_rfc3339(),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "RESULT {label} POST /api/v1/events, one at a time: {:.0} events/s",
        300.0 / t0.elapsed().as_secs_f64()
    );
    summary(&format!("{label} POST /api/v1/events"), ms);
    // Email through the product's intake (what the IMAP poller hands
    // over, without the fetch): 2,000 mails of the real shape in batches
    // of 100, threaded, stored and acknowledged.
    let now = chrono::Utc::now();
    let mail = mailshape::generate(
        2_000,
        mailshape::Shape::Real,
        now,
        chrono::Duration::minutes(50),
        &format!("{label}-{}", now.timestamp()),
    );
    let mb = keepword::service::MailboxContext {
        name: "support".into(),
        channel: "email".into(),
        team: vec!["@example.com".into()],
        own: vec!["support@example.com".into()],
    };
    let service = service.intake.clone();
    let n = mail.mails.len();
    let t0 = Instant::now();
    tokio::task::spawn_blocking(move || {
        for (k, chunk) in mail.mails.chunks(100).enumerate() {
            let batch = chunk
                .iter()
                .enumerate()
                .map(|(i, raw)| keepword::imap::FetchedMail {
                    uid: (k * 100 + i + 1) as u32,
                    raw: raw.clone(),
                })
                .collect();
            service
                .ingest_mail_batch(
                    &mb,
                    "INBOX",
                    keepword::imap::FolderKind::Inbox,
                    1,
                    batch,
                    chrono::Utc::now(),
                )
                .expect("ingest");
        }
    })
    .await
    .unwrap();
    println!(
        "RESULT {label} email intake, {n} real-shape mails in batches of 100: {:.0} mails/s",
        n as f64 / t0.elapsed().as_secs_f64()
    );
}

/// [`ingest`] alone on a database seeded before, with the WAL PostgreSQL
/// wrote meanwhile (`pg_stat_wal`: records, full-page images, bytes).
async fn measure_ingest(label: &str, url: &str) {
    let (base, token, task, _state, service) = serve(url).await;
    let http = reqwest::Client::new();
    let wal = |service: &keepword::service::Service| {
        service.core.store().with(|c| {
            use diesel::prelude::*;
            #[derive(QueryableByName, Debug)]
            struct Wal {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                records: i64,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                fpi: i64,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                bytes: i64,
            }
            let AnyConnection::Postgresql(pg) = c else {
                return Ok(None);
            };
            Ok(diesel::sql_query(
                "SELECT wal_records AS records, wal_fpi AS fpi, wal_bytes::bigint AS bytes FROM pg_stat_wal",
            )
            .get_result::<Wal>(pg)
            .ok()
            .map(|w| (w.records, w.fpi, w.bytes)))
        })
    };
    let before = wal(&service).unwrap();
    ingest(label, &base, &http, &service).await;
    if let (Some(a), Some(b)) = (before, wal(&service).unwrap()) {
        println!(
            "RESULT {label} WAL during ingest: {} records, {} full-page images, {:.1} MB",
            b.0 - a.0,
            b.1 - a.1,
            (b.2 - a.2) as f64 / 1e6
        );
    }
    token.cancel();
    let _ = task.await;
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["queue", n, url] => rt.block_on(queue(n.parse().unwrap(), url)),
        ["client", n, url] => rt.block_on(client(n.parse().unwrap(), url)),
        ["history", n, empty, full] => rt.block_on(history(n.parse().unwrap(), empty, full)),
        // A big database seeded before against an empty one made now.
        ["history-compare", empty, full] => rt.block_on(async {
            seed_history(empty, 0);
            for (label, url) in [("empty", *empty), ("history", *full)] {
                measure_history(label, url).await;
            }
        }),
        // Seeding alone (a big database made once and measured many times).
        ["history-seed", n, url] => seed_history(url, n.parse().unwrap()),
        // A database seeded before (re-measured without seeding again).
        ["history-measure", label, url] => rt.block_on(measure_history(label, url)),
        // Ingest alone, for A/B runs of the database's settings.
        ["history-ingest", label, url] => rt.block_on(measure_ingest(label, url)),
        ["fanout", s, r, url] => rt.block_on(fanout(s.parse().unwrap(), r.parse().unwrap(), url)),
        [] => println!(
            "usage: see the module documentation (cargo bench --bench dashboard -- queue N URL | fanout S R URL)"
        ),
        other => panic!("unknown arguments {other:?}"),
    }
}
