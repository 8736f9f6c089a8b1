//! Unit tests of both parsers and the signature check.

use super::github::*;
use super::*;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    "2025-03-03T10:00:00Z".parse().unwrap()
}

fn generic(value: Value) -> Result<IncomingEvent, EventError> {
    parse_generic(value.to_string().as_bytes(), now())
}

fn problems(result: Result<impl std::fmt::Debug, EventError>) -> Vec<FieldError> {
    match result {
        Err(EventError::Invalid(errors)) => errors,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn fields(result: Result<impl std::fmt::Debug, EventError>) -> Vec<String> {
    problems(result).into_iter().map(|e| e.field).collect()
}

fn problem(result: Result<impl std::fmt::Debug, EventError>, field: &str) -> String {
    problems(result)
        .into_iter()
        .find(|e| e.field == field)
        .unwrap_or_else(|| panic!("no problem reported for {field}"))
        .problem
}

fn minimal() -> Value {
    json!({"id": "e1", "channel": "tickets", "thread": "T-1", "direction": "inbound"})
}

fn with(mut value: Value, key: &str, field: Value) -> Value {
    value[key] = field;
    value
}

#[test]
fn minimal_event_gets_defaults() {
    let event = generic(minimal()).unwrap();
    assert_eq!(
        event,
        IncomingEvent {
            idempotency_key: "e1".into(),
            channel: "tickets".into(),
            thread: "T-1".into(),
            direction: Some(Direction::Inbound),
            from: String::new(),
            client: None,
            client_hint: None,
            subject: String::new(),
            body: String::new(),
            priority: None,
            status: None,
            awaiting_client: false,
            at: now(),
        }
    );
}

#[test]
fn full_event_keeps_every_field() {
    let event = generic(json!({
        "id": "e2", "channel": "tickets", "thread": "T-2", "direction": "outbound",
        "from": "ann@team.example", "client": "acme", "subject": "Re: outage",
        "body": "Can you send the logs?", "priority": "urgent", "status": "pending",
        "at": "2025-03-03T11:30:00+01:00", "awaiting_client": true
    }))
    .unwrap();
    assert_eq!(event.direction, Some(Direction::Outbound));
    assert_eq!(event.status, Some(TicketStatus::Pending));
    assert_eq!(event.from, "ann@team.example");
    assert_eq!(event.client.as_deref(), Some("acme"));
    assert_eq!(event.subject, "Re: outage");
    assert_eq!(event.body, "Can you send the logs?");
    assert_eq!(event.priority.as_deref(), Some("urgent"));
    assert!(event.awaiting_client);
    assert_eq!(
        event.at,
        "2025-03-03T10:30:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[test]
fn status_alone_is_a_status_change() {
    let mut value = minimal();
    value.as_object_mut().unwrap().remove("direction");
    let event = generic(with(value, "status", json!("solved"))).unwrap();
    assert_eq!(event.direction, None);
    assert_eq!(event.status, Some(TicketStatus::Solved));
}

#[test]
fn every_direction_and_status_parses() {
    for (name, direction) in [
        ("inbound", Direction::Inbound),
        ("outbound", Direction::Outbound),
        ("internal", Direction::Internal),
        ("auto", Direction::Auto),
    ] {
        let event = generic(with(minimal(), "direction", json!(name))).unwrap();
        assert_eq!(event.direction, Some(direction));
    }
    for (name, status) in [
        ("open", TicketStatus::Open),
        ("pending", TicketStatus::Pending),
        ("solved", TicketStatus::Solved),
    ] {
        let event = generic(with(minimal(), "status", json!(name))).unwrap();
        assert_eq!(event.status, Some(status));
    }
}

#[test]
fn not_a_json_object_is_malformed() {
    for body in [
        &b""[..],
        b"{",
        b"not json",
        b"[1,2]",
        b"\"id\"",
        b"null",
        b"\xff\xfe",
    ] {
        assert!(
            matches!(parse_generic(body, now()), Err(EventError::Malformed(_))),
            "{body:?}"
        );
    }
    let Err(EventError::Malformed(message)) = parse_generic(b"[]", now()) else {
        unreachable!()
    };
    assert_eq!(message, "the body must be a JSON object, not an array");
}

#[test]
fn empty_object_names_every_required_field() {
    let result = generic(json!({}));
    assert_eq!(fields(result), ["id", "channel", "thread", "direction"]);
    assert_eq!(problem(generic(json!({})), "id"), "is required");
}

#[test]
fn null_is_absent() {
    let value = json!({"id": null, "channel": "c", "thread": "t", "status": "open",
        "direction": null, "client": null, "at": null, "awaiting_client": null});
    assert_eq!(fields(generic(value)), ["id"]);
}

#[test]
fn bad_direction_and_at_are_both_reported() {
    let value = with(
        with(minimal(), "direction", json!("sideways")),
        "at",
        json!("yesterday"),
    );
    assert_eq!(
        serde_json::to_value(problems(generic(value))).unwrap(),
        json!([
            {"field": "direction",
             "problem": "must be one of inbound, outbound, internal, auto (got \"sideways\")"},
            {"field": "at",
             "problem": "must be an RFC 3339 date-time such as \"2025-03-01T09:30:00Z\" (got \"yesterday\")"},
        ])
    );
}

#[test]
fn bad_status_is_reported() {
    let value = with(minimal(), "status", json!("closed"));
    assert_eq!(fields(generic(value.clone())), ["status"]);
    assert_eq!(
        problem(generic(value), "status"),
        "must be one of open, pending, solved (got \"closed\")"
    );
}

#[test]
fn wrong_types_name_each_field() {
    let value = json!({"id": 5, "channel": ["c"], "thread": {"a": 1}, "direction": true,
        "from": 1, "client": 2, "subject": 3, "body": 4, "priority": 1, "status": 0,
        "at": 1700000000});
    assert_eq!(
        fields(generic(value.clone())),
        [
            "id",
            "channel",
            "thread",
            "direction",
            "from",
            "client",
            "subject",
            "body",
            "priority",
            "status",
            "at"
        ]
    );
    assert_eq!(
        problem(generic(value.clone()), "id"),
        "must be a string (got a number)"
    );
    assert_eq!(
        problem(generic(value.clone()), "channel"),
        "must be a string (got an array)"
    );
    assert_eq!(
        problem(generic(value.clone()), "thread"),
        "must be a string (got an object)"
    );
    assert_eq!(
        problem(generic(value), "direction"),
        "must be a string (got a boolean)"
    );
}

#[test]
fn unknown_fields_are_named() {
    let value = with(with(minimal(), "Direction", json!("x")), "tags", json!([]));
    assert_eq!(fields(generic(value.clone())), ["Direction", "tags"]);
    assert!(problem(generic(value), "tags").starts_with("is not a known field (known: id, "));
}

#[test]
fn required_strings_must_not_be_blank() {
    let value = json!({"id": "", "channel": " ", "thread": "\t", "direction": "inbound"});
    assert_eq!(fields(generic(value.clone())), ["id", "channel", "thread"]);
    assert_eq!(problem(generic(value), "id"), "must not be empty");
}

#[test]
fn optional_names_must_not_be_empty_when_given() {
    let value = with(with(minimal(), "client", json!("")), "priority", json!(" "));
    assert_eq!(fields(generic(value)), ["client", "priority"]);
    // Empty text is a real message (an attachment-only reply).
    let value = with(with(minimal(), "subject", json!("")), "body", json!(""));
    assert!(generic(value).is_ok());
}

#[test]
fn id_length_limit() {
    let ok = with(minimal(), "id", json!("é".repeat(MAX_ID_CHARS)));
    assert!(generic(ok).is_ok());
    let long = with(minimal(), "id", json!("x".repeat(MAX_ID_CHARS + 1)));
    assert_eq!(fields(generic(long.clone())), ["id"]);
    assert_eq!(
        problem(generic(long), "id"),
        "must be at most 200 characters (got 201)"
    );
}

#[test]
fn subject_and_body_limits() {
    let ok = with(
        with(minimal(), "subject", json!("s".repeat(MAX_SUBJECT_CHARS))),
        "body",
        json!("b".repeat(MAX_BODY_BYTES)),
    );
    assert!(generic(ok).is_ok());
    let long = with(
        with(
            minimal(),
            "subject",
            json!("s".repeat(MAX_SUBJECT_CHARS + 1)),
        ),
        "body",
        json!("é".repeat(MAX_BODY_BYTES / 2 + 1)),
    );
    assert_eq!(fields(generic(long.clone())), ["subject", "body"]);
    assert_eq!(
        problem(generic(long.clone()), "subject"),
        "must be at most 1000 characters (got 1001)"
    );
    assert_eq!(
        problem(generic(long), "body"),
        "must be at most 1048576 bytes of UTF-8 (got 1048578)"
    );
}

#[test]
fn other_length_limits() {
    let value = json!({"id": "e", "channel": "c".repeat(201), "thread": "t".repeat(501),
        "direction": "inbound", "from": "f".repeat(321), "client": "c".repeat(321),
        "priority": "p".repeat(101)});
    assert_eq!(
        fields(generic(value)),
        ["channel", "thread", "from", "client", "priority"]
    );
}

#[test]
fn at_is_converted_to_utc_and_may_be_in_the_past() {
    let event = generic(with(minimal(), "at", json!("2024-12-31T23:59:59.5-05:00"))).unwrap();
    assert_eq!(event.at.to_rfc3339(), "2025-01-01T04:59:59.500+00:00");
}

#[test]
fn at_more_than_a_day_ahead_is_rejected() {
    let edge = with(minimal(), "at", json!("2025-03-04T10:00:00Z"));
    assert!(generic(edge).is_ok());
    let ahead = with(minimal(), "at", json!("2025-03-04T10:00:01Z"));
    assert_eq!(
        problem(generic(ahead), "at"),
        "must not be more than 1 day in the future (got 2025-03-04T10:00:01Z, \
         server time 2025-03-03T10:00:00Z)"
    );
}

#[test]
fn at_without_zone_is_rejected() {
    let value = with(minimal(), "at", json!("2025-03-03 10:00:00"));
    assert_eq!(fields(generic(value)), ["at"]);
}

#[test]
fn awaiting_client_only_on_outbound() {
    let inbound = with(minimal(), "awaiting_client", json!(true));
    assert_eq!(
        problem(generic(inbound), "awaiting_client"),
        "can be true only on an outbound message (direction is \"inbound\")"
    );
    let mut status_only = with(minimal(), "status", json!("pending"));
    status_only.as_object_mut().unwrap().remove("direction");
    let status_only = with(status_only, "awaiting_client", json!(true));
    assert_eq!(
        problem(generic(status_only), "awaiting_client"),
        "can be true only on an outbound message (direction is absent)"
    );
    let not_bool = with(minimal(), "awaiting_client", json!("yes"));
    assert_eq!(
        problem(generic(not_bool), "awaiting_client"),
        "must be true or false (got a string)"
    );
    let off = with(minimal(), "awaiting_client", json!(false));
    assert!(!generic(off).unwrap().awaiting_client);
}

#[test]
fn bad_direction_does_not_also_blame_awaiting_client() {
    let value = with(
        with(minimal(), "direction", json!("out")),
        "awaiting_client",
        json!(true),
    );
    assert_eq!(fields(generic(value)), ["direction"]);
}

#[test]
fn long_values_are_quoted_short() {
    let value = with(minimal(), "direction", json!("x".repeat(5000)));
    let message = problem(generic(value), "direction");
    assert!(message.len() < 200, "{message}");
    assert!(message.ends_with("…)"));
}

#[test]
fn error_display_lists_fields() {
    let error = generic(json!({"id": "e"})).unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid event: channel: is required; thread: is required; direction: is required \
         when \"status\" is absent: an event is a message (direction), a status change \
         (status), or both"
    );
}

// --- GitHub ---

fn issue_payload(action: &str) -> Value {
    json!({
        "action": action,
        "issue": {
            "number": 7, "title": "Export fails", "body": "Since Monday.",
            "created_at": "2025-03-01T09:00:00Z", "updated_at": "2025-03-02T09:00:00Z",
            "closed_at": null,
            "labels": [{"name": "bug"}, {"name": "priority: High"}],
        },
        "repository": {"full_name": "acme/portal", "owner": {"login": "acme"}},
        "sender": {"login": "carol", "type": "User"},
    })
}

fn comment_payload(association: &str) -> Value {
    let mut value = issue_payload("created");
    value["comment"] = json!({
        "body": "Any news?", "created_at": "2025-03-02T12:00:00Z",
        "author_association": association, "user": {"login": "carol", "type": "User"},
    });
    value
}

fn github(event: &str, value: &Value) -> Result<GithubOutcome, EventError> {
    parse_github(event, "d-1", value.to_string().as_bytes(), "github", now())
}

fn github_event(event: &str, value: &Value) -> IncomingEvent {
    match github(event, value) {
        Ok(GithubOutcome::Event(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

fn ignored_reason(event: &str, value: &Value) -> String {
    match github(event, value) {
        Ok(GithubOutcome::Ignored { reason, .. }) => reason,
        other => panic!("expected Ignored, got {other:?}"),
    }
}

#[test]
fn nul_is_refused_in_ids_and_keys_but_kept_in_text() {
    for field in ["id", "channel", "thread", "client", "priority"] {
        let value = with(minimal(), field, json!("a\u{0}b"));
        let problem = problem(generic(value), field);
        assert!(problem.contains("NUL"), "{field}: {problem}");
    }
    // U+FFFD is an ordinary character: the id NUL would have become.
    assert!(generic(with(minimal(), "id", json!("nul\u{FFFD}id"))).is_ok());
    let text = generic(with(minimal(), "body", json!("a\u{0}b"))).unwrap();
    assert_eq!(text.body, "a\u{0}b");
}

#[test]
fn instants_outside_the_calendar_years_are_refused_naming_the_range() {
    for at in [
        "0000-01-01T00:00:00Z",
        "1677-09-20T00:00:00Z",
        "1899-12-31T23:59:59Z",
        "1900-01-01T12:00:00+05:00",
    ] {
        let problem = problem(generic(with(minimal(), "at", json!(at))), "at");
        assert!(
            problem.contains("1900-01-02T00:00:00Z") && problem.contains("2199-12-30"),
            "{at}: {problem}"
        );
    }
    let ok = generic(with(minimal(), "at", json!("1900-01-02T00:00:00Z"))).unwrap();
    assert_eq!(ok.at, instant_range().0);
    let mut value = issue_payload("opened");
    value["issue"]["created_at"] = json!("1677-09-20T00:00:00Z");
    assert_eq!(fields(github("issues", &value)), ["issue.created_at"]);
}

#[test]
fn github_key_is_the_payload_identity_whatever_the_delivery() {
    let mut value = issue_payload("opened");
    value["issue"]["id"] = json!(9001);
    let body = value.to_string();
    let key_of = |event: &str, delivery: &str, body: &str| match parse_github(
        event,
        delivery,
        body.as_bytes(),
        "github",
        now(),
    ) {
        Ok(GithubOutcome::Event(e)) => e.idempotency_key,
        other => panic!("{other:?}"),
    };
    let key = |delivery: &str, body: &str| key_of("issues", delivery, body);
    assert_eq!(
        key("d-1", &body),
        "github:issue:9001:opened:2025-03-02T09:00:00Z"
    );
    assert_eq!(
        key("d-1", &body),
        key("d-2", &body),
        "a replay is one event"
    );
    let mut closed = value.clone();
    closed["action"] = json!("closed");
    assert_ne!(key("d-3", &closed.to_string()), key("d-1", &body));
    let mut later = value.clone();
    later["issue"]["updated_at"] = json!("2025-03-03T09:00:00Z");
    assert_ne!(key("d-4", &later.to_string()), key("d-1", &body));

    let mut comment = comment_payload("NONE");
    comment["issue"]["id"] = json!(9001);
    comment["comment"]["id"] = json!(77);
    comment["comment"]["updated_at"] = json!("2025-03-02T12:00:00Z");
    assert_eq!(
        key_of("issue_comment", "d-5", &comment.to_string()),
        "github:comment:77:created:2025-03-02T12:00:00Z"
    );
    // Without the payload's ids the delivery is all there is.
    assert_eq!(key("d-6", &issue_payload("opened").to_string()), "d-6");
}

#[test]
fn opened_issue_is_an_inbound_message() {
    assert_eq!(
        github_event("issues", &issue_payload("opened")),
        IncomingEvent {
            idempotency_key: "d-1".into(),
            channel: "github".into(),
            thread: "acme/portal#7".into(),
            direction: Some(Direction::Inbound),
            from: "carol".into(),
            client: None,
            client_hint: Some("acme".into()),
            subject: "Export fails".into(),
            body: "Since Monday.".into(),
            priority: Some("high".into()),
            status: None,
            awaiting_client: false,
            at: "2025-03-01T09:00:00Z".parse().unwrap(),
        }
    );
}

#[test]
fn opened_issue_with_null_body_has_empty_body() {
    let mut value = issue_payload("opened");
    value["issue"]["body"] = Value::Null;
    assert_eq!(github_event("issues", &value).body, "");
}

#[test]
fn closed_issue_is_solved_at_closed_at() {
    let mut value = issue_payload("closed");
    value["issue"]["closed_at"] = json!("2025-03-02T10:00:00Z");
    let event = github_event("issues", &value);
    assert_eq!(
        (event.direction, event.status),
        (None, Some(TicketStatus::Solved))
    );
    assert_eq!(
        event.at,
        "2025-03-02T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(event.body, "");
    // Without closed_at, the update time is when it closed.
    let event = github_event("issues", &issue_payload("closed"));
    assert_eq!(
        event.at,
        "2025-03-02T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[test]
fn reopened_issue_is_open_at_updated_at() {
    let mut value = issue_payload("reopened");
    // A reopened issue keeps its old closed_at; it must not be used.
    value["issue"]["closed_at"] = json!("2025-02-01T00:00:00Z");
    let event = github_event("issues", &value);
    assert_eq!(
        (event.direction, event.status),
        (None, Some(TicketStatus::Open))
    );
    assert_eq!(
        event.at,
        "2025-03-02T09:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}

#[test]
fn comment_direction_follows_author_association() {
    for (association, direction) in [
        ("OWNER", Direction::Outbound),
        ("MEMBER", Direction::Outbound),
        ("COLLABORATOR", Direction::Outbound),
        ("CONTRIBUTOR", Direction::Inbound),
        ("FIRST_TIMER", Direction::Inbound),
        ("FIRST_TIME_CONTRIBUTOR", Direction::Inbound),
        ("MANNEQUIN", Direction::Inbound),
        ("NONE", Direction::Inbound),
    ] {
        let event = github_event("issue_comment", &comment_payload(association));
        assert_eq!(event.direction, Some(direction), "{association}");
        assert_eq!(event.body, "Any news?");
        assert_eq!(event.subject, "Export fails");
        assert_eq!(event.thread, "acme/portal#7");
        assert_eq!(
            event.at,
            "2025-03-02T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}

#[test]
fn bot_comment_is_auto() {
    let mut value = comment_payload("MEMBER");
    value["comment"]["user"]["type"] = json!("Bot");
    assert_eq!(
        github_event("issue_comment", &value).direction,
        Some(Direction::Auto)
    );
}

#[test]
fn pull_request_activity_is_ignored() {
    let mut value = comment_payload("NONE");
    value["issue"]["pull_request"] = json!({"url": "https://api.github.com/x"});
    assert!(ignored_reason("issue_comment", &value).contains("pull request"));
    let mut value = issue_payload("closed");
    value["issue"]["pull_request"] = json!({});
    assert!(ignored_reason("issues", &value).contains("pull request"));
}

#[test]
fn other_actions_and_events_are_ignored() {
    for action in ["edited", "labeled", "deleted", "transferred", "assigned"] {
        ignored_reason("issues", &issue_payload(action));
    }
    for action in ["edited", "deleted"] {
        let value = with(comment_payload("NONE"), "action", json!(action));
        ignored_reason("issue_comment", &value);
    }
    for event in ["ping", "push", "pull_request", ""] {
        ignored_reason(event, &json!({"zen": "Keep it logically awesome."}));
    }
    assert_eq!(
        github("issues", &issue_payload("edited")).unwrap(),
        GithubOutcome::Ignored {
            event: "issues".into(),
            action: Some("edited".into()),
            reason: "only opened, closed and reopened issues change a conversation".into(),
        }
    );
}

#[test]
fn ignoring_does_not_need_the_rest_of_the_payload() {
    assert!(matches!(
        github("issues", &json!({"action": "labeled"})),
        Ok(GithubOutcome::Ignored { .. })
    ));
}

#[test]
fn missing_action_is_invalid() {
    assert_eq!(fields(github("issues", &json!({}))), ["action"]);
    assert_eq!(
        problem(github("issue_comment", &json!({"action": 1})), "action"),
        "must be a string (got a number)"
    );
}

#[test]
fn missing_issue_fields_are_named_by_path() {
    let value = json!({"action": "opened", "issue": {}});
    let result = parse_github("issues", "", value.to_string().as_bytes(), "gh", now());
    assert_eq!(
        fields(result),
        [
            "X-GitHub-Delivery",
            "repository.full_name",
            "repository.owner.login",
            "issue.number",
            "issue.title",
            "sender.login",
            "issue.created_at",
        ]
    );
}

#[test]
fn missing_comment_fields_are_named_by_path() {
    let mut value = comment_payload("NONE");
    value["comment"] = json!({"body": 3});
    assert_eq!(
        fields(github("issue_comment", &value)),
        [
            "comment.author_association",
            "comment.body",
            "comment.created_at"
        ]
    );
}

#[test]
fn closed_issue_needs_a_time() {
    let mut value = issue_payload("closed");
    value["issue"]["updated_at"] = Value::Null;
    assert_eq!(fields(github("issues", &value)), ["issue.updated_at"]);
}

#[test]
fn issue_number_must_be_a_positive_integer() {
    for (number, message) in [
        (json!("7"), "must be a positive whole number (got a string)"),
        (json!(0), "must be a positive whole number (got 0)"),
        (json!(-1), "must be a positive whole number (got -1)"),
        (json!(1.5), "must be a positive whole number (got 1.5)"),
    ] {
        let mut value = issue_payload("opened");
        value["issue"]["number"] = number;
        assert_eq!(problem(github("issues", &value), "issue.number"), message);
    }
}

#[test]
fn github_instants_from_the_future_are_rejected() {
    let mut value = issue_payload("opened");
    value["issue"]["created_at"] = json!("2025-03-05T00:00:00Z");
    assert_eq!(fields(github("issues", &value)), ["issue.created_at"]);
}

#[test]
fn form_encoded_github_body_is_malformed_with_a_hint() {
    let result = parse_github("issues", "d", b"payload=%7B%7D", "gh", now());
    let Err(EventError::Malformed(message)) = result else {
        panic!("{result:?}")
    };
    assert!(message.contains("application/json"));
}

#[test]
fn label_priorities() {
    for (label, priority) in [
        ("priority: High", Some("high")),
        ("Priority/urgent", Some("urgent")),
        ("priority : low ", Some("low")),
        ("priority: P1", Some("high")),
        ("P0", Some("urgent")),
        ("p1", Some("high")),
        ("P2", Some("normal")),
        ("P3", Some("low")),
        ("P4", None),
        ("priority:", None),
        ("priority", None),
        ("priorityhigh", None),
        ("bug", None),
    ] {
        assert_eq!(label_priority(label).as_deref(), priority, "{label}");
    }
}

#[test]
fn first_priority_label_wins_and_odd_labels_are_skipped() {
    let mut value = issue_payload("opened");
    value["issue"]["labels"] = json!([{"name": 3}, "P0", {"name": "P3"}, {"name": "P0"}]);
    assert_eq!(
        github_event("issues", &value).priority.as_deref(),
        Some("low")
    );
    value["issue"]["labels"] = json!({"name": "P0"});
    assert_eq!(github_event("issues", &value).priority, None);
}

// --- signatures ---

const SECRET: &[u8] = b"It's a Secret to Everybody";
const BODY: &[u8] = b"Hello, World!";

#[test]
fn github_documented_example_signature() {
    // The example from GitHub's "Validating webhook deliveries" docs.
    let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(github_signature(SECRET, BODY), expected);
    assert_eq!(
        verify_github_signature(SECRET, BODY, Some(expected)),
        Ok(())
    );
    let upper = format!("sha256={}", expected[7..].to_uppercase());
    assert_eq!(verify_github_signature(SECRET, BODY, Some(&upper)), Ok(()));
}

#[test]
fn signature_rejections() {
    let good = github_signature(SECRET, BODY);
    let check = |secret: &[u8], body: &[u8], header: Option<&str>| {
        verify_github_signature(secret, body, header)
    };
    assert_eq!(
        check(SECRET, b"Hello, World?", Some(&good)),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        check(b"other", BODY, Some(&good)),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(check(SECRET, BODY, None), Err(SignatureError::Missing));
    assert_eq!(check(b"", BODY, Some(&good)), Err(SignatureError::NoSecret));
    let sha1 = good.replace("sha256=", "sha1=");
    let short = &good[..good.len() - 2];
    let not_hex = format!("sha256={}", "g".repeat(64));
    let spaced = format!(" {good}");
    for header in [
        &sha1[..],
        short,
        &not_hex,
        &spaced,
        "",
        "sha256=",
        &good[7..],
    ] {
        assert_eq!(
            check(SECRET, BODY, Some(header)),
            Err(SignatureError::Malformed),
            "{header}"
        );
    }
}
