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
            match c {
                AnyConnection::Postgresql(pg) => pg.batch_execute(&sql),
                AnyConnection::Sqlite(lite) => lite.batch_execute(&sql),
            }
            .map_err(keepword::store::StoreError::Query)
        })
        .expect("seeding");
    println!(
        "RESULT seeded {n} open conversations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn serve(
    url: &str,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    keepword::web::AppState,
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
    let token = app.shutdown();
    let task = tokio::spawn(app.run_until_stopped(None));
    (base, token, task, state)
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

async fn time_gets(http: &reqwest::Client, url: &str, cookie: &str, n: usize) -> Vec<f64> {
    for _ in 0..20 {
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
    let (base, token, task, _) = serve(url).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&http, &base).await;
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
    let (base, token, task, state) = serve(url).await;
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
        while state.service.changes().subscribers() < count
            && wait.elapsed() < Duration::from_secs(30)
        {
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
            match c {
                AnyConnection::Postgresql(pg) => pg.batch_execute(&sql),
                AnyConnection::Sqlite(lite) => lite.batch_execute(&sql),
            }
            .map_err(keepword::store::StoreError::Query)
        })
        .expect("seeding");
    println!(
        "RESULT seeded {n} conversations of one client (with timers) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn client(n: usize, url: &str) {
    seed_client(url, n);
    let (base, token, task, state) = serve(url).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let contract = state.contract.current().contract.clone();
    let link = keepword::service::new_client_link(
        state.service.store(),
        &contract,
        &base,
        "acme",
        chrono::Utc::now(),
    )
    .expect("a client link");
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
        ["fanout", s, r, url] => rt.block_on(fanout(s.parse().unwrap(), r.parse().unwrap(), url)),
        [] => println!(
            "usage: see the module documentation (cargo bench --bench dashboard -- queue N URL | fanout S R URL)"
        ),
        other => panic!("unknown arguments {other:?}"),
    }
}
