//! The keys of urgency and focus (README) are checked like every key: each
//! mistake is one `FILE:LINE:COL` diagnostic with a hint, and equivalent
//! spellings keep the contract version.

use keepword::contract::{Diagnostic, parse};

const MISTAKES: &str = include_str!("../fixtures/contracts/urgency_mistakes.toml");
const SHIPPED: &str = include_str!("../../config/contract.toml");

/// 1-based line and column of the `nth` (0-based) occurrence of `needle`.
fn pos(needle: &str, nth: usize) -> (usize, usize) {
    let offset = MISTAKES
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} #{nth} not in the fixture"))
        .0;
    let before = &MISTAKES[..offset];
    let line = before.matches('\n').count() + 1;
    let col = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

fn diagnostics(source: &str) -> Vec<Diagnostic> {
    match parse(source, "c.toml") {
        Ok(_) => Vec::new(),
        Err(d) => d.0,
    }
}

#[test]
fn each_mistake_is_one_diagnostic_at_its_token_with_a_hint() {
    let diags = diagnostics(MISTAKES);
    let expected: Vec<((usize, usize), &str, &str)> = vec![
        (
            pos("\"150%\"", 0),
            "urgent_share_limit \"150%\" is above 100%",
            "at most \"100%\"",
        ),
        (
            pos("\"yes\"", 0),
            "urgent must be a boolean, got string",
            "urgent = true",
        ),
        (
            pos("\"3 days\"", 0),
            "max_pause \"3 days\" is not a duration",
            "\"5d\" (5 business days)",
        ),
        (
            pos("1 }]", 0),
            "page must be a boolean, got integer",
            "page = true",
        ),
        (
            pos("3\n", 0),
            "max_pause must be a string, got integer",
            "\"30m\"",
        ),
        (
            pos("\"bussiness\"", 0),
            "unknown calendar \"bussiness\" — did you mean \"business\"?",
            "declared calendars",
        ),
        (
            pos("\"9:30\"", 0),
            "digest time \"9:30\" is not HH:MM",
            "\"HH:MM\"",
        ),
        (
            pos("\"07:00\"", 0),
            "digest time \"07:00\" of contact \"head\" is outside the hours of calendar \"business\" on every day",
            "within its hours",
        ),
        (
            pos("\"25:00\"", 0),
            "digest time \"25:00\" is not HH:MM",
            "\"HH:MM\"",
        ),
        (pos("[] }", 0), "digest is empty", "remove digest"),
    ];
    let listing: String = diags.iter().map(|d| format!("{d}\n")).collect();
    for ((line, col), message, hint) in &expected {
        let found = diags.iter().any(|d| {
            (d.line, d.col) == (*line, *col)
                && d.message == *message
                && d.hint.as_deref().is_some_and(|h| h.contains(hint))
        });
        assert!(
            found,
            "expected {line}:{col} {message:?} (hint ~ {hint:?}), got:\n{listing}"
        );
    }
    assert_eq!(
        diags.len(),
        expected.len(),
        "one diagnostic per mistake:\n{listing}"
    );
    // The rendered form names the file, line and column.
    let first = diags[0].to_string();
    let (line, col) = pos("\"150%\"", 0);
    assert!(
        first.starts_with(&format!("c.toml:{line}:{col}: error: ")),
        "{first}"
    );
}

#[test]
fn share_limits_are_percentages_up_to_100() {
    let with = |limit: &str| {
        SHIPPED.replacen(
            "urgent_share_limit = \"15%\"",
            &format!("urgent_share_limit = {limit}"),
            1,
        )
    };
    for ok in ["\"0%\"", "\"15%\"", "\"12.5%\"", "\"100%\""] {
        let c = parse(&with(ok), "c.toml").unwrap_or_else(|e| panic!("{ok}: {e}"));
        let limit = c.info().urgent_share_limit.unwrap();
        assert_eq!(format!("\"{limit}\""), ok);
    }
    let c = parse(&with("\"12.5%\""), "c.toml").unwrap();
    assert_eq!(c.info().urgent_share_limit.unwrap().fraction(), 0.125);
    for (bad, message) in [
        ("\"100.01%\"", "is above 100%"),
        ("\"15\"", "is not a percentage"),
        ("\"1.234%\"", "is not a percentage"),
        ("15", "must be a percentage like \"15%\", got integer"),
    ] {
        let diags = diagnostics(&with(bad));
        assert_eq!(diags.len(), 1, "{bad}: {diags:?}");
        assert!(diags[0].message.contains(message), "{bad}: {}", diags[0]);
    }
}

#[test]
fn the_shipped_contract_uses_the_new_keys() {
    let c = parse(SHIPPED, "config/contract.toml").unwrap();
    let urgent = c.request_type("urgent").unwrap();
    assert!(urgent.urgent);
    assert!(c.info().urgent_share_limit.is_some());
    assert!(c.request_types().iter().any(|t| t.max_pause.is_some()));
    let lead = c.contact("lead").unwrap();
    assert_eq!(lead.calendar.as_deref(), Some("business"));
    assert!(!c.contact("delivery").unwrap().digest.is_empty());
    assert!(
        c.request_types()
            .iter()
            .flat_map(|t| &t.escalation)
            .any(|s| s.page),
        "a page = true step"
    );
}

#[test]
fn equivalent_spellings_keep_the_version_and_new_promises_change_it() {
    let base = parse(SHIPPED, "c.toml").unwrap();
    // Spelling out a default is not a new contract.
    let explicit = SHIPPED.replacen("id = \"question\"", "id = \"question\"\nurgent = false", 1);
    assert_eq!(
        parse(&explicit, "c.toml").unwrap().version(),
        base.version()
    );
    // Marking a type urgent, or changing a digest, is.
    let urgent = SHIPPED.replacen("id = \"bug\"", "id = \"bug\"\nurgent = true", 1);
    assert_ne!(parse(&urgent, "c.toml").unwrap().version(), base.version());
    let digest = SHIPPED.replacen("\"09:30\"", "\"10:00\"", 1);
    assert_ne!(
        digest, SHIPPED,
        "the shipped delivery contact has a 09:30 digest"
    );
    assert_ne!(parse(&digest, "c.toml").unwrap().version(), base.version());
}

#[test]
fn the_contract_page_says_who_is_paged_at_any_hour() {
    let c = parse(SHIPPED, "c.toml").unwrap();
    let md = keepword::contract::render_markdown(&c);
    let section = md
        .split("## Who is paged at any hour")
        .nth(1)
        .expect("a paging section")
        .split("\n## ")
        .next()
        .unwrap();
    assert!(
        section.contains("every alert pages oncall, lead and head at once, at any hour"),
        "{section}"
    );
    assert!(
        section.contains("is paged at any hour."),
        "the page = true step: {section}"
    );
    assert!(
        section.contains("**lead:** other alerts reach them in working hours"),
        "{section}"
    );
    assert!(
        section.contains("**delivery:** other alerts reach them in working hours"),
        "{section}"
    );
    assert!(section.contains("digest at 09:30 and 14:00"), "{section}");
    let html = keepword::contract::render_html(&c);
    assert!(html.contains("<h2>Who is paged at any hour</h2>"));
}
