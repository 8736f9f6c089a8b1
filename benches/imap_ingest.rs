//! Email benchmarks against a private Dovecot (tests/support/dovecot.rs).
//! Run by `./scripts/bench email`; by hand:
//!
//!   cargo bench --bench imap_ingest -- ingest N [SQLITE_FILE] [POSTGRES_URL] [real|flat]
//!       appends N generated messages to a fresh Dovecot INBOX (the uniform
//!       corpus below, or with `real`/`flat` the mailbox of benches/mailshape:
//!       heavy-tailed threads up to ~1,000 messages, ~12 KB, attachments;
//!       `flat` is the same mail as 1-message threads), then times
//!       (a) raw `UID FETCH a:b (UID BODY.PEEK[])` in batches of 500 with
//!       async-imap and no processing, and (b) `MailboxPoller::poll_once`
//!       with the real `EmailSink` on a fresh SQLite file and/or an (empty,
//!       already created) PostgreSQL database. Raw fetch runs before each
//!       ingest, so each ingest has a baseline measured seconds apart.
//!   cargo bench --bench imap_ingest -- mbox N FILE [real|flat]
//!       writes the same generator's N messages as an mbox (for backtest).
//!   cargo bench --bench imap_ingest -- latency N BASELINE_N KEEPWORD_BIN WORKDIR DATABASE_URL
//!       APPEND → acknowledgement at an aiosmtpd server (tests/support/
//!       smtp_server.py; KEEPWORD_PYTHON) with `keepword serve` in IDLE, one
//!       message at a time from distinct senders; baseline: an async-imap
//!       IDLE client's wake-up after the same APPEND, without keepword.
//!   cargo bench --bench imap_ingest -- latency-auth N ROUNDS TOKEN_TTL_S KEEPWORD_BIN WORKDIR
//!       the same APPEND → acknowledgement with IMAP and SMTP logging in by
//!       password and by OAuth 2.0 XOAUTH2 (npm oauth2-mock-server tokens
//!       living TOKEN_TTL_S seconds), alternating ROUNDS times, through one
//!       Dovecot and its submission service: the baseline is the password
//!       login on the same path in the same run.
//!
//! Every result is one line starting with `RESULT `. No assertions on time.

#[allow(unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

mod mailshape;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use keepword::config::{MailboxSettings, Secret, Tls};
use keepword::imap::{ImapMetrics, MailboxPoller, PollerTiming};
use keepword::metrics::Metrics;
use keepword::service::{ContractHandle, LoadedContract};
use keepword::service::{EmailSink, MailboxContext, Service};
use keepword::store::{self, Store};

use support::dovecot::Dovecot;

const USER: &str = "support@test.local";
const PASS: &str = "supportpw";
const BATCH: u32 = 500;

fn contract_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml")
}

// ------------------------------------------------------------------ generator

/// Tiny deterministic PRNG (xorshift64*), so every run sees the same corpus.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DOMAINS: [&str; 6] = [
    "acme.com",
    "globex.example",
    "initech.example",
    "umbrella.example",
    "hooli.example",
    "globex-logistics.example",
];
const TOPICS: [&str; 8] = [
    "Invoice for October",
    "Checkout page is down",
    "How do I export reports?",
    "Please change the footer",
    "Login fails for new users",
    "Question about the API limits",
    "Bug: totals are wrong in the CSV",
    "Feature request: dark mode",
];
const WORDS: [&str; 24] = [
    "the",
    "report",
    "customer",
    "we",
    "noticed",
    "that",
    "after",
    "update",
    "page",
    "shows",
    "an",
    "error",
    "when",
    "clicking",
    "export",
    "please",
    "could",
    "you",
    "check",
    "again",
    "thanks",
    "regards",
    "yesterday",
    "urgent",
];

/// `n` messages, ~3–5 KB: ~200 client senders; about half are replies
/// threading by In-Reply-To/References to the thread's last message (half of
/// those from a team member at @example.com to the client); ~5% are
/// auto-replies (Auto-Submitted / out of office). Dates run from `start`,
/// one second apart.
fn corpus(n: usize, start: DateTime<Utc>, tag: &str) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    // Per sender: (message-id, subject) of its last message.
    let mut last: Vec<Option<(String, String)>> = vec![None; 200];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let s = rng.below(200) as usize;
        let domain = DOMAINS[s % DOMAINS.len()];
        let mut from = format!("User {s} <user{s}@{domain}>");
        let id = format!("<{tag}.{i}@{domain}>");
        let date = (start + chrono::Duration::seconds(i as i64)).to_rfc2822();
        let mut extra = String::new();
        let subject;
        let auto = rng.below(20) == 0;
        if auto {
            subject = "Automatic reply: out of office".to_string();
            extra.push_str("Auto-Submitted: auto-replied\r\nX-Autoreply: yes\r\n");
        } else if rng.below(2) == 0 && last[s].is_some() {
            let (pid, psub) = last[s].clone().unwrap();
            subject = if psub.starts_with("Re: ") {
                psub
            } else {
                format!("Re: {psub}")
            };
            extra.push_str(&format!("In-Reply-To: {pid}\r\nReferences: {pid}\r\n"));
            if rng.below(2) == 0 {
                // A team member answers (Cc to the support mailbox).
                let agent = rng.below(5);
                from = format!("Agent {agent} <agent{agent}@example.com>");
                extra.push_str("Cc: support@example.com\r\n");
            }
        } else {
            subject = format!("{} #{}", TOPICS[rng.below(8) as usize], i);
        }
        let target = 3000 + rng.below(2000) as usize;
        let mut body = String::with_capacity(target + 100);
        let mut line = String::new();
        while body.len() < target {
            let w = WORDS[rng.below(WORDS.len() as u64) as usize];
            if line.len() + w.len() > 72 {
                body.push_str(&line);
                body.push_str("\r\n");
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(w);
        }
        body.push_str(&line);
        body.push_str("\r\n");
        let to = if from.contains("@example.com") {
            format!("user{s}@{domain}")
        } else {
            "Support <support@example.com>".to_string()
        };
        let raw = format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\
             Message-ID: {id}\r\nDate: {date}\r\n{extra}MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}"
        );
        if !auto {
            last[s] = Some((id, subject));
        }
        out.push(raw.into_bytes());
    }
    out
}

// ------------------------------------------------------------------ helpers

fn mailbox(port: u16) -> MailboxSettings {
    MailboxSettings {
        name: "support".into(),
        channel: "email".into(),
        host: "127.0.0.1".into(),
        port,
        tls: Tls::None,
        username: USER.into(),
        password: Secret::new(PASS),
        password_file: None,
        inbox: "INBOX".into(),
        sent: None,
        team_addresses: vec!["@example.com".into()],
        ca_file: None,
        auth: Default::default(),
        oauth: None,
        sasl: None,
    }
}

/// The support mailbox's sink into `svc`.
fn sink(svc: &Service) -> Arc<EmailSink> {
    Arc::new(EmailSink {
        service: svc.intake.clone(),
        mailbox: MailboxContext {
            name: "support".into(),
            channel: "email".into(),
            team: vec!["@example.com".into()],
            own: vec!["support@example.com".into()],
        },
    })
}

fn service(url: &str) -> Service {
    let store = Store::open(url).unwrap();
    let loaded = LoadedContract::load(contract_path().as_path()).unwrap();
    store
        .with(|c| {
            store::record_contract_version(
                c,
                &loaded.version,
                "shipped",
                &loaded.source,
                Utc::now(),
            )
        })
        .unwrap();
    Service::new(
        store,
        ContractHandle::new(loaded),
        Metrics::new(),
        "http://keepword.test",
        "example.com".into(),
    )
}

type Session = async_imap::Session<tokio::net::TcpStream>;

async fn login(port: u16) -> Session {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap().unwrap();
    client.login(USER, PASS).await.map_err(|(e, _)| e).unwrap()
}

/// Raw fetch of the whole INBOX in UID batches of 500, no processing beyond
/// counting bytes. Returns (messages, bytes, seconds).
async fn raw_fetch(port: u16) -> (usize, usize, f64) {
    let mut s = login(port).await;
    let t = Instant::now();
    let mb = s.select("INBOX").await.unwrap();
    let next = mb.uid_next.unwrap();
    let (mut n, mut bytes) = (0, 0);
    let mut first = 1;
    while first < next {
        let last = (first + BATCH - 1).min(next - 1);
        let stream = s
            .uid_fetch(format!("{first}:{last}"), "(UID BODY.PEEK[])")
            .await
            .unwrap();
        let got: Vec<_> = stream.try_collect().await.unwrap();
        for f in &got {
            if let Some(b) = f.body() {
                n += 1;
                bytes += b.len();
            }
        }
        first = last + 1;
    }
    let secs = t.elapsed().as_secs_f64();
    s.logout().await.ok();
    (n, bytes, secs)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_string()
}

fn cpu_secs() -> f64 {
    // utime + stime of this process, in clock ticks (100/s).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

// ------------------------------------------------------------------ ingest

/// The mail of a run: the old uniform corpus, or a mailbox of `shape`.
fn mails_of(n: usize, shape: Option<mailshape::Shape>, tag: &str) -> (Vec<Vec<u8>>, Option<usize>) {
    match shape {
        None => (
            corpus(n, Utc::now() - chrono::Duration::seconds(n as i64), tag),
            None,
        ),
        Some(shape) => {
            // Dated within the last 50 minutes: fresh mail, acknowledged.
            let m = mailshape::generate(n, shape, Utc::now(), chrono::Duration::minutes(50), tag);
            println!(
                "RESULT shape={} n={n} threads={} longest_thread={} with_attachment={}",
                shape.name(),
                m.threads,
                m.longest,
                m.with_attachment
            );
            (m.mails, Some(m.threads))
        }
    }
}

async fn ingest(
    n: usize,
    sqlite: Option<String>,
    pg: Option<String>,
    shape: Option<mailshape::Shape>,
) {
    let dovecot = Dovecot::start(&[(USER, PASS)]);
    let (mails, threads) = mails_of(n, shape, "bench");
    let bytes: usize = mails.iter().map(|m| m.len()).sum();
    let t = Instant::now();
    dovecot.append_many(USER, PASS, "INBOX", &mails);
    let append_s = t.elapsed().as_secs_f64();
    println!(
        "RESULT append n={n} bytes={bytes} avg_bytes={} secs={append_s:.2} msgs_per_s={:.0}",
        bytes / n,
        n as f64 / append_s
    );
    // Warm-up: the first read pulls the mail files into the page cache.
    raw_fetch(dovecot.port).await;
    // SQLite twice: raw mail as it came (how it was stored before issue
    // 30), then compressed (how it is stored now); the same mail, the same
    // Dovecot, one after the other.
    let mut targets = Vec::new();
    if let Some(f) = sqlite {
        targets.push(("sqlite", format!("sqlite://{f}.plain"), false));
        targets.push(("sqlite", format!("sqlite://{f}"), true));
    }
    if let Some(u) = pg {
        targets.push(("postgres", u, true));
    }
    for (backend, url, pack) in targets {
        store::set_raw_compression(pack);
        let mut raws = Vec::new();
        for _ in 0..3 {
            let (got, b, secs) = raw_fetch(dovecot.port).await;
            println!(
                "RESULT raw_fetch before={backend} n={got} mb={:.1} secs={secs:.3} msgs_per_s={:.0} loadavg={}",
                b as f64 / 1e6,
                got as f64 / secs,
                loadavg()
            );
            raws.push(got as f64 / secs);
        }
        raws.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let raw_median = raws[1];

        let svc = tokio::task::spawn_blocking({
            let url = url.clone();
            move || service(&url)
        })
        .await
        .unwrap();
        let for_storage = svc.clone();
        let sink = sink(&svc);
        let mut poller = MailboxPoller::new(mailbox(dovecot.port), sink, ImapMetrics::new())
            .with_timing(PollerTiming::default());
        let cpu0 = cpu_secs();
        let t = Instant::now();
        let report = poller.poll_once().await.expect("poll_once");
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu0;
        let fetched = report.fetched();
        let rate = fetched as f64 / secs;
        let counts = tokio::task::spawn_blocking(move || {
            svc.core
                .store()
                .with(|c| {
                    use diesel::prelude::*;
                    #[derive(QueryableByName)]
                    struct N {
                        #[diesel(sql_type = diesel::sql_types::BigInt)]
                        n: i64,
                    }
                    let q = |c: &mut store::AnyConnection, t: &str| -> i64 {
                        let sql = format!("SELECT COUNT(*) AS n FROM {t}");
                        match c {
                            store::AnyConnection::Sqlite(c) => {
                                diesel::sql_query(sql).get_result::<N>(c).unwrap().n
                            }
                            store::AnyConnection::Postgresql(c) => {
                                diesel::sql_query(sql).get_result::<N>(c).unwrap().n
                            }
                        }
                    };
                    let convs = q(c, "conversations");
                    if let Some(t) = threads {
                        // Issue 9: one conversation per thread, whatever the subjects.
                        assert_eq!(convs, t as i64, "conversations != threads");
                    }
                    Ok::<_, store::StoreError>(format!(
                        "messages={} conversations={convs} outbox={}",
                        q(c, "messages"),
                        q(c, "outbox")
                    ))
                })
                .unwrap()
        })
        .await
        .unwrap();
        let on_disk = tokio::task::spawn_blocking({
            let svc = for_storage;
            move || storage(&svc)
        })
        .await
        .unwrap();
        println!(
            "RESULT storage backend={backend} raw_compression={} mail_bytes={bytes} \
             mail_bytes_per_message={} {on_disk}",
            if backend == "sqlite" && !pack {
                "off"
            } else {
                "on"
            },
            bytes / n.max(1),
        );
        println!(
            "RESULT ingest backend={backend} raw_compression={} shape={} n={fetched} batches={} secs={secs:.3} msgs_per_s={rate:.0} \
             raw_median_msgs_per_s={raw_median:.0} ratio={:.2} bench_cpu_s={cpu:.1} rows: {counts} loadavg={}",
            if backend == "sqlite" && !pack {
                "off"
            } else {
                "on"
            },
            shape.map_or("uniform", |s| s.name()),
            report.folders.iter().map(|f| f.batches).sum::<usize>(),
            rate / raw_median,
            loadavg()
        );
    }
}

/// Bytes on disk after an ingest: the whole database (SQLite: its pages in
/// use after the log is checkpointed in; PostgreSQL: every table with its
/// indexes and TOAST), per message, and what `message_bodies` holds of it.
fn storage(svc: &Service) -> String {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    svc.core.store()
        .with(|c| {
            fn q(c: &mut store::AnyConnection, sql: &str) -> i64 {
                match c {
                    store::AnyConnection::Sqlite(c) => diesel::sql_query(sql).get_result::<N>(c),
                    store::AnyConnection::Postgresql(c) => diesel::sql_query(sql).get_result::<N>(c),
                }
                .map(|r| r.n)
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            let messages = q(c, "SELECT COUNT(*) AS n FROM messages");
            let (db, bodies_table) = match &mut *c {
                store::AnyConnection::Sqlite(s) => {
                    use diesel::connection::SimpleConnection;
                    s.batch_execute("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
                    (
                        q(c, "SELECT (page_count - freelist_count) * page_size AS n \
                           FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()"),
                        None,
                    )
                }
                store::AnyConnection::Postgresql(_) => (
                    q(c, "SELECT SUM(pg_total_relation_size(c.oid))::bigint AS n FROM pg_class c \
                       JOIN pg_namespace s ON s.oid = c.relnamespace \
                       WHERE c.relkind = 'r' AND s.nspname = current_schema()"),
                    Some(q(c, "SELECT pg_total_relation_size('message_bodies') AS n")),
                ),
            };
            let (body_text, raw_stored) = match &mut *c {
                store::AnyConnection::Sqlite(_) => (
                    q(c, "SELECT COALESCE(SUM(LENGTH(CAST(body AS BLOB))), 0) AS n FROM message_bodies"),
                    q(c, "SELECT COALESCE(SUM(LENGTH(raw)), 0) AS n FROM message_bodies"),
                ),
                // pg_column_size: as stored, after TOAST's compression.
                store::AnyConnection::Postgresql(_) => (
                    q(c, "SELECT COALESCE(SUM(pg_column_size(body)), 0)::bigint AS n FROM message_bodies"),
                    q(c, "SELECT COALESCE(SUM(pg_column_size(raw)), 0)::bigint AS n FROM message_bodies"),
                ),
            };
            Ok::<_, store::StoreError>(format!(
                "messages={messages} db_bytes={db} db_bytes_per_message={} body_text_bytes={body_text} \
                 raw_stored_bytes={raw_stored}{}",
                db / messages.max(1),
                bodies_table.map_or(String::new(), |b| format!(" message_bodies_bytes={b}")),
            ))
        })
        .unwrap()
}

// ------------------------------------------------------------------ retention

/// `old` messages with bodies and raw mail (3 KB + 5 KB) received 400 days
/// ago, bulk-inserted by SQL: the backlog a first retention run empties.
fn seed_old(svc: &Service, old: usize) {
    use diesel::connection::SimpleConnection;
    svc.core.store()
        .with(|c| {
            match c {
                store::AnyConnection::Postgresql(c) => c.batch_execute(&format!(
                    "INSERT INTO messages (channel, external_id, direction, sender, recipients, subject, \
                       refs, sent_at, received_at, awaiting_client) \
                     SELECT 'email', 'old-' || i, 'inbound', 'old' || (i % 500) || '@acme.com', '', \
                       'Old question ' || i, '', (now() AT TIME ZONE 'utc') - interval '400 days', \
                       (now() AT TIME ZONE 'utc') - interval '400 days', false \
                     FROM generate_series(1, {old}) i; \
                     INSERT INTO message_bodies (message_id, body, raw) \
                     SELECT id, repeat('old body text ' || id || ' ', 200), \
                       convert_to(repeat('Received: old mail line ' || id || E'\\r\\n', 200), 'UTF8') \
                     FROM messages WHERE external_id LIKE 'old-%'; ANALYZE;"
                )),
                store::AnyConnection::Sqlite(c) => c.batch_execute(&format!(
                    "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {old}) \
                     INSERT INTO messages (channel, external_id, direction, sender, recipients, subject, \
                       refs, sent_at, received_at, awaiting_client) \
                     SELECT 'email', 'old-' || i, 'inbound', 'old' || (i % 500) || '@acme.com', '', \
                       'Old question ' || i, '', datetime('now', '-400 days'), datetime('now', '-400 days'), 0 \
                     FROM s; \
                     INSERT INTO message_bodies (message_id, body, raw) \
                     SELECT id, replace(hex(zeroblob(200)), '00', 'old body text ' || id || ' '), \
                       CAST(replace(hex(zeroblob(200)), '00', 'Received: old mail line ' || id || char(13, 10)) AS BLOB) \
                     FROM messages WHERE external_id LIKE 'old-%'; ANALYZE;"
                )),
            }?;
            Ok::<_, store::StoreError>(())
        })
        .unwrap();
}

/// Ingest and a dashboard page while the retention job empties a backlog
/// of `old` messages, against the same without it before and after: `n`
/// new mails per phase through the real poller and sink; meanwhile one
/// reader loads the queue's first page over and over.
async fn retention(old: usize, n: usize, url: &str) {
    let dovecot = Dovecot::start(&[(USER, PASS)]);
    let backend = if url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let svc = tokio::task::spawn_blocking({
        let url = url.to_string();
        move || service(&url)
    })
    .await
    .unwrap();
    let t = Instant::now();
    tokio::task::spawn_blocking({
        let svc = svc.clone();
        move || seed_old(&svc, old)
    })
    .await
    .unwrap();
    println!(
        "RESULT retention_seed backend={backend} old_messages={old} secs={:.1}",
        t.elapsed().as_secs_f64()
    );
    let days = keepword::config::Days::new(365).unwrap();
    for (phase, with_retention) in [("idle", false), ("retention", true), ("idle_after", false)] {
        let mails = corpus(n, Utc::now() - chrono::Duration::seconds(n as i64), phase);
        dovecot.append_many(USER, PASS, "INBOX", &mails);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = std::thread::spawn({
            let (svc, stop) = (svc.clone(), stop.clone());
            move || {
                let mut ms = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = Instant::now();
                    svc.reads.queue(&Default::default(), 1, Utc::now()).unwrap();
                    ms.push(t.elapsed().as_secs_f64() * 1e3);
                    std::thread::sleep(Duration::from_millis(5));
                }
                ms
            }
        });
        let job = with_retention.then(|| {
            std::thread::spawn({
                let svc = svc.clone();
                move || {
                    // The job's own loop (service::apply_retention), batch
                    // by batch, to time each batch's transaction.
                    let (mut batches, mut removed, mut longest) = (0, 0, 0.0f64);
                    let t = Instant::now();
                    loop {
                        let b = Instant::now();
                        let r = svc
                            .deadlines
                            .retention_batch(days, Utc::now(), keepword::service::RETENTION_BATCH)
                            .unwrap();
                        longest = longest.max(b.elapsed().as_secs_f64() * 1e3);
                        batches += 1;
                        removed += r.bodies;
                        if r.done {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    (batches, removed, longest, t.elapsed().as_secs_f64())
                }
            })
        });
        let sink = sink(&svc);
        let mut poller = MailboxPoller::new(mailbox(dovecot.port), sink, ImapMetrics::new())
            .with_timing(PollerTiming::default());
        let t = Instant::now();
        let report = poller.poll_once().await.expect("poll_once");
        let secs = t.elapsed().as_secs_f64();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut ms = reader.join().unwrap();
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |p: f64| ms[((p / 100.0) * (ms.len() - 1) as f64).round() as usize];
        let job = job.map(|j| j.join().unwrap());
        println!(
            "RESULT retention_phase backend={backend} phase={phase} n={} ingest_secs={secs:.2} msgs_per_s={:.0} \
             queue_page_reads={} queue_p50_ms={:.1} queue_p99_ms={:.1} queue_max_ms={:.1}{} loadavg={}",
            report.fetched(),
            report.fetched() as f64 / secs,
            ms.len(),
            q(50.0),
            q(99.0),
            q(100.0),
            job.map_or(String::new(), |(batches, removed, longest, total)| format!(
                " retention_removed={removed} retention_batches={batches} \
                 retention_longest_batch_ms={longest:.1} retention_run_secs={total:.1}"
            )),
            loadavg()
        );
    }
}

// ------------------------------------------------------------------ mbox

fn mbox(n: usize, path: &Path, shape: Option<mailshape::Shape>) {
    let start = Utc::now() - chrono::Duration::seconds(n as i64);
    let (mails, _) = mails_of(n, shape, "mbox");
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for (i, m) in mails.iter().enumerate() {
        let date = (start + chrono::Duration::seconds(i as i64)).format("%a %b %e %H:%M:%S %Y");
        writeln!(f, "From sender@mbox {date}").unwrap();
        let text = String::from_utf8_lossy(m).replace("\r\n", "\n");
        for line in text.lines() {
            if line.starts_with("From ") || line.starts_with(">From ") {
                f.write_all(b">").unwrap();
            }
            writeln!(f, "{line}").unwrap();
        }
        writeln!(f).unwrap();
    }
    f.flush().unwrap();
}

// ------------------------------------------------------------------ latency

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[i.clamp(1, v.len()) - 1]
}

/// A fresh question with its own subject (one subject per client would thread
/// every mail into one conversation, acknowledged once).
fn one_mail(from: &str, id: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@example.com\r\nSubject: Footer question {id}\r\n\
         Message-ID: {id}\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nThe footer still shows last year.\r\n",
        Utc::now().to_rfc2822()
    )
    .into_bytes()
}

fn json_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .count()
        })
        .unwrap_or(0)
}

fn summary(name: &str, v: &mut [f64], extra: &str) {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n.max(1) as f64;
    println!(
        "RESULT latency {name} n={n} p50_ms={:.0} p90_ms={:.0} p99_ms={:.0} max_ms={:.0} mean_ms={mean:.0} {extra}loadavg={}",
        pct(v, 50.0),
        pct(v, 90.0),
        pct(v, 99.0),
        pct(v, 100.0),
        loadavg()
    );
}

async fn latency(n: usize, base_n: usize, bin: &Path, work: &Path, db: &str) {
    std::fs::create_dir_all(work).unwrap();
    let dovecot = Dovecot::start(&[(USER, PASS)]);
    // Both folders exist before anyone watches them.
    dovecot.append(
        USER,
        PASS,
        "INBOX",
        &one_mail("warm@example.com", "<warm@example.com>"),
    );

    // Baseline: an IDLE client woken by the same kind of APPEND.
    let mut idle_ms = Vec::new();
    let mut append_ms = Vec::new();
    {
        let mut s = login(dovecot.port).await;
        s.select("INBOX").await.unwrap();
        for i in 0..base_n {
            let mut idle = s.idle();
            idle.init().await.unwrap();
            let (wait, _stop) = idle.wait_with_timeout(Duration::from_secs(30));
            let port = dovecot.port;
            let raw = one_mail(
                &format!("agent{i}@example.com"),
                &format!("<idle.{i}@acme.com>"),
            );
            let d = std::thread::spawn(move || {
                // The harness's Dovecot handle is not Send-shared here; a
                // second handle is not needed: APPEND over a new connection.
                let t0 = Instant::now();
                raw_append(port, &raw);
                (t0, t0.elapsed())
            });
            wait.await.unwrap();
            let woke = Instant::now();
            let (t0, took) = d.join().unwrap();
            idle_ms.push(woke.duration_since(t0).as_secs_f64() * 1000.0);
            append_ms.push(took.as_secs_f64() * 1000.0);
            s = idle.done().await.unwrap();
            s.noop().await.unwrap();
        }
        s.logout().await.ok();
    }
    if base_n > 0 {
        summary("idle_wakeup_baseline", &mut idle_ms, "");
        summary("append_itself", &mut append_ms, "");
    }

    let (mut smtp, smtp_port, smtp_dir) = start_smtp(work);
    let http_port = support::free_port();
    let conf = work.join("keepword.toml");
    std::fs::write(
        &conf,
        format!(
            r#"{head}
[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "Northwind Support <support@example.com>"
[[mailboxes]]
name = "support"
channel = "email"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "{USER}"
password = "{PASS}"
inbox = "INBOX"
team_addresses = ["@example.com"]
"#,
            head = serve_head(http_port, db),
            imap = dovecot.port,
        ),
    )
    .unwrap();
    let mut serve = start_serve(bin, &conf, &work.join("serve.log"), http_port).await;
    let (mut ack_ms, missing) = append_acks(n, dovecot.port, &smtp_dir, "lat").await;
    let rss = peak_rss_mib(serve.id());
    let _ = Command::new("kill").arg(serve.id().to_string()).status();
    let _ = serve.wait();
    let _ = smtp.kill();
    let _ = smtp.wait();
    summary(
        "append_to_ack",
        &mut ack_ms,
        &format!("missing={missing} serve_peak_rss_mib={rss:.1} "),
    );
}

/// The config keys every `keepword serve` of these benches shares.
fn serve_head(http_port: u16, db: &str) -> String {
    format!(
        r#"bind = "127.0.0.1:{http_port}"
database_url = "{db}"
contract = "{contract}"
templates = "{templates}"
public_url = "http://127.0.0.1:{http_port}"
api_tokens = ["bench-token"]"#,
        contract = contract_path().display(),
        templates = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/templates")
            .display(),
    )
}

/// The SMTP server (aiosmtpd) writing one JSON file per message into
/// `work/smtp`: the process, its port and that folder.
fn start_smtp(work: &Path) -> (std::process::Child, u16, PathBuf) {
    let smtp_dir = work.join("smtp");
    std::fs::create_dir_all(&smtp_dir).unwrap();
    let mut smtp = Command::new(support::python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py"))
        .arg("0")
        .arg(&smtp_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(smtp.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().expect("smtp server port");
    (smtp, port, smtp_dir)
}

/// `keepword serve --config CONF`, once it listens and its poller had time
/// to read the mailbox and enter IDLE.
async fn start_serve(bin: &Path, conf: &Path, log: &Path, http_port: u16) -> std::process::Child {
    let log = std::fs::File::create(log).unwrap();
    let serve = Command::new(bin)
        .args(["serve", "--config"])
        .arg(conf)
        .env(
            "KEEPWORD_LOG",
            std::env::var("KEEPWORD_LOG").unwrap_or("warn".into()),
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err() {
        assert!(Instant::now() < deadline, "keepword serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    serve
}

/// APPENDs `n` questions from distinct senders, one at a time, each timed
/// until its acknowledgement reaches the SMTP server's folder; and how many
/// never came within 20 s.
async fn append_acks(n: usize, imap_port: u16, smtp_dir: &Path, tag: &str) -> (Vec<f64>, usize) {
    let mut ack_ms = Vec::new();
    let mut missing = 0;
    for i in 0..n {
        let before = json_files(smtp_dir);
        let raw = one_mail(
            &format!("Client {i} <client{i}.{tag}@acme.com>"),
            &format!("<{tag}.{i}@acme.com>"),
        );
        let t0 = Instant::now();
        raw_append(imap_port, &raw);
        let limit = t0 + Duration::from_secs(20);
        loop {
            if json_files(smtp_dir) > before {
                ack_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if Instant::now() > limit {
                missing += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // Let the poller go back into IDLE before the next APPEND.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (ack_ms, missing)
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// APPEND → acknowledgement with the mailbox and SMTP logging in by
/// password, then by OAuth 2.0 (`XOAUTH2` on both, client-credentials
/// tokens from npm oauth2-mock-server), alternating for `rounds` rounds of
/// `n` mails: one Dovecot (passdb oauth2 beside the passwords) whose
/// submission service relays to the aiosmtpd server, so the two differ in
/// the login only. Tokens live `ttl` seconds, so several are renewed during
/// each OAuth round: a renewal on a message's path would show in its tail.
async fn latency_auth(n: usize, rounds: usize, ttl: u64, bin: &Path, work: &Path) {
    std::fs::create_dir_all(work).unwrap();
    let (mut smtp, smtp_port, smtp_dir) = start_smtp(work);
    let mut oauth = support::oauth_server::OAuthServer::start();
    oauth.command(serde_json::json!({"email": USER, "ttl": ttl}));
    let dovecot = Dovecot::start_oauth(&[(USER, PASS)], &oauth.issuer, smtp_port);
    dovecot.append(
        USER,
        PASS,
        "INBOX",
        &one_mail("warm@example.com", "<warm@example.com>"),
    );
    let submission = dovecot.submission_port.unwrap();
    let mut all: std::collections::BTreeMap<&str, (Vec<f64>, usize, f64)> = Default::default();
    for round in 0..rounds {
        for login in ["password", "oauth2"] {
            let http_port = support::free_port();
            let dir = work.join(format!("{login}-{round}"));
            std::fs::create_dir_all(&dir).unwrap();
            let db = format!("sqlite://{}/keepword.db", dir.display());
            let auth = if login == "password" {
                format!("password = \"{PASS}\"")
            } else {
                "auth = \"oauth2\"\noauth = \"bench\"".to_string()
            };
            let conf = dir.join("keepword.toml");
            std::fs::write(
                &conf,
                format!(
                    r#"{head}
[smtp]
host = "127.0.0.1"
port = {submission}
tls = "none"
username = "{USER}"
from = "Northwind Support <{USER}>"
{auth}
[[mailboxes]]
name = "support"
channel = "email"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "{USER}"
inbox = "INBOX"
team_addresses = ["@test.local"]
{auth}
[oauth.bench]
provider = "generic"
grant = "client_credentials"
client_id = "keepword"
client_secret = "bench-secret"
token_url = "{token_url}"
scope = "mail"
"#,
                    head = serve_head(http_port, &db),
                    imap = dovecot.port,
                    token_url = oauth.token_url(),
                ),
            )
            .unwrap();
            let tokens_before = oauth.token_requests().len();
            let mut serve = start_serve(bin, &conf, &dir.join("serve.log"), http_port).await;
            let (ms, missing) =
                append_acks(n, dovecot.port, &smtp_dir, &format!("{login}{round}")).await;
            let rss = peak_rss_mib(serve.id());
            let _ = Command::new("kill").arg(serve.id().to_string()).status();
            let _ = serve.wait();
            let tokens = oauth.token_requests().len() - tokens_before;
            println!(
                "RESULT auth_round login={login} round={round} n={} missing={missing} token_requests={tokens} serve_peak_rss_mib={rss:.1}",
                ms.len()
            );
            let entry = all.entry(login).or_default();
            entry.0.extend(ms);
            entry.1 += missing;
            entry.2 = entry.2.max(rss);
        }
    }
    for (login, (mut ms, missing, rss)) in all {
        summary(
            &format!("append_to_ack_{login}"),
            &mut ms,
            &format!(
                "via=submission missing={missing} token_ttl_s={ttl} serve_peak_rss_mib={rss:.1} "
            ),
        );
    }
    let _ = smtp.kill();
    let _ = smtp.wait();
}

/// One APPEND over a fresh connection (login, APPEND, logout): what a
/// delivering MTA does. Returns when the server answered the APPEND.
fn raw_append(port: u16, raw: &[u8]) {
    use std::io::{BufRead, BufReader};
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let until = |tag: &str, r: &mut BufReader<std::net::TcpStream>| loop {
        let mut l = String::new();
        assert!(r.read_line(&mut l).unwrap() > 0, "dovecot closed");
        if let Some(rest) = l.strip_prefix(tag) {
            assert!(rest.trim_start().starts_with("OK"), "{l}");
            return;
        }
    };
    w.write_all(format!("a LOGIN \"{USER}\" \"{PASS}\"\r\n").as_bytes())
        .unwrap();
    until("a ", &mut r);
    let mut out = format!("b APPEND INBOX {{{}+}}\r\n", raw.len()).into_bytes();
    out.extend_from_slice(raw);
    out.extend_from_slice(b"\r\n");
    w.write_all(&out).unwrap();
    until("b ", &mut r);
    let _ = w.write_all(b"c LOGOUT\r\n");
}

// ------------------------------------------------------------------ main

fn main() {
    // cargo bench passes `--bench`; drop flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        Some("ingest") => {
            let n = args.get(1).map_or(10_000, |v| v.parse().unwrap());
            let sqlite = args.get(2).filter(|v| !v.is_empty() && *v != "-").cloned();
            let pg = args.get(3).filter(|v| !v.is_empty() && *v != "-").cloned();
            let shape = args.get(4).map(|s| mailshape::Shape::parse(s));
            rt.block_on(ingest(n, sqlite, pg, shape));
        }
        Some("retention") => {
            let old = args.get(1).map_or(100_000, |v| v.parse().unwrap());
            let n = args.get(2).map_or(3_000, |v| v.parse().unwrap());
            let url = args.get(3).cloned().expect("retention OLD N URL");
            rt.block_on(retention(old, n, &url));
        }
        Some("mbox") => mbox(
            args[1].parse().unwrap(),
            Path::new(&args[2]),
            args.get(3).map(|s| mailshape::Shape::parse(s)),
        ),
        Some("latency-auth") => rt.block_on(latency_auth(
            args[1].parse().unwrap(),
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            Path::new(&args[4]),
            Path::new(&args[5]),
        )),
        Some("latency") => rt.block_on(latency(
            args[1].parse().unwrap(),
            args[2].parse().unwrap(),
            Path::new(&args[3]),
            Path::new(&args[4]),
            &args[5],
        )),
        _ => eprintln!(
            "usage: imap_ingest ingest N [SQLITE_FILE|-] [POSTGRES_URL|-] [real|flat] | mbox N FILE [real|flat] | \
             latency N BASELINE_N KEEPWORD_BIN WORKDIR DATABASE_URL | \
             latency-auth N ROUNDS TOKEN_TTL_S KEEPWORD_BIN WORKDIR"
        ),
    }
}
