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

/// [`history`] through the email intake, ten mails a batch, as the IMAP
/// poller hands them over at the last mail's time; that time.
pub(crate) fn ingest_history(s: &keepword::service::Service) -> DateTime<Utc> {
    let history = history();
    let until = history.last().unwrap().0;
    let mb = support_mailbox();
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
    until
}

/// The shipped contract's support mailbox, the team at `@example.com`.
fn support_mailbox() -> MailboxContext {
    MailboxContext {
        name: "support".into(),
        channel: "email".into(),
        team: vec!["@example.com".into()],
        own: vec!["support@example.com".into()],
    }
}

fn compliance_matches_the_backtest(url: &str) {
    let contract_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml");
    let history = history();

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
    ingest_history(&s);
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

/// The period's loaders read exactly what was read before — the narrow
/// rows of the conversations opened in `[from, to)`, and their timers by a
/// range of ids where there are many, one lookup per id where there are
/// few — so every tally (the compliance report, the client's page, the
/// digest) counts the same figures; for every client and for one, and for a
/// window whose ends cut through the history (`from` inclusive, `to`
/// exclusive).
fn period_loaders_read_what_the_per_id_loaders_read(url: &str) {
    use keepword::store;
    let s = common::shipped_service(url);
    // The history three times over (a range read needs 64 conversations),
    // its mail told apart by the Message-IDs.
    let mut batch = Vec::new();
    for round in 0..3 {
        for (_, m) in history() {
            let m = m.replace("@client.example>", &format!(".{round}@client.example>"));
            let m = m.replace("@example.com>", &format!(".{round}@example.com>"));
            batch.push(m);
        }
    }
    let until = history().last().unwrap().0;
    let fetched: Vec<FetchedMail> = batch
        .into_iter()
        .enumerate()
        .map(|(i, m)| FetchedMail {
            uid: i as u32 + 1,
            raw: m.into_bytes(),
        })
        .collect();
    s.intake
        .ingest_mail_batch(
            &support_mailbox(),
            "INBOX",
            FolderKind::Inbox,
            1,
            fetched,
            until,
        )
        .unwrap();
    let start = history()[0].0;
    let all = (
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
    );
    // From the 10th request on, for a week: both ends fall inside the history.
    let cut = (
        start + Duration::minutes(9 * 397),
        start + Duration::days(7),
    );
    let mut sizes = Vec::new();
    for (from, to) in [all, cut] {
        for client in [None, Some("acme")] {
            s.core
                .store()
                .with(|conn| {
                    let convs = store::tallied_between(conn, client, from, to)?;
                    let before: Vec<store::RecordRow> = store::opened_between(conn, from, to)?
                        .into_iter()
                        .filter(|c| client.is_none_or(|id| c.client_id == id))
                        .map(|c| store::RecordRow {
                            id: c.id,
                            client_id: c.client_id,
                            subject: c.subject,
                            request_type: c.request_type,
                            contract_version: c.contract_version,
                        })
                        .collect();
                    let mut now = convs.clone();
                    now.sort_by_key(|c| c.id);
                    assert_eq!(now, before, "{client:?} {from}..{to}");
                    let ids: Vec<i64> = convs.iter().map(|c| c.id).collect();
                    let one_by_one: std::collections::HashMap<i64, Vec<store::TimerRow>> = ids
                        .iter()
                        .map(|id| Ok((*id, store::timers_of(conn, *id)?)))
                        .collect::<Result<_, store::StoreError>>()?;
                    let one_by_one = one_by_one
                        .into_iter()
                        .filter(|(_, t)| !t.is_empty())
                        .collect();
                    assert_eq!(
                        store::timers_of_many(conn, &ids)?,
                        one_by_one,
                        "{client:?} {from}..{to}"
                    );
                    sizes.push(ids.len());
                    Ok(())
                })
                .unwrap();
        }
    }
    // A range read (all 135 conversations), lists (one client's 45, every
    // third id; a cut window of one client): each path was taken.
    assert_eq!(sizes[0], 135, "{sizes:?}");
    assert!(
        sizes[1] == 45 && sizes[3] < 45 && sizes[2] < 135,
        "{sizes:?}"
    );
    assert!(
        s.reads
            .compliance(all.0, all.1)
            .unwrap()
            .iter()
            .any(|r| r.met > 0 && r.missed > 0)
    );
}

crate::both_backends!(period_loaders_read_what_the_per_id_loaders_read);
