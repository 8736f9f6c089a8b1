//! `contract::diff` (README, "The contract"): each kind of change, in the client's words,
//! from the shipped contract and an edited copy of it; and `keepword
//! contract diff` printing it.

use std::path::Path;

use keepword::contract::{self, Change, ChangeKind, Contract};

fn shipped_source() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/contract.toml"))
        .unwrap()
}

fn parse(source: &str) -> Contract {
    contract::parse(source, "contract.toml").unwrap_or_else(|d| panic!("{d}"))
}

/// The changes from the shipped contract to the one `edit` makes of it.
fn changes(edit: impl Fn(String) -> String) -> Vec<Change> {
    let old = shipped_source();
    let new = edit(old.clone());
    assert_ne!(old, new, "the edit changed nothing");
    contract::diff(&parse(&old), &parse(&new))
}

fn lines(changes: &[Change]) -> Vec<String> {
    changes.iter().map(|c| c.text.clone()).collect()
}

fn has(changes: &[Change], kind: ChangeKind, text: &str) {
    assert!(
        changes.iter().any(|c| c.kind == kind && c.text == text),
        "expected {kind:?} `{text}` in {:#?}",
        lines(changes)
    );
}

fn replace_once(s: String, from: &str, to: &str) -> String {
    assert!(s.contains(from), "`{from}` is not in the contract");
    s.replacen(from, to, 1)
}

/// The question type's block, for edits that must not touch the others.
const QUESTION_WINDOWS: &str =
    "calendar = \"business\"\nfirst_response = \"4h\"\nnext_response = \"8h\"";

#[test]
fn a_window() {
    let c = changes(|s| {
        replace_once(
            s,
            QUESTION_WINDOWS,
            "calendar = \"business\"\nfirst_response = \"2h\"\nnext_response = \"8h\"",
        )
    });
    has(
        &c,
        ChangeKind::Window,
        "Questions and change requests: first response 4 business hours → 2 business hours",
    );
    assert_eq!(c.len(), 1, "{:#?}", lines(&c));
}

#[test]
fn a_window_promised_or_dropped() {
    let c = changes(|s| replace_once(s, "next_response = \"1h\"\n", ""));
    has(
        &c,
        ChangeKind::Window,
        "Urgent: production down or security incident: next response 1 hour → no promise",
    );
}

#[test]
fn calendar_hours() {
    let c = changes(|s| {
        replace_once(
            s,
            "fri = \"09:00-12:30, 13:30-17:00\"",
            "fri = \"09:00-17:00\"",
        )
    });
    let line = c
        .iter()
        .find(|c| c.kind == ChangeKind::Calendar)
        .unwrap_or_else(|| panic!("{:#?}", lines(&c)));
    assert!(
        line.text.starts_with("business hours: ") && line.text.contains(" → "),
        "{line}"
    );
    let (before, after) = line.text.split_once(" → ").unwrap();
    assert!(before.contains("13:30"), "{line}");
    assert!(!after.contains("13:30"), "{line}");
    assert!(after.contains("Europe/Berlin"), "{line}");
    assert_eq!(c.len(), 1, "once, not per request type: {:#?}", lines(&c));
}

#[test]
fn holidays_added_and_removed() {
    let c = changes(|s| replace_once(s, "\"2026-12-31\", ", "\"2027-12-31\", "));
    has(
        &c,
        ChangeKind::HolidayAdded,
        "holiday added: 31 December 2027",
    );
    has(
        &c,
        ChangeKind::HolidayRemoved,
        "holiday removed: 31 December 2026",
    );
}

#[test]
fn the_urgent_channel() {
    let c = changes(|s| {
        let s = replace_once(s, "[channels.pager]", "[channels.phone]");
        replace_once(
            s,
            "channels = [\"pager\", \"tickets\"]",
            "channels = [\"phone\", \"tickets\"]",
        )
    });
    has(
        &c,
        ChangeKind::UrgentChannel,
        "urgent channel: pager → phone",
    );
    has(&c, ChangeKind::Channel, "channel removed: pager");
    has(
        &c,
        ChangeKind::Channel,
        "new channel phone: phone (+49 30 1234567 (24/7))",
    );
}

#[test]
fn a_channel_described_differently() {
    let c = changes(|s| replace_once(s, "+49 30 1234567 (24/7)", "+49 30 7654321 (24/7)"));
    has(
        &c,
        ChangeKind::Channel,
        "channel pager: pager (+49 30 1234567 (24/7)) → pager (+49 30 7654321 (24/7))",
    );
}

#[test]
fn request_types_added_and_removed() {
    let billing = "\n[[request_types]]\nid = \"billing\"\nname = \"Billing\"\n\
                   definition = \"Invoices and payments.\"\nchannels = [\"email\"]\n\
                   match = { keywords = [\"invoice\"] }\ncalendar = \"business\"\nfirst_response = \"1d\"\n";
    let c = changes(|s| {
        replace_once(
            s,
            "\n# Who is alerted",
            &format!("{billing}\n# Who is alerted"),
        )
    });
    has(
        &c,
        ChangeKind::RequestTypeAdded,
        "new request type: Billing",
    );
    assert_eq!(c.len(), 1, "{:#?}", lines(&c));

    let c = changes(|s| {
        let start = s.find("[[request_types]]\nid = \"bug\"").unwrap();
        let end = start
            + s[start..]
                .find("\n[[request_types]]\nid = \"question\"")
                .unwrap();
        // Globex's override names the bug type: it goes too.
        let s = format!("{}{}", &s[..start], &s[end + 1..]);
        replace_once(
            s,
            "overrides = { bug = { first_response = \"1h\", resolution = \"2d\" } }",
            "",
        )
    });
    has(
        &c,
        ChangeKind::RequestTypeRemoved,
        "request type removed: Bugs in delivered work",
    );
}

#[test]
fn client_overrides() {
    let c = changes(|s| {
        replace_once(
            s,
            "overrides = { question = { first_response = \"2h\" } }",
            "overrides = { question = { first_response = \"1h\", resolution = \"3d\" } }",
        )
    });
    has(
        &c,
        ChangeKind::ClientOverride,
        "ACME Corp: Questions and change requests first response 2 business hours → 1 business hour",
    );
    has(
        &c,
        ChangeKind::ClientOverride,
        "ACME Corp: Questions and change requests resolution 3 business days (instead of 5 business days)",
    );
    let c = changes(|s| {
        replace_once(
            s,
            "overrides = { bug = { first_response = \"1h\", resolution = \"2d\" } }",
            "overrides = { bug = { resolution = \"2d\" } }",
        )
    });
    has(
        &c,
        ChangeKind::ClientOverride,
        "Globex Logistics: Bugs in delivered work first response back to the standard 2 business hours (was 1 business hour)",
    );
}

#[test]
fn escalation() {
    let c = changes(|s| {
        replace_once(
            s,
            "escalation = [{ at = \"75%\", notify = [\"lead\"] }]",
            "escalation = [{ at = \"50%\", notify = [\"lead\"] }, { at = \"100%\", notify = [\"head\"] }]",
        )
    });
    has(
        &c,
        ChangeKind::Escalation,
        "Questions and change requests: escalation: at 75% of the response time, we alert lead → \
         at 50% of the response time, we alert lead; when the time is up, we alert head",
    );
}

#[test]
fn internal_changes_are_named_but_not_public() {
    let c = changes(|s| {
        replace_once(
            s,
            "head = { email = \"head@example.com\",",
            "head = { email = \"boss@example.com\",",
        )
    });
    has(&c, ChangeKind::Internal, "contact changed: head");
    assert!(c.iter().all(|c| !c.is_public()), "{:#?}", lines(&c));
}

#[test]
fn the_same_contract_written_differently_is_no_difference() {
    let old = shipped_source();
    let new = old
        .replace("first_response = \"4h\"", "first_response = \"240m\"")
        .replace("# Our office hours.", "# Office hours, reworded comment.");
    assert_ne!(old, new);
    let (a, b) = (parse(&old), parse(&new));
    assert!(contract::diff(&a, &b).is_empty());
    assert_eq!(contract::diff_text(&a, &b), "no difference\n");
}

#[test]
fn the_decision_is_part_of_the_version_and_of_the_diff_text() {
    let old = shipped_source();
    let decision = old
        .lines()
        .find(|l| l.starts_with("decision = "))
        .expect("the shipped contract says why it exists")
        .to_string();
    let new = replace_once(
        old.clone(),
        &decision,
        "decision = \"Faster first replies: the 2026 backtest met 97% at 2h.\"",
    );
    let new = replace_once(
        new,
        "effective = \"2026-11-01\"",
        "effective = \"2027-01-01\"",
    );
    let (a, b) = (parse(&old), parse(&new));
    assert_ne!(a.version(), b.version());
    assert_eq!(
        b.info().decision.as_deref(),
        Some("Faster first replies: the 2026 backtest met 97% at 2h.")
    );
    let text = contract::diff_text(&a, &b);
    assert!(text.starts_with("decision: Faster first replies"), "{text}");
    assert!(
        text.contains("in effect from: 1 November 2026 → 1 January 2027"),
        "{text}"
    );
}

#[test]
fn the_cli_prints_the_diff_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.toml");
    let new = dir.path().join("new.toml");
    std::fs::write(&old, shipped_source()).unwrap();
    std::fs::write(
        &new,
        replace_once(
            shipped_source(),
            QUESTION_WINDOWS,
            "calendar = \"business\"\nfirst_response = \"2h\"\nnext_response = \"8h\"",
        ),
    )
    .unwrap();
    let run = |a: &Path, b: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_keepword"))
            .args(["contract", "diff"])
            .arg(a)
            .arg(b)
            .output()
            .unwrap()
    };
    let out = run(&old, &new);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "Questions and change requests: first response 4 business hours → 2 business hours\n"
    );
    let out = run(&old, &old);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "no difference\n");
    std::fs::write(&new, "[contract]\nname = 1\n").unwrap();
    let out = run(&old, &new);
    assert_eq!(out.status.code(), Some(1), "an invalid file is an error");
    assert!(String::from_utf8(out.stderr).unwrap().contains("new.toml:"));
}

#[test]
fn bad_decision_and_update_every_are_explained() {
    let source = shipped_source()
        .replacen("update_every = \"1d\"", "updates_every = \"1d\"", 1)
        .replacen(
            "resolution = \"5d\"",
            "resolution = \"5d\"\nupdate_every = \"daily\"",
            1,
        );
    let source = {
        let line = source
            .lines()
            .find(|l| l.starts_with("decision = "))
            .unwrap()
            .to_string();
        source.replacen(&line, "decision = 3", 1)
    };
    let errors = contract::parse(&source, "c.toml")
        .expect_err("invalid")
        .to_string();
    assert!(errors.contains("decision must be a string"), "{errors}");
    assert!(
        errors.contains("unknown key \"updates_every\"")
            && errors.contains("did you mean \"update_every\"?"),
        "{errors}"
    );
    assert!(
        errors.contains("window \"daily\" is not a duration"),
        "{errors}"
    );
}
