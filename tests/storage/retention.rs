//! Retention on both backends: bodies, raw mail and rejected input older
//! than `[retention] bodies` go in small batches; the SLA record stays, so
//! the compliance report of that period reads the same before and after;
//! younger mail is untouched; the timeline says why a body is gone.

use chrono::{Duration, TimeZone, Utc};
use keepword::config::Days;
use keepword::imap::{FetchedMail, FolderKind};
use keepword::service::Service;

use crate::email_ingest::mailbox;
use keepword::store;

use crate::common;

fn ingest(s: &Service, mails: &[String], first_uid: u32, now: chrono::DateTime<Utc>) {
    for (n, chunk) in mails.chunks(10).enumerate() {
        let batch: Vec<FetchedMail> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| FetchedMail {
                uid: first_uid + (n * 10 + i) as u32,
                raw: m.clone().into_bytes(),
            })
            .collect();
        s.intake
            .ingest_mail_batch(&mailbox(), "INBOX", FolderKind::Inbox, 1, batch, now)
            .unwrap();
    }
}

/// A message's body and raw mail.
type Body = (String, Option<Vec<u8>>);

/// Every stored conversation, newest first.
pub(crate) fn conversations(s: &Service) -> Vec<store::ConversationRow> {
    s.core
        .store()
        .with(|c| {
            store::list_conversations(
                c,
                &store::ConversationFilter {
                    limit: 1_000,
                    ..Default::default()
                },
            )
        })
        .unwrap()
}

/// Conversations with messages (bodies and raw mail), per conversation.
fn bodies(s: &Service) -> Vec<(i64, Vec<Body>)> {
    conversations(s)
        .into_iter()
        .map(|c| {
            let m = s
                .core
                .store()
                .with(|conn| store::messages_of(conn, c.id))
                .unwrap();
            (c.id, m.into_iter().map(|m| (m.body, m.raw)).collect())
        })
        .collect()
}

fn retention_keeps_the_sla_record(url: &str) {
    let s = common::shipped_service(url);
    let history = crate::compliance::history();
    let old_at = history.last().unwrap().0;
    let mails: Vec<String> = history.iter().map(|(_, m)| m.clone()).collect();
    ingest(&s, &mails, 1, old_at);
    let old_conversations: Vec<i64> = bodies(&s).into_iter().map(|(id, _)| id).collect();
    // Mail stored 200 days later: inside any year's retention.
    let young_at = old_at + Duration::days(200);
    let young = "From: jane@acme.com\nTo: support@example.com\nSubject: Still here\n\
                 Message-ID: <young@acme.com>\n\nKeep me, please.\n"
        .to_string();
    ingest(&s, &[young], 1_000, young_at);
    s.core
        .store()
        .with(|c| store::reject_input(c, "email", "unreadable", "old", b"old raw", old_at))
        .unwrap();
    s.core
        .store()
        .with(|c| store::reject_input(c, "email", "unreadable", "young", b"young raw", young_at))
        .unwrap();

    let from = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    let before = s.reads.compliance(from, to).unwrap();
    assert!(before.iter().any(|r| r.met > 0) && before.iter().any(|r| r.missed > 0));
    let with_bodies: usize = bodies(&s)
        .iter()
        .filter(|(id, _)| old_conversations.contains(id))
        .map(|(_, m)| {
            m.iter()
                .filter(|(b, r)| !b.is_empty() || r.is_some())
                .count()
        })
        .sum();
    assert!(with_bodies > 60, "{with_bodies}");

    // A year and a bit after the old mail; batches of 7 so the walk
    // resumes from its progress many times.
    let now = old_at + Duration::days(400);
    let days = Days::new(365).unwrap();
    let mut total = keepword::service::RetentionReport::default();
    let mut batches = 0;
    loop {
        let r = s.deadlines.retention_batch(days, now, 7).unwrap();
        total.bodies += r.bodies;
        total.rejected += r.rejected;
        batches += 1;
        if r.done {
            break;
        }
        assert!(batches < 1_000, "retention does not finish");
    }
    assert!(batches > 5, "{batches} batches");
    assert_eq!(total.bodies, with_bodies);
    assert_eq!(total.rejected, 1);

    let after = s.reads.compliance(from, to).unwrap();
    assert_eq!(before, after, "compliance changed when bodies went");
    for (id, messages) in bodies(&s) {
        let old = old_conversations.contains(&id);
        for (body, raw) in messages {
            if old {
                assert!(
                    body.is_empty() && raw.is_none(),
                    "conversation {id} kept a body"
                );
            } else {
                // The mail and its acknowledgement.
                assert!(!body.is_empty(), "conversation {id} lost a young body");
            }
        }
    }
    let timeline = s.reads.timeline(old_conversations[0], 1, now).unwrap();
    let texts: Vec<&str> = timeline
        .items
        .iter()
        .filter(|i| i.message_id.is_some())
        .map(|i| i.text.as_str())
        .collect();
    assert!(
        !texts.is_empty() && texts.iter().all(|t| *t == "body removed after 365 days"),
        "{texts:?}"
    );
    let rejected = s
        .core
        .store()
        .with(|c| store::rejected_inputs(c, 10))
        .unwrap();
    assert_eq!(
        rejected
            .iter()
            .map(|r| r.detail.as_str())
            .collect::<Vec<_>>(),
        ["young"]
    );
    let counted = |kind: &str| {
        s.reads
            .metrics()
            .retention_deleted
            .with_label_values(&[kind])
            .get()
    };
    assert_eq!(counted("message_bodies"), with_bodies as u64);
    assert_eq!(counted("rejected_input"), 1);

    // The next day's run finds nothing more; the young mail stays until
    // its own year has passed.
    let again = s
        .deadlines
        .apply_retention(
            days,
            now + Duration::days(1),
            std::time::Duration::ZERO,
            || false,
        )
        .unwrap();
    assert_eq!((again.bodies, again.rejected, again.done), (0, 0, true));
    let later = s
        .deadlines
        .apply_retention(
            days,
            young_at + Duration::days(366),
            std::time::Duration::ZERO,
            || false,
        )
        .unwrap();
    assert_eq!(
        (later.bodies, later.rejected),
        (2, 1),
        "the mail and its acknowledgement"
    );
    assert_eq!(s.reads.compliance(from, to).unwrap(), before);
}

#[test]
fn retention_keeps_the_sla_record_sqlite() {
    let (_dir, url) = common::fresh_sqlite();
    retention_keeps_the_sla_record(&url);
}

#[test]
fn retention_keeps_the_sla_record_postgres() {
    let db = common::FreshPostgres::new();
    retention_keeps_the_sla_record(&db.url);
}
