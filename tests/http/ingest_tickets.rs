//! Jira, Linear and Basecamp as ticket channels, over HTTP on both backends:
//! published payloads (tests/fixtures/{jira,linear,basecamp}, each with its
//! source and licence) first as they are, then with their times, ids and
//! people changed to the test's for one whole conversation each — a client
//! opens, the team answers (first response met), the client writes again
//! (next response runs), the ticket is closed (solved).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use keepword::clock::Clock;
use keepword::config::{BasecampSettings, Secret, Settings, TicketWebhookSettings, Tls};
use keepword::ingest::webhook::{
    TicketOutcome, hmac_sha256_hex, parse_basecamp, parse_jira, parse_linear,
    verify_jira_signature, verify_linear,
};
use keepword::sla::{Direction, TicketStatus};
use serde_json::{Value, json};

use crate::common;
use crate::support::{self, HookReceiver};

const TOKEN: &str = "test-token";
const JIRA_SECRET: &str = "jira-secret-0123456789";
const LINEAR_SECRET: &str = "linear-secret-0123456789";
const BASECAMP_SECRET: &str = "basecamp-secret-0123456789abcdef";
/// The team's Basecamp company (the fixtures' people are in 796227).
const TEAM_COMPANY: u64 = 1_000_001;

pub(crate) fn fixture(source: &str, name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(source)
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn fixture_bytes(source: &str, name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(source)
            .join(name),
    )
    .unwrap()
}

/// The fast contract (minute windows, 24x7) with the client claiming Jira
/// project SUP, Linear team CS and Basecamp project 2957043.
fn contract(dir: &Path, hooks: &str) -> PathBuf {
    let path = common::fast_contract(dir, hooks);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "jira_projects = [\"SUP\"]\nlinear_teams = [\"CS\"]\nbasecamp_projects = [2957043]\n",
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn parsed_contract() -> keepword::contract::Contract {
    let dir = tempfile::tempdir().unwrap();
    let path = contract(dir.path(), "http://127.0.0.1:9/hook");
    keepword::contract::parse(&std::fs::read_to_string(path).unwrap(), "contract.toml").unwrap()
}

struct App {
    served: common::app::Served,
    _dir: tempfile::TempDir,
    _hooks: HookReceiver,
}

impl std::ops::Deref for App {
    type Target = common::app::Served;
    fn deref(&self) -> &common::app::Served {
        &self.served
    }
}

impl App {
    async fn start(database_url: String) -> App {
        let hooks = HookReceiver::start(0).await;
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            database_url,
            contract: contract(dir.path(), &hooks.url),
            api_tokens: vec![Secret::new(TOKEN)],
            ..Default::default()
        };
        settings.smtp.port = support::free_port();
        settings.smtp.tls = Tls::None;
        let webhook = |secret: &str| TicketWebhookSettings {
            webhook_secret: Secret::new(secret),
            webhook_secret_file: None,
            channel: None,
        };
        settings.jira = Some(webhook(JIRA_SECRET));
        settings.linear = Some(webhook(LINEAR_SECRET));
        settings.basecamp = Some(BasecampSettings {
            webhook_secret: Secret::new(BASECAMP_SECRET),
            webhook_secret_file: None,
            company_ids: vec![TEAM_COMPANY],
            channel: None,
        });
        App {
            served: common::app::serve(settings, Clock::system()).await,
            _dir: dir,
            _hooks: hooks,
        }
    }

    async fn send(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
        post_raw(&self.served, path, headers, body).await
    }

    async fn jira(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = format!("sha256={}", sign(JIRA_SECRET, &bytes));
        self.send("/webhooks/jira", &[("X-Hub-Signature", signature)], &bytes)
            .await
    }

    async fn linear(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let signature = sign(LINEAR_SECRET, &bytes);
        self.send(
            "/webhooks/linear",
            &[("Linear-Signature", signature)],
            &bytes,
        )
        .await
    }

    async fn basecamp(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send(
            &format!("/webhooks/basecamp/{BASECAMP_SECRET}"),
            &[],
            &bytes,
        )
        .await
    }

    async fn conversation(&self, created: &Value) -> Value {
        let id = created["conversation_id"].as_i64().expect("a conversation");
        let (status, conv) = self.get(&format!("/api/v1/conversations/{id}")).await;
        assert_eq!(status, 200, "{conv}");
        conv
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    hmac_sha256_hex(secret.as_bytes(), body)
}

/// POSTs `body` as JSON with `headers` (a webhook's signature): (status,
/// JSON answer or null).
pub(crate) async fn post_raw(
    app: &common::app::Served,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("Content-Type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        r = r.header(*name, value);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

pub(crate) fn timer(conv: &Value, name: &str) -> String {
    conv["timers"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|t| t["timer"] == name)
        .unwrap_or_else(|| panic!("no {name} timer: {conv:#}"))["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn directions(conv: &Value) -> Vec<String> {
    conv["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["direction"].as_str().unwrap_or("none").to_owned())
        .collect()
}

/// Whole milliseconds, as the products write them.
fn at(seconds_ago: i64) -> DateTime<Utc> {
    let now = Utc::now() - Duration::seconds(seconds_ago);
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap()
}

fn jira_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn now() -> DateTime<Utc> {
    "2025-06-01T00:00:00Z".parse().unwrap()
}

fn event(outcome: TicketOutcome) -> keepword::ingest::IncomingEvent {
    match outcome {
        TicketOutcome::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// One whole conversation through one source: the client opens (the first
/// response runs) and the source redelivers it (one event); the team answers
/// (first response met); the client writes again (next response runs); an
/// internal note answers nobody (next response still runs); the ticket is
/// closed (solved, resolution met).
struct Conversation {
    opened: Value,
    team: Value,
    client: Value,
    internal: Option<Value>,
    solved: Value,
    thread: &'static str,
}

async fn play<'a, F, Fut>(app: &'a App, send: F, c: Conversation)
where
    F: Fn(&'a App, Value) -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
{
    let (status, created) = send(app, c.opened.clone()).await;
    assert_eq!(status, 201, "{created}");
    let conv = app.conversation(&created).await;
    assert_eq!(conv["thread"], c.thread);
    assert_eq!(conv["client"], "acme", "the project is acme's");
    assert_eq!(conv["request_type"], "urgent");
    assert_eq!(timer(&conv, "first_response"), "running");

    let (status, again) = send(app, c.opened).await;
    assert_eq!(status, 200, "a redelivery is one event: {again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message_id"], created["message_id"]);

    assert_eq!(send(app, c.team).await.0, 201);
    assert_eq!(
        timer(&app.conversation(&created).await, "first_response"),
        "met"
    );

    assert_eq!(send(app, c.client).await.0, 201);
    assert_eq!(
        timer(&app.conversation(&created).await, "next_response"),
        "running"
    );
    let mut expected = vec!["inbound", "outbound", "inbound"];
    if let Some(internal) = c.internal {
        assert_eq!(send(app, internal).await.0, 201);
        expected.push("internal");
    }
    let conv = app.conversation(&created).await;
    assert_eq!(timer(&conv, "next_response"), "running");
    assert_eq!(directions(&conv), expected);

    assert_eq!(send(app, c.solved).await.0, 201);
    let conv = app.conversation(&created).await;
    assert_eq!(conv["status"], "solved");
    assert_eq!(timer(&conv, "resolution"), "met");
}

async fn assert_metrics(app: &App, lines: &[&str]) {
    let metrics = app.metrics().await;
    for line in lines {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
}

// ---- Jira ------------------------------------------------------------------

#[test]
fn jira_published_payloads_map_as_published() {
    let contract = parsed_contract();
    let parse = |name: &str| {
        parse_jira(
            &fixture_bytes("jira", name),
            None,
            "tickets",
            &contract,
            now(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let opened = event(parse("issue_created.json"));
    assert_eq!(opened.thread, "BUG-15");
    assert_eq!(opened.subject, "New bug with hook");
    assert_eq!(opened.body, "Fix me please");
    assert_eq!(opened.from, "othello@zulip.com");
    assert_eq!(
        opened.at,
        "2013-03-27T16:53:58.301Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(opened.priority.as_deref(), Some("high"), "Major");
    assert_eq!(
        opened.idempotency_key,
        "jira:issue:10400:jira:issue_created:1364403238369"
    );
    // Neither a portal customer nor from a client's domain: the team's.
    assert_eq!(opened.direction, Some(Direction::Outbound));
    assert_eq!(opened.client, None);

    let comment = event(parse("comment_created.json"));
    assert_eq!(comment.thread, "ZUL-1");
    assert_eq!(comment.body, "Leaving a comment here! :)");
    assert_eq!(comment.from, "Eeshan Garg");
    assert_eq!(
        comment.at,
        "2019-01-07T20:25:51.184Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(comment.direction, Some(Direction::Outbound));
    assert_eq!(
        comment.idempotency_key,
        "jira:comment:10000:comment_created:2019-01-07T20:25:51.184Z"
    );

    let moved = event(parse("issue_updated__status.json"));
    assert_eq!(moved.thread, "TEST-1");
    assert_eq!(
        (moved.direction, moved.status),
        (None, Some(TicketStatus::Open))
    );
    assert_eq!(
        moved.at,
        "2017-01-30T17:32:14.716Z".parse::<DateTime<Utc>>().unwrap()
    );
}

/// Status changes, authors and bodies the whole conversations do not show.
#[test]
fn statuses_authors_and_bodies_map_as_the_readme_says() {
    let contract = parsed_contract();
    let jira = |v: &Value| {
        event(
            parse_jira(
                &serde_json::to_vec(v).unwrap(),
                None,
                "tickets",
                &contract,
                now(),
            )
            .unwrap(),
        )
    };
    let mut waiting = fixture("jira", "issue_updated__status.json");
    waiting["changelog"]["items"][0]["toString"] = json!("Waiting for customer");
    assert_eq!(jira(&waiting).status, Some(TicketStatus::Pending));
    let mut reopened = jira_done("SUP-1", now());
    reopened["issue"]["fields"]["status"]["statusCategory"]["key"] = json!("new");
    reopened["changelog"]["items"][0]["toString"] = json!("Reopened");
    assert_eq!(jira(&reopened).status, Some(TicketStatus::Open));
    let bot = json!({"accountId": "app:1", "accountType": "app", "displayName": "Automation"});
    let mut by_app = jira_comment("SUP-1", "1", bot, true, now());
    // Jira's REST v3 sends comments in Atlassian Document Format.
    by_app["comment"]["body"] = json!({"type": "doc", "version": 1, "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "Restarted."},
                                          {"type": "hardBreak"},
                                          {"type": "text", "text": "All green."}]},
        {"type": "paragraph", "content": [{"type": "text", "text": "— bot"}]}
    ]});
    let by_app = jira(&by_app);
    assert_eq!(by_app.direction, Some(Direction::Auto));
    assert_eq!(by_app.body, "Restarted.\nAll green.\n— bot");
    let from_domain =
        json!({"accountId": "x", "emailAddress": "bob@acme.com", "displayName": "Bob"});
    let inbound = jira(&jira_comment("SUP-1", "2", from_domain, true, now()));
    assert_eq!(
        inbound.direction,
        Some(Direction::Inbound),
        "an address of acme.com"
    );

    let linear = |v: &Value| {
        event(parse_linear(&serde_json::to_vec(v).unwrap(), "tickets", &contract, now()).unwrap())
    };
    assert_eq!(
        linear(&linear_state("canceled", now())).status,
        Some(TicketStatus::Solved)
    );
    assert_eq!(
        linear(&linear_state("started", now())).status,
        Some(TicketStatus::Open)
    );
    let mut app_comment = linear_comment("c-9", json!({"id": "u", "name": "Me"}), now());
    app_comment["actor"] = json!({"id": "oauth", "name": "Zapier", "type": "OauthClient"});
    assert_eq!(linear(&app_comment).direction, Some(Direction::Auto));

    let basecamp = |v: &Value| {
        let body = serde_json::to_vec(v).unwrap();
        event(parse_basecamp(&body, "tickets", &[], &contract, now()).unwrap())
    };
    let mut undone = fixture("basecamp", "todo_completed.json");
    undone["kind"] = json!("todo_uncompleted");
    let undone = basecamp(&undone);
    assert_eq!(
        (undone.direction, undone.status),
        (None, Some(TicketStatus::Open))
    );
    let mut said_client = fixture("basecamp", "comment_created.json");
    said_client["creator"]["client"] = json!(false);
    assert_eq!(
        basecamp(&said_client).direction,
        Some(Direction::Outbound),
        "creator.client false: the team"
    );
}

fn jira_issue(key: &str, created: DateTime<Utc>) -> Value {
    let mut v = fixture("jira", "issue_created.json");
    v["timestamp"] = json!(created.timestamp_millis());
    v["issue"]["id"] = json!("20001");
    v["issue"]["key"] = json!(key);
    v["issue"]["fields"]["project"]["key"] = json!("SUP");
    v["issue"]["fields"]["summary"] = json!("Checkout fails");
    v["issue"]["fields"]["priority"]["name"] = json!("Highest");
    v["issue"]["fields"]["created"] = json!(jira_time(created));
    v["issue"]["fields"]["updated"] = json!(jira_time(created));
    let reporter = json!({"accountId": "qm:1", "accountType": "customer",
                          "emailAddress": "jane@acme.com", "displayName": "Jane"});
    v["issue"]["fields"]["reporter"] = reporter.clone();
    v["user"] = reporter;
    v
}

fn jira_comment(key: &str, id: &str, author: Value, public: bool, created: DateTime<Utc>) -> Value {
    let mut v = fixture("jira", "comment_created.json");
    v["timestamp"] = json!(created.timestamp_millis());
    v["comment"]["id"] = json!(id);
    v["comment"]["author"] = author;
    v["comment"]["body"] = json!(format!("comment {id}"));
    v["comment"]["created"] = json!(jira_time(created));
    v["comment"]["updated"] = json!(jira_time(created));
    v["comment"]["jsdPublic"] = json!(public);
    v["issue"]["key"] = json!(key);
    v["issue"]["fields"]["project"]["key"] = json!("SUP");
    v
}

fn jira_done(key: &str, at: DateTime<Utc>) -> Value {
    let mut v = fixture("jira", "issue_updated__status.json");
    v["timestamp"] = json!(at.timestamp_millis());
    v["issue"]["id"] = json!("20001");
    v["issue"]["key"] = json!(key);
    v["issue"]["fields"]["updated"] = json!(jira_time(at));
    v["issue"]["fields"]["status"]["name"] = json!("Done");
    v["issue"]["fields"]["status"]["statusCategory"]["key"] = json!("done");
    v["changelog"]["items"][0]["toString"] = json!("Done");
    v
}

async fn jira_conversation_end_to_end(database_url: String) {
    let app = App::start(database_url).await;
    let agent = json!({"accountId": "5a1b", "accountType": "atlassian",
                       "emailAddress": "agent@example.com", "displayName": "Agent"});
    let customer = json!({"accountId": "qm:1", "accountType": "customer",
                          "emailAddress": "jane@acme.com", "displayName": "Jane"});
    let conversation = Conversation {
        opened: jira_issue("SUP-1", at(40)),
        team: jira_comment("SUP-1", "30001", agent.clone(), true, at(30)),
        client: jira_comment("SUP-1", "30002", customer, true, at(20)),
        // `jsdPublic: false`: an agent's internal note.
        internal: Some(jira_comment("SUP-1", "30003", agent, false, at(10))),
        solved: jira_done("SUP-1", at(0)),
        thread: "SUP-1",
    };
    play(
        &app,
        |app, body| async move { app.jira(&body).await },
        conversation,
    )
    .await;
    app.served.stop().await;
}

async fn jira_refuses_bad_signatures_and_ignores_what_it_does_not_track(database_url: String) {
    let app = App::start(database_url).await;
    let body = serde_json::to_vec(&jira_issue("SUP-2", at(5))).unwrap();
    let (status, answer) = app.send("/webhooks/jira", &[], &body).await;
    assert_eq!(status, 401, "unsigned: {answer}");
    let forged = format!("sha256={}", sign("not-the-secret", &body));
    let (status, _) = app
        .send("/webhooks/jira", &[("X-Hub-Signature", forged)], &body)
        .await;
    assert_eq!(status, 401, "signed with another secret");
    let mut tampered = body.clone();
    tampered[3] ^= 1;
    let signature = format!("sha256={}", sign(JIRA_SECRET, &body));
    let (status, _) = app
        .send(
            "/webhooks/jira",
            &[("X-Hub-Signature", signature)],
            &tampered,
        )
        .await;
    assert_eq!(status, 401, "body changed after signing");

    let mut worklog = fixture("jira", "comment_created.json");
    worklog["webhookEvent"] = json!("worklog_created");
    let (status, answer) = app.jira(&worklog).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["ignored"], true);
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("keepword tracks")
    );
    let mut odd = worklog.clone();
    odd["webhookEvent"] = json!("something_new");
    assert_eq!(app.jira(&odd).await.0, 202);

    // Signed but unreadable: 422 naming the field, kept raw.
    let mut broken = jira_comment("SUP-2", "1", json!({}), true, at(5));
    broken["issue"]["key"] = Value::Null;
    let (status, answer) = app.jira(&broken).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["fields"][0]["field"], "issue.key");
    let (_, rejected) = app.get("/api/v1/rejected").await;
    let rejected = rejected["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["reason"], "invalid");

    assert_metrics(
        &app,
        &[
            r#"keepword_webhook_events_ignored_total{event="worklog_created",source="jira"} 1"#,
            r#"keepword_webhook_events_ignored_total{event="other",source="jira"} 1"#,
            r#"keepword_ingest_rejected_total{channel="jira",reason="signature"} 3"#,
            r#"keepword_ingest_rejected_total{channel="jira",reason="invalid"} 1"#,
        ],
    )
    .await;
    app.served.stop().await;
}

crate::both_backends!(
    async jira_conversation_end_to_end,
    jira_refuses_bad_signatures_and_ignores_what_it_does_not_track
);

// ---- Linear ----------------------------------------------------------------

#[test]
fn linear_published_payloads_map_as_published() {
    let contract = parsed_contract();
    let parse = |name: &str| {
        parse_linear(&fixture_bytes("linear", name), "tickets", &contract, now())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let opened = event(parse("issue_create_simple.json"));
    assert_eq!(opened.thread, "a4344dc7-7d8d-4b28-a93c-553ac9aba41a");
    assert_eq!(opened.subject, "Very small font in tooltip");
    assert!(
        opened
            .body
            .starts_with("The tooltips at the \"Select Drawing\"")
    );
    assert_eq!(
        opened.at,
        "2023-04-11T09:59:47.094Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(opened.priority, None, "priority 0 is none");
    assert_eq!(
        opened.idempotency_key,
        "linear:issue:a4344dc7-7d8d-4b28-a93c-553ac9aba41a:create:2023-04-11T09:59:47.094Z"
    );
    // No address, no guest flag: a member of the workspace, the team.
    assert_eq!(opened.direction, Some(Direction::Outbound));

    let comment = event(parse("comment_create.json"));
    assert_eq!(
        comment.thread, "f9a37fcf-eb52-44be-a52c-0477f70e9952",
        "the issue's id"
    );
    assert_eq!(comment.from, "Satyam Bansal");
    assert_eq!(
        comment.subject,
        "Thorough Impact Analysis and Cost Realization"
    );
    assert_eq!(comment.direction, Some(Direction::Outbound));

    match parse("issue_update.json") {
        TicketOutcome::Ignored { event, action, .. } => {
            assert_eq!(
                (event.as_str(), action.as_deref()),
                ("Issue", Some("update"))
            );
        }
        other => panic!("a title change moves nothing: {other:?}"),
    }
}

const LINEAR_ISSUE: &str = "5d0c8e2a-0000-4000-8000-00000000c5e1";

fn linear_fresh(mut v: Value) -> Value {
    v["webhookTimestamp"] = json!(Utc::now().timestamp_millis());
    v
}

fn linear_issue(created: DateTime<Utc>) -> Value {
    let mut v = fixture("linear", "issue_create_simple.json");
    v["createdAt"] = json!(rfc3339(created));
    v["data"]["id"] = json!(LINEAR_ISSUE);
    v["data"]["createdAt"] = json!(rfc3339(created));
    v["data"]["updatedAt"] = json!(rfc3339(created));
    v["data"]["priority"] = json!(1);
    v["data"]["team"]["key"] = json!("CS");
    v["actor"] = json!({"id": "u-jane", "name": "Jane", "email": "jane@acme.com", "type": "user"});
    linear_fresh(v)
}

fn linear_comment(id: &str, user: Value, created: DateTime<Utc>) -> Value {
    let mut v = fixture("linear", "comment_create.json");
    v["createdAt"] = json!(rfc3339(created));
    v["data"]["id"] = json!(id);
    v["data"]["createdAt"] = json!(rfc3339(created));
    v["data"]["updatedAt"] = json!(rfc3339(created));
    v["data"]["issueId"] = json!(LINEAR_ISSUE);
    v["data"]["issue"]["id"] = json!(LINEAR_ISSUE);
    v["data"]["user"] = user;
    linear_fresh(v)
}

fn linear_state(state_type: &str, at: DateTime<Utc>) -> Value {
    let mut v = fixture("linear", "issue_update.json");
    v["createdAt"] = json!(rfc3339(at));
    v["data"]["id"] = json!(LINEAR_ISSUE);
    v["data"]["updatedAt"] = json!(rfc3339(at));
    v["data"]["state"]["type"] = json!(state_type);
    v["data"]["team"]["key"] = json!("CS");
    v["updatedFrom"]["stateId"] = json!("a2530cac-36a0-4b6d-9af0-6357784035d4");
    linear_fresh(v)
}

async fn linear_conversation_end_to_end(database_url: String) {
    let app = App::start(database_url).await;
    let member = json!({"id": "u-agent", "name": "Agent", "email": "agent@example.com"});
    // A guest is the client even without an address from its domains.
    let guest = json!({"id": "u-guest", "name": "Guest", "guest": true});
    let conversation = Conversation {
        opened: linear_issue(at(40)),
        team: linear_comment("c-1", member, at(30)),
        client: linear_comment("c-2", guest, at(20)),
        internal: None,
        solved: linear_state("completed", at(0)),
        thread: LINEAR_ISSUE,
    };
    play(
        &app,
        |app, body| async move { app.linear(&body).await },
        conversation,
    )
    .await;
    app.served.stop().await;
}

async fn linear_refuses_forgeries_and_replays(database_url: String) {
    let app = App::start(database_url).await;
    let app = &app;
    let post = |body: Vec<u8>, signature: String| async move {
        app.send(
            "/webhooks/linear",
            &[("Linear-Signature", signature)],
            &body,
        )
        .await
    };
    let fresh = serde_json::to_vec(&linear_issue(at(5))).unwrap();
    let (status, answer) = app.send("/webhooks/linear", &[], &fresh).await;
    assert_eq!(status, 401, "unsigned: {answer}");
    let (status, _) = post(fresh.clone(), sign("another-secret", &fresh)).await;
    assert_eq!(status, 401, "another secret");

    // Signed correctly, but sent more than a minute ago (or ahead).
    for skew in [-61_000, 61_000] {
        let mut v = linear_issue(at(5));
        v["webhookTimestamp"] = json!(Utc::now().timestamp_millis() + skew);
        let body = serde_json::to_vec(&v).unwrap();
        let (status, answer) = post(body.clone(), sign(LINEAR_SECRET, &body)).await;
        assert_eq!(status, 401, "{skew} ms: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("replay"),
            "{answer}"
        );
    }
    // The published body as it is: signed, but from 2023.
    let published = fixture_bytes("linear", "issue_create_simple.json");
    let (status, _) = post(published.clone(), sign(LINEAR_SECRET, &published)).await;
    assert_eq!(status, 401, "a 2023 delivery is a replay");

    let (status, answer) = app
        .linear(&linear_fresh(fixture("linear", "issue_update.json")))
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["ignored"], true);

    assert_metrics(
        app,
        &[
            r#"keepword_webhook_events_ignored_total{event="Issue",source="linear"} 1"#,
            r#"keepword_ingest_rejected_total{channel="linear",reason="signature"} 5"#,
        ],
    )
    .await;
}

crate::both_backends!(
    async linear_conversation_end_to_end,
    linear_refuses_forgeries_and_replays
);

// ---- Basecamp --------------------------------------------------------------

#[test]
fn basecamp_published_payloads_map_as_published() {
    let contract = parsed_contract();
    let parse = |name: &str| {
        parse_basecamp(
            &fixture_bytes("basecamp", name),
            "tickets",
            &[],
            &contract,
            now(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let message = event(parse("message_created.json"));
    assert_eq!(message.thread, "2957043/430680605");
    assert_eq!(message.subject, "Message Title");
    assert_eq!(message.body, "message content", "HTML shown as text");
    assert_eq!(message.from, "tomaszkolek0@gmail.com");
    assert_eq!(
        message.client.as_deref(),
        Some("acme"),
        "project 2957043 is acme's"
    );
    assert_eq!(
        message.at,
        "2017-03-15T05:32:23.372Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(
        message.idempotency_key,
        "basecamp:event:662184942:message_created:2017-03-15T05:32:23.372Z"
    );
    // Company 796227 is not among the team's (none configured here).
    assert_eq!(message.direction, Some(Direction::Inbound));

    let todo = event(parse("todo_created.json"));
    let comment = event(parse("comment_created.json"));
    let done = event(parse("todo_completed.json"));
    assert_eq!(todo.thread, "2957043/427055624");
    assert_eq!(
        comment.thread, todo.thread,
        "a comment joins its parent's conversation"
    );
    assert_eq!(comment.subject, "New task");
    assert_eq!(comment.body, "Comment");
    assert_eq!(done.thread, todo.thread);
    assert_eq!(
        (done.direction, done.status),
        (None, Some(TicketStatus::Solved))
    );

    let team = parse_basecamp(
        &fixture_bytes("basecamp", "comment_created.json"),
        "tickets",
        &[796227],
        &contract,
        now(),
    )
    .unwrap();
    assert_eq!(
        event(team).direction,
        Some(Direction::Outbound),
        "the team's company"
    );
}

fn basecamp(name: &str, event_id: u64, company: u64, at: DateTime<Utc>) -> Value {
    let mut v = fixture("basecamp", name);
    v["id"] = json!(event_id);
    v["created_at"] = json!(rfc3339(at));
    v["recording"]["created_at"] = json!(rfc3339(at));
    v["recording"]["updated_at"] = json!(rfc3339(at));
    v["creator"]["company"]["id"] = json!(company);
    v["recording"]["creator"]["company"]["id"] = json!(company);
    if name == "comment_created.json" {
        v["recording"]["id"] = json!(event_id);
        v["recording"]["parent"]["title"] = json!("Checkout is down");
    } else {
        v["recording"]["title"] = json!("Checkout is down");
    }
    v
}

async fn basecamp_conversation_end_to_end(database_url: String) {
    let app = App::start(database_url).await;
    let client_company = 796227;
    // A comment clients cannot see answers nobody.
    let mut hidden = basecamp("comment_created.json", 4, TEAM_COMPANY, at(10));
    hidden["recording"]["visible_to_clients"] = json!(false);
    let conversation = Conversation {
        opened: basecamp("todo_created.json", 1, client_company, at(40)),
        team: basecamp("comment_created.json", 2, TEAM_COMPANY, at(30)),
        client: basecamp("comment_created.json", 3, client_company, at(20)),
        internal: Some(hidden),
        solved: basecamp("todo_completed.json", 5, TEAM_COMPANY, at(0)),
        thread: "2957043/427055624",
    };
    play(
        &app,
        |app, body| async move { app.basecamp(&body).await },
        conversation,
    )
    .await;
    app.served.stop().await;
}

async fn basecamp_refuses_wrong_urls_and_ignores_what_it_does_not_track(database_url: String) {
    let app = App::start(database_url).await;
    let body = serde_json::to_vec(&basecamp("todo_created.json", 9, 796227, at(5))).unwrap();
    let prefix = &BASECAMP_SECRET[..BASECAMP_SECRET.len() - 1];
    for wrong in ["wrong", prefix, &format!("{BASECAMP_SECRET}x")] {
        let (status, answer) = app
            .send(&format!("/webhooks/basecamp/{wrong}"), &[], &body)
            .await;
        assert_eq!(status, 404, "{wrong}: {answer}");
        assert_eq!(answer["error"], "no Basecamp webhook at this URL");
    }
    let mut renamed = fixture("basecamp", "message_created.json");
    renamed["kind"] = json!("message_title_changed");
    let (status, answer) = app.basecamp(&renamed).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["ignored"], true);

    let mut broken = basecamp("comment_created.json", 10, 796227, at(5));
    broken["recording"]["parent"] = Value::Null;
    let (status, answer) = app.basecamp(&broken).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["fields"][0]["field"], "recording.parent.id");

    assert_metrics(
        &app,
        &[
        r#"keepword_webhook_events_ignored_total{event="message_title_changed",source="basecamp"} 1"#,
        r#"keepword_ingest_rejected_total{channel="basecamp",reason="signature"} 3"#,
        r#"keepword_ingest_rejected_total{channel="basecamp",reason="invalid"} 1"#,
        ],
    )
    .await;
    app.served.stop().await;
}

crate::both_backends!(
    async basecamp_conversation_end_to_end,
    basecamp_refuses_wrong_urls_and_ignores_what_it_does_not_track
);

// ---- The vendors' verifiers as oracles --------------------------------------

/// One signature check for tests/oracle/verify.mjs.
struct Case {
    source: &'static str,
    secret: &'static str,
    body: Vec<u8>,
    signature: String,
    what: &'static str,
}

/// The vendors' verdicts (tests/oracle: `npm ci --prefix tests/oracle`, which
/// scripts/test runs): (accepted, what their library would sign).
fn oracle(cases: &[Case]) -> Vec<(bool, Option<String>)> {
    use std::io::Write;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle");
    assert!(
        dir.join("node_modules/@linear/sdk").is_dir(),
        "the oracles are not installed: npm ci --prefix tests/oracle (scripts/test does)"
    );
    let input = json!({"cases": cases.iter().map(|c| json!({
        "source": c.source, "secret": c.secret, "signature": c.signature,
        "body": hex::encode(&c.body),
    })).collect::<Vec<_>>()});
    let mut child = std::process::Command::new("node")
        .arg("verify.mjs")
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (Debian package nodejs)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "verify.mjs failed");
    let verdicts: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    verdicts
        .iter()
        .map(|v| (v["ok"] == true, v["sign"].as_str().map(str::to_owned)))
        .collect()
}

#[test]
fn signature_checks_agree_with_the_vendors_libraries() {
    let mut cases = Vec::new();
    let linear_case = |body: &Value, secret: &'static str, what: &'static str| {
        let body = serde_json::to_vec(body).unwrap();
        Case {
            source: "linear",
            secret: LINEAR_SECRET,
            signature: sign(secret, &body),
            body,
            what,
        }
    };
    let fresh = linear_issue(at(5));
    cases.push(linear_case(&fresh, LINEAR_SECRET, "linear: signed, fresh"));
    cases.push(linear_case(
        &fresh,
        "another-secret",
        "linear: another secret",
    ));
    let mut tampered = linear_case(&fresh, LINEAR_SECRET, "linear: body changed after signing");
    tampered.body[2] ^= 1;
    cases.push(tampered);
    for (skew, what) in [
        (-50_000, "linear: sent 50 s ago"),
        (-61_000, "linear: sent 61 s ago"),
        (61_000, "linear: 61 s ahead"),
    ] {
        let mut v = fresh.clone();
        v["webhookTimestamp"] = json!(Utc::now().timestamp_millis() + skew);
        cases.push(linear_case(&v, LINEAR_SECRET, what));
    }
    let published = fixture("linear", "comment_create.json");
    cases.push(linear_case(
        &published,
        LINEAR_SECRET,
        "linear: published, from 2023",
    ));

    for name in [
        "issue_created.json",
        "comment_created.json",
        "issue_updated__status.json",
    ] {
        let body = fixture_bytes("jira", name);
        let good = format!("sha256={}", sign(JIRA_SECRET, &body));
        let jira = |signature: String, what| Case {
            source: "jira",
            secret: JIRA_SECRET,
            body: body.clone(),
            signature,
            what,
        };
        cases.push(jira(good.clone(), "jira: signed as published"));
        cases.push(jira(
            format!("sha256={}", sign("another-secret", &body)),
            "jira: another secret",
        ));
        cases.push(jira(
            good.trim_start_matches("sha256=").to_owned(),
            "jira: no sha256= prefix",
        ));
        cases.push(jira(good[..good.len() - 2].to_owned(), "jira: truncated"));
        let mut tampered = jira(good, "jira: body changed after signing");
        tampered.body[5] ^= 1;
        cases.push(tampered);
    }

    let verdicts = oracle(&cases);
    assert_eq!(verdicts.len(), cases.len());
    let mut accepted = 0;
    for (case, (theirs, their_signature)) in cases.iter().zip(verdicts) {
        let ours = match case.source {
            "linear" => verify_linear(
                case.secret.as_bytes(),
                &case.body,
                Some(&case.signature),
                Utc::now(),
            ),
            _ => verify_jira_signature(case.secret.as_bytes(), &case.body, Some(&case.signature)),
        }
        .is_ok();
        assert_eq!(
            ours, theirs,
            "{}: keepword {ours}, vendor {theirs}",
            case.what
        );
        if let Some(theirs) = their_signature {
            let ours = format!("sha256={}", sign(case.secret, &case.body));
            assert_eq!(
                ours, theirs,
                "{}: the signature their library makes",
                case.what
            );
        }
        accepted += usize::from(ours);
    }
    // Fresh and 50 s old (Linear), and the three published bodies (Jira).
    assert_eq!(accepted, 5);
}
