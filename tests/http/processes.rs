//! The built binary under failure and sharing: `kill -9` and restart, and two
//! processes on one PostgreSQL. Every escalation is notified exactly once.

use crate::common;
use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use serde_json::{Value, json};

use common::binary::{Served, serve_binary, sigterm, wait_exit};
use support::{HookReceiver, SmtpServer, eventually};

const TOKEN: &str = "test-token";

fn start(dir: &Path, database_url: &str, contract: &Path, smtp_port: u16) -> Served {
    serve_binary(
        dir,
        &[
            ("KEEPWORD_BIND", "127.0.0.1:0"),
            ("KEEPWORD_DATABASE_URL", database_url),
            ("KEEPWORD_CONTRACT", contract.to_str().unwrap()),
            ("KEEPWORD_API_TOKENS", TOKEN),
            ("KEEPWORD_SMTP__PORT", &smtp_port.to_string()),
        ],
    )
}

/// An urgent ticket opened `ago` seconds before now: its 50% step (30 s) may
/// already be due, its 100% step falls due at `60 - ago` seconds from now.
async fn open_ticket(http: &reqwest::Client, port: u16, thread: &str, ago: i64) -> i64 {
    let at = Utc::now().trunc_subsecs(0) - chrono::Duration::seconds(ago);
    let r = http
        .post(format!("http://127.0.0.1:{port}/api/v1/events"))
        .bearer_auth(TOKEN)
        .json(&json!({
            "id": format!("open-{thread}"), "channel": "tickets", "thread": thread,
            "direction": "inbound", "from": "jane@acme.com", "subject": "Shop down",
            "at": at.to_rfc3339(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["conversation_id"]
        .as_i64()
        .unwrap()
}

async fn outbox_pending(http: &reqwest::Client, port: u16) -> Option<u64> {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("keepword_outbox_pending "))
        .and_then(|v| v.trim().parse().ok())
}

/// (conversation, step) → how many webhooks carried it.
fn webhook_counts(hooks: &HookReceiver) -> BTreeMap<(i64, String), usize> {
    let mut counts = BTreeMap::new();
    for b in hooks.accepted() {
        let key = (
            b["conversation_id"].as_i64().unwrap(),
            b["step"].as_str().unwrap().to_string(),
        );
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

async fn kill_nine_then_restart(database_url: String) {
    let smtp = SmtpServer::start();
    let hooks = HookReceiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let contract = common::fast_contract(dir.path(), &hooks.url);
    let http = reqwest::Client::new();

    let mut first = start(dir.path(), &database_url, &contract, smtp.port);
    // 50% is already due; 100% falls due in 6 s (the window is 60 s).
    let full_step = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(6);
    let id = open_ticket(&http, first.port, "K-1", 54).await;
    assert!(
        eventually(Duration::from_secs(10), || hooks.accepted().len() == 1
            && smtp.received().len() == 1)
        .await,
        "the 50% step was not notified before the kill"
    );
    let port = first.port;
    let mut drained = false;
    for _ in 0..100 {
        if outbox_pending(&http, port).await == Some(0) {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(drained, "outbox did not drain");
    first.child.kill().unwrap(); // SIGKILL: no shutdown path runs
    first.child.wait().unwrap();

    // The 100% step and the breach fall due while nothing runs: wait for
    // that instant (plus the second the engine rounds events up by).
    let wait = (full_step + chrono::Duration::seconds(1) - Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    assert_eq!(hooks.accepted().len(), 1);

    let mut second = start(dir.path(), &database_url, &contract, smtp.port);
    assert!(
        eventually(Duration::from_secs(10), || hooks.accepted().len() >= 2
            && smtp.received().len() >= 2)
        .await,
        "the step that fell due while down did not fire at start"
    );
    // Nothing more trickles in: no step repeats.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let counts = webhook_counts(&hooks);
    assert_eq!(
        counts,
        BTreeMap::from([
            ((id, "at:50%".to_string()), 1),
            ((id, "at:100%".to_string()), 1),
        ])
    );
    assert_eq!(smtp.received().len(), 2, "one email per step");
    let detail: Value = http
        .get(format!(
            "http://127.0.0.1:{}/api/v1/conversations/{id}",
            second.port
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let steps = detail["escalations"].as_array().unwrap();
    let full = steps
        .iter()
        .find(|s| s["step"] == "first_response/0/at:100%")
        .unwrap();
    assert_eq!(
        full["late"], true,
        "fired at start, after the due: marked late"
    );
    assert_eq!(
        steps.len(),
        3,
        "50%, 100% and the breach, once each: {steps:?}"
    );
    sigterm(&second.child);
    assert!(wait_exit(&mut second.child, Duration::from_secs(20)).success());
}

crate::both_backends!(async kill_nine_then_restart);

/// Two `keepword serve` processes on one PostgreSQL share a burst of events
/// and due steps: every notification goes out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_work_without_duplicates() {
    const N: usize = 40;
    let db = common::FreshPostgres::new();
    let smtp = SmtpServer::start();
    let hooks = HookReceiver::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let contract = common::fast_contract(dir.path(), &hooks.url);
    let http = reqwest::Client::new();
    let mut a = start(dir.path(), &db.url, &contract, smtp.port);
    let mut b = start(dir.path(), &db.url, &contract, smtp.port);

    let mut ids = Vec::new();
    for i in 0..N {
        let port = if i % 2 == 0 { a.port } else { b.port };
        // 50% due now, 100% in ~8 s: both kinds of due work, in a burst.
        ids.push(open_ticket(&http, port, &format!("P-{i}"), 52).await);
    }
    assert!(
        eventually(Duration::from_secs(40), || hooks.accepted().len() >= 2 * N
            && smtp.received().len() >= 2 * N)
        .await,
        "only {} webhooks and {} emails of {}",
        hooks.accepted().len(),
        smtp.received().len(),
        2 * N
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let counts = webhook_counts(&hooks);
    assert_eq!(counts.len(), 2 * N, "one webhook per conversation and step");
    assert!(counts.values().all(|&n| n == 1), "duplicates: {counts:?}");
    assert_eq!(
        smtp.received().len(),
        2 * N,
        "one email per conversation and step"
    );
    let mut ids_notified: Vec<i64> = counts.keys().map(|(id, _)| *id).collect();
    ids_notified.dedup();
    ids.sort();
    assert_eq!(ids_notified, ids);
    for p in [&a, &b] {
        sigterm(&p.child);
    }
    for p in [&mut a, &mut b] {
        assert!(wait_exit(&mut p.child, Duration::from_secs(20)).success());
    }
}
