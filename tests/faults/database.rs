//! PostgreSQL itself failing under the built binary, on a private cluster
//! the test makes with `initdb` (tests/support/pg_cluster.rs), never the
//! shared server: restarted (`pg_ctl restart -m fast` and `-m immediate`)
//! while the binary takes events over HTTP and delivers through its outbox.
//!
//! Inputs are judged by their answers: every event answered 201 must be
//! stored afterwards; one that could not be stored must be refused (503,
//! saying the database is unavailable), never answered 201 and lost.
//! Deliveries are judged by the recording receiver and the checker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keepword::store::Store;
use tokio::sync::watch;

use crate::checker::{Expected, Must, check};
use crate::common::binary::{Served, sigterm, wait_exit};
use crate::crash::{all_sent, start, wait_for};
use crate::rig;
use crate::support::pg_cluster::PgCluster;
use crate::support::recorders::{Act, History, HttpRecorder};

/// Once the database is back, the service must take input and deliver
/// again within this: the pool's next connection, the worker's pause after
/// a failed step (5 s) or a row's back-off (it failed for about 3 s: at
/// most 4 s more), with room for a loaded machine.
pub const RECOVERY_BOUND: Duration = Duration::from_secs(15);

/// Posters sending events at once, each as fast as it is answered.
const POSTERS: usize = 4;

/// One answered (or failed) `POST /api/v1/events`.
#[derive(Debug, Clone)]
pub struct Answer {
    pub id: String,
    /// 0: no HTTP answer at all.
    pub status: u16,
    pub body: String,
    pub at: Instant,
}

/// Posts events with unique ids from [`POSTERS`] tasks until `stop` is
/// set; every answer, in order of arrival.
pub async fn post_events(port: u16, prefix: String, stop: watch::Receiver<bool>) -> Vec<Answer> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let tasks = (0..POSTERS).map(|p| {
        let (http, prefix, stop) = (http.clone(), prefix.clone(), stop.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while !*stop.borrow() {
                let id = format!("{prefix}-{p}-{n}");
                n += 1;
                let r = http
                    .post(format!("http://127.0.0.1:{port}/api/v1/events"))
                    .bearer_auth("test-token")
                    .json(&serde_json::json!({
                        "id": id, "channel": "tickets", "thread": id,
                        "direction": "inbound", "from": "jane@acme.com",
                        "subject": "A question", "at": chrono::Utc::now().to_rfc3339(),
                    }))
                    .send()
                    .await;
                let (status, body) = match r {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                };
                answers.push(Answer {
                    id,
                    status,
                    body,
                    at: Instant::now(),
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        })
    });
    let mut all: Vec<Answer> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect();
    all.sort_by_key(|a| a.at);
    all
}

/// The external ids of the events stored under `prefix` in database `db`.
pub fn stored_events(cluster: &PgCluster, db: &str, prefix: &str) -> Vec<String> {
    let out = cluster.psql(
        db,
        &format!("SELECT external_id FROM messages WHERE external_id LIKE '{prefix}-%'"),
    );
    out.lines().map(str::to_string).collect()
}

/// The attempts after which a receiver may hold a notification keepword
/// sends again, from the binary's `/metrics`.
pub fn uncertain_of(port: u16) -> u64 {
    rig::uncertain_in(&crate::common::binary::get(port, "/metrics").1)
}

/// The sum of every sample of `name` (all labels) in the binary's
/// `/metrics`.
pub fn metric_sum(port: u16, name: &str, label: &str) -> u64 {
    let (_, body, _) = crate::common::binary::get(port, "/metrics");
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Reads what the binary wrote so far into `said`.
pub fn drain(served: &Served, said: &mut String) {
    for l in served.stderr.try_iter() {
        said.push_str(&l);
        said.push('\n');
    }
}

/// `postgres_restarted`'s mode for a stop, a wait past the connection
/// pool's patience (10 s), and a start.
pub const STOPPED: &str = "stopped";
const STOPPED_FOR: Duration = Duration::from_secs(12);

/// The service running over a private cluster while it is restarted
/// (`mode`: `fast` or `immediate`, or [`STOPPED`]).
pub async fn postgres_restarted(mode: &'static str) {
    let cluster = PgCluster::start();
    let url = cluster.create_database("keepword");
    let dir = tempfile::tempdir().unwrap();
    let history = History::default();
    // The receiver answers 500 until the database is back, so the worker
    // is retrying (claiming, recording failures) across the restart.
    let faulty = Arc::new(AtomicBool::new(true));
    let hook = {
        let faulty = faulty.clone();
        HttpRecorder::start("hook", &history, move |_, _| {
            if faulty.load(Ordering::SeqCst) {
                Act::Answer("500 Internal Server Error", String::new())
            } else {
                Act::ok()
            }
        })
        .await
    };
    // Enqueued before the start: the worker takes them at once (a row
    // another process enqueues waits for the worker's next poll).
    let store = Store::open(&url).unwrap();
    let expected: Vec<Expected> = (0..6)
        .map(|i| rig::webhook(&store, &format!("pg-{mode}-{i}"), &hook.url, Must::Deliver))
        .collect();
    let mut served = start(dir.path(), &url, &hook.url, None);
    let mut said = String::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let prefix = format!("restart-{mode}");
    let posting = tokio::spawn(post_events(served.port, prefix.clone(), stop_rx));
    // Taking input, and every notification refused once, before the fault.
    wait_for("a first attempt at each", Duration::from_secs(20), || {
        history.all().len() >= expected.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let restart_began = Instant::now();
    // The restart blocks (pg_ctl -w); the posters keep posting.
    tokio::task::block_in_place(|| match mode {
        STOPPED => {
            cluster.stop("fast");
            std::thread::sleep(STOPPED_FOR);
            cluster.start_again();
        }
        mode => cluster.restart(mode),
    });
    let restarted = Instant::now();
    faulty.store(false, Ordering::SeqCst);
    // Input taken again, then a little more of it.
    let mut back_at = None;
    let deadline = restarted + RECOVERY_BOUND + Duration::from_secs(5);
    while back_at.is_none() && Instant::now() < deadline {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("http://127.0.0.1:{}/api/v1/events", served.port))
            .bearer_auth("test-token")
            .json(&serde_json::json!({
                "id": format!("{prefix}-probe-{}", restarted.elapsed().as_millis()),
                "channel": "tickets", "thread": format!("{prefix}-probe"),
                "direction": "inbound", "from": "jane@acme.com",
                "subject": "A question", "at": chrono::Utc::now().to_rfc3339(),
            }))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 201) {
            back_at = Some(Instant::now());
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_tx.send(true).unwrap();
    let answers = posting.await.unwrap();
    drain(&served, &mut said);
    let back_at = back_at.unwrap_or_else(|| {
        panic!(
            "no event taken within {RECOVERY_BOUND:?} of the restart; the process said:\n{said}\nthe server:\n{}",
            cluster.log()
        )
    });

    // What was taken is stored; nothing else was answered. A batch whose
    // commit went through as the server went down, its answer lost, is
    // stored again event by event by the writer, which then finds each
    // stored already: taken, answered 200 `"duplicate":true`.
    let own_commit = |a: &Answer| a.status == 200 && a.body.contains("\"duplicate\":true");
    let accepted: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == 201 || own_commit(a))
        .collect();
    let seen_twice = answers.iter().filter(|a| own_commit(a)).count();
    let refused: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    let other: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status != 201 && a.status != 503 && !own_commit(a))
        .collect();
    assert!(
        other.is_empty(),
        "answers other than 201, 200 duplicate and 503: {other:#?}"
    );
    // Down past the pool's wait for a connection, input must be refused.
    assert!(
        mode != STOPPED || !refused.is_empty(),
        "nothing refused while the database was down"
    );
    for r in &refused {
        assert!(
            r.body.contains("database"),
            "a refusal that does not say the database is unavailable: {r:?}"
        );
    }
    let stored = stored_events(&cluster, "keepword", &prefix);
    let lost: Vec<&str> = accepted
        .iter()
        .map(|a| a.id.as_str())
        .filter(|id| !stored.iter().any(|s| s == id))
        .collect();
    assert!(
        lost.is_empty(),
        "taken and not stored after the restart: {lost:?}"
    );
    let during = answers
        .iter()
        .filter(|a| a.at >= restart_began && a.at <= restarted)
        .count();

    // Deliveries complete, without a restart of keepword.
    let sent = crate::support::eventually(RECOVERY_BOUND + Duration::from_secs(10), || {
        all_sent(&store)
    })
    .await;
    drain(&served, &mut said);
    assert!(
        sent,
        "not every notification was recorded sent: {:#?}\nreceived: {:#?}\nthe process said:\n{said}",
        store.with(keepword::store::outbox::all).unwrap(),
        history.all()
    );
    let (scenario, how) = match mode {
        STOPPED => (
            "PostgreSQL stopped 12 s".to_string(),
            format!(
                "pg_ctl stop -m fast, {} s, pg_ctl start",
                STOPPED_FOR.as_secs()
            ),
        ),
        mode => (
            format!("PostgreSQL restarted ({mode})"),
            format!("pg_ctl restart -m {mode}"),
        ),
    };
    let mut report = check(
        &scenario,
        &format!(
            "{how} of a private cluster under the built binary ({} s down) while {POSTERS} clients posted events: {} taken (all stored; {seen_twice} of them answered 200 duplicate, their batch's commit having gone through unanswered), {} refused 503, {during} answered during the restart",
            format_args!("{:.1}", (restarted - restart_began).as_secs_f64()),
            accepted.len(),
            refused.len(),
        ),
        &expected,
        &history.all(),
        restarted,
        RECOVERY_BOUND,
        uncertain_of(served.port),
    );
    report.backend = "postgres".into();
    report.recovered_ms = (back_at - restarted).as_millis() as u64;
    report.assert_kept();

    // Healthy again, and the fault was said while it lasted.
    let (status, body, _) = crate::common::binary::get(served.port, "/readyz");
    assert_eq!(status, 200, "{body}");
    if !refused.is_empty() {
        assert!(
            said.contains("request failed") && said.contains("database"),
            "refused without a log line naming the database:\n{said}"
        );
        assert!(
            metric_sum(
                served.port,
                "keepword_http_requests_total",
                "status=\"503\""
            ) >= refused.len() as u64
        );
    }
    sigterm(&served.child);
    assert!(wait_exit(&mut served.child, Duration::from_secs(30)).success());
}

// Only with the failpoints, which hold the first process in its window.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
/// Two processes on one PostgreSQL; the first reaches it through a proxy
/// that then stops forwarding anything, either way, without closing a
/// socket (a silent partition), while the first holds leases on rows it
/// has sent and not recorded (the failpoint holds it there 3 s). The other
/// process carries on: it delivers what is enqueued meanwhile at once, and
/// the cut one's rows once their lease ends. The cut one reports itself not
/// ready while it lasts; healed, its late outcomes are fenced off (or given
/// up as unrecorded) and counted, and it is ready again without a restart.
pub async fn one_of_two_partitioned(url: &str) {
    use crate::support::proxy::Proxy;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let history = History::default();
    let hook = HttpRecorder::start("hook", &history, |_, _| Act::ok()).await;
    let store = Store::open(url).unwrap();
    let mut expected: Vec<Expected> = (0..3)
        .map(|i| rig::webhook(&store, &format!("cut-off-{i}"), &hook.url, Must::Deliver))
        .collect();
    let proxy = Proxy::start(([127, 0, 0, 1], pg_port(url)).into()).await;
    let proxied = url.replacen(
        &format!(":{}/", pg_port(url)),
        &format!(":{}/", proxy.port),
        1,
    );
    let mut a = start(
        dir_a.path(),
        &proxied,
        &hook.url,
        Some("outbox-after-send=sleep(3000)"),
    );
    wait_for("the first process's sends", Duration::from_secs(20), || {
        !history.all().is_empty()
    })
    .await;
    proxy.partition();
    let partitioned = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent_by_a = history.all().len() as u64;
    let mut b = start(dir_b.path(), url, &hook.url, None);
    // The other carries on: new rows go out at once.
    let meanwhile: Vec<Expected> = tokio::task::block_in_place(|| {
        (0..3)
            .map(|i| rig::webhook(&store, &format!("meanwhile-{i}"), &hook.url, Must::Deliver))
            .collect()
    });
    let keys: Vec<String> = meanwhile.iter().map(|e| e.key.clone()).collect();
    wait_for(
        "the other process to deliver what came meanwhile",
        Duration::from_secs(20),
        || history.all_accepted(keys.iter().map(String::as_str)),
    )
    .await;
    expected.extend(meanwhile);
    // The cut one says it is not ready while it lasts.
    let (status, _, _) = crate::common::binary::get(a.port, "/readyz");
    assert_eq!(status, 503, "the partitioned process reports itself ready");
    wait_for(
        "the other process to deliver the cut one's rows after their lease",
        Duration::from_secs(200),
        || all_sent(&store),
    )
    .await;
    let taken_over = Instant::now();
    proxy.heal();
    // Each outcome it held is fenced off by the lease when its recording
    // gets through, or given up as unrecorded when its pool timed out
    // first (which way depends on whether the partition caught a query on
    // a connection or the pool opening one): counted either way, never
    // recorded over the other's.
    let port = a.port;
    let counted = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = uncertain_of(port);
            if n >= sent_by_a || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .unwrap();
    let mut said = String::new();
    drain(&a, &mut said);
    assert!(
        counted >= sent_by_a,
        "the cut-off process's {sent_by_a} outcomes were not all fenced off or counted ({counted}); it said:\n{said}\nreceived: {:?}",
        history.all()
    );
    let (status, _, _) = crate::common::binary::get(a.port, "/readyz");
    assert_eq!(status, 200, "not ready again after the partition healed");
    let mut report = check(
        "one of two processes partitioned from PostgreSQL",
        "a proxy between the first process and PostgreSQL stopped forwarding (no RST, no FIN) after its sends, before it recorded them, for longer than its 120 s lease",
        &expected,
        &history.all(),
        partitioned,
        Duration::from_secs(150),
        counted + uncertain_of(b.port),
    );
    report.backend = "postgres".into();
    report.recovered_ms = (taken_over - partitioned).as_millis() as u64;
    report.assert_kept();
    for p in [&mut a, &mut b] {
        sigterm(&p.child);
        assert!(wait_exit(&mut p.child, Duration::from_secs(30)).success());
    }
}

/// The port of a PostgreSQL URL (5432 when it names none).
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
fn pg_port(url: &str) -> u16 {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let host = rest.split('/').next().unwrap_or(rest);
    let host = host.rsplit('@').next().unwrap_or(host);
    host.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(5432)
}
