//! Slack shared channels as a client channel, over HTTP on both backends:
//! published Slack payloads (tests/fixtures/slack, each with its source and
//! licence) first as they are, then with their channel, times, ids and
//! workspaces changed to the test's for one whole conversation — a client
//! from another workspace (Slack Connect) asks at the top level, the
//! dashboard shows it, keepword acknowledges in the thread through a local
//! stand-in for Slack's Web API (which answers `ratelimited` once), the team
//! answers in the thread and the first response is met. Signatures are
//! computed here and cross-checked with the `slack-sdk` package's verifier.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use keepword::clock::Clock;
use keepword::config::{Secret, Settings, SlackSettings};
use keepword::ingest::webhook::{
    SlackTeam, TicketOutcome, parse_slack, slack_challenge, slack_signature, verify_slack,
};
use keepword::sla::Direction;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common;
use crate::ingest_tickets::{post_raw, timer};
use crate::support;

const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
const BOT_TOKEN: &str = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";
/// Our workspace: its members are the team.
const AGENCY: &str = "T0AGENCY";
/// The client's own workspace, connected to ours by Slack Connect.
const CLIENT_TEAM: &str = "T0ACME";
const CHANNEL: &str = "C0ACME123";
/// A channel the bot was never invited to: Slack answers `channel_not_found`.
const GONE: &str = "C0GONE404";

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name)).unwrap()
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/slack")
            .join(name),
    )
    .unwrap()
}

/// The fast contract (minute windows, 24x7) with a Slack channel that
/// questions may use, claimed by acme with both its channels.
fn contract(dir: &Path, hooks: &str) -> PathBuf {
    let path = common::fast_contract(dir, hooks);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "[channels.email]",
            "[channels.slack]\nkind = \"slack\"\ndescription = \"#acme-support, shared with you\"\n\n[channels.email]",
        )
        .replace(
            "channels = [\"email\"]",
            "channels = [\"email\", \"slack\"]",
        );
    let text = format!(
        "{text}slack_channels = [\"{CHANNEL}\", \"{GONE}\"]\nslack_teams = [\"{CLIENT_TEAM}\"]\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn parsed_contract() -> keepword::contract::Contract {
    let dir = tempfile::tempdir().unwrap();
    let path = contract(dir.path(), "http://127.0.0.1:9/hook");
    keepword::contract::parse(&std::fs::read_to_string(path).unwrap(), "contract.toml").unwrap()
}

/// One `chat.postMessage` as the stand-in received it.
#[derive(Debug, Clone)]
struct Posted {
    authorization: String,
    body: Value,
    answered: &'static str,
}

/// A stand-in for Slack's Web API on loopback: records every request to
/// `/chat.postMessage`; answers the first one `ratelimited` (HTTP 429,
/// `Retry-After: 1`), a post in [`GONE`] `channel_not_found`, anything else
/// `ok`.
struct SlackApi {
    base: String,
    posted: Arc<Mutex<Vec<Posted>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SlackApi {
    async fn start() -> SlackApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let posted: Arc<Mutex<Vec<Posted>>> = Arc::default();
        let p = posted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let p = p.clone();
                tokio::spawn(async move {
                    let Some((head, body)) = read_request(&mut sock).await else {
                        return;
                    };
                    let authorization = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("authorization")
                                .then(|| v.trim().to_owned())
                        })
                        .unwrap_or_default();
                    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let first = p.lock().unwrap().is_empty();
                    let (status, extra, answer, answered) = if !head
                        .starts_with("POST /chat.postMessage ")
                    {
                        (
                            "404 Not Found",
                            "",
                            json!({"ok": false, "error": "unknown_method"}),
                            "unknown_method",
                        )
                    } else if first {
                        (
                            "429 Too Many Requests",
                            "Retry-After: 1\r\n",
                            json!({"ok": false, "error": "ratelimited"}),
                            "ratelimited",
                        )
                    } else if body["channel"] == GONE {
                        (
                            "200 OK",
                            "",
                            json!({"ok": false, "error": "channel_not_found"}),
                            "channel_not_found",
                        )
                    } else {
                        (
                            "200 OK",
                            "",
                            json!({"ok": true, "channel": body["channel"], "ts": "1700000000.000100"}),
                            "ok",
                        )
                    };
                    p.lock().unwrap().push(Posted {
                        authorization,
                        body,
                        answered,
                    });
                    let answer = answer.to_string();
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        SlackApi { base, posted, task }
    }

    fn posted(&self) -> Vec<Posted> {
        self.posted.lock().unwrap().clone()
    }
}

impl Drop for SlackApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP request with a Content-Length: its head and its body.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())
                        .flatten()
                })
                .unwrap_or(0);
            while buf.len() < i + 4 + length {
                let n = sock.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some((head, buf[i + 4..i + 4 + length].to_vec()));
        }
    }
}

struct App {
    served: common::app::Served,
    slack: SlackApi,
    _dir: tempfile::TempDir,
    _hooks: support::HookReceiver,
}

impl std::ops::Deref for App {
    type Target = common::app::Served;
    fn deref(&self) -> &common::app::Served {
        &self.served
    }
}

impl App {
    async fn start(database_url: String) -> App {
        let hooks = support::HookReceiver::start(0).await;
        let slack = SlackApi::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            contract: contract(dir.path(), &hooks.url),
            ..common::app::dashboard_settings(&database_url)
        };
        settings.smtp.port = support::free_port();
        settings.slack = Some(SlackSettings {
            signing_secret: Secret::new(SIGNING_SECRET),
            signing_secret_file: None,
            bot_token: Secret::new(BOT_TOKEN),
            bot_token_file: None,
            team_ids: vec![AGENCY.into()],
            api_url: slack.base.clone(),
            channel: None,
        });
        App {
            served: common::app::serve(settings, Clock::system()).await,
            slack,
            _dir: dir,
            _hooks: hooks,
        }
    }

    /// Sends `body` signed at `stamp` (seconds since 1970), with `extra`
    /// headers: (status, JSON answer).
    async fn send_at(&self, body: &[u8], stamp: i64, extra: &[(&str, &str)]) -> (u16, Value) {
        let stamp = stamp.to_string();
        let signature = slack_signature(SIGNING_SECRET.as_bytes(), &stamp, body);
        let mut headers = vec![
            ("X-Slack-Request-Timestamp", stamp),
            ("X-Slack-Signature", signature),
        ];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        self.raw(body, &headers).await
    }

    async fn raw(&self, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
        post_raw(&self.served, "/webhooks/slack", headers, body).await
    }

    async fn send(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        self.send_at(&bytes, Utc::now().timestamp(), &[]).await
    }

    async fn conversation(&self, id: i64) -> Value {
        let (status, conv) = self.get(&format!("/api/v1/conversations/{id}")).await;
        assert_eq!(status, 200, "{conv}");
        conv
    }
}

/// Slack's `ts` for an instant `seconds_ago` before now.
fn ts(seconds_ago: i64) -> String {
    let at = Utc::now() - chrono::Duration::seconds(seconds_ago);
    format!("{}.{:06}", at.timestamp(), at.timestamp_subsec_micros())
}

/// A published message, moved into the client's channel at `ts` as an
/// event of its own: `thread` makes it a reply, `team` its author's
/// workspace (as Slack Connect sends it: `user_team` and `source_team`).
fn message(base: &str, event_id: &str, ts: &str, thread: Option<&str>, team: &str) -> Value {
    let mut v = fixture(base);
    v["event_id"] = json!(event_id);
    v["event_time"] = json!(ts.split('.').next().unwrap().parse::<i64>().unwrap());
    let e = &mut v["event"];
    e["channel"] = json!(CHANNEL);
    e["ts"] = json!(ts);
    e["event_ts"] = json!(ts);
    if let Some(t) = thread {
        e["thread_ts"] = json!(t);
    }
    if e.get("user").is_some() {
        e["team"] = json!(team);
        e["user_team"] = json!(team);
        e["source_team"] = json!(team);
    }
    v["is_ext_shared_channel"] = json!(team != AGENCY);
    v
}

fn outcome_event(outcome: TicketOutcome) -> keepword::ingest::IncomingEvent {
    match outcome {
        TicketOutcome::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

// ---- the published payloads, as published -----------------------------------

#[test]
fn published_payloads_map_as_published() {
    let contract = parsed_contract();
    let team = [AGENCY.to_owned()];
    let now: DateTime<Utc> = "2025-06-01T00:00:00Z".parse().unwrap();
    let parse = |name: &str| {
        parse_slack(
            &fixture_bytes(name),
            "slack",
            SlackTeam { team_ids: &team },
            &contract,
            now,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let plain = outcome_event(parse("message_with_normal_text.json"));
    assert_eq!(plain.idempotency_key, "Ev079SP4TP1P");
    assert_eq!(plain.thread, "C06NRA6JLER:1719209506.817929");
    assert_eq!(plain.subject, "Hello, this is a normal text message");
    assert_eq!(plain.from, "U06NU4E26M9");
    // T06NRA6HM3P is not ours, and nobody claims the channel or the
    // workspace: a client, unknown (the contract tracks unknown senders).
    assert_eq!(plain.direction, Some(Direction::Inbound));
    assert_eq!(plain.client.as_deref(), Some("unknown"));
    assert_eq!(plain.at.timestamp(), 1_719_209_506);

    let mentions = outcome_event(parse("message_with_channel_and_user_mentions.json"));
    assert_eq!(
        mentions.body,
        "@U074VRHQ11T #general message with both channel and user mentions"
    );

    let bot = outcome_event(parse("message_from_slack_integration_bot.json"));
    assert_eq!(bot.direction, Some(Direction::Auto));
    assert_eq!(bot.client, None, "a bot opens nothing");
    assert_eq!(bot.from, "B06NWMNUQ3W (ClickUp)");
    assert_eq!(bot.body, "Task status changed from `complete` to `to do`");

    for (name, label) in [
        ("message_changed.json", "message_changed"),
        ("message_deleted.json", "message_deleted"),
        ("message_replied.json", "message_replied"),
    ] {
        match parse(name) {
            TicketOutcome::Ignored { event, .. } => assert_eq!(event, label, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        slack_challenge(&fixture_bytes("challenge_handshake_payload.json")).as_deref(),
        Some("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    );
}

/// slack-sdk's `SignatureVerifier` on the same requests keepword checks.
fn sdk_verdicts(cases: &[(String, String, String)]) -> Vec<(bool, String)> {
    let cases: Vec<Value> = cases
        .iter()
        .map(|(t, s, b)| json!({"timestamp": t, "signature": s, "body": b}))
        .collect();
    let input = json!({"secret": SIGNING_SECRET, "cases": cases}).to_string();
    let out = support::run_with_input(
        support::python().as_os_str(),
        "tests/support/verify_slack.py",
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "verify_slack.py (slack-sdk, from tests/support/requirements.txt): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|c| {
            (
                c["valid"].as_bool().unwrap(),
                c["expected"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn signatures_agree_with_slack_sdk() {
    let body = String::from_utf8(fixture_bytes("message_with_normal_text.json")).unwrap();
    let now = Utc::now();
    let fresh = now.timestamp().to_string();
    let old = (now.timestamp() - 301).to_string();
    let sign = |t: &str, b: &str| slack_signature(SIGNING_SECRET.as_bytes(), t, b.as_bytes());
    let tampered = body.replace("normal text", "forged text");
    let cases = vec![
        // (timestamp, signature, body)
        (fresh.clone(), sign(&fresh, &body), body.clone()),
        (old.clone(), sign(&old, &body), body.clone()),
        (fresh.clone(), sign(&fresh, &body), tampered.clone()),
        (
            fresh.clone(),
            sign(&fresh, &body).replace("v0=", "v1="),
            body.clone(),
        ),
        (
            fresh.clone(),
            "v0=".to_owned() + &"0".repeat(64),
            body.clone(),
        ),
    ];
    let sdk = sdk_verdicts(&cases);
    for ((t, s, b), (sdk_valid, sdk_expected)) in cases.iter().zip(&sdk) {
        let ours = verify_slack(
            SIGNING_SECRET.as_bytes(),
            b.as_bytes(),
            Some(s),
            Some(t),
            now,
        );
        assert_eq!(ours.is_ok(), *sdk_valid, "{t} {s}: keepword {ours:?}");
        assert_eq!(&sign(t, b), sdk_expected, "the same signature for {t}");
    }
    assert_eq!(
        sdk.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [true, false, false, false, false]
    );
}

// ---- one whole conversation ----------------------------------------------------

async fn slack_conversation_end_to_end(url: String) {
    let app = App::start(url).await;

    // Slack checks the request URL once, signed like everything else.
    let (status, answer) = app
        .send_at(
            &fixture_bytes("challenge_handshake_payload.json"),
            Utc::now().timestamp(),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    // The contract page names the channel in words.
    let contract_page = app
        .http
        .get(format!("{}/contract", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        contract_page.contains("on Slack, in <strong>#acme-support, shared with you</strong>"),
        "{contract_page}"
    );

    // The client asks at the top level, from its own workspace.
    let asked = ts(30);
    let opening = message(
        "message_with_normal_text.json",
        "Ev0OPEN0001",
        &asked,
        None,
        CLIENT_TEAM,
    );
    let (status, created) = app.send(&opening).await;
    assert_eq!(status, 200, "stored, then 200: {created}");
    assert_eq!(created["duplicate"], false);
    let id = created["conversation_id"].as_i64().expect("a conversation");
    let conv = app.conversation(id).await;
    assert_eq!(conv["thread"], format!("{CHANNEL}:{asked}"));
    assert_eq!(conv["client"], "acme", "the channel is acme's");
    assert_eq!(conv["channel"], "slack");
    assert_eq!(conv["subject"], "Hello, this is a normal text message");
    assert_eq!(conv["channel_mismatch"], false);
    assert_eq!(timer(&conv, "first_response"), "running");
    assert_eq!(conv["messages"][0]["from"], "U06NU4E26M9");

    // Slack retries the same delivery: a duplicate, not a second message.
    let bytes = serde_json::to_vec(&opening).unwrap();
    let (status, again) = app
        .send_at(
            &bytes,
            Utc::now().timestamp(),
            &[("X-Slack-Retry-Num", "1")],
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message_id"], created["message_id"]);

    // The dashboard shows it.
    let cookie = app.sign_in().await;
    let (status, queue) = app.page(&cookie, "/").await;
    assert_eq!(status, 200);
    assert!(
        queue.contains("Hello, this is a normal text message"),
        "{queue}"
    );

    // The acknowledgement is posted in its thread: refused once
    // (`ratelimited`, Retry-After 1 s), then posted once.
    let posted = support::eventually(Duration::from_secs(20), || {
        app.slack.posted().iter().any(|p| p.answered == "ok")
    })
    .await;
    assert!(posted, "no acknowledgement: {:?}", app.slack.posted());
    let all = app.slack.posted();
    assert_eq!(all[0].answered, "ratelimited");
    assert_eq!(all.iter().filter(|p| p.answered == "ok").count(), 1);
    let ack = all.iter().find(|p| p.answered == "ok").unwrap();
    assert_eq!(ack.authorization, format!("Bearer {BOT_TOKEN}"));
    assert_eq!(ack.body["channel"], CHANNEL);
    assert_eq!(ack.body["thread_ts"], asked.as_str());
    let text = ack.body["text"].as_str().unwrap();
    assert!(text.contains("*Question*"), "{text}");
    assert!(text.contains("within 1 hour"), "the promise: {text}");
    assert!(text.contains("/status/"), "the status link: {text}");
    assert!(
        text.contains("CET") || text.contains("CEST"),
        "the due in the contract's zone: {text}"
    );
    let conv = app.conversation(id).await;
    let auto: Vec<&Value> = conv["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "auto")
        .collect();
    assert_eq!(auto.len(), 1, "the team's copy of the acknowledgement");
    let token = text
        .split("/status/")
        .nth(1)
        .and_then(|rest| rest.split('|').next())
        .unwrap();
    let copy = auto[0]["body"].as_str().unwrap();
    assert!(copy.contains("/status/"), "{copy}");
    assert!(
        !copy.contains(token),
        "the copy hides the status token: {copy}"
    );
    assert_eq!(
        timer(&conv, "first_response"),
        "running",
        "a bot answers nobody"
    );

    // A bot posts in the thread: automatic, it answers nobody either.
    let bot = message(
        "message_from_slack_integration_bot.json",
        "Ev0BOT00001",
        &ts(20),
        Some(&asked),
        CLIENT_TEAM,
    );
    let (status, r) = app.send(&bot).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["conversation_id"], id);
    assert_eq!(
        timer(&app.conversation(id).await, "first_response"),
        "running"
    );

    // The team answers in the thread: the first response is met.
    let answer = message(
        "message_with_channel_and_user_mentions.json",
        "Ev0TEAM0001",
        &ts(10),
        Some(&asked),
        AGENCY,
    );
    let (status, r) = app.send(&answer).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["conversation_id"], id);
    let conv = app.conversation(id).await;
    assert_eq!(timer(&conv, "first_response"), "met");
    let team = conv["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["direction"] == "outbound")
        .expect("the team's answer");
    assert_eq!(
        team["body"],
        "@U074VRHQ11T #general message with both channel and user mentions"
    );
    assert_eq!(team["from"], "U06NU4E26M9");

    // The client writes again, with markup a page must not run.
    let mut again = message(
        "message_with_normal_text.json",
        "Ev0CLIENT002",
        &ts(5),
        Some(&asked),
        CLIENT_TEAM,
    );
    again["event"]["text"] = json!(
        "&lt;script&gt;alert(1)&lt;/script&gt; *still* broken, see <https://acme.test/x|the log>"
    );
    let (status, r) = app.send(&again).await;
    assert_eq!(status, 200, "{r}");
    let conv = app.conversation(id).await;
    let again = conv["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["from"] == "U06NU4E26M9" && m["body"].as_str().unwrap().contains("broken"))
        .expect("the client's second message")
        .clone();
    assert_eq!(again["direction"], "inbound", "{conv:#}");
    assert_eq!(
        again["body"],
        "<script>alert(1)</script> still broken, see the log (https://acme.test/x)"
    );
    assert_eq!(timer(&conv, "first_response"), "met");
    let (status, page) = app.page(&cookie, &format!("/conversations/{id}")).await;
    assert_eq!(status, 200);
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; still broken, see the log (https:&#x2f;&#x2f;acme.test&#x2f;x)")
            || page.contains("&lt;script&gt;alert(1)&lt;/script&gt; still broken, see the log (https://acme.test/x)"),
        "the text, readable and escaped: {page}"
    );

    // Edits, deletions and thread notices are answered 200 and ignored.
    for name in [
        "message_changed.json",
        "message_deleted.json",
        "message_replied.json",
    ] {
        let (status, r) = app.send(&fixture(name)).await;
        assert_eq!(status, 200, "{name}: {r}");
        assert_eq!(r["ignored"], true, "{name}: {r}");
    }
    let conv = app.conversation(id).await;
    assert_eq!(conv["messages"].as_array().unwrap().len(), 5, "{conv:#}");

    // A forged signature and a replayed (old) request: 401, nothing read.
    let (status, _) = app
        .raw(
            &bytes,
            &[
                (
                    "X-Slack-Request-Timestamp",
                    Utc::now().timestamp().to_string(),
                ),
                ("X-Slack-Signature", format!("v0={}", "ab".repeat(32))),
            ],
        )
        .await;
    assert_eq!(status, 401);
    let (status, r) = app.send_at(&bytes, Utc::now().timestamp() - 600, &[]).await;
    assert_eq!(status, 401, "{r}");
    assert!(
        r.to_string().contains("5 minutes"),
        "the refusal says why: {r}"
    );
    let (status, _) = app.raw(&bytes, &[]).await;
    assert_eq!(status, 401, "unsigned");

    let metrics = app.metrics().await;
    for line in [
        r#"keepword_webhook_events_ignored_total{event="message_changed",source="slack"} 1"#,
        r#"keepword_webhook_events_ignored_total{event="message_deleted",source="slack"} 1"#,
        r#"keepword_webhook_events_ignored_total{event="message_replied",source="slack"} 1"#,
        r#"keepword_ingest_rejected_total{channel="slack",reason="signature"} 3"#,
        r#"keepword_acknowledgements_total{result="sent"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    assert!(
        !metrics.contains(BOT_TOKEN),
        "the token is nowhere to be seen"
    );

    // A client asks in a channel the bot cannot post in: Slack refuses for
    // good, and the Connections page says so and what to do.
    let mut lost = message(
        "message_with_normal_text.json",
        "Ev0GONE0001",
        &ts(1),
        None,
        CLIENT_TEAM,
    );
    lost["event"]["channel"] = json!(GONE);
    let (status, r) = app.send(&lost).await;
    assert_eq!(status, 200, "{r}");
    let gone_id = r["conversation_id"].as_i64().unwrap();
    let refused = support::eventually(Duration::from_secs(20), || {
        app.slack
            .posted()
            .iter()
            .any(|p| p.answered == "channel_not_found")
    })
    .await;
    assert!(refused, "{:?}", app.slack.posted());
    let shown = support::eventually_async(Duration::from_secs(10), || async {
        let (_, page) = app.page(&cookie, "/connections").await;
        page.contains("channel_not_found") && page.contains("Needs a fix")
    })
    .await;
    let (_, page) = app.page(&cookie, "/connections").await;
    assert!(shown, "{page}");
    assert!(
        page.contains(&format!("/conversations/{gone_id}")),
        "{page}"
    );
    assert!(page.contains("invite the app"), "{page}");
    assert!(!page.contains(BOT_TOKEN), "{page}");

    app.served.stop().await;
}

crate::both_backends!(async slack_conversation_end_to_end);
