//! Poison input: a 25 MB mail (a large attachment) among ordinary mail in a
//! real Dovecot, read by the built binary. The ordinary mail must be read
//! and acknowledged as soon as without it (the acknowledgements go through
//! a recording SMTP receiver and the checker), the big one read like any
//! other client mail (a client's request with a large attachment is still a
//! request the contract's clock runs for), and the process's peak memory
//! (VmHWM) bounded: measured against the same run without the big mail.

use std::time::{Duration, Instant};

use crate::checker::{Expected, Must, check};
use crate::common::binary::{serve_binary, sigterm, wait_exit};
use crate::support::dovecot::Dovecot;
use crate::support::recorders::{History, SmtpAct, SmtpRecorder};

const USER: &str = "support@example.com";
const PASSWORD: &str = "supportpw";
/// Ordinary mails before the big one, and as many after it.
const EACH_SIDE: usize = 10;
pub const BIG: usize = 25 * 1024 * 1024;
/// Every ordinary mail acknowledged within this of the binary's start.
const ACK_BOUND: Duration = Duration::from_secs(30);

fn ordinary(i: usize) -> Vec<u8> {
    format!(
        "From: Client {i} <user{i}@acme.com>\r\nTo: {USER}\r\nSubject: Question {i}\r\n\
         Message-ID: <ordinary-{i}@acme.com>\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHow do I change the footer?\r\n",
        chrono::Utc::now().to_rfc2822()
    )
    .into_bytes()
}

/// What one run measured.
#[derive(Debug)]
pub struct Run {
    /// Peak resident memory of the process, KiB (`VmHWM`).
    pub peak_kib: u64,
    /// From the start until every ordinary mail was stored.
    pub ordinary_stored: Duration,
    /// From the start until every ordinary mail's acknowledgement arrived.
    pub acknowledged: Duration,
    /// What became of the big mail: `stored` or `rejected: REASON`.
    pub big: Option<String>,
    pub report: crate::checker::Report,
}

fn vm_hwm(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

fn query(db: &str, sql: &str) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    let mut c = diesel::sqlite::SqliteConnection::establish(db).unwrap();
    diesel::sql_query(sql)
        .load::<Row>(&mut c)
        .map(|rows| rows.into_iter().map(|r| r.v).collect())
        .unwrap_or_default()
}

/// One run of the binary over a fresh database and Dovecot, with or
/// without the big mail in the middle of the inbox.
pub async fn run(with_big: bool) -> Run {
    let (dir, url) = crate::common::fresh_sqlite();
    let db = url.strip_prefix("sqlite://").unwrap().to_string();
    let dovecot = Dovecot::start(&[(USER, PASSWORD)]);
    let first: Vec<Vec<u8>> = (0..EACH_SIDE).map(ordinary).collect();
    let last: Vec<Vec<u8>> = (EACH_SIDE..2 * EACH_SIDE).map(ordinary).collect();
    dovecot.append_many(USER, PASSWORD, "INBOX", &first);
    if with_big {
        let big = crate::imap::mail("big", BIG);
        let big = String::from_utf8(big)
            .unwrap()
            .replace("From: Jane <jane@acme.com>", "From: Big <big@acme.com>")
            .replace("To: support@test.local", &format!("To: {USER}"))
            .into_bytes();
        dovecot.append(USER, PASSWORD, "INBOX", &big);
    }
    dovecot.append_many(USER, PASSWORD, "INBOX", &last);
    let history = History::default();
    let smtp = SmtpRecorder::start(&history, |_| None, |_| SmtpAct::Accept).await;
    let config = dir.path().join("keepword.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{url}\"\ncontract = \"{}\"\napi_tokens = [\"test-token\"]\nbind = \"127.0.0.1:0\"\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             [[mailboxes]]\nname = \"support\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\
             username = \"{USER}\"\npassword = \"{PASSWORD}\"\nteam_addresses = [\"@example.com\"]\n",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/contract.toml")
                .display(),
            smtp.port,
            dovecot.port
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut served = serve_binary(dir.path(), &[("KEEPWORD_CONFIG", config.to_str().unwrap())]);
    let mut expected: Vec<Expected> = (0..2 * EACH_SIDE)
        .map(|i| Expected {
            key: format!("Re: Question {i} [we have your request]"),
            identity: String::new(),
            must: Must::Deliver,
        })
        .collect();
    let ordinary_acks: Vec<String> = expected.iter().map(|e| e.key.clone()).collect();
    if with_big {
        // A client's request like any other: acknowledged too.
        expected.push(Expected {
            key: "Re: Question big [we have your request]".into(),
            identity: String::new(),
            must: Must::Deliver,
        });
    }
    let stored = || {
        query(
            &db,
            "SELECT message_id AS v FROM messages WHERE message_id LIKE '<ordinary-%'",
        )
        .len()
    };
    let ok =
        crate::support::eventually(Duration::from_secs(120), || stored() == 2 * EACH_SIDE).await;
    let ordinary_stored = started.elapsed();
    assert!(
        ok,
        "the ordinary mail was not all read: {} of {}\n{}",
        stored(),
        2 * EACH_SIDE,
        crate::crash::lines(&served)
    );
    let ok = crate::support::eventually(Duration::from_secs(120), || {
        history.all_accepted(ordinary_acks.iter().map(String::as_str))
    })
    .await;
    let acknowledged = started.elapsed();
    assert!(
        ok,
        "not every ordinary mail was acknowledged: {:?}",
        history.all()
    );
    let big = if with_big {
        let seen = crate::support::eventually(Duration::from_secs(120), || {
            !query(
                &db,
                "SELECT message_id AS v FROM messages WHERE message_id = '<big@acme.com>'",
            )
            .is_empty()
                || !query(&db, "SELECT reason AS v FROM rejected_input").is_empty()
        })
        .await;
        assert!(seen, "the big mail was neither stored nor kept as rejected");
        let rejected = query(
            &db,
            "SELECT reason || ': ' || detail AS v FROM rejected_input",
        );
        Some(match rejected.first() {
            Some(r) => format!("rejected: {r}"),
            None => "stored".into(),
        })
    } else {
        None
    };
    let all: Vec<String> = expected.iter().map(|e| e.key.clone()).collect();
    crate::support::eventually(Duration::from_secs(60), || {
        history.all_accepted(all.iter().map(String::as_str))
    })
    .await;
    // Settled: whatever memory the big mail took, it took by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak_kib = vm_hwm(served.child.id());
    let mut report = check(
        if with_big {
            "poison input: a 25 MB mail among ordinary mail"
        } else {
            "poison input baseline: the same mail without the 25 MB one"
        },
        "",
        &expected,
        &history.all(),
        started,
        ACK_BOUND,
        0,
    );
    report.backend = "sqlite".into();
    sigterm(&served.child);
    assert!(wait_exit(&mut served.child, Duration::from_secs(30)).success());
    Run {
        peak_kib,
        ordinary_stored,
        acknowledged,
        big,
        report,
    }
}

/// How much more peak memory reading the 25 MB mail may take than the run
/// without it: the mail's bytes a few times over (the FETCH response, the
/// parsed message, the raw copy kept) and no more.
pub const PEAK_ALLOWANCE_KIB: u64 = 8 * (BIG as u64 >> 10);
