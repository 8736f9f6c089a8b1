//! The contract version is a hash of the canonical content: formatting,
//! comments, key order and equivalent spellings keep it; a changed promise
//! changes it. All tests here need the real calendar (they parse durations).

use keepword::contract::{Contract, parse};

const BASE: &str = include_str!("../fixtures/contracts/base.toml");

fn contract(source: &str) -> Contract {
    parse(source, "c.toml").unwrap_or_else(|d| panic!("{d}"))
}

/// base.toml rewritten by hand: comments, blank lines, reordered sections and
/// keys, inline tables turned into sub-tables, equivalent spellings
/// ("240m" for "4h", a TOML date for a quoted one, touching intervals, spaces
/// around the dash, default = false spelled out, keywords reordered).
const REFORMATTED: &str = r#"
# The same contract, written differently.

[contacts.lead]
webhook = "https://chat.example.com/hook"
email = "LEAD@example.com"

[contacts.oncall]
email = "oncall@example.com"

[calendars.always]
always = true
timezone = "Europe/Berlin"   # the contract's zone, spelled out

[calendars.business]
holidays = [2026-12-24]
fri = "13:30 - 17:00, 09:00 - 12:30"
mon = "09:00-12:00, 12:00-17:00"
timezone = "Europe/Berlin"

[contract]
timezone = "Europe/Berlin"
effective = 2026-11-01
name = "Test contract"
unknown_senders = "track"

[channels.pager]
description = "+49 30 1234567"
kind = "manual"

[channels.email]
address = "Support@Example.com"
kind = "email"

[[request_types]]
name = "Urgent"
id = "urgent"
definition = "Production is down."
default = false
calendar = "always"
channels = ["pager"]
first_response = "30m"

  [[request_types.escalation]]
  notify = ["oncall"]
  at = "50%"

  [[request_types.escalation]]
  notify = ["lead", "lead"]
  after_due = "30m"

[[request_types]]
id = "question"
default = true
name = "Questions"
definition = "Everything else."
channels = ["email"]
calendar = "business"
first_response = "240m"
next_response = "8h"
resolution = "5d"

  [request_types.match]
  clients = ["acme"]
  keywords = ["question"]

[[clients]]
name = "ACME Corp"
id = "acme"
domains = ["ACME.com", "acme.com"]

  [clients.overrides.question]
  first_response = "120m"
"#;

#[test]
fn version_is_hex_sha256_and_short_is_its_prefix() {
    let c = contract(BASE);
    assert_eq!(c.version().len(), 64);
    assert!(
        c.version()
            .chars()
            .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase())
    );
    assert_eq!(c.version_short(), &c.version()[..12]);
}

#[test]
fn reformatting_keeps_the_version() {
    let a = contract(BASE);
    let b = contract(REFORMATTED);
    assert_eq!(a.version(), b.version());
    let commented = BASE
        .replace("\n\n", "\n\n# a comment\n\n")
        .replace(" = ", "   =   ");
    assert_eq!(a.version(), contract(&commented).version());
}

#[test]
fn changing_a_promise_changes_the_version() {
    let base = contract(BASE).version().to_string();
    let changes = [
        ("first_response = \"4h\"", "first_response = \"5h\""),
        ("{ first_response = \"2h\" }", "{ first_response = \"3h\" }"),
        (
            "holidays = [\"2026-12-24\"]",
            "holidays = [\"2026-12-24\", \"2026-12-25\"]",
        ),
        ("mon = \"09:00-17:00\"", "mon = \"09:00-16:00\""),
        (
            "definition = \"Everything else.\"",
            "definition = \"Everything else!\"",
        ),
        ("at = \"50%\"", "at = \"60%\""),
        (
            "domains = [\"acme.com\"]",
            "domains = [\"acme.com\", \"acme.org\"]",
        ),
    ];
    for (from, to) in changes {
        let changed = contract(&BASE.replacen(from, to, 1));
        assert_ne!(changed.version(), base, "{from} -> {to} kept the version");
    }
}

#[test]
fn request_type_order_is_part_of_the_version() {
    // Classification tries request types in order, so reordering them is a
    // different contract.
    let (head, rest) = BASE.split_once("[[request_types]]").unwrap();
    let (urgent, rest) = rest.split_once("[[request_types]]").unwrap();
    let (question, tail) = rest.split_once("[contacts]").unwrap();
    let swapped =
        format!("{head}[[request_types]]{question}[[request_types]]{urgent}[contacts]{tail}");
    assert_ne!(contract(&swapped).version(), contract(BASE).version());
}
