//! Email end to end, against real servers: Dovecot (IMAP) feeding the
//! service, and an SMTP server receiving the acknowledgements. Also the
//! built binary killed with -9 in the middle of ingesting 5,000 messages.

use crate::common;
use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use keepword::clock::Clock;
use keepword::config::{MailboxSettings, Secret, Settings, Tls};
use keepword::contract::Timer;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use support::dovecot::Dovecot;
use support::{SmtpServer, eventually, eventually_async};

const USER: &str = "support@test.local";
const PASS: &str = "supportpw";
const TOKEN: &str = "test-token";

pub(crate) fn mailbox(port: u16) -> MailboxSettings {
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
        sent: Some("Sent".into()),
        team_addresses: vec!["@example.com".into()],
        ca_file: None,
        auth: Default::default(),
        oauth: None,
        sasl: None,
    }
}

fn contract_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml")
}

fn mail(from: &str, to: &str, subject: &str, id: &str, extra: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {id}\r\nDate: {}\r\n{extra}\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease change the footer.\r\n",
        Utc::now().with_nanosecond(0).unwrap().to_rfc2822()
    )
    .into_bytes()
}

async fn app(
    db: String,
    imap_port: u16,
    smtp_port: u16,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: db,
        contract: contract_path(),
        api_tokens: vec![Secret::new(TOKEN)],
        mailboxes: vec![mailbox(imap_port)],
        ..Default::default()
    };
    settings.smtp.port = smtp_port;
    let common::app::Served {
        base, token, task, ..
    } = common::app::serve(settings, Clock::system()).await;
    (base, token, task)
}

async fn conversations(base: &str) -> Vec<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/conversations?limit=1000"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["conversations"].as_array().unwrap().clone()
}

async fn new_mail_is_acknowledged_once_and_the_reply_meets_first_response(db: String) {
    let dovecot = Dovecot::start(&[(USER, PASS)]);
    let smtp = SmtpServer::start();
    let (base, token, task) = app(db, dovecot.port, smtp.port).await;

    let appended = Instant::now();
    let sent_at = Utc::now();
    dovecot.append(
        USER,
        PASS,
        "INBOX",
        &mail(
            "Jane <jane@acme.com>",
            "support@example.com",
            "Footer",
            "<e1@acme.com>",
            "",
        ),
    );
    assert!(
        eventually(Duration::from_secs(15), || smtp.received().len() == 1).await,
        "no acknowledgement arrived"
    );
    eprintln!(
        "APPEND → acknowledgement at the SMTP server: {:?}",
        appended.elapsed()
    );
    let ack = &smtp.received()[0];
    assert_eq!(ack.rcpt_tos, ["jane@acme.com"]);
    assert_eq!(
        ack.header("Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(ack.header("In-Reply-To").as_deref(), Some("<e1@acme.com>"));
    assert_eq!(
        ack.header("X-Auto-Response-Suppress").as_deref(),
        Some("All")
    );
    let contract = keepword::service::LoadedContract::load(&contract_path())
        .unwrap()
        .contract;
    let due = contract
        .due(
            "question",
            Some("acme"),
            Timer::FirstResponse,
            sent_at.with_nanosecond(0).unwrap(),
        )
        .unwrap();
    let due_words = due.format("%A %-d %B %Y, %H:%M %Z").to_string();
    assert!(
        ack.data.contains(&due_words),
        "acknowledgement names the due {due_words}:\n{}",
        ack.data
    );

    let list = conversations(&base).await;
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_i64().unwrap();
    assert_eq!(list[0]["client"], "acme");

    // The client answers the acknowledgement: same conversation, no new ack.
    let ack_id = ack.header("Message-ID").unwrap();
    dovecot.append(
        USER,
        PASS,
        "INBOX",
        &mail(
            "jane@acme.com",
            "support@example.com",
            "Re: Footer",
            "<e2@acme.com>",
            &format!("In-Reply-To: {ack_id}\r\n"),
        ),
    );
    // The team replies from its mail client: the copy lands in Sent.
    dovecot.append(
        USER,
        PASS,
        "Sent",
        &mail(
            "Lead <lead@example.com>",
            "jane@acme.com",
            "Re: Footer",
            "<t1@example.com>",
            "In-Reply-To: <e1@acme.com>\r\n",
        ),
    );
    let http = reqwest::Client::new();
    let met = eventually_async(Duration::from_secs(30), || async {
        let d: Value = http
            .get(format!("{base}/api/v1/conversations/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let first = d["timers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["timer"] == "first_response")
            .cloned();
        first.is_some_and(|t| t["status"] == "met") && d["messages"].as_array().unwrap().len() >= 4
    })
    .await;
    assert!(met, "the reply from Sent did not meet first_response");
    assert_eq!(
        conversations(&base).await.len(),
        1,
        "everything threads into one conversation"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.received().len(), 1, "exactly one acknowledgement");

    // Junk in the mailbox is kept raw, listed by the API, downloadable, and
    // does not stop the mailbox: the mail after it is ingested.
    let junk = b"\x01\x02 this is not a mail\r\n".to_vec();
    dovecot.append(USER, PASS, "INBOX", &junk);
    dovecot.append(
        USER,
        PASS,
        "INBOX",
        &mail(
            "ops@globex.example",
            "support@example.com",
            "After the junk",
            "<after@globex.example>",
            "",
        ),
    );
    let rejected_list = || async {
        http.get(format!("{base}/api/v1/rejected"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            !rejected_list().await["rejected"]
                .as_array()
                .unwrap()
                .is_empty()
                && conversations(&base).await.len() == 2
        })
        .await,
        "the junk was not listed, or the mail after it not ingested"
    );
    let listed = rejected_list().await;
    let entry = &listed["rejected"][0];
    assert_eq!(entry["reason"], "unparseable", "{listed}");
    assert_eq!(entry["channel"], "email");
    let raw = http
        .get(format!("{base}{}", entry["raw_url"].as_str().unwrap()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        raw.starts_with(&junk[..junk.len() - 2]),
        "raw bytes kept: {raw:?}"
    );
    token.cancel();
    task.await.unwrap().unwrap();
}

crate::both_backends!(async new_mail_is_acknowledged_once_and_the_reply_meets_first_response);

/// SMTP down while mail arrives, then up: the acknowledgement goes out late, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_wait_for_smtp_and_go_out_once() {
    let (_dir, url) = common::fresh_sqlite();
    let dovecot = Dovecot::start(&[(USER, PASS)]);
    let smtp_port = support::free_port();
    let (base, token, task) = app(url, dovecot.port, smtp_port).await;
    dovecot.append(
        USER,
        PASS,
        "INBOX",
        &mail(
            "ops@globex.example",
            "support@example.com",
            "Invoice",
            "<g1@globex.example>",
            "",
        ),
    );
    // Wait until the mail is in and the acknowledgement is pending.
    let http = reqwest::Client::new();
    let pending = eventually_async(Duration::from_secs(10), || async {
        let m = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        m.lines()
            .any(|l| l.starts_with("keepword_outbox_pending") && l.ends_with(" 1"))
    })
    .await;
    assert!(pending, "the acknowledgement waits in the outbox");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let smtp = SmtpServer::start_on(smtp_port);
    assert!(
        eventually(Duration::from_secs(30), || smtp.received().len() == 1).await,
        "the acknowledgement did not go out once SMTP was back"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.received().len(), 1);
    token.cancel();
    task.await.unwrap().unwrap();
}

/// kill -9 while 5,000 messages are being ingested, then restart: every
/// message stored once, every acknowledgement sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_a_5000_message_ingest() {
    const N: usize = 5_000;
    const SENDERS: usize = 40;
    let (dir, url) = common::fresh_sqlite();
    let dovecot = Dovecot::start(&[(USER, PASS)]);
    let smtp = SmtpServer::start();
    let raws: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            mail(
                &format!("user{}@acme.com", i % SENDERS),
                "support@example.com",
                &format!("Request {i}"),
                &format!("<bulk{i}@acme.com>"),
                "",
            )
        })
        .collect();
    dovecot.append_many(USER, PASS, "INBOX", &raws);
    let config = dir.path().join("keepword.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{url}\"\ncontract = \"{}\"\napi_tokens = [\"{TOKEN}\"]\nbind = \"127.0.0.1:0\"\n\
             [smtp]\nport = {}\n[[mailboxes]]\nname = \"support\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             username = \"{USER}\"\npassword = \"{PASS}\"\nteam_addresses = [\"@example.com\"]\n",
            contract_path().display(),
            smtp.port,
            dovecot.port
        ),
    )
    .unwrap();
    let db_path = url.strip_prefix("sqlite://").unwrap().to_string();
    let count = move || -> i64 {
        use diesel::prelude::*;
        let mut c = diesel::sqlite::SqliteConnection::establish(&db_path).unwrap();
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT count(*) AS n FROM messages WHERE direction = 'inbound'")
            .get_result::<N>(&mut c)
            .map(|r| r.n)
            .unwrap_or(0)
    };
    let env = [("KEEPWORD_CONFIG", config.to_str().unwrap())];
    let mut first = common::binary::serve_binary(dir.path(), &env);
    // Kill it once some, but not all, of the mail is in.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let at_kill = count();
    eprintln!("killed with {at_kill} of {N} messages stored");
    assert!(
        at_kill < N as i64,
        "the kill came too late to test anything"
    );

    let mut second = common::binary::serve_binary(dir.path(), &env);
    let deadline = Instant::now() + Duration::from_secs(120);
    while count() < N as i64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(), N as i64, "every message stored exactly once");
    assert!(
        eventually(Duration::from_secs(60), || smtp.received().len() >= SENDERS).await,
        "only {} acknowledgements",
        smtp.received().len()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut to: Vec<String> = smtp
        .received()
        .iter()
        .flat_map(|m| m.rcpt_tos.clone())
        .collect();
    to.sort();
    let total = to.len();
    to.dedup();
    assert_eq!(
        (total, to.len()),
        (SENDERS, SENDERS),
        "one acknowledgement per sender (within the hour), once"
    );
    common::binary::sigterm(&second.child);
    assert!(common::binary::wait_exit(&mut second.child, Duration::from_secs(20)).success());
}
