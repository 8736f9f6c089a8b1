//! Email through the service on both backends: threading, directions,
//! automatic mail, acknowledgements and their limits, checkpoints,
//! unparseable input kept raw.

mod common;

use chrono::{DateTime, Duration, Utc};
use keepword::ingest::imap::{FetchedMail, FolderKind};
use keepword::notify::OutboxMessage;
use keepword::service::{MailboxContext, Service};

fn mailbox() -> MailboxContext {
    MailboxContext {
        name: "support".into(),
        channel: "email".into(),
        team: vec!["@example.com".into()],
        own: vec!["support@example.com".into()],
    }
}

fn mail(
    from: &str,
    to: &str,
    subject: &str,
    id: &str,
    extra: &str,
    date: DateTime<Utc>,
) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {id}\r\nDate: {}\r\n{extra}\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, a question about the footer.\r\n",
        date.to_rfc2822()
    )
    .into_bytes()
}

fn batch(uid0: u32, raws: Vec<Vec<u8>>) -> Vec<FetchedMail> {
    raws.into_iter()
        .enumerate()
        .map(|(i, raw)| FetchedMail {
            uid: uid0 + i as u32,
            raw,
        })
        .collect()
}

/// (to, text, headers, Message-ID) of each enqueued acknowledgement.
type Ack = (Vec<String>, String, Vec<(String, String)>, String);

fn acks(s: &Service) -> Vec<Ack> {
    s.store()
        .with(store::outbox::all)
        .unwrap()
        .into_iter()
        .filter(|r| r.dedupe_key.starts_with("ack:"))
        .map(|r| match serde_json::from_str(&r.payload).unwrap() {
            OutboxMessage::Email {
                to,
                text,
                headers,
                message_id,
                ..
            } => (to, text, headers, message_id),
            other => panic!("not an email: {other:?}"),
        })
        .collect()
}

fn run(url: &str) {
    let s = common::shipped_service(url);
    let mb = mailbox();
    // Monday 30 November 2026, 10:00 Berlin.
    let now: DateTime<Utc> = "2026-11-30T09:00:00Z".parse().unwrap();
    let m1 = mail(
        "Jane <jane@acme.com>",
        "support@example.com",
        "Footer text",
        "<m1@acme.com>",
        "",
        now,
    );
    let r = s
        .ingest_mail_batch(
            &mb,
            "INBOX",
            FolderKind::Inbox,
            7,
            batch(1, vec![m1.clone()]),
            now,
        )
        .unwrap();
    assert_eq!((r.stored, r.acknowledged), (1, 1));

    // The acknowledgement: one, to the sender, threaded, marked automatic,
    // with the due from the contract (ACME: 2 business hours → 12:00 Berlin).
    let a = acks(&s);
    assert_eq!(a.len(), 1);
    let (to, text, headers, ack_id) = &a[0];
    assert_eq!(to, &vec!["jane@acme.com".to_string()]);
    assert!(
        text.contains("Monday 30 November 2026, 12:00 CET"),
        "{text}"
    );
    let h = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(h("Auto-Submitted").as_deref(), Some("auto-replied"));
    assert_eq!(h("In-Reply-To").as_deref(), Some("<m1@acme.com>"));
    assert_eq!(h("References").as_deref(), Some("<m1@acme.com>"));
    assert_eq!(h("X-Auto-Response-Suppress").as_deref(), Some("All"));
    assert_eq!(store::checkpoint_of(&s, "INBOX"), Some((7, 1)));

    // The same message again (a rescan): nothing new, no second ack.
    let r = s
        .ingest_mail_batch(&mb, "INBOX", FolderKind::Inbox, 8, batch(1, vec![m1]), now)
        .unwrap();
    assert_eq!((r.stored, r.duplicates), (0, 1));
    assert_eq!(acks(&s).len(), 1);

    let conv_id = {
        let list = s
            .list_conversations(&store::ConversationFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].client, "acme");
        list[0].id
    };

    // Threads: a client reply to the acknowledgement (In-Reply-To), a
    // message with References only, and one with only the subject.
    let t = now + Duration::minutes(10);
    let by_reply = mail(
        "jane@acme.com",
        "support@example.com",
        "Re: Footer text",
        "<m2@acme.com>",
        &format!("In-Reply-To: {ack_id}\r\n"),
        t,
    );
    let by_refs = mail(
        "bob@acme.com",
        "support@example.com",
        "something else",
        "<m3@acme.com>",
        "References: <zzz@elsewhere> <m1@acme.com>\r\n",
        t,
    );
    let by_subject = mail(
        "carol@acme.com",
        "support@example.com",
        "AW: Fwd: Footer text",
        "<m4@acme.com>",
        "",
        t,
    );
    let other_client = mail(
        "x@globex.example",
        "support@example.com",
        "Footer text",
        "<m5@globex.example>",
        "",
        t,
    );
    let r = s
        .ingest_mail_batch(
            &mb,
            "INBOX",
            FolderKind::Inbox,
            8,
            batch(2, vec![by_reply, by_refs, by_subject, other_client]),
            t,
        )
        .unwrap();
    assert_eq!(r.stored, 4);
    let d = s.conversation_detail(conv_id).unwrap();
    let ids: Vec<&str> = d.messages.iter().map(|m| m.from.as_str()).collect();
    assert!(
        ids.contains(&"bob@acme.com") && ids.contains(&"carol@acme.com"),
        "{ids:?}"
    );
    assert_eq!(
        d.messages
            .iter()
            .filter(|m| m.direction == "inbound")
            .count(),
        4
    );
    assert_eq!(
        r.acknowledged, 1,
        "only Globex's new conversation is acknowledged"
    );
    assert_eq!(acks(&s).len(), 2);

    // The team's reply from the sent folder meets first_response.
    let reply = mail(
        "Support <support@example.com>",
        "jane@acme.com",
        "Re: Footer text",
        "<r1@example.com>",
        "In-Reply-To: <m1@acme.com>\r\n",
        now + Duration::minutes(30),
    );
    s.ingest_mail_batch(
        &mb,
        "Sent",
        FolderKind::Sent,
        3,
        batch(1, vec![reply]),
        now + Duration::minutes(31),
    )
    .unwrap();
    let d = s.conversation_detail(conv_id).unwrap();
    let first = d
        .summary
        .timers
        .iter()
        .find(|t| t.timer == "first_response")
        .unwrap();
    assert_eq!(first.status, "met");
    assert_eq!(store::checkpoint_of(&s, "Sent"), Some((3, 1)));

    // Automatic mail is stored but never acknowledged and never a client's request.
    let t = now + Duration::minutes(40);
    let ooo = mail(
        "dave@acme.com",
        "support@example.com",
        "Out of office",
        "<ooo@acme.com>",
        "Auto-Submitted: auto-replied\r\n",
        t,
    );
    let bounce = mail(
        "MAILER-DAEMON@acme.com",
        "support@example.com",
        "Undelivered Mail",
        "<b@acme.com>",
        "",
        t,
    );
    let list = mail(
        "news@acme.com",
        "support@example.com",
        "Newsletter",
        "<n@acme.com>",
        "List-Id: <news.acme.com>\r\nPrecedence: bulk\r\n",
        t,
    );
    let r = s
        .ingest_mail_batch(
            &mb,
            "INBOX",
            FolderKind::Inbox,
            8,
            batch(10, vec![ooo, bounce, list]),
            t,
        )
        .unwrap();
    assert_eq!((r.stored, r.acknowledged), (3, 0));
    assert_eq!(acks(&s).len(), 2);

    // The same sender opening a second conversation within the hour: no second ack.
    let again = mail(
        "x@globex.example",
        "support@example.com",
        "Another topic",
        "<m6@globex.example>",
        "",
        t,
    );
    let r = s
        .ingest_mail_batch(
            &mb,
            "INBOX",
            FolderKind::Inbox,
            8,
            batch(20, vec![again]),
            t,
        )
        .unwrap();
    assert_eq!((r.stored, r.acknowledged, r.suppressed), (1, 0, 1));

    // A team member writing into the inbox is outbound, never acknowledged.
    let team = mail(
        "lead@example.com",
        "jane@acme.com",
        "Re: Footer text",
        "<t1@example.com>",
        "In-Reply-To: <m2@acme.com>\r\n",
        t,
    );
    let r = s
        .ingest_mail_batch(&mb, "INBOX", FolderKind::Inbox, 8, batch(21, vec![team]), t)
        .unwrap();
    assert_eq!((r.stored, r.acknowledged), (1, 0));

    // Unparseable input is kept raw and does not stop the batch.
    let junk = b"\x00\x01\x02 not a mail at all".to_vec();
    let fine = mail(
        "eve@initech.example",
        "support@example.com",
        "Invoice question",
        "<i1@initech.example>",
        "",
        t,
    );
    let r = s
        .ingest_mail_batch(
            &mb,
            "INBOX",
            FolderKind::Inbox,
            8,
            batch(30, vec![junk.clone(), fine]),
            t,
        )
        .unwrap();
    assert_eq!((r.rejected, r.stored), (1, 1));
    let rejected = s.store().with(|c| store::rejected_inputs(c, 10)).unwrap();
    assert_eq!(rejected[0].raw, junk);
    assert_eq!(store::checkpoint_of(&s, "INBOX"), Some((8, 31)));
}

/// The store, plus a test-only view of checkpoints as plain numbers.
mod store {
    pub use keepword::store::*;
    pub fn checkpoint_of(s: &super::Service, folder: &str) -> Option<(i64, i64)> {
        s.store()
            .with(|c| checkpoint(c, "support", folder))
            .unwrap()
            .map(|c| (c.uidvalidity, c.last_uid))
    }
}

#[test]
fn email_through_the_service_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    run(&url);
}

#[test]
fn email_through_the_service_postgres() {
    let db = common::FreshPostgres::new();
    run(&db.url);
}

/// Every file of the public corpus (bounces from many MTAs, auto-replies,
/// list mail, broken MIME, legacy charsets) through the service: each is
/// stored (or kept raw when unparseable), nothing panics, and no automatic
/// message is ever acknowledged.
fn corpus(url: &str) {
    let s = common::shipped_service(url);
    let mb = mailbox();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
    let mut files = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x != "md") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() > 250, "corpus present");
    let raws: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let now: DateTime<Utc> = Utc::now();
    let mut totals = (0, 0, 0);
    for (i, chunk) in raws.chunks(50).enumerate() {
        let r = s
            .ingest_mail_batch(
                &mb,
                "INBOX",
                FolderKind::Inbox,
                1,
                batch(1 + 50 * i as u32, chunk.to_vec()),
                now,
            )
            .unwrap();
        totals.0 += r.stored;
        totals.1 += r.rejected;
        totals.2 += r.duplicates;
    }
    assert_eq!(
        totals.0 + totals.1 + totals.2,
        raws.len(),
        "every message accounted for: {totals:?}"
    );
    let refused: Vec<String> = s
        .store()
        .with(|c| store::rejected_inputs(c, 1000))
        .unwrap()
        .into_iter()
        .filter(|r| r.reason != "unparseable")
        .map(|r| r.detail)
        .collect();
    assert!(
        refused.is_empty(),
        "the database refused messages: {refused:?}"
    );
    assert!(
        totals.0 > 250,
        "almost all of the corpus is stored: {totals:?}"
    );
    // Every automatic message is stored as `auto`, and none got an acknowledgement.
    let acked: Vec<String> = acks(&s).into_iter().flat_map(|a| a.0).collect();
    let auto_senders: Vec<String> = s
        .store()
        .with(|c| {
            use diesel::prelude::*;
            use keepword::store::schema::messages::dsl::*;
            Ok(messages
                .filter(direction.eq("auto"))
                .select(sender)
                .load::<String>(c)?)
        })
        .unwrap();
    assert!(
        auto_senders.len() > 100,
        "bounces and auto-replies recognised: {}",
        auto_senders.len()
    );
    for a in &acked {
        assert!(
            !auto_senders.contains(a) || a.is_empty(),
            "automatic mail from {a} was acknowledged"
        );
    }
}

#[test]
fn corpus_through_the_service_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    corpus(&url);
}

#[test]
fn corpus_through_the_service_postgres() {
    let db = common::FreshPostgres::new();
    corpus(&db.url);
}
