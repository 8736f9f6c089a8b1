//! Where alerts land: one local receiver per target (PagerDuty, Opsgenie,
//! Teams, a generic webhook) on loopback, recording what arrives from the
//! real app. The Teams cards go through Microsoft's `adaptivecards` parser
//! (tests/support/cards), the webhook signatures through the Standard
//! Webhooks reference library (PyPI `standardwebhooks`), and the targets'
//! secrets come from `file:` references that neither the stored contract
//! version nor the contract page reveal.

use crate::common;
use crate::support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use keepword::clock::Clock;
use keepword::config::{Secret, Settings, Tls};
use serde_json::{Value, json};
use support::{HookReceiver, HookRequest, eventually};

const PD_KEY: &str = "R0UTINGKEY0000000000000000000042";
const OG_KEY: &str = "0a1b2c3d-og-api-key-secret";
const SUBJECT: &str = "Shop is down <!channel> <https://evil.example|your invoice>";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A 24x7 urgent type with one-minute windows. `chat` hears of the 50% step
/// twice (the second written as a repeat of the same trigger).
fn write_contract(dir: &Path, hook_url: &str, teams_url: &str) -> PathBuf {
    let secret = |name: &str, value: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        format!("file:{}", path.display())
    };
    let text = format!(
        r#"[contract]
name = "Alert targets test"
effective = "2026-01-01"
timezone = "Europe/Berlin"

[calendars.always]
always = true

[channels.tickets]
kind = "ticket"

[[request_types]]
id = "urgent"
name = "Urgent"
definition = "Production is down."
channels = ["tickets"]
match = {{ keywords = ["down"] }}
calendar = "always"
urgent = true
first_response = "1m"
escalation = [
  {{ at = "50%", notify = ["oncall", "chat"] }},
  {{ at = "50%", notify = ["chat"] }},
  {{ at = "100%", notify = ["oncall"] }},
]

[[request_types]]
id = "question"
name = "Question"
definition = "Everything else."
default = true
channels = ["tickets"]
calendar = "always"
first_response = "1h"

[contacts]
oncall = {{ email = "oncall@example.com", pagerduty = "{pd}", opsgenie = "{og}" }}
chat = {{ webhook = "{hook}", teams = "{teams}" }}

[[clients]]
id = "acme"
name = "ACME Corp"
domains = ["acme.com"]
"#,
        pd = secret("pd", PD_KEY),
        og = secret("og", OG_KEY),
        hook = secret("hook", hook_url),
        teams = secret("teams", teams_url),
    );
    let path = dir.join("contract.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `node tests/support/cards/check_card.js`: the parser's reading of a Teams
/// message, or its complaints.
fn parse_card(message: &str) -> Result<Value, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cards/check_card.js");
    let mut child = Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node is needed (./scripts/test installs it with the card parser)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!("{stderr}{stdout}"));
    }
    assert!(stderr.trim().is_empty(), "the card parser warned: {stderr}");
    Ok(serde_json::from_str(stdout.lines().next().unwrap()).unwrap())
}

/// The Standard Webhooks reference library's verdict on a delivery.
fn verify_webhook(secret: &str, headers: &[(String, String)], body: &str) -> Result<(), String> {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let input = json!({"secret": secret, "headers": headers, "body": body}).to_string();
    let out = support::run_with_input(
        support::python().as_os_str(),
        "tests/support/verify_webhook.py",
        input.as_bytes(),
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(())
    } else {
        assert!(said.contains("refused:"), "the verifier failed: {said}");
        Err(said)
    }
}

/// Posts a ticket event (id, thread, direction, from) at `when`; its
/// conversation's id.
async fn ticket(
    app: &common::app::Served,
    (id, thread, direction, from): (&str, &str, &str, &str),
    subject: &str,
    when: DateTime<Utc>,
) -> i64 {
    let (status, body) = app
        .post(
            "/api/v1/events",
            &json!({
                "id": id, "channel": "tickets", "thread": thread, "direction": direction,
                "from": from, "subject": subject, "body": "On it.", "at": when.to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["conversation_id"].as_i64().unwrap()
}

/// The team answers in ticket `thread` at `when`.
async fn answer(app: &common::app::Served, id: &str, thread: &str, when: DateTime<Utc>) {
    ticket(
        app,
        (id, thread, "outbound", "support@example.com"),
        "Re",
        when,
    )
    .await;
}

fn dedup(r: &HookRequest) -> String {
    r.json()["dedup_key"].as_str().unwrap().to_string()
}

/// The service's settings for one test: the paging services at loopback
/// receivers, mail to a real SMTP server on `smtp`.
fn settings(
    db: &common::app::FreshDatabase,
    contract: PathBuf,
    (pd, og): (&str, &str),
    smtp: u16,
) -> Settings {
    let mut settings = Settings {
        database_url: db.url().to_string(),
        contract,
        api_tokens: vec![Secret::new(common::app::TOKEN)],
        pagerduty_url: format!("{pd}/v2/enqueue"),
        opsgenie_url: og.to_string(),
        ..Default::default()
    };
    settings.smtp.port = smtp;
    settings.smtp.tls = Tls::None;
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_every_target_sqlite() {
    alerts_reach_pagerduty_opsgenie_teams_and_signed_webhooks(common::app::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_every_target_postgres() {
    alerts_reach_pagerduty_opsgenie_teams_and_signed_webhooks(common::app::Backend::Postgres).await;
}

async fn alerts_reach_pagerduty_opsgenie_teams_and_signed_webhooks(backend: common::app::Backend) {
    // Each target's receiver fails its first request once, so every target
    // shows its retry.
    let pagerduty = HookReceiver::answering("202 Accepted", 1).await;
    let opsgenie = HookReceiver::answering("202 Accepted", 0).await;
    let teams = HookReceiver::answering("202 Accepted", 0).await;
    let hook = HookReceiver::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let teams_url = format!("{}/workflows/abc?sig=TEAMS-SECRET", teams.base);
    let hook_url = format!("{}?token=HOOK-SECRET", hook.url);
    let contract = write_contract(dir.path(), &hook_url, &teams_url);
    let signing_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"keepword test signing key 0123456")
    );

    let db = common::app::FreshDatabase::new(backend);
    let smtp = support::SmtpServer::start();
    let mut settings = settings(&db, contract, (&pagerduty.base, &opsgenie.base), smtp.port);
    settings.webhooks.signing_secret = Secret::new(signing_secret.clone());
    settings.dashboard_password = Secret::new(common::app::PASSWORD);
    let t0 = at("2026-12-07T10:00:00Z");
    let clock = Clock::manual(t0);
    let app = common::app::serve(settings, clock.clone()).await;

    let id = ticket(
        &app,
        ("evt-1", "T-1", "inbound", "jane@acme.com"),
        SUBJECT,
        t0,
    )
    .await;
    let incident = format!("keepword-{id}-first_response-0");

    // 50%: PagerDuty refuses once (500); the retry carries the same event.
    clock.set(t0 + chrono::Duration::seconds(30));
    assert!(
        eventually(Duration::from_secs(10), || pagerduty.requests() >= 1
            && hook.requests() >= 1
            && teams.requests() >= 2
            && opsgenie.requests() >= 1)
        .await,
        "50% alerts did not arrive: pd {} og {} teams {} hook {}",
        pagerduty.requests(),
        opsgenie.requests(),
        teams.requests(),
        hook.requests()
    );
    // Retries are due a back-off later on the service's clock.
    clock.set(t0 + chrono::Duration::seconds(40));
    assert!(
        eventually(Duration::from_secs(10), || pagerduty.requests() >= 2
            && hook.requests() >= 3)
        .await,
        "retries did not arrive: pd {} hook {}",
        pagerduty.requests(),
        hook.requests()
    );
    // 100%: the same incident again. Then the team answers: it resolves.
    clock.set(t0 + chrono::Duration::seconds(61));
    assert!(
        eventually(Duration::from_secs(10), || pagerduty.requests() >= 3).await,
        "the 100% trigger did not arrive"
    );
    // The answer comes once the 100% trigger is recorded as sent: a resolve
    // waits behind a trigger still in flight (see the focus test below).
    assert!(
        support::eventually_async(Duration::from_secs(10), || async {
            let (_, conv) = app.get(&format!("/api/v1/conversations/{id}")).await;
            conv["escalations"].as_array().is_some_and(|steps| {
                steps.iter().any(|s| {
                    s["step"] == "first_response/0/at:100%"
                        && s["notifications"].as_array().is_some_and(|n| {
                            n.iter()
                                .filter(|n| n["kind"] != "email")
                                .all(|n| n["outcome"] == "sent")
                        })
                })
            })
        })
        .await,
        "the 100% alerts were not recorded as sent"
    );
    clock.set(t0 + chrono::Duration::seconds(70));
    answer(&app, "evt-2", "T-1", clock.now()).await;
    assert!(
        eventually(Duration::from_secs(10), || pagerduty.requests() >= 4
            && opsgenie.requests() >= 3)
        .await,
        "resolve / close did not arrive: pd {} og {}",
        pagerduty.requests(),
        opsgenie.requests()
    );

    // ---- PagerDuty: trigger (500, then again), trigger at 100%, resolve.
    let pd = pagerduty.recorded();
    assert_eq!(
        pd.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 202, 202, 202]
    );
    assert!(pd.iter().all(|r| r.target == "/v2/enqueue"));
    assert_eq!(pd[0].body, pd[1].body, "a retry sends the same event");
    for r in &pd {
        assert_eq!(dedup(r), incident, "one incident per timer instance");
        assert_eq!(r.json()["routing_key"], PD_KEY, "from the file reference");
    }
    let trigger = pd[1].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["severity"], "critical", "an urgent type");
    assert_eq!(trigger["payload"]["source"], "keepword");
    assert_eq!(
        trigger["payload"]["summary"],
        format!("ACME Corp: first response 50% of window used — #{id} {SUBJECT}")
    );
    assert_eq!(trigger["payload"]["custom_details"]["client"], "acme");
    assert_eq!(trigger["payload"]["custom_details"]["step"], "at:50%");
    let link = format!("http://127.0.0.1:8080/conversations/{id}");
    assert_eq!(trigger["links"][0]["href"], link);
    assert_eq!(pd[2].json()["event_action"], "trigger");
    assert_eq!(
        pd[2].json()["payload"]["summary"],
        format!("ACME Corp: first response window has run out — #{id} {SUBJECT}")
    );
    assert_eq!(
        pd[3].json(),
        json!({"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": incident})
    );

    // ---- Opsgenie: create with the same key as alias, then close by it.
    let og = opsgenie.recorded();
    let create = og
        .iter()
        .find(|r| r.target == "/v2/alerts")
        .expect("a create request");
    assert_eq!(
        create.header("authorization"),
        Some(format!("GenieKey {OG_KEY}").as_str())
    );
    assert_eq!(create.json()["alias"], incident);
    assert_eq!(create.json()["priority"], "P1");
    assert_eq!(create.json()["source"], "keepword");
    let close = og.last().unwrap();
    assert_eq!(
        close.target,
        format!("/v2/alerts/{incident}/close?identifierType=alias")
    );
    assert_eq!(
        close.header("authorization"),
        Some(format!("GenieKey {OG_KEY}").as_str())
    );

    // ---- Teams: one Adaptive Card 1.4 per alert, clean under the parser.
    let cards = teams.recorded();
    assert_eq!(cards.len(), 2, "the 50% step and its repeat");
    for card in &cards {
        assert_eq!(card.target, "/workflows/abc?sig=TEAMS-SECRET");
        let read = parse_card(&card.body).unwrap_or_else(|e| panic!("{e}\n{}", card.body));
        assert_eq!(read["version"], "1.4");
        let texts: Vec<&str> = read["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(
            texts[0], "ACME Corp: first response 50% of window used",
            "{texts:?}"
        );
        assert_eq!(
            texts[1],
            format!(r"\#{id} Shop is down \<!channel\> \<https://evil.example|your invoice\>"),
            "the subject's markup is escaped"
        );
        for fact in [
            "Client: ACME Corp",
            "Request type: Urgent",
            "Timer: first response",
            "How late: under 1 m left",
        ] {
            assert!(texts.contains(&fact), "{fact} missing: {texts:?}");
        }
        assert!(texts.iter().any(|t| t.starts_with("Due: ")), "{texts:?}");
        assert_eq!(
            read["actions"],
            json!([{"type": "Action.OpenUrl", "title": "Open", "url": link}])
        );
    }
    // The parser does complain about a broken card: the check has teeth.
    let broken = cards[0].body.replace("\"Medium\"", "\"Huge\"");
    assert!(parse_card(&broken).is_err());

    // ---- Webhook: Standard Webhooks headers, verified by the reference
    // library; a retry keeps its webhook-id.
    // Ordered by their answers: two requests in flight at once may finish
    // in either order, so the refused one is found by its status.
    let hooks = hook.recorded();
    assert_eq!(hooks.len(), 3, "two alerts, one retried");
    let refused: Vec<_> = hooks.iter().filter(|r| r.status == 500).collect();
    assert_eq!(refused.len(), 1, "{hooks:?}");
    let retried = hooks
        .iter()
        .find(|r| r.status == 200 && r.header("webhook-id") == refused[0].header("webhook-id"))
        .expect("the retry carries the same webhook-id");
    assert_eq!(retried.body, refused[0].body);
    let delivered: Vec<_> = hooks.iter().filter(|r| r.status == 200).collect();
    let ids: std::collections::BTreeSet<_> = hooks
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "each notification its own id");
    for r in &hooks {
        assert!(r.header("webhook-signature").unwrap().starts_with("v1,"));
        verify_webhook(&signing_secret, &r.headers, &r.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", r.headers));
        let body = r.json();
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("&lt;!channel&gt; &lt;https://evil.example|your invoice&gt;"),
            "{text}"
        );
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(
            text.contains("first response 50% of window used"),
            "a repeated trigger reads like its first: {text}"
        );
    }
    let steps: Vec<Value> = delivered.iter().map(|r| r.json()["step"].clone()).collect();
    assert!(steps.contains(&json!("at:50%")) && steps.contains(&json!("at:50%#1")));
    let tampered = delivered[0].body.replace("ACME Corp", "ACME Corq");
    assert!(verify_webhook(&signing_secret, &delivered[0].headers, &tampered).is_err());
    let mut old = delivered[0].headers.clone();
    for (k, v) in old.iter_mut() {
        if k == "webhook-timestamp" {
            *v = (v.parse::<i64>().unwrap() - 3_600).to_string();
        }
    }
    assert!(verify_webhook(&signing_secret, &old, &delivered[0].body).is_err());

    // ---- Email too: the 50% and 100% alerts to oncall.
    assert!(
        eventually(Duration::from_secs(10), || smtp.received().len() >= 2).await,
        "alert emails did not arrive"
    );
    let mails = smtp.received();
    assert!(mails.iter().all(|m| m.rcpt_tos == ["oncall@example.com"]));

    // ---- The API shows each notification per target with its outcome.
    let (_, conv) = app.get(&format!("/api/v1/conversations/{id}")).await;
    let steps = conv["escalations"].as_array().unwrap();
    let half = steps
        .iter()
        .find(|s| s["step"] == "first_response/0/at:50%")
        .unwrap();
    let mut seen: Vec<(String, String, String)> = half["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["contact"].as_str().unwrap().to_string(),
                n["kind"].as_str().unwrap().to_string(),
                n["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    let expect = |c: &str, k: &str, o: &str| (c.to_string(), k.to_string(), o.to_string());
    assert_eq!(
        seen,
        [
            expect("chat", "teams", "sent"),
            expect("chat", "webhook", "sent"),
            expect("oncall", "email", "sent"),
            expect("oncall", "opsgenie", "sent"),
            expect("oncall", "pagerduty", "sent"),
        ],
        "{half:#}"
    );

    // ---- The dashboard's timeline says the same in words.
    let cookie = app.sign_in().await;
    let (status, html) = app.page(&cookie, &format!("/conversations/{id}")).await;
    assert_eq!(status, 200);
    for words in [
        "escalation at 50% of first response fired to oncall, chat",
        "escalation at 50% of first response fired to chat",
        "oncall by pagerduty: sent",
        "oncall by opsgenie: sent",
        "chat by teams: sent",
        "chat by webhook: sent",
    ] {
        assert!(html.contains(words), "{words} missing:\n{html}");
    }
    assert!(!html.contains("50%#1"), "{html}");

    // ---- No secret in the stored contract version or on the contract page.
    let store = app.service.core.store().clone();
    let versions =
        tokio::task::spawn_blocking(move || store.with(keepword::store::contract_versions_list))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(versions.len(), 1);
    let page = app
        .http
        .get(format!("{}/contract", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for text in [&versions[0].source, &page] {
        for secret in [
            PD_KEY,
            OG_KEY,
            "TEAMS-SECRET",
            "HOOK-SECRET",
            &teams.base,
            &hook.base,
        ] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
    }
    assert!(versions[0].source.contains("pagerduty = \"file:"));
    assert!(
        page.contains("alerted through email, PagerDuty and Opsgenie"),
        "{page}"
    );
    assert!(page.contains("alerted through a chat webhook and Microsoft Teams"));
    app.stop().await;
}

/// Focus rules hold for every target alike: a contact with working hours and
/// a digest gets its warnings in one Teams card at the digest time (and no
/// PagerDuty incident for them), and a non-urgent breach at night reaches
/// PagerDuty and Teams when its hours open; the API says "held" meanwhile;
/// the answer given at night resolves the incident only after its trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn focus_rules_hold_pagerduty_and_teams_alike() {
    let pagerduty = HookReceiver::answering("202 Accepted", 0).await;
    let teams = HookReceiver::answering("202 Accepted", 0).await;
    let dir = tempfile::tempdir().unwrap();
    let pd_file = dir.path().join("pd");
    std::fs::write(&pd_file, PD_KEY).unwrap();
    let contract = dir.path().join("contract.toml");
    std::fs::write(
        &contract,
        format!(
            r#"[contract]
name = "Focus targets test"
effective = "2026-01-01"
timezone = "Europe/Berlin"

[calendars.always]
always = true

[calendars.business]
timezone = "Europe/Berlin"
mon = "09:00-17:00"
tue = "09:00-17:00"
wed = "09:00-17:00"
thu = "09:00-17:00"
fri = "09:00-17:00"

[channels.tickets]
kind = "ticket"

[[request_types]]
id = "question"
name = "Question"
definition = "Everything."
default = true
channels = ["tickets"]
calendar = "always"
first_response = "2h"
escalation = [
  {{ at = "50%", notify = ["lead"] }},
  {{ at = "100%", notify = ["lead"] }},
]

[contacts]
lead = {{ pagerduty = "file:{pd}", teams = "{teams}/workflows/lead", calendar = "business", digest = ["09:30"] }}
"#,
            pd = pd_file.display(),
            teams = teams.base,
        ),
    )
    .unwrap();
    let db = common::app::FreshDatabase::new(common::app::Backend::Sqlite);
    let contract_path = contract.clone();
    let smtp = support::SmtpServer::start();
    let settings = settings(
        &db,
        contract,
        (&pagerduty.base, "http://127.0.0.1:9"),
        smtp.port,
    );
    // Monday 20:00 in Berlin: the lead's hours are over.
    let t0 = at("2026-12-07T19:00:00Z");
    let clock = Clock::manual(t0);
    let app = common::app::serve(settings, clock.clone()).await;
    let id = ticket(
        &app,
        ("q-1", "Q-1", "inbound", "ann@client.example"),
        "A *bold* [question](https://evil.example)",
        t0,
    )
    .await;

    // The key is rotated in its file: a reload of the unchanged contract
    // picks it up for the alerts to come.
    std::fs::write(&pd_file, "R0TATED0KEY00000000000000000042\n").unwrap();
    let (service, path) = (app.service.clone(), contract_path.clone());
    let reload = tokio::task::spawn_blocking(move || service.deadlines.reload_contract(&path))
        .await
        .unwrap();
    assert_eq!(reload, keepword::service::Reload::Unchanged);

    // 50% (a warning, for the digest) and 100% (held for the hours).
    clock.set(at("2026-12-07T21:00:00Z"));
    let held = |conv: &Value, step: &str| -> Vec<(String, String)> {
        conv["escalations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["step"] == step)
            .flat_map(|s| s["notifications"].as_array().unwrap().clone())
            .map(|n| {
                (
                    n["kind"].as_str().unwrap().to_string(),
                    n["outcome"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert!(
        support::eventually_async(Duration::from_secs(10), || async {
            let (_, conv) = app.get(&format!("/api/v1/conversations/{id}")).await;
            conv["escalations"].as_array().is_some_and(|e| e.len() >= 2)
        })
        .await
    );
    let (_, conv) = app.get(&format!("/api/v1/conversations/{id}")).await;
    assert_eq!(
        held(&conv, "first_response/0/at:50%"),
        [("digest".to_string(), "held".to_string())],
        "{conv:#}"
    );
    let mut full = held(&conv, "first_response/0/at:100%");
    full.sort();
    assert_eq!(
        full,
        [
            ("pagerduty".to_string(), "held".to_string()),
            ("teams".to_string(), "held".to_string())
        ],
        "{conv:#}"
    );
    assert_eq!(pagerduty.requests() + teams.requests(), 0);
    // The team answers at night: the resolve waits behind the held trigger
    // (a resolve first would leave the incident open).
    clock.set(at("2026-12-07T22:00:00Z"));
    answer(&app, "q-2", "Q-1", clock.now()).await;

    // Tuesday 09:00 Berlin: the held breach goes to both, as a warning.
    clock.set(at("2026-12-08T08:00:00Z"));
    assert!(
        eventually(Duration::from_secs(10), || pagerduty.requests() == 1
            && teams.requests() == 1)
        .await,
        "pd {} teams {}",
        pagerduty.requests(),
        teams.requests()
    );
    let trigger = pagerduty.recorded()[0].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["severity"], "warning", "not urgent");
    assert_eq!(trigger["routing_key"], "R0TATED0KEY00000000000000000042");
    assert_eq!(
        trigger["dedup_key"],
        format!("keepword-{id}-first_response-0")
    );
    // The resolve is not due yet; a few seconds later it is, same key.
    assert_eq!(pagerduty.requests(), 1);
    clock.set(at("2026-12-08T08:00:06Z"));
    assert!(eventually(Duration::from_secs(10), || pagerduty.requests() == 2).await);
    let resolve = pagerduty.recorded()[1].json();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    let card = parse_card(&teams.recorded()[0].body).unwrap();
    assert_eq!(
        card["texts"][0], "unknown: first response window has run out",
        "{card}"
    );

    // 09:30: the digest, one card listing the warning; none to PagerDuty.
    clock.set(at("2026-12-08T08:30:00Z"));
    assert!(eventually(Duration::from_secs(10), || teams.requests() == 2).await);
    let digest = &teams.recorded()[1];
    assert_eq!(digest.target, "/workflows/lead");
    let read = parse_card(&digest.body).unwrap_or_else(|e| panic!("{e}\n{}", digest.body));
    let texts = read["texts"].as_array().unwrap();
    assert!(
        texts[0]
            .as_str()
            .unwrap()
            .starts_with("\\[keepword\\] Digest for lead: 1 warning"),
        "{texts:?}"
    );
    let line = texts[1].as_str().unwrap();
    assert!(
        line.contains("first response 50% of window used")
            && line.ends_with(&format!("[Open](http://127.0.0.1:8080/conversations/{id})")),
        "{line}"
    );
    assert_eq!(pagerduty.requests(), 2, "a digest opens no incident");
    app.stop().await;
}
