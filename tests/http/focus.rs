//! Urgency and focus (README) through the real app over HTTP, with manual
//! clocks: the urgent share gauge, its limit and the shipped alert rule
//! (promtool) on the exported numbers, `GET /api/v1/urgency` with the
//! evidence; and deferred notifications that survive the app being dropped
//! mid-way (its runtime shut down without the shutdown path) and a second
//! process on the same PostgreSQL: each goes out once, when due.

use crate::common;
use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keepword::clock::Clock;
use keepword::config::{Secret, Settings, Tls};
use serde_json::{Value, json};
use support::{HookReceiver, SmtpServer};

const FOCUS: &str = include_str!("../fixtures/contracts/focus.toml");

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn write_contract(dir: &Path, webhook: &str) -> PathBuf {
    let path = dir.join("contract.toml");
    std::fs::write(&path, FOCUS.replace("WEBHOOK_URL", webhook)).unwrap();
    path
}

fn settings(database_url: &str, contract: &Path, smtp_port: u16) -> Settings {
    let mut s = Settings {
        database_url: database_url.to_string(),
        contract: contract.to_path_buf(),
        api_tokens: vec![Secret::new(common::app::TOKEN)],
        ..Default::default()
    };
    s.smtp.port = smtp_port;
    s.smtp.tls = Tls::None;
    s
}

fn ticket(id: &str, from: &str, subject: &str, when: &str) -> Value {
    json!({
        "id": id, "channel": "tickets", "thread": id, "direction": "inbound",
        "from": from, "subject": subject, "at": when,
    })
}

/// The value of one sample line of the exposition, e.g.
/// `keepword_urgent_share{client="acme"}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
}

async fn urgent_share_gauge_api_and_alert(backend: common::app::Backend) {
    let dir = tempfile::tempdir().unwrap();
    let contract = write_contract(dir.path(), "http://127.0.0.1:9/hook");
    let clock = Clock::manual(at("2026-12-10T10:00:00Z"));
    let app = common::app::spawn_app(backend, contract, 9, clock.clone()).await;
    for (id, from, subject, when) in [
        // ACME: one urgent of three in the window; an older urgent one does
        // not count.
        (
            "A-1",
            "jane@acme.com",
            "Shop is down",
            "2026-12-09T10:00:00Z",
        ),
        (
            "A-2",
            "jane@acme.com",
            "Change the logo",
            "2026-12-01T10:00:00Z",
        ),
        ("A-3", "jane@acme.com", "A new page", "2026-11-15T10:00:00Z"),
        (
            "A-0",
            "jane@acme.com",
            "Site down again",
            "2026-11-01T10:00:00Z",
        ),
        (
            "G-1",
            "ops@globex.example",
            "Invoice question",
            "2026-12-08T10:00:00Z",
        ),
        (
            "X-1",
            "someone@nowhere.example",
            "Hello",
            "2026-12-08T11:00:00Z",
        ),
    ] {
        let (status, body) = app
            .post("/api/v1/events", &ticket(id, from, subject, when))
            .await;
        assert_eq!(status, 201, "{body}");
    }

    let text = app.metrics().await;
    let share = |client: &str| {
        sample(
            &text,
            &format!("keepword_urgent_share{{client=\"{client}\"}}"),
        )
    };
    assert_eq!(share("acme"), Some(1.0 / 3.0), "{text}");
    assert_eq!(share("globex"), Some(0.0));
    assert_eq!(
        share("initech"),
        Some(0.0),
        "declared clients without requests too"
    );
    assert_eq!(share("unknown"), Some(0.0));
    assert_eq!(sample(&text, "keepword_urgent_share_limit"), Some(0.15));

    let (status, report) = app.get("/api/v1/urgency").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["limit"], "15%");
    assert_eq!(report["window_days"], 30);
    let above = report["above_limit"].as_array().unwrap();
    assert_eq!(above.len(), 1, "{report}");
    assert_eq!(above[0]["client"], "acme");
    assert_eq!(above[0]["client_name"], "ACME Corp");
    assert_eq!(above[0]["conversations"], 3);
    assert_eq!(above[0]["urgent"], 1);
    let requests = above[0]["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["subject"], "Shop is down");
    assert_eq!(
        requests[0]["classification"],
        "urgent: keyword `down` in subject"
    );
    let shares = report["shares"].as_array().unwrap();
    assert!(
        shares
            .iter()
            .any(|s| s["client"] == "globex" && s["share"] == 0.0)
    );

    // The shipped rule, fed the numbers the app exported: it fires for ACME
    // after an hour above the limit, and for nobody else.
    let test = format!(
        r#"rule_files:
  - {rules}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'keepword_urgent_share{{client="acme"}}'
        values: '{acme}x90'
      - series: 'keepword_urgent_share{{client="globex"}}'
        values: '{globex}x90'
      - series: 'keepword_urgent_share_limit'
        values: '{limit}x90'
    alert_rule_test:
      - eval_time: 30m
        alertname: KeepwordUrgencyInflation
        exp_alerts: []
      - eval_time: 70m
        alertname: KeepwordUrgencyInflation
        exp_alerts:
          - exp_labels:
              severity: warning
              client: acme
            exp_annotations:
              summary: "33.33% of acme's new conversations in 30 days were urgent (limit 15%)"
              description: "More requests are filed as urgent than the contract expects. GET /api/v1/urgency lists them with the rule that classified each: talk it through with the client."
"#,
        rules = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("dashboards/alerts.yml")
            .display(),
        acme = share("acme").unwrap(),
        globex = share("globex").unwrap(),
        limit = sample(&text, "keepword_urgent_share_limit").unwrap(),
    );
    let file = dir.path().join("urgency.test.yml");
    std::fs::write(&file, test).unwrap();
    let out = std::process::Command::new("promtool")
        .args(["test", "rules", file.to_str().unwrap()])
        .output()
        .expect("promtool is needed (./scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_share_gauge_api_and_alert_sqlite() {
    urgent_share_gauge_api_and_alert(common::app::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_share_gauge_api_and_alert_postgres() {
    urgent_share_gauge_api_and_alert(common::app::Backend::Postgres).await;
}

// ------------------------------------------------------ deferred, then dropped

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Subject → how many emails carried it; webhook (event, conversation or
/// contact) → how many.
fn counts(
    smtp: &SmtpServer,
    hooks: &HookReceiver,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut mails = BTreeMap::new();
    for m in smtp.received() {
        let key = format!(
            "{} -> {}",
            m.header("Subject").unwrap_or_default(),
            m.rcpt_tos.join(",")
        );
        *mails.entry(key).or_insert(0) += 1;
    }
    let mut hooks_seen = BTreeMap::new();
    for b in hooks.accepted() {
        let key = format!("{} {} {}", b["event"], b["conversation_id"], b["step"]);
        *hooks_seen.entry(key).or_insert(0) += 1;
    }
    (mails, hooks_seen)
}

/// Rows that may go out at `t` and are not recorded as sent yet.
fn unsent_now(store: &keepword::store::Store, t: DateTime<Utc>) -> usize {
    store
        .with(keepword::store::outbox::all)
        .unwrap()
        .into_iter()
        .filter(|r| r.sent_at.is_none() && r.not_before.is_none_or(|nb| nb <= t))
        .count()
}

/// Warnings and breaches are held at night; the app is dropped mid-way (its
/// runtime shut down, nothing of the shutdown path runs); a new app (and on
/// PostgreSQL a second one beside it) delivers each of them once, when due.
fn deferred_notifications_survive_a_crash(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let hooks = rt.block_on(HookReceiver::start(0));
    let smtp = SmtpServer::start();
    let contract = write_contract(dir.path(), &hooks.url);
    let postgres = database_url.starts_with("postgres");

    // App A, Monday 7 December 21:00 CET: three night-job tickets opened at
    // 15:00, 16:30 and 18:00 CET; their 25% warnings (3 h) fell at 18:00,
    // 19:30 and 21:00 CET, after the office closed: the head's wait for 09:00,
    // the digester's for the 09:30 digest. The dues are at 03:00, 04:30 and
    // 06:00 CET.
    let clock_a = Clock::manual(at("2026-12-07T20:00:00Z"));
    let a_rt = runtime();
    let a = a_rt.block_on(common::app::serve(
        settings(&database_url, &contract, smtp.port),
        clock_a.clone(),
    ));
    let store = a.service.core.store().clone();
    let held = |store: &keepword::store::Store| {
        store
            .with(keepword::store::outbox::all)
            .unwrap()
            .into_iter()
            .filter(|r| r.not_before.is_some() && r.sent_at.is_none())
            .count()
    };
    a_rt.block_on(async {
        for (id, when) in [
            ("N-1", "2026-12-07T14:00:00Z"),
            ("N-2", "2026-12-07T15:30:00Z"),
            ("N-3", "2026-12-07T17:00:00Z"),
        ] {
            let (status, body) = a
                .post(
                    "/api/v1/events",
                    &ticket(id, "jane@acme.com", &format!("Backup {id} failed"), when),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        clock_a.set(at("2026-12-07T22:00:00Z"));
        assert!(
            support::eventually(Duration::from_secs(10), || held(&store) == 6).await,
            "3 head emails held for 09:00, 3 warnings for the 09:30 digest: {}",
            held(&store)
        );
        // 03:00 CET: the first ticket's breach.
        clock_a.set(at("2026-12-08T02:00:00Z"));
        assert!(
            support::eventually(Duration::from_secs(10), || held(&store) == 9).await,
            "the first breach, held for head and digester: {}",
            held(&store)
        );
    });
    // Nothing went out at night.
    assert!(smtp.received().is_empty(), "{:?}", smtp.received());
    assert!(hooks.accepted().is_empty());
    // Dropped mid-way: every task of A stops at its next await, with no
    // graceful shutdown (no drain, no lease release).
    drop(a);
    a_rt.shutdown_background();

    // App B (and on PostgreSQL C beside it) start at 08:59 CET: the second
    // ticket's breach (04:30 CET) fell due while nothing ran, the third's
    // (06:00 CET) too: held for 09:00. Their page = true steps (1 h after
    // each due) page the head at once.
    let start = at("2026-12-08T07:59:00Z");
    let clocks: Vec<Clock> = (0..if postgres { 2 } else { 1 })
        .map(|_| Clock::manual(start))
        .collect();
    let apps: Vec<_> = clocks
        .iter()
        .map(|c| {
            rt.block_on(common::app::serve(
                settings(&database_url, &contract, smtp.port),
                c.clone(),
            ))
        })
        .collect();
    rt.block_on(async {
        assert!(
            support::eventually(Duration::from_secs(10), || held(&store) == 15
                && smtp.received().len() >= 3)
            .await,
            "the breaches that fell due while down are held: {}; pages: {:?}",
            held(&store),
            counts(&smtp, &hooks).0
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (mails, _) = counts(&smtp, &hooks);
        assert_eq!(
            smtp.received().len(),
            3,
            "only the pages before 09:00: {mails:#?}"
        );
        assert!(
            mails
                .keys()
                .all(|k| k.contains("overdue by 1h") && k.ends_with("head@example.com")),
            "{mails:#?}"
        );

        // 09:00 CET: head's three warnings, and the three breaches to head and
        // digester (email, and digester's webhook).
        for c in &clocks {
            c.set(at("2026-12-08T08:00:00Z"));
        }
        assert!(
            support::eventually(Duration::from_secs(15), || smtp.received().len() >= 12
                && hooks.accepted().len() >= 3)
            .await,
            "{:?}",
            counts(&smtp, &hooks)
        );
        // Before the clocks jump past the lease of a row still on its way
        // out (a jump no real clock makes), let every send be recorded.
        assert!(
            support::eventually(Duration::from_secs(10), || unsent_now(
                &store,
                at("2026-12-08T08:00:00Z")
            ) == 0)
            .await,
            "sends not recorded"
        );
        // 09:30 CET: the digest.
        for c in &clocks {
            c.set(at("2026-12-08T08:30:00Z"));
        }
        assert!(
            support::eventually(Duration::from_secs(15), || smtp.received().len() >= 13
                && hooks.accepted().len() >= 4)
            .await,
            "{:?}",
            counts(&smtp, &hooks)
        );
        assert!(
            support::eventually(Duration::from_secs(10), || unsent_now(
                &store,
                at("2026-12-08T08:30:00Z")
            ) == 0)
            .await,
            "sends not recorded"
        );
        // Nothing trickles in twice.
        for c in &clocks {
            c.set(at("2026-12-08T09:30:00Z"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    });
    let (mails, webhooks) = counts(&smtp, &hooks);
    assert_eq!(smtp.received().len(), 13, "{mails:#?}");
    assert!(mails.values().all(|&n| n == 1), "duplicates: {mails:#?}");
    assert_eq!(
        mails
            .keys()
            .filter(|k| k.contains("Digest for digester: 3 warnings"))
            .count(),
        1,
        "{mails:#?}"
    );
    assert_eq!(mails.keys().filter(|k| k.contains("BREACHED")).count(), 6);
    assert_eq!(
        mails
            .keys()
            .filter(|k| k.contains("25% of window used"))
            .count(),
        3
    );
    assert_eq!(
        mails.keys().filter(|k| k.contains("overdue by 1h")).count(),
        3
    );
    assert_eq!(hooks.accepted().len(), 4, "{webhooks:#?}");
    assert!(
        webhooks.values().all(|&n| n == 1),
        "duplicates: {webhooks:#?}"
    );
    let row_deferred = store
        .with(keepword::store::outbox::all)
        .unwrap()
        .into_iter()
        .filter(|r| r.not_before.is_some())
        .all(|r| r.sent_at.is_some_and(|s| Some(s) >= r.not_before));
    assert!(
        row_deferred,
        "every held row went out at or after its instant"
    );
    for app in apps {
        rt.block_on(app.stop());
    }
}

crate::both_backends!(deferred_notifications_survive_a_crash);

// ------------------------------------------------------------ kill -9, for real

/// `kill -9` of the built binary while notifications are held: a contact
/// whose office opens at the next whole minute (real time: the binary reads
/// the system clock) gets a warning and a breach held until then, and a
/// digest contact its digest at that minute; the process is killed, a new
/// one (on PostgreSQL two) starts, and each notification goes out once, at
/// the opening.
async fn kill_nine_with_held_notifications(database_url: String) {
    use chrono::{SubsecRound, Timelike};
    use common::binary::{serve_binary, sigterm, wait_exit};

    // The office opens at a whole minute at least 45 s away, today (UTC).
    let mut now = Utc::now();
    if now.hour() == 23 && now.minute() >= 55 {
        tokio::time::sleep(
            (now.date_naive()
                .succ_opt()
                .unwrap()
                .and_hms_opt(0, 0, 5)
                .unwrap()
                .and_utc()
                - now)
                .to_std()
                .unwrap(),
        )
        .await;
        now = Utc::now();
    }
    let opens = (now + chrono::Duration::seconds(105))
        .trunc_subsecs(0)
        .with_second(0)
        .unwrap();
    let hm = opens.format("%H:%M").to_string();
    let hooks = HookReceiver::start(0).await;
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let days: String = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| format!("{d} = \"{hm}-24:00\"\n"))
        .collect();
    let contract = format!(
        r#"[contract]
name = "Kill test contract"
effective = "2026-01-01"
timezone = "UTC"

[calendars.office]
timezone = "UTC"
{days}
[calendars.always]
always = true

[channels.tickets]
kind = "ticket"

[[request_types]]
id = "fast"
name = "Fast"
definition = "A minute, around the clock; not urgent."
default = true
channels = ["tickets"]
calendar = "always"
first_response = "1m"
escalation = [{{ at = "50%", notify = ["lead", "digester"] }}]

[contacts]
lead = {{ email = "lead@example.com", webhook = "{hook}", calendar = "office" }}
digester = {{ email = "digest@example.com", calendar = "office", digest = ["{hm}"] }}
"#,
        hook = hooks.url
    );
    let path = dir.path().join("contract.toml");
    std::fs::write(&path, contract).unwrap();
    let start = |dir: &Path| {
        serve_binary(
            dir,
            &[
                ("KEEPWORD_BIND", "127.0.0.1:0"),
                ("KEEPWORD_DATABASE_URL", &database_url),
                ("KEEPWORD_CONTRACT", path.to_str().unwrap()),
                ("KEEPWORD_API_TOKENS", common::app::TOKEN),
                ("KEEPWORD_SMTP__PORT", &smtp.port.to_string()),
            ],
        )
    };
    let http = reqwest::Client::new();
    let deferred = |port: u16| {
        let http = http.clone();
        async move {
            let text = http
                .get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let n = |reason: &str| {
                sample(
                    &text,
                    &format!("keepword_notifications_deferred_total{{reason=\"{reason}\"}}"),
                )
                .unwrap_or(0.0)
            };
            Some((n("hours"), n("digest")))
        }
    };

    let mut first = start(dir.path());
    // Opened 25 s ago: the 50% step is due in 5 s, the breach in 35 s.
    let at = Utc::now().trunc_subsecs(0) - chrono::Duration::seconds(25);
    let r = http
        .post(format!("http://127.0.0.1:{}/api/v1/events", first.port))
        .bearer_auth(common::app::TOKEN)
        .json(&json!({"id": "K-1", "channel": "tickets", "thread": "K-1", "direction": "inbound",
                      "from": "jane@client.example", "subject": "Job failed", "at": at.to_rfc3339()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let port = first.port;
    // lead: 50% and breach held (hours); digester: 50% in the digest, breach held.
    assert!(
        support::eventually_async(Duration::from_secs(50), || async {
            deferred(port).await == Some((3.0, 1.0))
        })
        .await,
        "held: {:?}",
        deferred(port).await
    );
    assert!(Utc::now() < opens, "the office must still be closed");
    assert!(smtp.received().is_empty() && hooks.accepted().is_empty());
    first.child.kill().unwrap(); // SIGKILL: no shutdown path runs
    first.child.wait().unwrap();

    let mut restarted = vec![start(dir.path())];
    if database_url.starts_with("postgres") {
        restarted.push(start(dir.path()));
    }
    let wait = (opens - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait.saturating_sub(Duration::from_secs(1))).await;
    assert!(smtp.received().is_empty(), "nothing before the opening");
    assert!(
        support::eventually(Duration::from_secs(15), || smtp.received().len() >= 4
            && !hooks.accepted().is_empty())
        .await,
        "{:?}",
        counts(&smtp, &hooks)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mails, webhooks) = counts(&smtp, &hooks);
    assert_eq!(smtp.received().len(), 4, "{mails:#?}");
    assert!(mails.values().all(|&n| n == 1), "{mails:#?}");
    assert_eq!(
        mails
            .keys()
            .filter(|k| k.contains("Digest for digester: 1 warning"))
            .count(),
        1,
        "{mails:#?}"
    );
    assert_eq!(
        mails.keys().filter(|k| k.contains("BREACHED")).count(),
        2,
        "{mails:#?}"
    );
    assert_eq!(
        hooks.accepted().len(),
        2,
        "lead: 50% and breach: {webhooks:#?}"
    );
    assert!(webhooks.values().all(|&n| n == 1), "{webhooks:#?}");
    for p in &restarted {
        sigterm(&p.child);
    }
    for p in &mut restarted {
        assert!(wait_exit(&mut p.child, Duration::from_secs(20)).success());
    }
}

crate::both_backends!(async kill_nine_with_held_notifications);
