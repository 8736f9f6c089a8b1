//! Erasure on both backends, through the `keepword erase` command: after it,
//! no table and no column holds the person's address or name (every table
//! and column the database's catalog lists, so tables added later are
//! searched too), and on SQLite neither do the bytes of the database file
//! and its log; the SLA record reads the same; the erasure is recorded
//! without the address. A dry run first changes nothing.

use std::path::Path;
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use keepword::imap::{FetchedMail, FolderKind};
use keepword::service::Service;
use keepword::service::erasure::{self, ErasureRequest};
use keepword::store;

use crate::common;
use crate::email_ingest::mailbox;

const ANN: &str = "ann.smith@acme.com";
const ANN_NAME: &str = "Ann Smith";
const BOB: &str = "bob.jones@acme.com";

fn mails(at: chrono::DateTime<Utc>) -> Vec<String> {
    let date = at.to_rfc2822();
    vec![
        // Ann writes (mixed case, as mail clients do), and is acknowledged.
        format!(
            "From: Ann Smith <Ann.Smith@ACME.com>\nTo: support@example.com\nSubject: Invoice question\n\
             Message-ID: <q1@mail.acme.com>\nDate: {date}\n\nHello, Ann Smith here: my invoice is wrong.\n"
        ),
        // The team answers her.
        format!(
            "From: Lead <lead@example.com>\nTo: Ann Smith <ann.smith@acme.com>\nSubject: Re: Invoice question\n\
             Message-ID: <a1@example.com>\nIn-Reply-To: <q1@mail.acme.com>\nDate: {date}\n\n\
             Hi Ann Smith, we are on it.\n"
        ),
        // A colleague copies her and names her.
        format!(
            "From: Bob Jones <bob.jones@acme.com>\nTo: support@example.com\nCc: Ann Smith <ann.smith@acme.com>\n\
             Subject: Export is broken\nMessage-ID: <q2@mail.acme.com>\nDate: {date}\n\n\
             Bob here. Ann Smith (ann.smith@acme.com) knows more.\n"
        ),
        // Bob alone: his data must stay.
        format!(
            "From: Bob Jones <bob.jones@acme.com>\nTo: support@example.com\nSubject: Checkout is down\n\
             Message-ID: <q3@mail.acme.com>\nDate: {date}\n\nBob again.\n"
        ),
        // Initech, erased as a client below.
        format!(
            "From: Eve Adams <eve@initech.example>\nTo: support@example.com\nSubject: Question about the footer\n\
             Message-ID: <q4@initech.example>\nDate: {date}\n\nEve Adams asks.\n"
        ),
    ]
}

fn seed(s: &Service, at: chrono::DateTime<Utc>) {
    let batch: Vec<FetchedMail> = mails(at)
        .into_iter()
        .enumerate()
        .map(|(i, m)| FetchedMail {
            uid: i as u32 + 1,
            raw: m.into_bytes(),
        })
        .collect();
    s.intake
        .ingest_mail_batch(&mailbox(), "INBOX", FolderKind::Inbox, 1, batch, at)
        .unwrap();
    s.core
        .store()
        .with(|c| {
            store::reject_input(
                c,
                "email",
                "unparseable",
                "no body",
                b"From: Ann Smith <ANN.SMITH@acme.com>\n\nbroken",
                at,
            )
        })
        .unwrap();
    // Something outside keepword's own tables must be found by the same
    // search: a table another feature might add.
    s.core
        .store()
        .with(|c| {
            diesel::sql_query("CREATE TABLE added_later (id BIGINT, note TEXT)").execute(c)?;
            diesel::sql_query(format!(
                "INSERT INTO added_later VALUES (1, 'ask {}'), (2, 'ask {BOB}')",
                ANN.to_uppercase()
            ))
            .execute(c)?;
            Ok(())
        })
        .unwrap();
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    t: String,
    #[diesel(sql_type = Text)]
    c: String,
    #[diesel(sql_type = Text)]
    ty: String,
}

#[derive(QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Every `table.column` (any type) whose value contains `needle`, ignoring
/// case, found from the catalog.
fn places_naming(url: &str, needle: &str) -> Vec<String> {
    let needle = needle.to_lowercase();
    let mut found = Vec::new();
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut c = diesel::SqliteConnection::establish(path).unwrap();
        let columns: Vec<Name> = diesel::sql_query(
            "SELECT m.name AS t, p.name AS c, p.type AS ty FROM sqlite_master m, \
             pragma_table_info(m.name) p WHERE m.type = 'table'",
        )
        .load(&mut c)
        .unwrap();
        for col in columns {
            let n: N = diesel::sql_query(format!(
                "SELECT count(*) AS n FROM \"{}\" WHERE instr(lower(CAST(\"{}\" AS TEXT)), ?) > 0",
                col.t, col.c
            ))
            .bind::<Text, _>(&needle)
            .get_result(&mut c)
            .unwrap();
            if n.n > 0 {
                found.push(format!("{}.{}", col.t, col.c));
            }
        }
    } else {
        let mut c = diesel::PgConnection::establish(url).unwrap();
        let columns: Vec<Name> = diesel::sql_query(
            "SELECT c.table_name::text AS t, c.column_name::text AS c, c.data_type::text AS ty \
             FROM information_schema.columns c JOIN information_schema.tables t \
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'",
        )
        .load(&mut c)
        .unwrap();
        for col in columns {
            let value = if col.ty == "bytea" {
                format!("encode(\"{}\", 'escape')", col.c)
            } else {
                format!("\"{}\"::text", col.c)
            };
            let n: N = diesel::sql_query(format!(
                "SELECT count(*) AS n FROM \"{}\" WHERE strpos(lower({value}), $1) > 0",
                col.t
            ))
            .bind::<Text, _>(&needle)
            .get_result(&mut c)
            .unwrap();
            if n.n > 0 {
                found.push(format!("{}.{}", col.t, col.c));
            }
        }
    }
    found
}

/// Whether the SQLite database file or its log hold `needle`, any case.
fn files_hold(url: &str, needle: &str) -> Vec<String> {
    let Some(path) = url.strip_prefix("sqlite://") else {
        return Vec::new();
    };
    let needle = needle.to_lowercase();
    let mut found = Vec::new();
    for file in [path.to_string(), format!("{path}-wal")] {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        let bytes = bytes.to_ascii_lowercase();
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            found.push(file);
        }
    }
    found
}

fn keepword(cwd: &Path, url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keepword"))
        .args(args)
        .current_dir(cwd)
        .env_remove("KEEPWORD_CONFIG")
        .env("KEEPWORD_DATABASE_URL", url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "keepword {args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn first_response_figures(s: &Service) -> Vec<(String, String, usize, usize, usize)> {
    let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2028, 1, 1, 0, 0, 0).unwrap();
    s.reads
        .compliance(from, to)
        .unwrap()
        .into_iter()
        .map(|r| (r.request_type, r.timer, r.conversations, r.met, r.missed))
        .collect()
}

fn an_erased_person_is_gone_from_every_table_and_file(url: &str) {
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let cwd = tempfile::tempdir().unwrap();
    // A delegated sign-in of hers, beside the SQLite database (or in data/).
    let grants = match url.strip_prefix("sqlite://") {
        Some(p) => Path::new(p).parent().unwrap().join("oauth-grants"),
        None => cwd.path().join("data/oauth-grants"),
    };
    let grant = grants
        .join(hex::encode("m365"))
        .join(format!("{}.grant", hex::encode(ANN)));
    std::fs::create_dir_all(grant.parent().unwrap()).unwrap();
    std::fs::write(&grant, b"sealed").unwrap();

    let (sla_before, stored) = {
        let s = common::shipped_service(url);
        seed(&s, at);
        s.deadlines.due_work(at + Duration::days(3)).unwrap();
        let figures = first_response_figures(&s);
        let places = places_naming(url, ANN);
        for expected in [
            "messages.sender",
            "messages.recipients",
            "message_bodies.body",
            "message_bodies.raw",
            "conversations.opener",
            "outbox.target",
            "outbox.payload",
            "rejected_input.raw",
            "added_later.note",
        ] {
            assert!(
                places.contains(&expected.to_string()),
                "{expected} not in {places:?}"
            );
        }
        let links: i64 = s
            .core
            .store()
            .with(|c| Ok(store::schema::status_links::table.count().get_result(c)?))
            .unwrap();
        (figures, links)
    };
    assert!(stored >= 3, "status links: {stored}");

    let dry = keepword(
        cwd.path(),
        url,
        &["erase", "--address", "Ann.Smith@acme.com", "--dry-run"],
    );
    assert!(dry.contains("dry run"), "{dry}");
    for table in [
        "message_bodies",
        "outbox",
        "rejected_input",
        "status_links",
        "oauth grants",
    ] {
        assert!(dry.contains(table), "{table} missing from:\n{dry}");
    }
    assert!(
        !places_naming(url, ANN).is_empty(),
        "the dry run changed something"
    );
    assert!(grant.exists());

    let done = keepword(
        cwd.path(),
        url,
        &["erase", "--address", "Ann.Smith@acme.com"],
    );
    // The dry run counted what the erasure did.
    let rows = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with("  "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(rows(&dry), rows(&done), "dry:\n{dry}\ndone:\n{done}");

    assert_eq!(places_naming(url, ANN), Vec::<String>::new(), "{done}");
    assert_eq!(places_naming(url, ANN_NAME), Vec::<String>::new(), "{done}");
    assert_eq!(files_hold(url, ANN), Vec::<String>::new());
    assert_eq!(files_hold(url, ANN_NAME), Vec::<String>::new());
    assert!(!grant.exists(), "her OAuth grant is still on disk");
    // The search finds what was not erased.
    let bob = places_naming(url, BOB);
    assert!(bob.contains(&"added_later.note".to_string()), "{bob:?}");
    assert!(bob.contains(&"conversations.opener".to_string()), "{bob:?}");
    if url.starts_with("sqlite://") {
        assert!(!files_hold(url, BOB).is_empty());
    }

    let s = common::shipped_service(url);
    assert_eq!(
        first_response_figures(&s),
        sla_before,
        "the SLA record changed"
    );
    let recorded = s
        .core
        .store()
        .with(store::erasure::erasures_recorded)
        .unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].1, "address");
    assert!(recorded[0].2.get("message_bodies").is_some_and(|n| *n >= 3));
    // Her conversation's timeline says why its bodies are gone.
    let hers = crate::retention::conversations(&s)
        .into_iter()
        .find(|c| c.subject == "Invoice question")
        .unwrap();
    let timeline = s
        .reads
        .timeline(hers.id, 1, at + Duration::days(3))
        .unwrap();
    assert!(
        timeline
            .items
            .iter()
            .filter(|i| i.message_id.is_some())
            .all(|i| i.text == "body erased on request"),
        "{:?}",
        timeline.items
    );
}

fn an_erased_client_keeps_its_figures_and_loses_its_people(url: &str) {
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let s = common::shipped_service(url);
    seed(&s, at);
    let before = first_response_figures(&s);
    assert!(!places_naming(url, "eve@initech.example").is_empty());

    let dry = erasure::erase(
        s.core.store(),
        &ErasureRequest::Client("initech".into()),
        at,
        true,
    )
    .unwrap();
    assert!(!places_naming(url, "eve@initech.example").is_empty());
    let report = erasure::erase(
        s.core.store(),
        &ErasureRequest::Client("initech".into()),
        at,
        false,
    )
    .unwrap();
    assert_eq!(dry.counts, report.counts);
    assert_eq!((report.addresses, report.conversations), (1, 1));
    assert_eq!(
        places_naming(url, "eve@initech.example"),
        Vec::<String>::new()
    );
    assert_eq!(places_naming(url, "Eve Adams"), Vec::<String>::new());
    assert_eq!(files_hold(url, "eve@initech.example"), Vec::<String>::new());
    assert_eq!(first_response_figures(&s), before);
    // Another client's people stay.
    assert!(!places_naming(url, ANN).is_empty());
    let unknown = erasure::erase(
        s.core.store(),
        &ErasureRequest::Client("nobody".into()),
        at,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("no client `nobody`"), "{unknown}");
    let bad = erasure::erase(
        s.core.store(),
        &ErasureRequest::Address("not-an-address".into()),
        at,
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("not an email address"), "{bad}");
}

#[test]
fn an_erased_person_is_gone_from_every_table_and_file_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    an_erased_person_is_gone_from_every_table_and_file(&url);
}

#[test]
fn an_erased_person_is_gone_from_every_table_and_file_postgres() {
    let db = common::FreshPostgres::new();
    an_erased_person_is_gone_from_every_table_and_file(&db.url);
}

#[test]
fn an_erased_client_keeps_its_figures_and_loses_its_people_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    an_erased_client_keeps_its_figures_and_loses_its_people(&url);
}

#[test]
fn an_erased_client_keeps_its_figures_and_loses_its_people_postgres() {
    let db = common::FreshPostgres::new();
    an_erased_client_keeps_its_figures_and_loses_its_people(&db.url);
}
