//! What the service asks the contract: request types, clients by address,
//! windows with client overrides, dues, warn thresholds. Parsing needs the
//! real calendar; the `due_*` tests also need its `add`.

use chrono::{DateTime, TimeZone, Utc};
use keepword::calendar::BusinessDuration;
use keepword::contract::{Contract, ContractError, Timer, UNKNOWN_CLIENT, parse};

fn shipped() -> Contract {
    parse(
        include_str!("../../config/contract.toml"),
        "config/contract.toml",
    )
    .unwrap_or_else(|d| panic!("{d}"))
}

fn hours(h: u64) -> BusinessDuration {
    BusinessDuration {
        days: 0,
        seconds: h * 3600,
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn request_types_in_contract_order_with_one_default() {
    let c = shipped();
    let ids: Vec<&str> = c.request_types().iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["urgent", "bug", "question"]);
    assert_eq!(c.default_request_type().id, "question");
    assert_eq!(
        c.request_type("urgent").unwrap().channels,
        ["pager", "tickets"]
    );
    assert!(c.request_type("nope").is_none());
    assert_eq!(c.urgent_request_type().unwrap().id, "urgent");
}

#[test]
fn clients_by_address_then_domain_then_parent_domain() {
    let c = shipped();
    assert_eq!(c.client_for_email("jane@acme.com").unwrap().id, "acme");
    assert_eq!(c.client_for_email("Jane@ACME.com").unwrap().id, "acme");
    assert_eq!(
        c.client_for_email("ops@globex-partners.example")
            .unwrap()
            .id,
        "globex"
    );
    assert!(
        c.client_for_email("someone-else@globex-partners.example")
            .is_none()
    );
    assert_eq!(c.client_for_email("it@eu.acme.com").unwrap().id, "acme");
    assert!(c.client_for_email("x@notacme.com").is_none());
    assert!(c.client_for_email("not an address").is_none());
    assert_eq!(
        c.client_id_for_email("x@nowhere.example"),
        Some(UNKNOWN_CLIENT)
    );
    let ignoring = parse(
        &include_str!("../../config/contract.toml").replace(
            "unknown_senders = \"track\"",
            "unknown_senders = \"ignore\"",
        ),
        "c.toml",
    )
    .unwrap();
    assert_eq!(ignoring.client_id_for_email("x@nowhere.example"), None);
    assert_eq!(ignoring.client_id_for_email("x@acme.com"), Some("acme"));
}

#[test]
fn exact_address_beats_domain() {
    let source = format!(
        "{}\n[[clients]]\nid = \"acme-ceo\"\nname = \"ACME CEO office\"\naddresses = [\"ceo@acme.com\"]\n",
        include_str!("../../config/contract.toml")
    );
    let c = parse(&source, "c.toml").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(c.client_for_email("ceo@acme.com").unwrap().id, "acme-ceo");
    assert_eq!(c.client_for_email("dev@acme.com").unwrap().id, "acme");
}

#[test]
fn windows_apply_client_overrides() {
    let c = shipped();
    assert_eq!(
        c.window("question", None, Timer::FirstResponse),
        Some(hours(4))
    );
    assert_eq!(
        c.window("question", Some("acme"), Timer::FirstResponse),
        Some(hours(2))
    );
    // Overrides replace only the timers they name.
    assert_eq!(
        c.window("question", Some("acme"), Timer::NextResponse),
        Some(hours(8))
    );
    assert_eq!(
        c.window("bug", Some("acme"), Timer::FirstResponse),
        Some(hours(2))
    );
    assert_eq!(
        c.window("bug", Some("globex"), Timer::FirstResponse),
        Some(hours(1))
    );
    assert_eq!(
        c.window("bug", Some("globex"), Timer::Resolution),
        Some(BusinessDuration {
            days: 2,
            seconds: 0
        })
    );
    assert_eq!(
        c.window("question", Some(UNKNOWN_CLIENT), Timer::FirstResponse),
        Some(hours(4))
    );
    assert_eq!(c.window("nope", None, Timer::FirstResponse), None);
    assert_eq!(
        c.window("urgent", None, Timer::FirstResponse),
        Some(BusinessDuration {
            days: 0,
            seconds: 1800
        })
    );
}

#[test]
fn warn_threshold_is_the_first_at_step_else_75() {
    let c = shipped();
    assert_eq!(c.warn_percent("urgent"), Some(50));
    assert_eq!(c.warn_percent("question"), Some(75));
    let source = include_str!("../../config/contract.toml")
        .replace("escalation = [{ at = \"75%\", notify = [\"lead\"] }]\n", "");
    let c = parse(&source, "c.toml").unwrap_or_else(|d| panic!("{d}"));
    assert!(c.request_type("question").unwrap().escalation.is_empty());
    assert_eq!(c.warn_percent("question"), Some(75));
}

#[test]
fn calendars_are_built_per_request_type() {
    let c = shipped();
    assert_eq!(
        c.calendar_for("question").unwrap().timezone(),
        chrono_tz::Europe::Berlin
    );
    assert_eq!(
        c.calendar_for("urgent").unwrap().timezone(),
        chrono_tz::Europe::Berlin
    );
    assert!(c.calendar("always").unwrap().always);
    assert_eq!(c.calendar("business").unwrap().holidays.len(), 11);
}

#[test]
fn due_is_in_the_calendar_zone_and_counts_business_time() {
    let c = shipped();
    // Friday 16:00 Berlin: one open hour left that day, three more on Monday.
    let due = c
        .due(
            "question",
            None,
            Timer::FirstResponse,
            utc("2026-11-06T15:00:00Z"),
        )
        .unwrap();
    assert_eq!(due.to_rfc3339(), "2026-11-09T12:00:00+01:00");
    let due = c
        .due(
            "question",
            Some("acme"),
            Timer::FirstResponse,
            utc("2026-11-06T15:00:00Z"),
        )
        .unwrap();
    assert_eq!(due.to_rfc3339(), "2026-11-09T10:00:00+01:00");
    // Christmas holidays and the weekend are skipped.
    let due = c
        .due(
            "question",
            None,
            Timer::FirstResponse,
            utc("2026-12-23T15:00:00Z"),
        )
        .unwrap();
    assert_eq!(due.to_rfc3339(), "2026-12-28T12:00:00+01:00");
    // Around the clock.
    let due = c
        .due(
            "urgent",
            None,
            Timer::FirstResponse,
            utc("2026-11-07T22:50:00Z"),
        )
        .unwrap();
    assert_eq!(
        due,
        chrono_tz::Europe::Berlin
            .with_ymd_and_hms(2026, 11, 8, 0, 20, 0)
            .unwrap()
    );
}

#[test]
fn due_rejects_unknown_ids_and_missing_windows() {
    let c = shipped();
    let at = utc("2026-11-06T15:00:00Z");
    assert_eq!(
        c.due("nope", None, Timer::FirstResponse, at),
        Err(ContractError::UnknownRequestType("nope".into()))
    );
    assert_eq!(
        c.due("question", Some("acmee"), Timer::FirstResponse, at),
        Err(ContractError::UnknownClient("acmee".into()))
    );
    assert!(
        c.due("question", Some(UNKNOWN_CLIENT), Timer::FirstResponse, at)
            .is_ok()
    );
    let source = include_str!("../../config/contract.toml").replace("resolution = \"5d\"\n", "");
    let c = parse(&source, "c.toml").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(c.window("question", None, Timer::Resolution), None);
    assert_eq!(
        c.due("question", None, Timer::Resolution, at),
        Err(ContractError::NoWindow {
            type_id: "question".into(),
            timer: Timer::Resolution
        })
    );
}
