//! The keys of the client's record (README, "The client's record"):
//! `[[clients]] report_to` and `[contract] weekly_digest` are read, checked
//! with a diagnostic naming each mistake, part of the version, and their
//! changes are internal (no public page names them).

use keepword::contract::{ChangeKind, diff, parse};

const SHIPPED: &str = include_str!("../../config/contract.toml");

fn with_keys(digest: &str, report_to: &str) -> String {
    SHIPPED
        .replacen(
            "urgent_share_limit = \"15%\"",
            &format!("urgent_share_limit = \"15%\"\nweekly_digest = {digest}"),
            1,
        )
        .replacen(
            "domains = [\"acme.com\"]",
            &format!("domains = [\"acme.com\"]\nreport_to = {report_to}"),
            1,
        )
}

#[test]
fn the_keys_are_read_and_make_a_new_version() {
    let plain = parse(SHIPPED, "c.toml").unwrap();
    let source = with_keys(
        "{ to = [\"lead\", \"head\"], day = \"fri\", at = \"16:30\" }",
        "[\"CTO@acme.com\", \"cto@acme.com\", \"ops@acme.com\"]",
    );
    let c = parse(&source, "c.toml").unwrap_or_else(|d| panic!("{d}"));
    let w = c.info().weekly_digest.as_ref().unwrap();
    assert_eq!(w.to, ["lead", "head"]);
    assert_eq!(w.day, chrono::Weekday::Fri);
    assert_eq!(w.at.format("%H:%M").to_string(), "16:30");
    assert_eq!(
        c.client("acme").unwrap().report_to,
        ["cto@acme.com", "ops@acme.com"],
        "lower-cased, once each"
    );
    assert!(c.client("globex").unwrap().report_to.is_empty());
    assert_ne!(c.version(), plain.version());
    let changes = diff(&plain, &c);
    assert!(!changes.is_empty());
    assert!(
        changes
            .iter()
            .all(|ch| ch.kind == ChangeKind::Internal && !ch.is_public()),
        "{changes:?}"
    );
}

#[test]
fn each_mistake_is_named() {
    let source = with_keys(
        "{ to = [\"leed\"], day = \"monday\", at = \"9am\", when = 1 }",
        "[\"not an address\"]",
    );
    let errors = parse(&source, "c.toml").unwrap_err().to_string();
    for expected in [
        "unknown contact \"leed\" — did you mean \"lead\"?",
        "weekly_digest day \"monday\" is not a weekday",
        "weekly_digest at \"9am\" is not HH:MM",
        "unknown key \"when\" in weekly_digest",
        "report_to \"not an address\" is not an email address",
    ] {
        assert!(
            errors.contains(expected),
            "missing {expected:?} in:\n{errors}"
        );
    }
    let source = with_keys("{ to = [\"hook\"], day = \"mon\", at = \"09:00\" }", "[]").replacen(
        "[contacts]\n",
        "[contacts]\nhook = { webhook = \"https://chat.example.com/hooks/x\" }\n",
        1,
    );
    let errors = parse(&source, "c.toml").unwrap_err().to_string();
    assert!(
        errors.contains("weekly_digest goes by email, and contact \"hook\" has no email"),
        "{errors}"
    );
    let errors = parse(
        &with_keys("{ to = [], day = \"mon\", at = \"09:00\" }", "[]"),
        "c.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        errors.contains("weekly_digest has no recipient"),
        "{errors}"
    );
}

#[test]
fn a_client_agreement_change_is_for_that_client_only() {
    let plain = parse(SHIPPED, "c.toml").unwrap();
    let changed = parse(
        &SHIPPED.replacen(
            "overrides = { question = { first_response = \"2h\" } }",
            "overrides = { question = { first_response = \"1h\" } }",
            1,
        ),
        "c.toml",
    )
    .unwrap();
    let changes = diff(&plain, &changed);
    let agreement = changes
        .iter()
        .find(|c| c.kind == ChangeKind::ClientOverride)
        .unwrap();
    assert!(!agreement.is_public(), "no public page names a client");
    assert_eq!(
        agreement.of_client("ACME Corp").as_deref(),
        Some("Questions and change requests first response 2 business hours → 1 business hour")
    );
    assert_eq!(agreement.of_client("Globex Logistics"), None);
}
