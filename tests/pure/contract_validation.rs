//! Validation of contract files: every mistake is reported, each at the
//! position of the offending key or value, with a hint where one helps.
//!
//! Tests marked `needs the real calendar` expect valid durations ("4h") to
//! parse, which the calendar module's interface stub refuses; all others
//! hold with the stub too, because they look for one specific diagnostic.

use keepword::contract::{Diagnostic, parse};

const BASE: &str = include_str!("../fixtures/contracts/base.toml");
const MANY: &str = include_str!("../fixtures/contracts/many_mistakes.toml");

/// BASE with `from` (which must occur exactly once) replaced by `to`.
fn with(from: &str, to: &str) -> String {
    assert_eq!(
        BASE.matches(from).count(),
        1,
        "{from:?} must occur once in base.toml"
    );
    BASE.replacen(from, to, 1)
}

fn diagnostics(source: &str) -> Vec<Diagnostic> {
    match parse(source, "c.toml") {
        Ok(_) => Vec::new(),
        Err(d) => d.0,
    }
}

fn listing(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("{d}\n")).collect()
}

/// Asserts a diagnostic at `line:col` whose message contains `message` and,
/// if given, whose hint contains `hint`.
#[track_caller]
fn expect(source: &str, line: usize, col: usize, message: &str, hint: Option<&str>) {
    let diags = diagnostics(source);
    let found = diags.iter().any(|d| {
        d.line == line
            && d.col == col
            && d.message.contains(message)
            && hint.is_none_or(|h| d.hint.as_deref().is_some_and(|dh| dh.contains(h)))
    });
    assert!(
        found,
        "expected {line}:{col} {message:?} (hint {hint:?}), got:\n{}",
        listing(&diags)
    );
}

#[test]
fn many_mistakes_give_one_diagnostic_each_at_the_right_place() {
    let diags = diagnostics(MANY);
    let got: Vec<(usize, usize, &str)> = diags
        .iter()
        .map(|d| (d.line, d.col, d.message.as_str()))
        .collect();
    let expected: Vec<(usize, usize, &str)> = vec![
        (9, 12, "unknown time zone \"Europe/Berln\""),
        (10, 1, "unknown key \"pubic_url\" in [contract]"),
        (15, 7, "interval \"17:00-09:00\" ends before it starts"),
        (
            16,
            7,
            "intervals \"09:00-13:00\" and \"12:00-17:00\" overlap",
        ),
        (17, 7, "\"9\" in \"9-17\" is not a time"),
        (18, 27, "holiday \"2026-02-30\" is not a valid date"),
        (
            28,
            1,
            "request type \"question\" is marked default = true, and so is \"other\" (line 38)",
        ),
        (29, 22, "unknown channel \"chat\""),
        (
            30,
            12,
            "unknown calendar \"bussiness\" — did you mean \"business\"?",
        ),
        (31, 18, "window \"4 hours\" is not a duration"),
        (32, 22, "at \"150%\" is above 100%"),
        (32, 40, "unknown contact \"lead\""),
        (36, 8, "name must be a string, got integer"),
        (
            38,
            1,
            "request type \"other\" is marked default = true, and so is \"question\" (line 28)",
        ),
        (41, 18, "window \"soon\" is not a duration"),
        (
            43,
            1,
            "request type \"question\" is missing required key \"first_response\"",
        ),
        (
            44,
            6,
            "duplicate request type id \"question\" (first defined on line 25)",
        ),
        (
            54,
            15,
            "unknown request type \"questoin\" — did you mean \"question\"?",
        ),
        (
            54,
            28,
            "unknown key \"frist_response\" in overrides.questoin of client \"acme\"",
        ),
        (
            59,
            12,
            "domain \"ACME.com\" is already claimed by client \"acme\" (line 53)",
        ),
    ];
    assert_eq!(got, expected, "\n{}", listing(&diags));
}

#[test]
fn many_mistakes_fixture_comments_name_the_reported_positions() {
    // The fixture documents each expected position in a comment; keep the
    // documentation honest.
    let mut documented = Vec::new();
    for line in MANY.lines() {
        let Some((_, comment)) = line.split_once("  # ") else {
            continue;
        };
        for word in comment.split([' ', ',']) {
            if let Some((l, c)) = word.split_once(':')
                && let (Ok(l), Ok(c)) = (l.parse::<usize>(), c.parse::<usize>())
            {
                documented.push((l, c));
            }
        }
    }
    let mut reported: Vec<(usize, usize)> =
        diagnostics(MANY).iter().map(|d| (d.line, d.col)).collect();
    reported.dedup();
    assert_eq!(documented, reported);
}

#[test]
fn display_is_file_line_col_error_message_then_hint() {
    let diags = diagnostics(MANY);
    assert_eq!(
        diags[1].to_string(),
        "c.toml:10:1: error: unknown key \"pubic_url\" in [contract]\n  hint: did you mean \"public_url\"?"
    );
    assert_eq!(
        diags[12].to_string(),
        "c.toml:36:8: error: name must be a string, got integer"
    );
}

#[test]
fn base_fixture_is_valid() {
    // needs the real calendar (durations)
    assert_eq!(listing(&diagnostics(BASE)), "");
}

#[test]
fn shipped_contract_is_valid() {
    // needs the real calendar (durations)
    let source = include_str!("../../config/contract.toml");
    let contract = parse(source, "config/contract.toml").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        contract.info().name,
        "Northwind Studio client communication contract"
    );
    assert_eq!(contract.default_request_type().id, "question");
    assert!(contract.request_types().len() >= 2);
}

#[test]
fn the_edge_reads_a_contract_file_and_names_it_in_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "[contract]\nname = 1\n").unwrap();
    let error = keepword::service::LoadedContract::load(&path)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains(&format!(
            "{}:2:8: error: name must be a string",
            path.display()
        )),
        "{error}"
    );
    let missing = keepword::service::LoadedContract::load(&dir.path().join("nope.toml"))
        .err()
        .unwrap();
    assert!(
        missing.to_string().contains("cannot read contract"),
        "{missing}"
    );
}

#[test]
fn syntax_errors_are_reported_at_their_position_and_stop_there() {
    let source = with("name = \"Test contract\"", "name = \"Test contract");
    let diags = diagnostics(&source);
    assert!(!diags.is_empty());
    assert!(
        diags.iter().all(|d| d.message.starts_with("invalid TOML")),
        "{}",
        listing(&diags)
    );
    // An unterminated string is noticed at the end of its line.
    assert_eq!(
        (diags[0].line, diags[0].col),
        (2, 22),
        "{}",
        listing(&diags)
    );

    let source = with("mon = \"09:00-17:00\"", "mon = 09:00-17:00");
    let diags = diagnostics(&source);
    assert_eq!(diags[0].line, 8, "{}", listing(&diags));
    assert!(diags[0].message.starts_with("invalid TOML"));
}

#[test]
fn unknown_keys_at_every_level_suggest_the_closest() {
    let cases = [
        (
            "[contacts]",
            "[contacs]",
            44,
            2,
            "unknown section \"contacs\"",
            "did you mean \"contacts\"?",
        ),
        (
            "mon = ",
            "mo = ",
            8,
            1,
            "unknown key \"mo\" in calendar \"business\"",
            "did you mean \"mon\"?",
        ),
        (
            "description = \"+49",
            "descripton = \"+49",
            21,
            1,
            "in channel \"pager\"",
            "did you mean \"description\"?",
        ),
        (
            "next_response = \"8h\"",
            "nextresponse = \"8h\"",
            41,
            1,
            "in request type \"question\"",
            "did you mean \"next_response\"?",
        ),
        (
            "keywords = [\"question\"]",
            "keyword = [\"question\"]",
            38,
            11,
            "in match of request type \"question\"",
            "did you mean \"keywords\"?",
        ),
        (
            "{ after_due = \"30m\"",
            "{ after_du = \"30m\"",
            30,
            54,
            "in escalation step",
            "did you mean \"after_due\"?",
        ),
        (
            "webhook = ",
            "web_hook = ",
            46,
            38,
            "in contact \"lead\"",
            "did you mean \"webhook\"?",
        ),
        (
            "domains = [\"acme.com\"]",
            "domain = [\"acme.com\"]",
            51,
            1,
            "in client \"acme\"",
            "did you mean \"domains\"?",
        ),
        (
            "{ first_response = \"2h\" }",
            "{ first_respons = \"2h\" }",
            52,
            28,
            "in overrides.question of client \"acme\"",
            "did you mean \"first_response\"?",
        ),
        (
            "timezone = \"Europe/Berlin\"\n\n[calendars",
            "timezone = \"Europe/Berlin\"\ncolour = \"blue\"\n\n[calendars",
            5,
            1,
            "unknown key \"colour\" in [contract]",
            "valid keys here:",
        ),
    ];
    for (from, to, line, col, message, hint) in cases {
        expect(&with(from, to), line, col, message, Some(hint));
    }
}

#[test]
fn unknown_time_zones_suggest_iana_names() {
    let source = with(
        "[calendars.business]\ntimezone = \"Europe/Berlin\"",
        "[calendars.business]\ntimezone = \"Berlin\"",
    );
    expect(
        &source,
        7,
        12,
        "unknown time zone \"Berlin\"",
        Some("\"Europe/Berlin\""),
    );
    let source = with(
        "timezone = \"Europe/Berlin\"\n\n[calendars",
        "timezone = \"Mars/Olympus\"\n\n[calendars",
    );
    expect(
        &source,
        4,
        12,
        "unknown time zone \"Mars/Olympus\"",
        Some("IANA"),
    );
}

#[test]
fn bad_durations_say_how_to_write_one() {
    let source = with("first_response = \"4h\"", "first_response = \"4 hours\"");
    expect(
        &source,
        40,
        18,
        "window \"4 hours\" is not a duration",
        Some("\"1h30m\""),
    );
    let source = with("{ after_due = \"30m\"", "{ after_due = \"half an hour\"");
    expect(
        &source,
        30,
        66,
        "after_due \"half an hour\" is not a duration",
        Some("\"30m\""),
    );
    let source = with("first_response = \"4h\"", "first_response = 4");
    expect(
        &source,
        40,
        18,
        "window must be a string, got integer",
        Some("\"4h\""),
    );
    let source = with(
        "{ first_response = \"2h\" }",
        "{ first_response = \"2 h\" }",
    );
    expect(&source, 52, 45, "window \"2 h\" is not a duration", None);
}

#[test]
fn bad_open_hours() {
    let cases = [
        (
            "17:00-09:00",
            "ends before it starts",
            "cannot cross midnight",
        ),
        ("09:00-25:00", "past 24:00", "00:00 to 24:00"),
        ("24:00-24:00", "starts at 24:00", "next day starts at 00:00"),
        ("09:00-13:00, 12:00-17:00", "overlap", "merge them"),
        ("9-17", "is not a time", "HH:MM"),
        (
            "nine to five",
            "not a time range",
            "\"09:00-12:30, 13:30-17:00\"",
        ),
    ];
    for (value, message, hint) in cases {
        let source = with("mon = \"09:00-17:00\"", &format!("mon = \"{value}\""));
        expect(&source, 8, 7, message, Some(hint));
    }
    expect(
        &with("mon = \"09:00-17:00\"", "mon = 9"),
        8,
        7,
        "mon must be a string, got integer",
        None,
    );
}

#[test]
fn calendar_shape_mistakes() {
    let source = with("always = true", "always = true\nmon = \"09:00-17:00\"");
    expect(
        &source,
        14,
        1,
        "calendar \"always\" is always open, so \"mon\" has no effect",
        None,
    );
    let source = with("always = true", "always = \"yes\"");
    expect(
        &source,
        13,
        10,
        "always must be a boolean, got string",
        Some("without quotes"),
    );
    let source = with(
        "[calendars.business]\ntimezone = \"Europe/Berlin\"\n",
        "[calendars.business]\n",
    );
    expect(
        &source,
        6,
        1,
        "calendar \"business\" is missing required key \"timezone\"",
        None,
    );
    let source = with(
        "mon = \"09:00-17:00\"\nfri = \"09:00-12:30, 13:30-17:00\"\n",
        "",
    );
    expect(
        &source,
        6,
        12,
        "calendar \"business\" is never open",
        Some("always = true"),
    );
}

#[test]
fn holidays_must_be_dates() {
    let source = with(
        "holidays = [\"2026-12-24\"]",
        "holidays = [\"2026-12-24\", \"24.12.2026\", 2026-12-32]",
    );
    // 2026-12-32 is not even valid TOML, so it is a syntax error.
    expect(&source, 10, 41, "invalid TOML", None);
    let source = with(
        "holidays = [\"2026-12-24\"]",
        "holidays = [\"2026-12-24\", \"24.12.2026\", 5]",
    );
    expect(
        &source,
        10,
        27,
        "holiday \"24.12.2026\" is not a valid date",
        Some("YYYY-MM-DD"),
    );
    expect(&source, 10, 41, "holiday must be a date, got integer", None);
    let source = with("effective = \"2026-11-01\"", "effective = \"2026-11-31\"");
    expect(
        &source,
        3,
        13,
        "effective \"2026-11-31\" is not a valid date",
        None,
    );
}

#[test]
fn unknown_references_suggest_declared_names() {
    let cases = [
        (
            "calendar = \"business\"",
            "calendar = \"bussiness\"",
            39,
            12,
            "unknown calendar \"bussiness\" — did you mean \"business\"?",
            "declared calendars: \"business\" or \"always\"",
        ),
        (
            "channels = [\"email\"]",
            "channels = [\"emial\"]",
            37,
            13,
            "unknown channel \"emial\" — did you mean \"email\"?",
            "\"pager\"",
        ),
        (
            "notify = [\"oncall\"]",
            "notify = [\"oncal\"]",
            30,
            39,
            "unknown contact \"oncal\" — did you mean \"oncall\"?",
            "declared contacts",
        ),
        (
            "notify = [\"lead\"]",
            "notify = [\"ceo\"]",
            30,
            83,
            "unknown contact \"ceo\"",
            "declare ceo = { email = \"...\" } under [contacts]",
        ),
        (
            "{ question = {",
            "{ questoin = {",
            52,
            15,
            "unknown request type \"questoin\" — did you mean \"question\"?",
            "\"urgent\"",
        ),
        (
            "clients = [\"acme\"]",
            "clients = [\"acm\"]",
            38,
            47,
            "unknown client \"acm\" — did you mean \"acme\"?",
            "declared clients",
        ),
    ];
    for (from, to, line, col, message, hint) in cases {
        expect(&with(from, to), line, col, message, Some(hint));
    }
}

#[test]
fn exactly_one_default_request_type() {
    let none = with("default = true\n", "");
    expect(
        &none,
        23,
        1,
        "no request type is marked default = true",
        Some("add default = true"),
    );
    let two = with("id = \"urgent\"\n", "id = \"urgent\"\ndefault = true\n");
    expect(
        &two,
        25,
        1,
        "request type \"urgent\" is marked default = true, and so is \"question\" (line 37)",
        Some("exactly one"),
    );
    expect(
        &two,
        37,
        1,
        "request type \"question\" is marked default = true, and so is \"urgent\" (line 25)",
        None,
    );
    let not_bool = with("default = true\n", "default = \"yes\"\n");
    expect(
        &not_bool,
        36,
        11,
        "default must be a boolean, got string",
        None,
    );
}

#[test]
fn duplicate_ids_point_at_the_second_and_name_the_first() {
    let source = with("id = \"urgent\"", "id = \"question\"");
    expect(
        &source,
        33,
        6,
        "duplicate request type id \"question\" (first defined on line 24)",
        None,
    );
    let source = format!("{BASE}\n[[clients]]\nid = \"acme\"\nname = \"ACME again\"\n");
    expect(
        &source,
        55,
        6,
        "duplicate client id \"acme\" (first defined on line 49)",
        None,
    );
    let source = format!("{BASE}\n[[clients]]\nid = \"unknown\"\nname = \"Who?\"\n");
    expect(&source, 55, 6, "client id \"unknown\" is reserved", None);
    let source = with("id = \"urgent\"", "id = \"very urgent\"");
    expect(&source, 24, 6, "id \"very urgent\" may only contain", None);
}

#[test]
fn escalation_steps() {
    let cases = [
        (
            "at = \"50%\"",
            "at = \"150%\"",
            30,
            22,
            "at \"150%\" is above 100%",
            Some("after_due"),
        ),
        (
            "at = \"50%\"",
            "at = \"half\"",
            30,
            22,
            "at \"half\" is not a percentage",
            Some("\"50%\""),
        ),
        (
            "at = \"50%\"",
            "at = 50",
            30,
            22,
            "at must be a percentage like \"50%\", got integer",
            Some("as a string"),
        ),
        (
            "at = \"50%\"",
            "at = \"0%\"",
            30,
            22,
            "would fire as the timer starts",
            None,
        ),
        (
            "at = \"50%\"",
            "at = \"50%\", after_due = \"1h\"",
            30,
            29,
            "escalation step has both at and after_due",
            Some("split"),
        ),
        (
            "{ at = \"50%\", notify",
            "{ notify",
            30,
            15,
            "escalation step has neither at nor after_due",
            None,
        ),
        (
            "notify = [\"oncall\"]",
            "notify = []",
            30,
            38,
            "notify is empty",
            None,
        ),
        (
            "{ at = \"50%\", notify = [\"oncall\"] }",
            "{ at = \"50%\" }",
            30,
            15,
            "escalation step is missing required key \"notify\"",
            None,
        ),
    ];
    for (from, to, line, col, message, hint) in cases {
        expect(&with(from, to), line, col, message, hint);
    }
}

#[test]
fn wrong_value_types() {
    let cases = [
        (
            "name = \"Questions\"",
            "name = 42",
            34,
            8,
            "name must be a string, got integer",
        ),
        (
            "channels = [\"email\"]",
            "channels = \"email\"",
            37,
            12,
            "channels must be an array, got string",
        ),
        (
            "channels = [\"email\"]",
            "channels = [\"email\", 3]",
            37,
            22,
            "each entry of channels must be a string, got integer",
        ),
        (
            "[calendars.always]\nalways = true",
            "[calendars]\nalways = 1",
            13,
            10,
            "calendar \"always\" must be a table, got integer",
        ),
        (
            "match = {",
            "match = 3 #{",
            38,
            9,
            "match must be a table, got integer",
        ),
    ];
    for (from, to, line, col, message) in cases {
        expect(&with(from, to), line, col, message, None);
    }
}

#[test]
fn missing_required_keys_point_at_the_table() {
    let cases = [
        (
            "name = \"Questions\"\n",
            32,
            1,
            "request type \"question\" is missing required key \"name\"",
        ),
        (
            "calendar = \"business\"\n",
            32,
            1,
            "request type \"question\" is missing required key \"calendar\"",
        ),
        (
            "first_response = \"4h\"\n",
            32,
            1,
            "request type \"question\" is missing required key \"first_response\"",
        ),
        (
            "definition = \"Everything else.\"\n",
            32,
            1,
            "missing required key \"definition\"",
        ),
        (
            "effective = \"2026-11-01\"\n",
            1,
            1,
            "[contract] is missing required key \"effective\"",
        ),
        (
            "name = \"ACME Corp\"\n",
            48,
            1,
            "client \"acme\" is missing required key \"name\"",
        ),
        (
            "kind = \"manual\"\n",
            19,
            1,
            "channel \"pager\" is missing required key \"kind\"",
        ),
    ];
    for (remove, line, col, message) in cases {
        expect(&with(remove, ""), line, col, message, None);
    }
    let source = BASE.replacen("[contract]", "[agreement]", 1);
    expect(&source, 1, 1, "missing [contract] section", None);
}

#[test]
fn channels_and_contacts() {
    let source = with("kind = \"manual\"", "kind = \"phone\"");
    expect(
        &source,
        20,
        8,
        "unknown channel kind \"phone\"",
        Some("\"manual\""),
    );
    let source = with(
        "address = \"support@example.com\"",
        "address = \"Support <support@example>\"",
    );
    expect(&source, 17, 11, "is not an email address", None);
    let source = with("address = \"support@example.com\"\n", "");
    expect(
        &source,
        15,
        1,
        "channel \"email\" is missing required key \"address\"",
        None,
    );
    let source = with(
        "oncall = { email = \"oncall@example.com\" }",
        "oncall = { }",
    );
    expect(
        &source,
        45,
        10,
        "contact \"oncall\" has no alert target",
        None,
    );
    let source = with(
        "\"https://chat.example.com/hook\"",
        "\"chat.example.com/hook\"",
    );
    expect(
        &source,
        46,
        48,
        "contact \"lead\": webhook is not an http(s) URL",
        None,
    );
}

#[test]
fn clients_may_not_share_domains_or_addresses() {
    let source = format!(
        "{BASE}\n[[clients]]\nid = \"acme-eu\"\nname = \"ACME Europe\"\ndomains = [\"eu.acme.com\", \"Acme.com\"]\naddresses = [\"boss@acme.com\"]\n\n[[clients]]\nid = \"other\"\nname = \"Other\"\naddresses = [\"BOSS@acme.com\"]\n"
    );
    expect(
        &source,
        57,
        27,
        "domain \"Acme.com\" is already claimed by client \"acme\" (line 51)",
        Some("one client"),
    );
    expect(
        &source,
        63,
        14,
        "address \"BOSS@acme.com\" is already claimed by client \"acme-eu\" (line 58)",
        None,
    );
    // A subdomain of another client's domain is not an overlap: the most
    // specific declaration wins (see contract_queries.rs).
    assert!(
        !diagnostics(&source)
            .iter()
            .any(|d| d.message.contains("eu.acme.com"))
    );
    let source = with("domains = [\"acme.com\"]", "domains = [\"@acme.com\"]");
    expect(
        &source,
        51,
        12,
        "domain \"@acme.com\" is not a mail domain",
        Some("\"acme.com\""),
    );
}

#[test]
fn contract_section_values() {
    let source = with(
        "timezone = \"Europe/Berlin\"\n\n[calendars",
        "timezone = \"Europe/Berlin\"\nunknown_senders = \"drop\"\n\n[calendars",
    );
    expect(
        &source,
        5,
        19,
        "unknown_senders \"drop\" is neither \"track\" nor \"ignore\"",
        None,
    );
    let source = with(
        "timezone = \"Europe/Berlin\"\n\n[calendars",
        "timezone = \"Europe/Berlin\"\npublic_url = \"support.example.com\"\n\n[calendars",
    );
    expect(
        &source,
        5,
        14,
        "public_url \"support.example.com\" is not an http(s) URL",
        None,
    );
}

#[test]
fn diagnostics_are_sorted_by_position() {
    let source = with("mon = \"09:00-17:00\"", "mon = \"9-17\"")
        .replace("calendar = \"always\"", "calendar = \"allways\"");
    let diags = diagnostics(&source);
    let positions: Vec<(usize, usize)> = diags.iter().map(|d| (d.line, d.col)).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
    assert!(diags.len() >= 2);
}

#[test]
fn zero_windows_are_refused() {
    // needs the real calendar (to parse "0m" at all)
    let source = with("first_response = \"4h\"", "first_response = \"0m\"");
    expect(&source, 40, 18, "window \"0m\" is zero", Some("\"30m\""));
}

#[test]
fn ticket_projects_are_checked_like_domains() {
    let keys = "domains = [\"acme.com\"]";
    // A misspelt key suggests the right one.
    expect(
        &with(keys, &format!("{keys}\njira_project = [\"SUP\"]")),
        52,
        1,
        "in client \"acme\"",
        Some("did you mean \"jira_projects\"?"),
    );
    expect(
        &with(keys, &format!("{keys}\nlinear_team = [\"CS\"]")),
        52,
        1,
        "in client \"acme\"",
        Some("did you mean \"linear_teams\"?"),
    );
    // Values: a key of letters and digits, a positive project id.
    expect(
        &with(keys, &format!("{keys}\njira_projects = [\"SUP-1\"]")),
        52,
        18,
        "Jira project key \"SUP-1\" is not a key",
        Some("such as \"SUP\""),
    );
    expect(
        &with(keys, &format!("{keys}\nbasecamp_projects = [0, \"x\"]")),
        52,
        22,
        "each entry of basecamp_projects must be a project id",
        Some("/buckets/"),
    );
    // One project, one client; the same word may be a Jira and a Linear key.
    let second = "\n[[clients]]\nid = \"globex\"\nname = \"Globex\"\njira_projects = [\"sup\"]\n";
    let both = with(
        keys,
        &format!("{keys}\njira_projects = [\"SUP\"]\nlinear_teams = [\"SUP\"]{second}"),
    );
    expect(
        &both,
        57,
        18,
        "Jira project key \"sup\" is already claimed by client \"acme\" (line 52)",
        Some("a project or team belongs to one client"),
    );
    assert_eq!(
        diagnostics(&both).len(),
        1,
        "{}",
        listing(&diagnostics(&both))
    );

    let fine = with(
        keys,
        &format!(
            "{keys}\njira_projects = [\"sup\"]\nlinear_teams = [\"CS\"]\nbasecamp_projects = [2957043, \"42\"]"
        ),
    );
    let contract = parse(&fine, "c.toml").unwrap_or_else(|d| panic!("{d}"));
    let acme = contract.client("acme").unwrap();
    assert_eq!(acme.jira_projects, ["SUP"]);
    assert_eq!(acme.linear_teams, ["CS"]);
    assert_eq!(acme.basecamp_projects, [2957043, 42]);
    // Declaring them changes the contract's version; not declaring them
    // leaves every existing contract's version as it was.
    let base = parse(BASE, "c.toml").unwrap();
    assert_ne!(base.version(), contract.version());
}

#[test]
fn slack_channels_and_workspaces_are_checked_like_projects() {
    let keys = "domains = [\"acme.com\"]";
    expect(
        &with(keys, &format!("{keys}\nslack_channel = [\"C0ACME123\"]")),
        52,
        1,
        "in client \"acme\"",
        Some("did you mean \"slack_channels\"?"),
    );
    expect(
        &with(keys, &format!("{keys}\nslack_team = [\"T0ACME\"]")),
        52,
        1,
        "in client \"acme\"",
        Some("did you mean \"slack_teams\"?"),
    );
    // A channel's name is not its id; a workspace id starts with T or E.
    expect(
        &with(
            keys,
            &format!("{keys}\nslack_channels = [\"#acme-support\"]"),
        ),
        52,
        19,
        "Slack channel id \"#acme-support\" is not an id",
        Some("not its name"),
    );
    expect(
        &with(keys, &format!("{keys}\nslack_teams = [\"C0ACME123\"]")),
        52,
        16,
        "Slack workspace id \"C0ACME123\" is not an id",
        Some("\"T0ACME\""),
    );
    // One channel, one client.
    let second =
        "\n[[clients]]\nid = \"globex\"\nname = \"Globex\"\nslack_channels = [\"c0acme123\"]\n";
    let both = with(
        keys,
        &format!("{keys}\nslack_channels = [\"C0ACME123\"]{second}"),
    );
    expect(
        &both,
        56,
        19,
        "Slack channel id \"c0acme123\" is already claimed by client \"acme\" (line 52)",
        Some("belongs to one client"),
    );
    // A kind misspelt suggests slack.
    let misspelt = with(
        "[channels.email]",
        "[channels.chat]\nkind = \"slak\"\n\n[channels.email]",
    );
    assert!(
        diagnostics(&misspelt)
            .iter()
            .any(|d| d.message.contains("unknown channel kind \"slak\"")
                && d.hint.as_deref() == Some("did you mean \"slack\"?")),
        "{}",
        listing(&diagnostics(&misspelt))
    );

    let fine = with(
        keys,
        &format!(
            "{keys}\nslack_channels = [\"c0acme123\", \"G0PRIVATE\"]\nslack_teams = [\"T0ACME\"]"
        ),
    );
    let contract = parse(&fine, "c.toml").unwrap_or_else(|d| panic!("{d}"));
    let acme = contract.client("acme").unwrap();
    assert_eq!(acme.slack_channels, ["C0ACME123", "G0PRIVATE"]);
    assert_eq!(acme.slack_teams, ["T0ACME"]);
    let base = parse(BASE, "c.toml").unwrap();
    assert_ne!(base.version(), contract.version());
}
