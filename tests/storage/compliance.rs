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

/// The shipped contract's support mailbox, the team at `@example.com`.
fn support_mailbox() -> MailboxContext {
    MailboxContext {
        name: "support".into(),
        channel: "email".into(),
        team: vec!["@example.com".into()],
        own: vec!["support@example.com".into()],
    }
}

/// `mails` through the service's email intake, ten per batch, at `until`.
fn ingest(s: &keepword::service::Service, mails: &[(DateTime<Utc>, String)], until: DateTime<Utc>) {
    for (chunk_no, chunk) in mails.chunks(10).enumerate() {
        let batch: Vec<FetchedMail> = chunk
            .iter()
            .enumerate()
            .map(|(i, (_, m))| FetchedMail {
                uid: (chunk_no * 10 + i + 1) as u32,
                raw: m.clone().into_bytes(),
            })
            .collect();
        s.intake
            .ingest_mail_batch(
                &support_mailbox(),
                "INBOX",
                FolderKind::Inbox,
                1,
                batch,
                until,
            )
            .unwrap();
    }
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
    ingest(&s, &history, until);
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

/// The report and the client's record counted in SQL from the stored
/// business seconds give exactly the tally's figures: for the whole
/// history and a window that cuts it, every client and one, with replies
/// met and missed, next responses and updates (several timers of a kind in
/// one conversation), resolutions paused while waiting on the client, and
/// timers still running or overdue at the end. Then the same after the
/// stored seconds are gone (a database from before the column): the
/// reports tally rows until the walk has measured every timer again.
fn counted_figures_equal_the_tally(url: &str) {
    use diesel::RunQueryDsl;
    use keepword::sla::TicketStatus;
    use keepword::store;
    let s = common::shipped_service(url);
    // The history, and a client's follow-up on every fourth request after
    // its answer, itself answered three hours later on every eighth.
    let mut mails = history();
    for i in (0..45usize).step_by(4) {
        let Some(answered) = mails
            .iter()
            .find(|(_, m)| m.contains(&format!("<ans{i}@example.com>")))
            .map(|(at, _)| *at)
        else {
            continue;
        };
        let client = ["jane@acme.com", "eve@initech.example", "ops@globex.example"][i % 3];
        let again = answered + Duration::minutes(30);
        mails.push((
            again,
            mail(
                client,
                "support@example.com",
                &format!("Re: follow-up #{i}"),
                &format!("<again{i}@client.example>"),
                again,
                &format!("In-Reply-To: <ans{i}@example.com>\n"),
            ),
        ));
        if i % 8 == 0 {
            let back = again + Duration::hours(3);
            mails.push((
                back,
                mail(
                    "lead@example.com",
                    client,
                    &format!("Re: follow-up #{i}"),
                    &format!("<back{i}@example.com>"),
                    back,
                    &format!("In-Reply-To: <again{i}@client.example>\n"),
                ),
            ));
        }
    }
    mails.sort_by_key(|(at, _)| *at);
    let until = mails.last().unwrap().0;
    ingest(&s, &mails, until);
    let all = (
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap(),
    );
    // Every fifth conversation waits on the client: its resolution pauses.
    let ids: Vec<i64> = s
        .core
        .store()
        .with(|c| store::tallied_between(c, None, all.0, all.1))
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    for id in ids.iter().step_by(5) {
        s.deadlines
            .set_status(
                *id,
                TicketStatus::Pending,
                "lead@example.com",
                until + Duration::hours(1),
            )
            .unwrap();
    }
    let timers = s
        .core
        .store()
        .with(|c| store::timers_of_many(c, &ids))
        .unwrap();
    let statuses: std::collections::BTreeSet<&str> = timers
        .values()
        .flatten()
        .map(|t| t.status.as_str())
        .collect();
    for want in ["met", "missed", "running", "paused"] {
        assert!(statuses.contains(want), "no {want} timer: {statuses:?}");
    }
    assert!(
        timers.values().any(|ts| ts
            .iter()
            .filter(|t| t.kind != keepword::contract::Timer::FirstResponse
                && t.kind != keepword::contract::Timer::Resolution)
            .count()
            > 1),
        "a conversation with several timers of a kind"
    );
    let start = history()[0].0;
    let cut = (
        start + Duration::minutes(9 * 397),
        start + Duration::days(7),
    );
    let check = |what: &str| {
        for (from, to) in [all, cut] {
            for client in [None, Some("acme"), Some("initech")] {
                let counted = s
                    .reads
                    .compliance_counted(client, from, to)
                    .unwrap()
                    .expect("every timer measured");
                let tallied = s.reads.compliance_tallied(client, from, to).unwrap();
                assert_eq!(counted, tallied, "{what}: {client:?} {from}..{to}");
                assert!(
                    counted.iter().any(|r| r.p50.is_some() && r.missed > 0),
                    "{counted:?}"
                );
            }
        }
        // The client's page over whole and cut periods: the same record.
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let now = until + Duration::hours(2);
        for client in ["acme", "globex"] {
            for (from, to) in [
                (day(2026, 11, 1), day(2027, 1, 1)),
                (day(2026, 12, 3), day(2026, 12, 10)),
            ] {
                let counted = s
                    .reads
                    .client_record_counted(client, from, to, now)
                    .unwrap()
                    .expect("every timer measured");
                let tallied = s
                    .reads
                    .client_record_tallied(client, from, to, now)
                    .unwrap();
                assert_eq!(
                    serde_json::to_value(&counted).unwrap(),
                    serde_json::to_value(&tallied).unwrap(),
                    "{what}: {client} {from}..{to}"
                );
                assert!(!counted.broken_promises.is_empty() && counted.kept > 0);
            }
        }
    };
    check("stored by the refresh");

    // The conversations behind each figure: those with a timer of that kind
    // (and outcome), lowest ids first, up to the limit.
    for row in s.reads.compliance_tallied(None, all.0, all.1).unwrap() {
        for outcome in ["all", "met", "missed", "breached"] {
            let mut want: Vec<i64> = s
                .core
                .store()
                .with(|c| store::tallied_between(c, None, all.0, all.1))
                .unwrap()
                .into_iter()
                .filter(|c| c.request_type == row.request_type && c.client_id == row.client_id)
                .filter(|c| {
                    timers.get(&c.id).into_iter().flatten().any(|t| {
                        t.kind.words() == row.timer
                            && (outcome == "all" || t.status.as_str() == outcome)
                    })
                })
                .map(|c| c.id)
                .collect();
            want.sort_unstable();
            want.truncate(3);
            let got = s
                .reads
                .compliance_cell(
                    all.0,
                    all.1,
                    &keepword::service::Figure {
                        request_type: Some(&row.request_type),
                        client_id: Some(&row.client_id),
                        timer: Some(&row.timer),
                        outcome,
                    },
                    3,
                )
                .unwrap();
            assert_eq!(
                got, want,
                "{} {} {} {outcome}",
                row.request_type, row.client_id, row.timer
            );
        }
    }

    // A database from before the column: nothing stored, the walk's end at
    // the newest timer. Until the walk is through the reports tally rows.
    s.core
        .store()
        .with(|c| {
            diesel::sql_query("UPDATE timers SET business_seconds = NULL").execute(c)?;
            store::remeasure_all(c, Utc::now())
        })
        .unwrap();
    assert_eq!(
        s.reads.compliance_counted(None, all.0, all.1).unwrap(),
        None
    );
    assert_eq!(
        s.reads.compliance(all.0, all.1).unwrap(),
        s.reads.compliance_tallied(None, all.0, all.1).unwrap()
    );
    let first = s.deadlines.measure_settled_batch(5, Utc::now()).unwrap();
    assert_eq!((first.measured, first.done), (5, false));
    let rest = s
        .deadlines
        .measure_settled(std::time::Duration::ZERO, || false)
        .unwrap();
    assert!(rest.done && rest.measured > 5, "{rest:?}");
    check("measured by the walk");
}

crate::both_backends!(counted_figures_equal_the_tally);
