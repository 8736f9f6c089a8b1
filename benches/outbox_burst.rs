//! A burst of dues, run by `./scripts/bench outbox`; by hand:
//!
//!   cargo bench --bench outbox_burst -- burst N DATABASE_URL
//!
//! Seeds N ticket conversations whose escalation step (50% of a one-minute
//! first response, notifying a webhook-only contact) falls due at the same
//! instant D a few seconds ahead, serves the real app in-process (scheduler
//! and outbox worker included) and times, at a local HTTP/1.1 receiver
//! (keep-alive, answers at once), every delivery against D. The whole path is
//! the production one: scheduler step → record_fired_step + enqueue → wake →
//! outbox claim → POST → mark sent.
//!
//! Baseline in the same run: the receiver's own rate, the same N bodies
//! POSTed straight to it by one reqwest client with at most 16 in flight
//! (the worker's default bound per receiver), then one at a time.
//!
//! DATABASE_URL is `sqlite://FILE` (created) or a PostgreSQL database that
//! exists and is empty. Every result is one line starting with `RESULT `.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use futures::StreamExt;
use keepword::app::Application;
use keepword::clock::Clock;
use keepword::config::{Secret, Settings};
use keepword::service::{LoadedContract, record_version};
use keepword::store::{AnyConnection, Store, StoreError, from_db, schema};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the baseline client allows in flight: the worker's default bound.
const BASELINE_CONCURRENCY: usize = 16;

fn contract(hook: &str) -> String {
    format!(
        r#"
[contract]
name = "Outbox burst bench"
effective = "2026-01-01"
timezone = "Europe/Berlin"

[calendars.always]
always = true

[channels.tickets]
kind = "ticket"
address = "https://tickets.example.com"

[[request_types]]
id = "urgent"
name = "Urgent"
definition = "Production is down."
default = true
channels = ["tickets"]
calendar = "always"
first_response = "1m"
resolution = "1h"
escalation = [{{ at = "50%", notify = ["oncall"] }}]

[contacts]
oncall = {{ webhook = "{hook}" }}

[[clients]]
id = "acme"
name = "ACME Corp"
domains = ["acme.com"]
"#
    )
}

// ------------------------------------------------------------------ receiver

#[derive(Default)]
struct Received {
    /// Completion instant and body of every request, in arrival order.
    log: Mutex<Vec<(SystemTime, Vec<u8>)>>,
    connections: AtomicUsize,
}

impl Received {
    fn reset(&self) {
        self.log.lock().unwrap().clear();
        self.connections.store(0, Ordering::SeqCst);
    }
    fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}

/// An HTTP/1.1 receiver with keep-alive on its own single-threaded runtime
/// (its own OS thread), so the service's load does not starve it of a worker.
fn start_receiver() -> (String, Arc<Received>) {
    let state = Arc::new(Received::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let s = state.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let _ = sock.set_nodelay(true);
                s.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(sock, s.clone()));
            }
        });
    });
    let addr = rx.recv().unwrap();
    (format!("http://{addr}/hook"), state)
}

async fn serve(mut sock: TcpStream, state: Arc<Received>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        // One request: head, then Content-Length bytes of body.
        let (head_end, length) = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (i + 4, length);
            }
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        while buf.len() < head_end + length {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        state.log.lock().unwrap().push((SystemTime::now(), body));
        let ok = sock
            .write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok",
            )
            .await;
        if ok.is_err() {
            return;
        }
    }
}

// ------------------------------------------------------------------ seeding

/// N conversations opened at D - 30 s with their inbound message, next check
/// at D: the 50% step of each falls due at D, as the engine would have left
/// them. Timers are derived by the scheduler's refresh.
fn seed(store: &Store, n: usize, version: &str, due: DateTime<Utc>) {
    let d = due.timestamp();
    store
        .with(|c| {
            let sql = match c {
                AnyConnection::Postgresql(_) => format!(
                    "INSERT INTO clients (id, name, created_at) VALUES ('acme', 'ACME Corp', now() at time zone 'utc') ON CONFLICT DO NOTHING;
                     INSERT INTO conversations (channel, thread_key, client_id, subject, request_type, classification,
                         contract_version, status, opened_at, updated_at, health, next_check_at)
                       SELECT 'tickets', 'burst-' || i, 'acme', 'Checkout is down ' || i, 'urgent', 'urgent: default',
                              '{version}', 'open', o, o, 'on_track', o + interval '30 seconds'
                       FROM (SELECT i, to_timestamp({d} - 30) at time zone 'utc' AS o FROM generate_series(1, {n}) i) s;
                     INSERT INTO messages (conversation_id, channel, external_id, direction, sender, recipients, subject,
                         refs, sent_at, received_at, awaiting_client)
                       SELECT id, 'tickets', 'burst-msg-' || id, 'inbound', 'jane@acme.com', '', subject,
                              '', opened_at, opened_at, false
                       FROM conversations WHERE thread_key LIKE 'burst-%';
                     ANALYZE;"
                ),
                AnyConnection::Sqlite(_) => format!(
                    "INSERT OR IGNORE INTO clients (id, name, created_at) VALUES ('acme', 'ACME Corp', datetime('now'));
                     WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
                     INSERT INTO conversations (channel, thread_key, client_id, subject, request_type, classification,
                         contract_version, status, opened_at, updated_at, health, next_check_at)
                       SELECT 'tickets', 'burst-' || i, 'acme', 'Checkout is down ' || i, 'urgent', 'urgent: default',
                              '{version}', 'open', datetime({d} - 30, 'unixepoch'), datetime({d} - 30, 'unixepoch'),
                              'on_track', datetime({d}, 'unixepoch') FROM s;
                     INSERT INTO messages (conversation_id, channel, external_id, direction, sender, recipients, subject,
                         refs, sent_at, received_at, awaiting_client)
                       SELECT id, 'tickets', 'burst-msg-' || id, 'inbound', 'jane@acme.com', '', subject,
                              '', opened_at, opened_at, 0
                       FROM conversations WHERE thread_key LIKE 'burst-%';
                     ANALYZE;"
                ),
            };
            match c {
                AnyConnection::Postgresql(pg) => pg.batch_execute(&sql),
                AnyConnection::Sqlite(lite) => lite.batch_execute(&sql),
            }
            .map_err(StoreError::Query)
        })
        .expect("seeding");
}

// ------------------------------------------------------------------ measuring

fn ms_after(t: SystemTime, origin: SystemTime) -> f64 {
    match t.duration_since(origin) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -(e.duration().as_secs_f64() * 1000.0),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "n/a".into())
}

/// POSTs `bodies` to `url` with at most `concurrency` in flight; wall time.
async fn replay(url: &str, bodies: &[Vec<u8>], concurrency: usize) -> Duration {
    let http = reqwest::Client::new();
    // Warm the pool the way a running worker would have it.
    for _ in 0..concurrency.min(4) {
        http.post(url).body("{}").send().await.unwrap();
    }
    let started = Instant::now();
    futures::stream::iter(bodies.iter().cloned())
        .map(|b| {
            let http = http.clone();
            async move {
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(b)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    started.elapsed()
}

async fn burst(n: usize, url: &str) {
    let backend = if url.starts_with("postgres") {
        "postgres"
    } else {
        "sqlite"
    };
    let (hook, received) = start_receiver();
    let dir = tempfile::tempdir().unwrap();
    let contract_path: PathBuf = dir.path().join("contract.toml");
    std::fs::write(&contract_path, contract(&hook)).unwrap();

    let store = Store::open(url).expect("database");
    let loaded = LoadedContract::load(&contract_path).unwrap();
    record_version(&store, &loaded, Utc::now()).expect("contract version");
    // D: a whole second far enough ahead to start the app before it.
    let due = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() + 4, 0).unwrap();
    let seeding = Instant::now();
    seed(&store, n, &loaded.version, due);
    let seed_s = seeding.elapsed().as_secs_f64();

    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: url.to_string(),
        contract: contract_path.clone(),
        api_tokens: vec![Secret::new("bench-token")],
        ..Default::default()
    };
    let app = Application::build_with_clock(settings, Clock::system())
        .await
        .expect("app builds");
    let token = app.shutdown();
    let task = tokio::spawn(app.run_until_stopped(None));
    let d = SystemTime::from(due);
    assert!(
        SystemTime::now() < d,
        "the app took too long to start: the due instant has passed"
    );

    let deadline = Instant::now() + Duration::from_secs(300);
    while received.count() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let load = loadavg();
    // All deliveries are in; wait for the worker to record them too.
    let sent_deadline = Instant::now() + Duration::from_secs(60);
    let (sent, last_sent, last_created) = loop {
        let (sent, last_sent, last_created) = store
            .with(|c| {
                use schema::outbox::dsl::*;
                let sent: i64 = outbox.filter(sent_at.is_not_null()).count().get_result(c)?;
                let last: Option<chrono::NaiveDateTime> =
                    outbox.select(diesel::dsl::max(sent_at)).first(c)?;
                let created: Option<chrono::NaiveDateTime> =
                    outbox.select(diesel::dsl::max(created_at)).first(c)?;
                Ok::<_, StoreError>((sent, last, created))
            })
            .unwrap();
        if sent as usize >= n || Instant::now() > sent_deadline {
            break (sent, last_sent, last_created);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Anything late (a duplicate after a lease) would arrive now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel();
    let _ = task.await;

    let log: Vec<(SystemTime, Vec<u8>)> = received.log.lock().unwrap().clone();
    let mut ids = std::collections::HashSet::new();
    for (_, body) in &log {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        ids.insert(v["conversation_id"].as_i64().unwrap());
    }
    let mut times: Vec<f64> = log.iter().map(|(t, _)| ms_after(*t, d)).collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |t: Option<chrono::NaiveDateTime>| {
        t.map(|t| format!("{:.0}", ms_after(SystemTime::from(from_db(t)), d)))
            .unwrap_or_else(|| "n/a".into())
    };
    println!(
        "RESULT {backend} burst n={n}: delivered={} distinct={} first={:.0} ms p50={:.0} ms p90={:.0} ms last={:.0} ms after the due; last enqueue (scheduler step start)={} ms, last sent_at={} ms, rows sent={sent}; receiver connections={} seed_s={seed_s:.1} loadavg={load}",
        log.len(),
        ids.len(),
        times.first().copied().unwrap_or(f64::NAN),
        percentile(&times, 50.0),
        percentile(&times, 90.0),
        times.last().copied().unwrap_or(f64::NAN),
        at(last_created),
        at(last_sent),
        received.connections.load(Ordering::SeqCst),
    );

    // Baseline: the receiver's own rate for the same bodies.
    let bodies: Vec<Vec<u8>> = log.into_iter().map(|(_, b)| b).collect();
    for concurrency in [BASELINE_CONCURRENCY, 1] {
        received.reset();
        let wall = replay(&hook, &bodies, concurrency).await;
        println!(
            "RESULT {backend} baseline: {} POSTs straight to the receiver, concurrency {concurrency}: {:.0} ms ({:.0} per s) connections={} loadavg={}",
            bodies.len(),
            wall.as_secs_f64() * 1000.0,
            bodies.len() as f64 / wall.as_secs_f64(),
            received.connections.load(Ordering::SeqCst),
            loadavg()
        );
    }
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
        ["burst", n, url] => rt.block_on(burst(n.parse().unwrap(), url)),
        [] => println!(
            "usage: see the module documentation (cargo bench --bench outbox_burst -- burst N URL)"
        ),
        other => panic!("unknown arguments {other:?}"),
    }
}
