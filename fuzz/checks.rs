//! The invariants every fuzz input must keep, one function per entry point.
//!
//! Shared by the libFuzzer targets (`fuzz/fuzz_targets/*.rs`) and the bounded
//! mutation run in the normal test suite (`tests/pure/fuzz_corpus.rs`), so the
//! same guarantees hold with or without cargo-fuzz. Each function panics
//! (which libFuzzer reports as a crash, and proptest as a failing case) when
//! an invariant breaks; a parser returning an error is never a failure.

// Each includer uses its own subset.
#![allow(dead_code)]

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use keepword::config::Settings;
use keepword::contract::{self, Contract, Timer, UNKNOWN_CLIENT};
use keepword::ingest::email::{
    FolderKind, MemoryThreadIndex, Route, Team, find_thread, is_team_address, normalize_subject,
    parse_email, route,
};
use keepword::ingest::webhook::{
    EventError, GithubOutcome, IncomingEvent, MAX_BODY_BYTES, MAX_FUTURE_SECS, MAX_ID_CHARS,
    MAX_SUBJECT_CHARS, SlackTeam, parse_basecamp, parse_generic, parse_github, parse_jira,
    parse_linear, parse_slack, slack_challenge, slack_text,
};
use keepword::sla::Direction;

/// A fixed `now`, so a failing input replays the same way.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 18, 10, 30, 0).unwrap()
}

/// mail-parser 0.11.9 (message.rs:485) trips this `debug_assert!` on some
/// broken nested multiparts. Debug builds only: a release build (the
/// service) goes on and recovers what it can, a debug build's panic is
/// caught by `parse_email` and the message is kept raw. 1.x, which needs a
/// newer Rust, is the fix; until then the fuzzers tolerate exactly this.
pub const MAIL_PARSER_DEBUG_ASSERT: &str = "Invalid part ID, could not find multipart.";

/// Whether a panic is the known mail-parser debug assertion above.
pub fn is_known_dependency_panic(file: &str, message: &str) -> bool {
    file.contains("mail-parser-0.11.") && message == MAIL_PARSER_DEBUG_ASSERT
}

/// Raw bytes as they arrive over IMAP: parse, then everything ingest does
/// with the result that is a pure function today (team-address check,
/// subject key, threading).
pub fn mime(raw: &[u8]) {
    let mail = match parse_email(raw) {
        Ok(mail) => mail,
        // The catch_unwind in parse_email is a last resort for the poller;
        // a panic it caught is still a parser bug to find and fix.
        Err(e) => {
            assert!(
                !e.0.contains("panicked") || e.0.ends_with(MAIL_PARSER_DEBUG_ASSERT),
                "{e}"
            );
            return;
        }
    };

    let key = normalize_subject(&mail.subject);
    assert_eq!(
        normalize_subject(&format!("Re: {}", mail.subject)),
        key,
        "a reply prefix changed the subject key of {:?}",
        mail.subject
    );
    assert_eq!(
        normalize_subject(&format!("[TICKET-1] Fwd: {}", mail.subject)),
        key,
        "a tag and forward prefix changed the subject key of {:?}",
        mail.subject
    );

    for addr in mail.from.iter().chain(&mail.to).chain(&mail.cc) {
        let a = addr.address.as_str();
        assert!(!a.is_empty(), "parse_email kept an empty address");
        // A team entry starting with `@` is a domain, so an "address" that
        // starts with one (obsolete route syntax) cannot be listed as is.
        assert!(
            a.starts_with('@') || is_team_address(a, &[a.to_string()]),
            "{a:?} is not in a team list of itself"
        );
        if let Some((_, domain)) = a.rsplit_once('@') {
            assert!(
                is_team_address(a, &[format!("@{domain}")]),
                "{a:?} is not in the team of its own domain"
            );
        }
    }
    // The routing rule (direction and client, as the service and the
    // backtest decide them) holds for any mail: automatic mail is `auto`
    // wherever it lies; the sent folder holds only the team's mail.
    let shipped = contract::parse(include_str!("../config/contract.toml"), "contract.toml")
        .expect("the shipped contract is valid");
    let team: Vec<String> = mail.to.iter().map(|a| a.address.clone()).collect();
    let inbox = route(
        &mail,
        &shipped,
        Team {
            members: &team,
            own: &[],
        },
        FolderKind::Inbox,
    );
    let sent = route(&mail, &shipped, Team::default(), FolderKind::Sent);
    match mail.auto {
        Some(_) => assert_eq!(inbox.direction, Direction::Auto),
        None => assert_eq!(sent.direction, Direction::Outbound),
    }
    assert_eq!(
        inbox.recipients.len(),
        mail.to.len() + mail.cc.len(),
        "recipients are To and Cc"
    );

    // A reply to this message finds its conversation: by header when the
    // message has an id, else (a reply prefix) by subject for its sender.
    let at = mail.date.unwrap_or_else(now);
    let mut index = MemoryThreadIndex::<u32>::new();
    index.open(7, Some("acme"), &inbox.sender, &mail.subject, at);
    if let Some(id) = &mail.message_id {
        index.record_message_id(id, 7);
    }
    let mut reply = mail.clone();
    reply.in_reply_to = mail.message_id.clone();
    reply.references = mail.message_id.iter().cloned().collect();
    reply.subject = format!("RE: {}", mail.subject);
    let from_acme = Route {
        direction: Direction::Inbound,
        sender: inbox.sender.clone(),
        recipients: Vec::new(),
        client: Some("acme".into()),
    };
    let found = find_thread(&mut index, &reply, &from_acme, at);
    if mail.message_id.is_some() || !key.is_empty() {
        assert_eq!(found, Some(7), "a reply did not thread: {mail:?}");
    }
    // Another client's other sender never shares a conversation by subject.
    reply.in_reply_to = None;
    reply.references.clear();
    let stranger = Route {
        sender: format!("not-{}", inbox.sender),
        client: Some("other".into()),
        ..from_acme
    };
    assert_eq!(find_thread(&mut index, &reply, &stranger, at), None);
}

/// A contract file as an operator writes it: valid contracts render and
/// compute dues; invalid ones give diagnostics that point into the file.
pub fn contract(source: &str) {
    match contract::parse(source, "fuzz.toml") {
        Ok(c) => valid_contract(&c),
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "rejected without a diagnostic");
            let lines: Vec<&str> = source.split('\n').collect();
            for d in &diagnostics {
                assert_eq!(d.file, "fuzz.toml");
                assert!(!d.message.is_empty(), "empty message: {d:?}");
                assert!(
                    (1..=lines.len()).contains(&d.line),
                    "line {} outside 1..={}: {d:?}",
                    d.line,
                    lines.len()
                );
                let line_chars = lines[d.line - 1].chars().count();
                assert!(
                    (1..=line_chars + 1).contains(&d.col),
                    "column {} outside 1..={} of line {}: {d:?}",
                    d.col,
                    line_chars + 1,
                    d.line
                );
                // The format editors read must not break either.
                let shown = d.to_string();
                assert!(shown.starts_with(&format!("fuzz.toml:{}:{}: error: ", d.line, d.col)));
            }
        }
    }
}

fn valid_contract(c: &Contract) {
    let md = contract::render_markdown(c);
    let html = contract::render_html(c);
    assert!(!md.is_empty() && !html.is_empty());
    assert!(!c.version().is_empty());
    assert!(c.request_types().iter().filter(|t| t.default).count() == 1);

    // Instants around the awkward parts of a year: a DST change, a year end,
    // a weekend.
    let instants = [
        now(),
        Utc.with_ymd_and_hms(2026, 3, 29, 0, 59, 59).unwrap(),
        Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2027, 1, 2, 12, 0, 0).unwrap(),
    ];
    let clients = std::iter::once(None)
        .chain(std::iter::once(Some(UNKNOWN_CLIENT)))
        .chain(c.clients().iter().map(|cl| Some(cl.id.as_str())));
    for client in clients {
        for t in c.request_types() {
            for timer in Timer::ALL {
                let has_window = c.window(&t.id, client, timer).is_some();
                for at in instants {
                    // An always-closed calendar or an out-of-range instant
                    // is an error, not a panic.
                    if let Ok(due) = c.due(&t.id, client, timer, at) {
                        assert!(due.with_timezone(&Utc) >= at, "due before start");
                    }
                    if !has_window {
                        assert!(c.due(&t.id, client, timer, at).is_err());
                    }
                }
            }
        }
    }
    for client in c.clients() {
        for address in &client.addresses {
            assert!(
                c.client_for_email(address).is_some(),
                "a declared client address {address:?} matched no client"
            );
        }
        for domain in &client.domains {
            let _ = c.client_for_email(&format!("someone@{domain}"));
        }
    }
    let _ = c.client_for_email("someone@example.com");
    let _ = c.urgent_request_type();
}

/// The body of `POST /api/v1/events`.
pub fn event(body: &[u8]) {
    match parse_generic(body, now()) {
        Ok(e) => {
            assert!(!e.idempotency_key.is_empty() && !e.channel.is_empty() && !e.thread.is_empty());
            assert!(e.direction.is_some() || e.status.is_some(), "{e:?}");
            accepted_event(&e);
        }
        Err(EventError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "invalid with no problem listed");
            for p in &problems {
                // `field` is the JSON name as sent, and `""` is a JSON name.
                let unknown_key = p.problem.starts_with("is not a known field");
                assert!(!p.field.is_empty() || unknown_key, "{p:?}");
                assert!(!p.problem.is_empty(), "{p:?}");
            }
        }
        Err(EventError::Malformed(why)) => assert!(!why.is_empty()),
    }
}

/// Limits every accepted event keeps, whatever the source.
fn accepted_event(e: &IncomingEvent) {
    assert!(e.idempotency_key.chars().count() <= MAX_ID_CHARS, "{e:?}");
    assert!(e.subject.chars().count() <= MAX_SUBJECT_CHARS, "{e:?}");
    assert!(
        e.at <= now() + chrono::TimeDelta::seconds(MAX_FUTURE_SECS),
        "an event from the future: {e:?}"
    );
    if e.awaiting_client {
        assert_eq!(e.direction, Some(Direction::Outbound), "{e:?}");
    }
}

/// Events the GitHub target picks from with the input's first line.
pub const GITHUB_EVENTS: [&str; 5] = ["issues", "issue_comment", "ping", "pull_request", ""];

/// A GitHub delivery: the first line of the input is the `X-GitHub-Event`
/// header, the rest the body.
pub fn github(input: &[u8]) {
    let (event, body) = match input.iter().position(|&b| b == b'\n') {
        Some(i) => (
            String::from_utf8_lossy(&input[..i]).into_owned(),
            &input[i + 1..],
        ),
        None => (String::new(), input),
    };
    match parse_github(&event, "fuzz-delivery", body, "github", now()) {
        Ok(GithubOutcome::Event(e)) => {
            assert!(
                event == "issues" || event == "issue_comment",
                "{event:?} made an event"
            );
            // The payload's own identity, else the delivery id.
            assert!(
                e.idempotency_key == "fuzz-delivery" || e.idempotency_key.starts_with("github:"),
                "{:?}",
                e.idempotency_key
            );
            assert_eq!(e.channel, "github");
            assert!(e.thread.contains('#'), "{e:?}");
            assert!(e.client.is_none());
            accepted_event(&e);
        }
        Ok(GithubOutcome::Ignored { reason, .. }) => assert!(!reason.is_empty()),
        Err(EventError::Invalid(problems)) => assert!(!problems.is_empty()),
        Err(EventError::Malformed(why)) => assert!(!why.is_empty()),
    }
}

/// The ticket systems the `tickets` target picks from with the input's
/// first line.
pub const TICKET_SOURCES: [&str; 3] = ["jira", "linear", "basecamp"];

/// A Jira, Linear or Basecamp delivery (signature already accepted): the
/// first line of the input names the source, the rest is the body.
pub fn tickets(input: &[u8]) {
    static SHIPPED: std::sync::OnceLock<Contract> = std::sync::OnceLock::new();
    let shipped = SHIPPED.get_or_init(|| {
        contract::parse(include_str!("../config/contract.toml"), "contract.toml")
            .expect("the shipped contract is valid")
    });
    let (source, body) = match input.iter().position(|&b| b == b'\n') {
        Some(i) => (&input[..i], &input[i + 1..]),
        None => (&b""[..], input),
    };
    let parsed = match source {
        b"jira" => parse_jira(body, None, "tickets", shipped, now()),
        b"linear" => parse_linear(body, "tickets", shipped, now()),
        _ => parse_basecamp(body, "tickets", &[796227], shipped, now()),
    };
    let prefix = match source {
        b"jira" => "jira:",
        b"linear" => "linear:",
        _ => "basecamp:",
    };
    match parsed {
        Ok(GithubOutcome::Event(e)) => {
            // The payload's own identity: a redelivery is one event.
            assert!(e.idempotency_key.starts_with(prefix), "{e:?}");
            assert_eq!(e.channel, "tickets");
            assert!(
                !e.thread.trim().is_empty() && !e.thread.contains('\0'),
                "{e:?}"
            );
            assert!(e.thread.chars().count() <= 500, "{e:?}");
            assert!(e.body.len() <= MAX_BODY_BYTES, "{e:?}");
            assert!(
                e.direction.is_some() || e.status.is_some(),
                "neither: {e:?}"
            );
            assert!(
                e.client
                    .as_ref()
                    .is_none_or(|c| shipped.client(c).is_some()),
                "{e:?}"
            );
            accepted_event(&e);
        }
        Ok(GithubOutcome::Ignored { reason, .. }) => assert!(!reason.is_empty()),
        Err(EventError::Invalid(problems)) => assert!(!problems.is_empty()),
        Err(EventError::Malformed(why)) => assert!(!why.is_empty()),
    }
}

/// A Slack Events API request (signature already accepted): a message
/// event becomes one event keyed by its `event_id`, in a thread `CHANNEL:ts`,
/// with a direction; a team's or bot's message names no client; the
/// readable text never grows Slack's markup back.
pub fn slack(body: &[u8]) {
    static SHIPPED: std::sync::OnceLock<Contract> = std::sync::OnceLock::new();
    let shipped = SHIPPED.get_or_init(|| {
        contract::parse(include_str!("../config/contract.toml"), "contract.toml")
            .expect("the shipped contract is valid")
    });
    let _ = slack_challenge(body);
    // Bounded by the text it was given: lossy decoding alone turns each
    // invalid byte into a three-byte U+FFFD.
    let input = String::from_utf8_lossy(body);
    let text = slack_text(&input);
    assert!(
        text.len() <= 2 * input.len() + 16,
        "text grew without bound"
    );
    let team = ["T06NRA6HM3P".to_owned()];
    match parse_slack(body, "slack", SlackTeam { team_ids: &team }, shipped, now()) {
        Ok(GithubOutcome::Event(e)) => {
            assert!(!e.idempotency_key.trim().is_empty(), "{e:?}");
            assert!(e.idempotency_key.chars().count() <= MAX_ID_CHARS, "{e:?}");
            assert_eq!(e.channel, "slack");
            let (channel, ts) = e.thread.split_once(':').expect("CHANNEL:ts");
            assert!(!channel.is_empty() && !ts.is_empty(), "{e:?}");
            assert!(e.thread.chars().count() <= 500 && !e.thread.contains('\0'));
            assert!(e.body.len() <= MAX_BODY_BYTES, "{e:?}");
            assert!(e.subject.chars().count() <= MAX_SUBJECT_CHARS, "{e:?}");
            assert!(!e.subject.contains('\n'), "{e:?}");
            let direction = e.direction.expect("a message has a direction");
            if direction != Direction::Inbound {
                assert_eq!(
                    e.client, None,
                    "only a client's message names a client: {e:?}"
                );
            }
            assert!(
                e.client
                    .as_ref()
                    .is_none_or(|c| c == UNKNOWN_CLIENT || shipped.client(c).is_some()),
                "{e:?}"
            );
            accepted_event(&e);
        }
        Ok(GithubOutcome::Ignored { reason, .. }) => assert!(!reason.is_empty()),
        Err(EventError::Invalid(problems)) => assert!(!problems.is_empty()),
        Err(EventError::Malformed(why)) => assert!(!why.is_empty()),
    }
}

/// The settings file. `scratch` is a path this process may overwrite: the
/// loader reads files only.
pub fn config(text: &[u8], scratch: &Path) {
    std::fs::write(scratch, text).expect("write the scratch config");
    match Settings::load_from(Some(scratch), &[]) {
        Ok(s) => {
            let url = s.public_url.as_str();
            assert!(
                url.starts_with("http://") || url.starts_with("https://"),
                "accepted public_url {url:?}"
            );
            // Parsed once: what was accepted parses again to itself.
            assert_eq!(
                url.parse::<keepword::config::PublicUrl>()
                    .as_ref()
                    .map(|u| u.as_str()),
                Ok(url),
                "public_url round trip"
            );
            // `sqlite:PATH` is accepted too, so ask the store's own parser.
            assert!(
                keepword::store::DatabaseUrl::parse(&s.database_url).is_ok(),
                "accepted database_url {:?}",
                s.database_url
            );
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A per-process scratch file for [`config`].
pub fn scratch_config_path() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("keepword-fuzz-config-{}.toml", std::process::id()))
}
