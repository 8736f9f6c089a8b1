//! The dashboard's compliance report agrees with `keepword backtest` on the
//! same mail: ingested through the service (as the IMAP poller hands it
//! over), then reported, against the backtest's replay of the same mbox.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use keepword::backtest::{self, Source};
use keepword::imap::{FetchedMail, FolderKind};
use keepword::service::MailboxContext;

use crate::common;

fn mail(from: &str, to: &str, subject: &str, id: &str, date: DateTime<Utc>, extra: &str) -> String {
    format!(
        "From: {from}\nTo: {to}\nSubject: {subject}\nMessage-ID: {id}\nDate: {}\n{extra}\nHello.\n",
        date.to_rfc2822()
    )
}

/// 45 requests from three clients over two weeks, of three types, answered
/// after delays from 10 minutes to two days, some never.
pub(crate) fn history() -> Vec<(DateTime<Utc>, String)> {
    let clients = ["jane@acme.com", "eve@initech.example", "ops@globex.example"];
    let subjects = [
        "Question about the footer",
        "Export is broken",
        "Checkout is down",
    ];
    let delays = [10, 45, 90, 150, 240, 600, 1500, 2900, 0];
    let start = Utc.with_ymd_and_hms(2026, 11, 30, 7, 30, 0).unwrap();
    let mut out = Vec::new();
    for i in 0..45usize {
        let at = start + Duration::minutes(i as i64 * 397);
        let from = clients[i % 3];
        let subject = subjects[(i / 3) % 3];
        let id = format!("<req{i}@client.example>");
        out.push((
            at,
            mail(
                from,
                "support@example.com",
                &format!("{subject} #{i}"),
                &id,
                at,
                "",
            ),
        ));
        let delay = delays[(i * 7) % delays.len()];
        if delay > 0 {
            let answered = at + Duration::minutes(delay);
            out.push((
                answered,
                mail(
                    "lead@example.com",
                    from,
                    &format!("Re: {subject} #{i}"),
                    &format!("<ans{i}@example.com>"),
                    answered,
                    &format!("In-Reply-To: {id}\n"),
                ),
            ));
        }
    }
    out.sort_by_key(|(at, _)| *at);
    out
}

fn compliance_matches_the_backtest(url: &str) {
    let contract_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml");
    let history = history();
    let until = history.last().unwrap().0;

    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("history.mbox");
    let text: String = history
        .iter()
        .map(|(_, m)| format!("From sender@x Mon Nov 30 00:00:00 2026\n{m}"))
        .collect();
    std::fs::write(&mbox, text).unwrap();
    let contract = keepword::contract::parse(
        &std::fs::read_to_string(&contract_path).unwrap(),
        "contract.toml",
    )
    .unwrap();
    let report = backtest::run(
        &contract,
        &[Source::Mbox(mbox)],
        &["@example.com".into()],
        |_, _| {},
    )
    .unwrap();

    let s = common::shipped_service(url);
    let mb = MailboxContext {
        name: "support".into(),
        channel: "email".into(),
        team: vec!["@example.com".into()],
        own: vec!["support@example.com".into()],
    };
    for (chunk_no, chunk) in history.chunks(10).enumerate() {
        let batch: Vec<FetchedMail> = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, m))| FetchedMail {
                uid: (chunk_no * 10 + i + 1) as u32,
                raw: m.clone().into_bytes(),
            })
            .collect();
        s.intake
            .ingest_mail_batch(&mb, "INBOX", FolderKind::Inbox, 1, batch, until)
            .unwrap();
    }
    let from = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    let rows = s.reads.compliance(from, to).unwrap();

    let ours: BTreeMap<(String, String), (Option<f64>, usize)> = rows
        .iter()
        .filter(|r| r.timer == "first response")
        .map(|r| {
            (
                (r.request_type.clone(), r.client_id.clone()),
                (r.met_pct, r.conversations),
            )
        })
        .collect();
    let theirs: BTreeMap<(String, String), (Option<f64>, usize)> = report
        .rows
        .iter()
        .map(|r| {
            (
                (r.request_type.clone(), r.client.clone()),
                (r.within_window_pct, r.conversations),
            )
        })
        .collect();
    assert_eq!(ours.len(), 9, "three types × three clients: {ours:?}");
    assert_eq!(
        ours, theirs,
        "dashboard vs backtest, per (type, client): (% met, conversations, p50, p90)"
    );
    // Not a trivial agreement: some met, some missed.
    let pcts: Vec<f64> = ours.values().filter_map(|v| v.0).collect();
    assert!(
        pcts.iter().any(|p| *p > 0.0) && pcts.iter().any(|p| *p < 100.0),
        "{pcts:?}"
    );
}

#[test]
fn compliance_matches_the_backtest_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    compliance_matches_the_backtest(&url);
}

#[test]
fn compliance_matches_the_backtest_postgres() {
    let db = common::FreshPostgres::new();
    compliance_matches_the_backtest(&db.url);
}
