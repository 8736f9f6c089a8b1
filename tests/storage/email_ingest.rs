//! Email through the service on both backends: threading, directions,
//! automatic mail, acknowledgements and their limits, checkpoints,
//! unparseable input kept raw.

use crate::common;

use chrono::{DateTime, Duration, Utc};
use keepword::imap::{FetchedMail, FolderKind};
use keepword::outbox::OutboxMessage;
use keepword::service::{MailboxContext, Service};

/// The support mailbox of these tests (the team is `@example.com`).
pub(crate) fn mailbox() -> MailboxContext {
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
    s.core
        .store()
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
        .intake
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
        .intake
        .ingest_mail_batch(&mb, "INBOX", FolderKind::Inbox, 8, batch(1, vec![m1]), now)
        .unwrap();
    assert_eq!((r.stored, r.duplicates), (0, 1));
    assert_eq!(acks(&s).len(), 1);

    let conv_id = {
        let list = s
            .reads
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
        .intake
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
    let d = s.reads.conversation_detail(conv_id).unwrap();
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
    s.intake
        .ingest_mail_batch(
            &mb,
            "Sent",
            FolderKind::Sent,
            3,
            batch(1, vec![reply]),
            now + Duration::minutes(31),
        )
        .unwrap();
    let d = s.reads.conversation_detail(conv_id).unwrap();
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
        .intake
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
        .intake
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
        .intake
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
        .intake
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
    let rejected = s
        .core
        .store()
        .with(|c| store::rejected_inputs(c, 10))
        .unwrap();
    assert_eq!(rejected[0].raw, junk);
    assert_eq!(store::checkpoint_of(&s, "INBOX"), Some((8, 31)));
}

/// The store, plus a test-only view of checkpoints as plain numbers.
mod store {
    pub use keepword::store::*;
    pub fn checkpoint_of(s: &super::Service, folder: &str) -> Option<(i64, i64)> {
        s.core
            .store()
            .with(|c| checkpoint(c, "support", folder))
            .unwrap()
            .map(|c| (c.uidvalidity, c.last_uid))
    }
}

crate::both_backends!(run);

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
            .intake
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
        .core
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
        .core
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

crate::both_backends!(corpus);

/// A mailbox of the shape real users have (issue 9): many threads, replies
/// with In-Reply-To and References in a heavy tail, subjects repeated across
/// clients and across unknown senders, bodies with a keyword only after 6 KB,
/// mail to a recipient address the contract routes, and some replies whose
/// headers a client stripped. Returns the raw mails in date order and the
/// thread each belongs to (`None` for team mail that opens nothing).
fn realistic_mailbox(threads: usize) -> (Vec<Vec<u8>>, Vec<usize>) {
    const TOPICS: [&str; 15] = [
        "Cannot log in to the portal",
        "Question about contract renewal",
        "Invoice 4711 shows wrong amount",
        "Invoice question",
        "Change the footer text",
        "New team member needs access",
        "Export to CSV is slow",
        "Update our logo",
        "Password reset mail never arrives",
        "Quote for the new landing page",
        "Translation of the pricing page",
        "Cookie banner wording",
        "Newsletter template",
        "Meeting next week",
        "Report for November",
    ];
    // Three declared clients of the shipped contract and 17 unknown domains.
    let domains: Vec<String> = ["acme.com", "globex.example", "initech.example"]
        .iter()
        .map(|d| d.to_string())
        .chain((0..17).map(|i| format!("client{i}.example")))
        .collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let start: DateTime<Utc> = "2026-11-02T08:00:00Z".parse().unwrap();
    // (minute, thread, raw) — generated per thread, then sorted by time.
    let mut out: Vec<(i64, usize, Vec<u8>)> = Vec::new();
    for t in 0..threads {
        // One sender per thread; colleagues share a domain and topics.
        let sender = format!("person{t}@{}", domains[t % domains.len()]);
        let topic = TOPICS[rand(TOPICS.len())];
        let to = if t % 7 == 0 {
            "billing@example.com"
        } else {
            "support@example.com"
        };
        let body = if t % 5 == 0 {
            format!("{}\r\nThe export shows an error.", "Details. ".repeat(800))
        } else {
            "Hello, a question.".to_string()
        };
        let mut minute = (t as i64) * 37;
        let opener_id = format!("<t{t}-0@{}>", domains[t % domains.len()]);
        let mut ids = vec![opener_id.clone()];
        let raw = |from: &str,
                   to: &str,
                   subject: &str,
                   id: &str,
                   extra: &str,
                   body: &str,
                   m: i64| {
            format!(
                "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {id}\r\nDate: {}\r\n{extra}\
                 MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
                (start + Duration::minutes(m)).to_rfc2822()
            )
            .into_bytes()
        };
        out.push((
            minute,
            t,
            raw(&sender, to, topic, &opener_id, "", &body, minute),
        ));
        // Heavy tail: thread 0 gets the most replies.
        let replies = 40 / (t + 1) + rand(3);
        for r in 1..=replies {
            minute += 5 + rand(90) as i64;
            let team = r % 2 == 1;
            let id = format!(
                "<t{t}-{r}@{}>",
                if team { "example.com" } else { "mail.example" }
            );
            let refs = ids.join(" ");
            let last = ids.last().unwrap().clone();
            let mail = if team {
                raw(
                    "lead@example.com",
                    &sender,
                    &format!("Re: {topic}"),
                    &id,
                    &format!("In-Reply-To: {last}\r\nReferences: {refs}\r\n"),
                    "Thanks, we are on it.",
                    minute,
                )
            } else if r % 4 == 0 {
                // A client that strips headers: only the reply prefix and
                // the quote say what this is.
                raw(
                    &sender,
                    "support@example.com",
                    &format!("Re: {topic}"),
                    &id,
                    "",
                    "Still not working.\r\n\r\n> Thanks, we are on it.",
                    minute,
                )
            } else {
                raw(
                    &sender,
                    "support@example.com",
                    &format!("Re: {topic}"),
                    &id,
                    &format!("In-Reply-To: {last}\r\nReferences: {refs}\r\n"),
                    "More details.",
                    minute,
                )
            };
            ids.push(id);
            out.push((minute, t, mail));
        }
    }
    // Two colleagues at one client, the same subject, the same week, no
    // reply signs: two requests.
    let colleagues = threads;
    for (i, who) in ["ann@acme.com", "ben@acme.com"].iter().enumerate() {
        let m = 60 + i as i64 * 24 * 60;
        out.push((
            m,
            colleagues + i,
            format!(
                "From: {who}\r\nTo: support@example.com\r\nSubject: Invoice question\r\n\
                 Message-ID: <coll{i}@acme.com>\r\nDate: {}\r\n\r\nWhich invoice?\r\n",
                (start + Duration::minutes(m)).to_rfc2822()
            )
            .into_bytes(),
        ));
    }
    out.sort_by_key(|(m, t, _)| (*m, *t));
    let thread_of = out.iter().map(|(_, t, _)| *t).collect();
    (out.into_iter().map(|(_, _, raw)| raw).collect(), thread_of)
}

/// The shipped contract plus a request type routed by recipient address:
/// the rule the backtest used to ignore.
fn contract_with_billing() -> String {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/contract.toml"))
            .unwrap();
    shipped.replacen(
        "[[request_types]]\nid = \"bug\"",
        "[[request_types]]\nid = \"billing\"\nname = \"Billing\"\n\
         definition = \"Invoices and payments.\"\nchannels = [\"email\"]\n\
         match = { recipients = [\"billing@example.com\"] }\ncalendar = \"business\"\n\
         first_response = \"1d\"\n\n[[request_types]]\nid = \"bug\"",
        1,
    )
}

/// Issue 9 and issue 7: one conversation per thread whatever the subjects,
/// header-stripped replies still thread, colleagues' same-subject requests
/// stay apart — and `keepword backtest` routes, threads and classifies every
/// message exactly as the service stores it.
fn threads_and_parity(url: &str) {
    use diesel::prelude::*;
    use keepword::store::schema::{conversations, messages};

    let threads = 120;
    let (raws, thread_of) = realistic_mailbox(threads);
    let contract = contract_with_billing();
    let s = common::service_with_contract(url, &contract);
    let now: DateTime<Utc> = "2026-12-01T09:00:00Z".parse().unwrap();
    for (i, chunk) in raws.chunks(97).enumerate() {
        s.intake
            .ingest_mail_batch(
                &mailbox(),
                "INBOX",
                FolderKind::Inbox,
                1,
                batch(1 + (i * 97) as u32, chunk.to_vec()),
                now,
            )
            .unwrap();
    }
    let stored: Vec<(Option<String>, String, Option<i64>)> = s
        .core
        .store()
        .with(|c| {
            messages::table
                .filter(messages::external_id.not_like("ack:%"))
                .select((
                    messages::message_id,
                    messages::direction,
                    messages::conversation_id,
                ))
                .load(c)
                .map_err(Into::into)
        })
        .unwrap();
    let convs: std::collections::HashMap<i64, (String, String)> = s
        .core
        .store()
        .with(|c| {
            conversations::table
                .select((
                    conversations::id,
                    conversations::client_id,
                    conversations::request_type,
                ))
                .load::<(i64, String, String)>(c)
                .map_err(Into::into)
        })
        .unwrap()
        .into_iter()
        .map(|(id, client, t)| (id, (client, t)))
        .collect();
    assert_eq!(convs.len(), threads + 2, "one conversation per thread");
    let by_id: std::collections::HashMap<String, (String, Option<i64>)> = stored
        .into_iter()
        .map(|(id, dir, conv)| (id.unwrap(), (dir, conv)))
        .collect();

    // Every message of a thread is in that thread's conversation.
    let ids: Vec<String> = raws
        .iter()
        .map(|r| {
            let p = keepword::ingest::email::parse_email(r).unwrap();
            p.message_id.unwrap()
        })
        .collect();
    let mut conv_of_thread: std::collections::HashMap<usize, i64> = Default::default();
    for (id, t) in ids.iter().zip(&thread_of) {
        let (_, conv) = &by_id[id];
        let conv = conv.unwrap_or_else(|| panic!("{id} has no conversation"));
        assert_eq!(
            *conv_of_thread.entry(*t).or_insert(conv),
            conv,
            "{id} strayed"
        );
    }
    let types: std::collections::BTreeSet<&str> = convs.values().map(|(_, t)| t.as_str()).collect();
    assert!(
        types.contains("billing") && types.contains("bug"),
        "{types:?}"
    );

    // The backtest on the same mail: same direction, client, grouping and
    // request type for every message.
    let parsed = keepword::contract::parse(&contract, "contract.toml").unwrap();
    let traced = keepword::backtest::trace(&parsed, &raws, &["@example.com".to_string()]);
    assert_eq!(traced.len(), raws.len());
    let mut service_conv_of: std::collections::HashMap<usize, i64> = Default::default();
    for t in &traced {
        let id = t.message_id.as_ref().unwrap();
        let (direction, conv) = &by_id[id];
        assert_eq!(t.direction.as_str(), direction, "{id}");
        let conv = conv.unwrap();
        let c = t
            .conversation
            .unwrap_or_else(|| panic!("{id}: no conversation in the backtest"));
        assert_eq!(
            *service_conv_of.entry(c).or_insert(conv),
            conv,
            "{id}: grouped differently"
        );
        assert_eq!(
            t.request_type.as_deref(),
            Some(convs[&conv].1.as_str()),
            "{id}"
        );
        if t.direction == keepword::sla::Direction::Inbound {
            assert_eq!(t.client.as_deref(), Some(convs[&conv].0.as_str()), "{id}");
        }
    }
    assert_eq!(service_conv_of.len(), threads + 2);

    // Each batch inserted its new conversations with their first state in
    // the row, evaluated from the batch's own mail, and refreshed the rest
    // from the store; a subject lookup inserted pending ones early. Either
    // way the state must be what a full evaluation from the stored messages
    // gives: the scheduler, made to look at every conversation again at the
    // same instant, finds nothing to change.
    crate::event_batches::a_full_evaluation_changes_nothing(&s, now, threads + 2);
}

crate::both_backends!(threads_and_parity);

fn conversations(s: &Service) -> Vec<keepword::service::ConversationSummary> {
    s.reads
        .list_conversations(&store::ConversationFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap()
}

/// The database refuses one mail of a batch (a trigger): the batch is
/// stored again mail by mail, the refused one is kept raw with the
/// database's words, the rest is stored and acknowledged, and the folder's
/// checkpoint moves past all of them — one bad mail never blocks a mailbox.
fn refused_mail_is_kept_raw_alone(url: &str) {
    let s = common::shipped_service(url);
    crate::event_batches::refuse_messages_from(&s, "refused@acme.com");
    let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
    let senders = [
        "ann@acme.com",
        "bo@acme.com",
        "refused@acme.com",
        "cy@acme.com",
    ];
    let raws: Vec<Vec<u8>> = senders
        .iter()
        .enumerate()
        .map(|(i, from)| {
            mail(
                from,
                "support@example.com",
                &format!("Question {i}"),
                &format!("<q{i}@acme.com>"),
                "",
                now,
            )
        })
        .collect();
    let refused_raw = raws[2].clone();
    let r = s
        .intake
        .ingest_mail_batch(
            &mailbox(),
            "INBOX",
            FolderKind::Inbox,
            3,
            batch(40, raws),
            now,
        )
        .unwrap();
    assert_eq!((r.stored, r.rejected, r.duplicates), (3, 1, 0), "{r:?}");
    assert_eq!(r.acknowledged, 3, "{r:?}");
    let rejected = s
        .core
        .store()
        .with(|c| store::rejected_inputs(c, 10))
        .unwrap();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].raw, refused_raw);
    assert!(
        rejected[0].detail.contains("refused by the test"),
        "{}",
        rejected[0].detail
    );
    assert_eq!(store::checkpoint_of(&s, "INBOX"), Some((3, 43)));
    let list = conversations(&s);
    assert_eq!(list.len(), 3, "the refused mail opened nothing");
    crate::event_batches::a_full_evaluation_changes_nothing(&s, now, 3);
}

crate::both_backends!(refused_mail_is_kept_raw_alone);

/// A batch threads over an index it reads once, in memory: a reply without
/// headers finds the conversation an earlier mail of the same batch moved
/// back into the subject window (its last mail was 20 days old), and one the
/// batch itself opened, exactly as if each mail had come alone.
fn header_less_replies_thread_within_their_batch(url: &str) {
    let s = common::shipped_service(url);
    let mb = mailbox();
    let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
    let old = now - Duration::days(20);
    let opening = mail(
        "jane@acme.com",
        "support@example.com",
        "Footer text",
        "<old@acme.com>",
        "",
        old,
    );
    s.intake
        .ingest_mail_batch(
            &mb,
            "INBOX",
            FolderKind::Inbox,
            5,
            batch(1, vec![opening]),
            old,
        )
        .unwrap();
    let by_header = mail(
        "jane@acme.com",
        "support@example.com",
        "Re: Footer text",
        "<a@acme.com>",
        "In-Reply-To: <old@acme.com>\r\n",
        now,
    );
    let by_subject = mail(
        "jane@acme.com",
        "support@example.com",
        "Re: Footer text",
        "<b@acme.com>",
        "",
        now + Duration::minutes(1),
    );
    let fresh = mail(
        "bob@acme.com",
        "support@example.com",
        "Invoice address",
        "<c@acme.com>",
        "",
        now,
    );
    let fresh_reply = mail(
        "bob@acme.com",
        "support@example.com",
        "Re: Invoice address",
        "<d@acme.com>",
        "",
        now + Duration::minutes(2),
    );
    let r = s
        .intake
        .ingest_mail_batch(
            &mb,
            "INBOX",
            FolderKind::Inbox,
            5,
            batch(2, vec![by_header, by_subject, fresh, fresh_reply]),
            now + Duration::minutes(3),
        )
        .unwrap();
    assert_eq!(r.stored, 4);
    let list = conversations(&s);
    assert_eq!(list.len(), 2, "{list:?}");
    let mut senders: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let d = s.reads.conversation_detail(c.id).unwrap();
            d.messages
                .iter()
                .filter(|m| m.direction == "inbound")
                .map(|m| m.from.clone())
                .collect()
        })
        .collect();
    senders.sort();
    assert_eq!(
        senders,
        vec![
            vec!["bob@acme.com".to_string(), "bob@acme.com".to_string()],
            vec![
                "jane@acme.com".to_string(),
                "jane@acme.com".to_string(),
                "jane@acme.com".to_string()
            ],
        ]
    );
    crate::event_batches::a_full_evaluation_changes_nothing(&s, now + Duration::minutes(3), 2);
}

crate::both_backends!(header_less_replies_thread_within_their_batch);
