//! Unit tests for parsing, automatic mail, subjects, team addresses and
//! threading. Corpus tests over real messages live in `tests/pure/email_corpus.rs`.

use chrono::{TimeDelta, TimeZone, Utc};

use super::*;

fn mail(headers: &str, body: &str) -> Vec<u8> {
    format!("{}\r\n\r\n{body}", headers.trim().replace('\n', "\r\n")).into_bytes()
}

const PLAIN: &str = "From: Client <Bob@Client.Example>\nTo: help@team.example\n\
                     Subject: Invoice\nMessage-ID: <m1@client.example>\n\
                     Date: Tue, 03 Mar 2026 10:00:00 +0100";

fn auto_of(extra: &str) -> Option<String> {
    parse_email(&mail(&format!("{PLAIN}\n{extra}"), "hi"))
        .unwrap()
        .auto
        .map(|r| r.0)
}

#[test]
fn plain_mail_parses_and_is_not_auto() {
    let p = parse_email(&mail(
        &format!("{PLAIN}\nIn-Reply-To: <p@x>\nReferences: <a@x> <p@x>\nCc: C <C@X.org>"),
        "hello",
    ))
    .unwrap();
    assert_eq!(p.message_id.as_deref(), Some("<m1@client.example>"));
    assert_eq!(p.in_reply_to.as_deref(), Some("<p@x>"));
    assert_eq!(p.references, ["<a@x>", "<p@x>"]);
    let from = p.from.unwrap();
    assert_eq!(from.address, "bob@client.example");
    assert_eq!(from.name.as_deref(), Some("Client"));
    assert_eq!(p.to[0].address, "help@team.example");
    assert_eq!(p.cc[0].address, "c@x.org");
    assert_eq!(
        p.date,
        Some(Utc.with_ymd_and_hms(2026, 3, 3, 9, 0, 0).unwrap())
    );
    assert_eq!(p.text.trim(), "hello");
    assert_eq!(p.html, None);
    assert_eq!(p.auto, None);
}

#[test]
fn html_only_mail_is_reduced_to_text_and_kept() {
    let p = parse_email(&mail(
        &format!("{PLAIN}\nContent-Type: text/html; charset=utf-8"),
        "<html><body><p>Hello <b>there</b></p><script>x()</script></body></html>",
    ))
    .unwrap();
    assert!(p.text.contains("Hello there"), "{:?}", p.text);
    assert!(!p.text.contains('<'));
    assert!(p.html.unwrap().contains("<b>there</b>"));
}

#[test]
fn encoded_subject_in_legacy_charset_decodes() {
    let p = parse_email(&mail(
        "From: a@b.c\nSubject: =?koi8-r?B?8NLJ18XU?=\nContent-Type: text/plain; charset=windows-1251",
        "\u{0}",
    ))
    .unwrap();
    assert_eq!(p.subject, "Привет");
}

#[test]
fn headerless_junk_is_a_failure_but_broken_mime_is_not() {
    assert!(parse_email(b"").is_err());
    assert!(parse_email(b"\r\n\r\n").is_err());
    assert!(parse_email(b"just some words, no header here\r\nmore\r\n").is_err());
    let broken = mail(
        "From: a@b.c\nSubject: broken\nContent-Type: multipart/mixed; boundary=\"nope\"",
        "--nope\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@not base64",
    );
    let p = parse_email(&broken).unwrap();
    assert_eq!(p.subject, "broken");
}

#[test]
fn message_id_without_brackets_gets_them() {
    let p = parse_email(&mail("From: a@b.c\nMessage-ID: bare@host", "x")).unwrap();
    assert_eq!(p.message_id.as_deref(), Some("<bare@host>"));
}

#[test]
fn each_auto_rule_fires() {
    let cases = [
        (
            "Auto-Submitted: auto-replied (vacation)",
            "Auto-Submitted: auto-replied (vacation)",
        ),
        (
            "Auto-Submitted: Auto-Generated; owner=x",
            "Auto-Submitted: auto-generated",
        ),
        ("Precedence: bulk", "Precedence: bulk"),
        ("Precedence: LIST", "Precedence: list"),
        ("Precedence: junk", "Precedence: junk"),
        ("Precedence: auto_reply", "Precedence: auto_reply"),
        ("List-Id: <dev.lists.example>", "List-Id"),
        ("List-Unsubscribe: <mailto:u@x>", "List-Unsubscribe"),
        ("Return-Path: <>", "empty Return-Path"),
        ("Return-Path: < >", "empty Return-Path"),
        ("X-Autoreply: yes", "X-Autoreply: yes"),
        ("X-Autorespond: on", "X-Autorespond: on"),
        (
            "X-Auto-Response-Suppress: All",
            "X-Auto-Response-Suppress: All",
        ),
        ("X-Keepword-Ack: 1", "X-Keepword-Ack: 1"),
        ("Return-Path: <MAILER-DAEMON>", "sender mailer-daemon"),
    ];
    for (header, want) in cases {
        assert_eq!(auto_of(header).as_deref(), Some(want), "{header}");
    }
}

#[test]
fn human_lookalikes_are_not_auto() {
    for header in [
        "Auto-Submitted: no",
        "Auto-Submitted: NO",
        "Precedence: first-class",
        "Return-Path: <bob@client.example>",
        "X-Mailer: Postmaster Pro",
    ] {
        assert_eq!(auto_of(header), None, "{header}");
    }
}

#[test]
fn daemon_senders_are_auto_in_any_case() {
    for from in [
        "MAILER-DAEMON@mx.example",
        "Postmaster@Example.org",
        "mailer-daemon@x",
    ] {
        let p = parse_email(&mail(&format!("From: {from}\nSubject: x"), "b")).unwrap();
        assert!(p.auto.unwrap().0.starts_with("sender "), "{from}");
    }
    let p = parse_email(&mail("From: postmaster-team@x.org\nSubject: x", "b")).unwrap();
    assert_eq!(p.auto, None);
}

#[test]
fn delivery_reports_are_auto() {
    let report = mail(
        "From: relay@mx.example\nSubject: Undelivered\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=b",
        "--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\n\
         Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n\
         Final-Recipient: rfc822; x@y\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n",
    );
    assert_eq!(
        parse_email(&report).unwrap().auto.unwrap().0,
        "multipart/report (delivery-status)"
    );
    let mdn = mail(
        "From: relay@mx.example\nSubject: Read\n\
         Content-Type: multipart/report; report-type=disposition-notification; boundary=b",
        "--b\r\nContent-Type: text/plain\r\n\r\nread\r\n--b--\r\n",
    );
    assert_eq!(
        parse_email(&mdn).unwrap().auto.unwrap().0,
        "multipart/report (disposition-notification)"
    );
    let wrapped = mail(
        "From: relay@mx.example\nSubject: Undelivered\nContent-Type: multipart/mixed; boundary=b",
        "--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\n\
         Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n--b--\r\n",
    );
    assert_eq!(
        parse_email(&wrapped).unwrap().auto.unwrap().0,
        "message/delivery-status part"
    );
}

#[test]
fn subject_normalisation_table() {
    let cases = [
        ("Invoice 42", "invoice 42"),
        ("  Re:   Invoice   42  ", "invoice 42"),
        ("RE: Re: re:Invoice", "invoice"),
        ("Fwd: FW: Fw: invoice", "invoice"),
        ("AW: WG: Rechnung", "rechnung"),
        ("SV: VS: Antw: Doorst: TR : RV: Réf. : Faktura", "faktura"),
        ("Re[2]: Re(3): Re^4: Invoice", "invoice"),
        ("[ACME-123] Re: [ACME-123] Invoice", "invoice"),
        ("Re: [list] Re: Invoice", "invoice"),
        ("回复：发票", "发票"),
        ("Re: Invoice [urgent] now", "invoice [urgent] now"),
        ("Rebate: Re: x", "rebate: re: x"),
        ("Reactor status", "reactor status"),
        ("Re:", ""),
        ("Re: Fwd: ", ""),
        ("", ""),
        ("Ré: ÉTÉ", "ré: été"),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_subject(raw), want, "{raw:?}");
    }
}

#[test]
fn team_addresses() {
    let team = vec![
        "Alice@Team.Example".to_string(),
        "@support.example".to_string(),
    ];
    assert!(is_team_address("alice@team.example", &team));
    assert!(is_team_address("ALICE@TEAM.EXAMPLE", &team));
    assert!(!is_team_address("bob@team.example", &team));
    assert!(is_team_address("anyone@SUPPORT.example", &team));
    assert!(!is_team_address("x@eu.support.example", &team));
    assert!(!is_team_address("x@notsupport.example", &team));
    assert!(!is_team_address("support.example", &team));
}

fn at(day: u32, hour: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
}

fn reply(subject: &str, in_reply_to: Option<&str>, references: &[&str]) -> ParsedEmail {
    let mut p = parse_email(&mail(
        &format!("From: bob@client.example\nSubject: {subject}"),
        "x",
    ))
    .unwrap();
    p.in_reply_to = in_reply_to.map(str::to_string);
    p.references = references.iter().map(|s| s.to_string()).collect();
    p
}

/// A route as the routing rule would give it for an inbound mail.
fn from_client(sender: &str, client: Option<&str>) -> Route {
    Route {
        direction: crate::sla::Direction::Inbound,
        sender: sender.into(),
        recipients: vec!["help@team.example".into()],
        client: client.map(str::to_string),
    }
}

const BOB: &str = "bob@client.example";

#[test]
fn threading_order_in_reply_to_then_references_then_subject() {
    let mut index = MemoryThreadIndex::<u32>::new();
    index.record_message_id("<a@x>", 1);
    index.record_message_id("<b@x>", 2);
    index.record_message_id("<c@x>", 3);
    index.open(4, Some("acme"), "carol@acme.example", "Invoice", at(1, 9));
    let now = at(2, 9);
    let acme = from_client(BOB, Some("acme"));

    let m = reply("Re: Invoice", Some("<c@x>"), &["<a@x>", "<b@x>"]);
    assert_eq!(find_thread(&mut index, &m, &acme, now), Some(3));
    // References newest (last) first.
    let m = reply(
        "Re: Invoice",
        Some("<unknown@x>"),
        &["<a@x>", "<b@x>", "<zz@x>"],
    );
    assert_eq!(find_thread(&mut index, &m, &acme, now), Some(2));
    // Unknown headers and a reply prefix: a colleague's reply joins the
    // client's conversation.
    let m = reply("Re: Invoice", Some("<unknown@x>"), &["<nope@x>"]);
    assert_eq!(find_thread(&mut index, &m, &acme, now), Some(4));
    // No client, no subject fallback.
    assert_eq!(
        find_thread(&mut index, &m, &from_client(BOB, None), now),
        None
    );
    // Another client never matches.
    let globex = from_client(BOB, Some("globex"));
    assert_eq!(find_thread(&mut index, &m, &globex, now), None);
}

#[test]
fn a_new_mail_without_reply_signs_opens_its_own_conversation() {
    // Issue 9: 291 "Question about contract renewal" mails from different
    // people were one conversation. Without a reply prefix or a quoted body
    // the subject never threads, whoever sent it.
    let mut index = MemoryThreadIndex::<u32>::new();
    index.open(
        1,
        Some("acme"),
        "ann@acme.example",
        "Invoice question",
        at(1, 9),
    );
    let colleague = from_client("ben@acme.example", Some("acme"));
    let m = reply("Invoice question", None, &[]);
    assert_eq!(find_thread(&mut index, &m, &colleague, at(2, 9)), None);
    // Not even the same sender's second request.
    let ann = from_client("ann@acme.example", Some("acme"));
    assert_eq!(find_thread(&mut index, &m, &ann, at(2, 9)), None);
}

#[test]
fn senders_of_the_unknown_client_are_never_grouped() {
    let mut index = MemoryThreadIndex::<u32>::new();
    // Unknown-client conversations are filed under their opener only.
    index.open(
        1,
        None,
        "ann@one.example",
        "Cannot log in to the portal",
        at(1, 9),
    );
    let stranger = from_client("zoe@two.example", Some(crate::contract::UNKNOWN_CLIENT));
    let m = reply("Re: Cannot log in to the portal", None, &[]);
    assert_eq!(find_thread(&mut index, &m, &stranger, at(1, 12)), None);
    // The opener's own header-stripped reply still threads.
    let ann = from_client("ann@one.example", Some(crate::contract::UNKNOWN_CLIENT));
    assert_eq!(find_thread(&mut index, &m, &ann, at(1, 12)), Some(1));
}

#[test]
fn a_quoted_reply_body_counts_as_a_reply() {
    let mut index = MemoryThreadIndex::<u32>::new();
    index.open(1, None, BOB, "Portal access", at(1, 9));
    let bob = from_client(BOB, Some(crate::contract::UNKNOWN_CLIENT));
    for body in [
        "Still broken.\n\n> Please try again",
        "Still broken.\n\nOn Mon, 2 Mar 2026, Support wrote:\nPlease try",
        "Geht nicht.\n\nAm 02.03.2026 um 10:00 schrieb Support <help@team.example>:",
        "Still broken.\n-----Original Message-----\nFrom: Support",
    ] {
        let mut m = reply("Portal access", None, &[]);
        m.text = body.into();
        assert!(looks_like_reply(&m), "{body:?}");
        assert_eq!(
            find_thread(&mut index, &m, &bob, at(1, 12)),
            Some(1),
            "{body:?}"
        );
    }
    let m = reply("Portal access", None, &[]);
    assert!(!looks_like_reply(&m));
}

#[test]
fn reply_prefixes_after_tags_are_recognised() {
    for s in [
        "Re: x",
        "AW: x",
        "[ACME-12] Re: x",
        "Fwd: x",
        "TR : x",
        "Re[2]: x",
    ] {
        assert!(has_reply_prefix(s), "{s}");
    }
    for s in ["Rebate: x", "Invoice", "[ACME-12] Invoice", "Reactor: down"] {
        assert!(!has_reply_prefix(s), "{s}");
    }
}

#[test]
fn a_team_reply_without_headers_threads_by_its_recipient() {
    let mut index = MemoryThreadIndex::<u32>::new();
    index.open(1, None, BOB, "Portal access", at(1, 9));
    let team_reply = Route {
        direction: crate::sla::Direction::Outbound,
        sender: "help@team.example".into(),
        recipients: vec![BOB.into()],
        client: None,
    };
    let m = reply("Re: Portal access", None, &[]);
    assert_eq!(find_thread(&mut index, &m, &team_reply, at(1, 12)), Some(1));
}

#[test]
fn subject_window_is_fourteen_days_inclusive() {
    let mut index = MemoryThreadIndex::<u32>::new();
    index.open(7, Some("acme"), BOB, "Invoice", at(1, 9));
    let m = reply("RE: invoice", None, &[]);
    let acme = from_client(BOB, Some("acme"));
    let edge = at(1, 9) + TimeDelta::days(14);
    assert_eq!(find_thread(&mut index, &m, &acme, edge), Some(7));
    assert_eq!(
        find_thread(&mut index, &m, &acme, edge + TimeDelta::seconds(1)),
        None
    );
    // Activity moves the window.
    index.touch(7, at(10, 9));
    assert_eq!(
        find_thread(&mut index, &m, &acme, edge + TimeDelta::seconds(1)),
        Some(7)
    );
}

#[test]
fn empty_subject_never_threads_by_subject() {
    let mut index = MemoryThreadIndex::<u32>::new();
    index.open(1, Some("acme"), BOB, "Re:", at(1, 9));
    let m = reply("Re:", None, &[]);
    let acme = from_client(BOB, Some("acme"));
    assert_eq!(find_thread(&mut index, &m, &acme, at(1, 10)), None);
}

#[test]
fn the_latest_active_conversation_per_subject_wins() {
    let mut index = MemoryThreadIndex::<u32>::new();
    index.open(1, Some("acme"), BOB, "Invoice", at(1, 9));
    index.record_message_id("<one@x>", 1);
    index.open(2, Some("acme"), BOB, "Invoice", at(3, 9));
    // Older mail of conversation 1 arriving late never makes it the latest.
    index.touch(1, at(2, 9));
    let acme = from_client(BOB, Some("acme"));
    let m = reply("Re: Invoice", None, &[]);
    assert_eq!(find_thread(&mut index, &m, &acme, at(4, 9)), Some(2));
    let m = reply("other", Some("<one@x>"), &[]);
    assert_eq!(find_thread(&mut index, &m, &acme, at(4, 9)), Some(1));
}

/// Found by the `mime` fuzz target: mail-parser 0.11.9 trips its own
/// `debug_assert!` (message.rs:485) on a message/rfc822 part whose body is
/// another bare message/rfc822. A release build parses on; a debug build
/// panics inside mail-parser, and the poller must still get an answer.
#[test]
fn nested_bare_rfc822_parts_never_unwind_out_of_parse_email() {
    let raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\
                Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n\n--b--";
    let result = parse_email(raw);
    if cfg!(debug_assertions) {
        assert_eq!(
            result,
            Err(ParseFailure(
                "MIME parser panicked: Invalid part ID, could not find multipart.".into()
            ))
        );
    } else {
        assert!(result.is_ok(), "{result:?}");
    }
}
