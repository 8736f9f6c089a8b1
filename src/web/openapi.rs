//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of every route
//! [`api::register`] registers — the JSON API, the GitHub webhook, their
//! error shape and their authentication.
//!
//! Written by hand, because the handlers build most of their answers with
//! `json!` and read their bodies themselves. Two things keep it true: the
//! test below fails when a registered route (or method) is missing from the
//! document or the document names one that is not registered; and
//! `tests/http/openapi.rs` runs schemathesis against the running service, which
//! fails on any answer (status, header, body) the document does not allow
//! and on any request the document allows that the service refuses.
//!
//! The document is built per request from the contract in force: the
//! channels and clients an event may name are the contract's, so a request
//! the document calls valid is one the service accepts. The document is
//! public, but who the clients are is not: without one of the `api_tokens`
//! the `client` field names no ids (any string, refused with a 422 when no
//! client has it); a token holder gets them as an enum.

use actix_web::{HttpResponse, web};
use serde_json::{Map, Value, json};

use super::AppState;
use super::api::{self, BODY_LIMIT};
use super::auth::ApiCaller;
use crate::contract::UNKNOWN_CLIENT;
use crate::ingest::{MAX_BODY_BYTES, MAX_FUTURE_SECS, MAX_ID_CHARS, MAX_SUBJECT_CHARS};

/// Characters Rust's `str::trim` removes (Unicode `White_Space`): a text
/// field that "must not be empty" needs one character outside this set. The
/// set is spelled out because regex `\s` differs between engines.
const WHITE_SPACE: &str =
    "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// Public, with more for a caller that shows an API token.
pub async fn serve(caller: Option<ApiCaller>, state: web::Data<AppState>) -> HttpResponse {
    let audience = if caller.is_some() {
        Audience::TokenHolder
    } else {
        Audience::Public
    };
    HttpResponse::Ok().json(document(&state, audience))
}

/// Who asks for the document: the client ids are only for a token holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Public,
    TokenHolder,
}

/// The document, for the contract in force now.
pub fn document(state: &AppState, audience: Audience) -> Value {
    let current = state.contract.current();
    let channels: Vec<String> = current
        .contract
        .channels()
        .iter()
        .map(|c| c.id.clone())
        .collect();
    let clients = (audience == Audience::TokenHolder).then(|| {
        let mut clients: Vec<Value> = current
            .contract
            .clients()
            .iter()
            .map(|c| Value::from(c.id.clone()))
            .collect();
        clients.push(UNKNOWN_CLIENT.into());
        clients.push(Value::Null);
        clients
    });
    let year = state.reads.now().format("%Y").to_string();
    build(&channels, clients, &year)
}

/// A text with one character outside [`WHITE_SPACE`] and no NUL (refused
/// in ids and keys: NUL would collide with its stored replacement).
fn key_pattern() -> String {
    format!("^[^\\u0000]*[^{WHITE_SPACE}\\u0000][^\\u0000]*$")
}

fn non_blank(max_chars: usize) -> Value {
    json!({"type": "string", "maxLength": max_chars, "pattern": key_pattern()})
}

fn nullable(mut schema: Value, kind: &str) -> Value {
    schema["type"] = json!([kind, "null"]);
    schema
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The answers every operation can give besides its own.
fn with_common(mut responses: Value, secured: bool, body: bool) -> Value {
    let r = responses.as_object_mut().expect("responses is an object");
    if secured {
        r.insert(
            "401".into(),
            json!({"$ref": "#/components/responses/Unauthorized"}),
        );
    }
    if body {
        r.insert(
            "413".into(),
            json!({"$ref": "#/components/responses/TooLarge"}),
        );
    }
    r.insert(
        "405".into(),
        json!({"$ref": "#/components/responses/MethodNotAllowed"}),
    );
    r.insert(
        "503".into(),
        json!({"$ref": "#/components/responses/Unavailable"}),
    );
    responses
}

fn id_parameter(what: &str) -> Value {
    json!({
        "name": "id", "in": "path", "required": true,
        "description": format!("The {what}'s id. Anything but an integer names nothing (404)."),
        "schema": {"type": "integer", "format": "int64"}
    })
}

fn limit_parameter() -> Value {
    json!({
        "name": "limit", "in": "query", "required": false,
        "description": "Page size (default 100).",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    })
}

/// A pattern for RFC 3339 instants whose year is before `year`: an event's
/// `at` may be at most a day ahead of the server's clock, which JSON Schema
/// cannot say; "before this year" is the part of it that a schema can.
fn years_before(year: &str) -> String {
    // From 1901: the calendar covers 1900-01-02 … 2199-12-30, and the year
    // 1900 is only partly inside. `year` is at least 2001.
    let digits: Vec<u32> = year.chars().filter_map(|c| c.to_digit(10)).collect();
    let mut alternatives = vec!["19(?:0[1-9]|[1-9]\\d)".to_string()];
    for (i, d) in digits.iter().enumerate().skip(1) {
        if *d == 0 {
            continue;
        }
        let prefix: String = digits[..i].iter().map(u32::to_string).collect();
        let rest = digits.len() - i - 1;
        let tail = if rest > 0 {
            format!("\\d{{{rest}}}")
        } else {
            String::new()
        };
        alternatives.push(format!("{prefix}[0-{}]{tail}", d - 1));
    }
    format!("^(?:{})-", alternatives.join("|"))
}

/// `clients`: the ids an event may name, or `None` to name none.
fn build(channels: &[String], clients: Option<Vec<Value>>, year: &str) -> Value {
    let bearer = json!([{"bearer": []}]);
    let client = match clients {
        Some(ids) => json!({"type": ["string", "null"], "enum": ids,
                            "description": "A client of the contract (default: from the sender's address)."}),
        None => json!({"type": ["string", "null"],
                       "description": "A client id of the contract (default: from the sender's address). \
                                       The ids are listed in the document given with a bearer token."}),
    };
    let event = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "channel", "thread"],
        "description": "A ticket event: a message (`direction`), a status change (`status`), \
                        or both. `null` counts as absent.",
        "properties": {
            "id": {
                "type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS,
                "pattern": key_pattern(),
                "description": "The idempotency key: the same id twice is one event."
            },
            "channel": {"type": "string", "enum": channels, "description": "A channel of the contract."},
            "thread": non_blank(500),
            "direction": {"type": ["string", "null"], "enum": ["inbound", "outbound", "internal", "auto", null]},
            "from": {"type": ["string", "null"], "maxLength": 320, "description": "Sender address or login."},
            "client": client,
            "subject": {"type": ["string", "null"], "maxLength": MAX_SUBJECT_CHARS},
            "body": {"type": ["string", "null"], "maxLength": MAX_BODY_BYTES,
                     "description": format!("At most {MAX_BODY_BYTES} bytes of UTF-8 (1 MiB).")},
            "priority": nullable(non_blank(100), "string"),
            "status": {"type": ["string", "null"], "enum": ["open", "pending", "solved", null]},
            "at": {
                "type": ["string", "null"], "format": "date-time",
                "pattern": years_before(year),
                "description": format!(
                    "RFC 3339; default now. At most {MAX_FUTURE_SECS} s after the server's clock \
                     (the pattern admits years before the current one; later instants up to a \
                     day ahead are accepted too)."
                )
            },
            "awaiting_client": {"type": ["boolean", "null"],
                                "description": "An outbound message that asks the client something; true only with direction `outbound`."}
        },
        "anyOf": [
            {"required": ["direction"], "properties": {"direction": {"type": "string"}}},
            {"required": ["status"], "properties": {"status": {"type": "string"}}}
        ],
        "if": {"required": ["awaiting_client"], "properties": {"awaiting_client": {"const": true}}},
        "then": {"required": ["direction"], "properties": {"direction": {"const": "outbound"}}}
    });

    let timer = json!({
        "type": "object",
        "required": ["timer", "seq", "status", "started_at", "due_at", "stopped_at"],
        "properties": {
            "timer": {"type": "string", "description": "first_response, next_response or resolution."},
            "seq": {"type": "integer"},
            "status": {"type": "string", "enum": ["running", "paused", "met", "breached", "missed"]},
            "started_at": {"type": "string", "format": "date-time"},
            "due_at": {"type": ["string", "null"], "format": "date-time"},
            "stopped_at": {"type": ["string", "null"], "format": "date-time"}
        }
    });
    let summary_properties = json!({
        "id": {"type": "integer"},
        "channel": {"type": "string"},
        "thread": {"type": "string"},
        "client": {"type": "string"},
        "subject": {"type": "string"},
        "request_type": {"type": "string"},
        "classification": {"type": "string", "description": "Why this request type."},
        "contract_version": {"type": "string"},
        "status": {"type": "string", "enum": ["open", "pending", "solved"]},
        "health": {"type": "string", "enum": ["on_track", "at_risk", "breached"]},
        "channel_mismatch": {"type": "boolean"},
        "opened_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "solved_at": {"type": ["string", "null"], "format": "date-time"},
        "next_due_at": {"type": ["string", "null"], "format": "date-time"},
        "timers": {"type": "array", "items": {"$ref": "#/components/schemas/Timer"}}
    });
    let summary_required: Vec<&String> = summary_properties
        .as_object()
        .expect("an object")
        .keys()
        .collect();
    let summary = json!({
        "type": "object",
        "required": summary_required,
        "properties": summary_properties,
    });
    let mut detail_properties: Map<String, Value> =
        summary_properties.as_object().expect("an object").clone();
    detail_properties.insert(
        "messages".into(),
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Message"}}),
    );
    detail_properties.insert(
        "escalations".into(),
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Step"}}),
    );
    detail_properties.insert(
        "pause".into(),
        json!({"$ref": "#/components/schemas/Pause"}),
    );
    let detail_required: Vec<&String> = detail_properties.keys().collect();
    let detail = json!({
        "type": "object",
        "description": "A conversation with its messages and fired escalation steps.",
        "required": detail_required,
        "properties": detail_properties,
    });

    let responses_event = with_common(
        json!({
            "201": {"description": "Recorded (after the commit).",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recorded"}}}},
            "200": {"description": "The idempotency key was seen before; nothing changed.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recorded"}}}},
            "400": error_response("The body is not a JSON object."),
            "422": {"$ref": "#/components/responses/Invalid"}
        }),
        true,
        true,
    );
    let responses_github = with_common(
        json!({
            "201": {"description": "Recorded (after the commit).",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recorded"}}}},
            "200": {"description": "This delivery was recorded before; nothing changed.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recorded"}}}},
            "202": {"description": "An event or action keepword does not track; counted.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ignored"}}}},
            "400": error_response("Not a JSON object, form-encoded, or a GitHub header is missing."),
            "401": error_response("`X-Hub-Signature-256` is missing or does not match the body."),
            "422": {"$ref": "#/components/responses/Invalid"}
        }),
        false,
        true,
    );
    // Jira, Linear and Basecamp answer alike; only the credential differs.
    let responses_ticket = |credential: &str| {
        with_common(
            json!({
                "201": {"description": "Recorded (after the commit).",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recorded"}}}},
                "200": {"description": "This delivery was recorded before (the payload's own identity); nothing changed.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Recorded"}}}},
                "202": {"description": "An event or action keepword does not track; counted.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ignored"}}}},
                "400": error_response("The body is not a JSON object (kept in rejected input)."),
                "401": error_response(credential),
                "404": error_response("Basecamp: the URL's secret is wrong, or `[basecamp]` is not configured."),
                "422": {"$ref": "#/components/responses/Invalid"}
            }),
            false,
            true,
        )
    };
    let responses_slack = with_common(
        json!({
            "200": {"description": "Recorded or a duplicate (after the commit), ignored and counted, or the `url_verification` challenge.",
                    "content": {"application/json": {"schema": {"oneOf": [
                        {"$ref": "#/components/schemas/Recorded"},
                        {"$ref": "#/components/schemas/Ignored"},
                        {"type": "object", "required": ["challenge"],
                         "properties": {"challenge": {"type": "string"}}}
                    ]}}}},
            "400": error_response("The body is not a JSON object (kept in rejected input)."),
            "401": error_response("`X-Slack-Signature` is missing or does not match, `X-Slack-Request-Timestamp` is more than 5 minutes away, or `[slack]` is not configured."),
            "422": {"$ref": "#/components/responses/Invalid"}
        }),
        false,
        true,
    );
    let ticket_body = |what: &str| {
        json!({"required": true, "content": {"application/json": {"schema": {
            "type": "object", "description": what
        }}}})
    };
    let list = |key: &str, item: &str, description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {
                "type": "object", "required": [key],
                "properties": {key: {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}}}
            }}}
        })
    };
    let conversation = |description: &str| {
        json!({"description": description,
               "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ConversationDetail"}}}})
    };
    let not_found = || error_response("No such id (or not an integer).");
    let filter = |name: &str, description: &str| {
        json!({"name": name, "in": "query", "required": false, "description": description,
               "schema": {"type": "string", "pattern": "^[^\\u0000]*$"}})
    };

    let mut doc = json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "keepword",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Business-time SLAs for a client-facing team: ticket events in, \
                            conversations and their timers out. Every error is \
                            `{\"error\": \"…\"}`; a 422 adds `fields`, naming each bad field."
        },
        "security": bearer,
        "paths": {
            "/api/v1/events": {"post": {
                "operationId": "postEvent",
                "summary": "Record a ticket event",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}}},
                "responses": responses_event
            }},
            "/api/v1/conversations": {"get": {
                "operationId": "listConversations",
                "summary": "Conversations, newest first",
                "parameters": [
                    {"name": "health", "in": "query", "required": false,
                     "schema": {"type": "string", "enum": ["on_track", "at_risk", "breached"]}},
                    {"name": "status", "in": "query", "required": false,
                     "schema": {"type": "string", "enum": ["open", "pending", "solved"]}},
                    filter("client", "A client id."),
                    filter("type", "A request type id."),
                    limit_parameter(),
                    {"name": "before", "in": "query", "required": false,
                     "description": "Only conversations with a smaller id (the next page).",
                     "schema": {"type": "integer", "format": "int64"}}
                ],
                "responses": with_common(json!({
                    "200": list("conversations", "Conversation", "A page of conversations."),
                    "400": error_response("An unknown or malformed query parameter."),
                    "422": {"$ref": "#/components/responses/Invalid"}
                }), true, false)
            }},
            "/api/v1/conversations/{id}": {"get": {
                "operationId": "getConversation",
                "summary": "One conversation with its messages and escalations",
                "parameters": [id_parameter("conversation")],
                "responses": with_common(json!({
                    "200": conversation("The conversation."),
                    "404": not_found()
                }), true, false)
            }},
            "/api/v1/conversations/{id}/solve": {"post": {
                "operationId": "solveConversation",
                "summary": "Solve a conversation",
                "parameters": [id_parameter("conversation")],
                "responses": with_common(json!({
                    "200": conversation("The conversation, solved."),
                    "404": not_found()
                }), true, false)
            }},
            "/api/v1/rejected": {"get": {
                "operationId": "listRejected",
                "summary": "Input that could not be processed, newest first",
                "parameters": [limit_parameter()],
                "responses": with_common(json!({
                    "200": list("rejected", "Rejected", "A page of rejected input."),
                    "400": error_response("An unknown or malformed query parameter."),
                    "422": {"$ref": "#/components/responses/Invalid"}
                }), true, false)
            }},
            "/api/v1/rejected/{id}/raw": {"get": {
                "operationId": "getRejectedRaw",
                "summary": "The raw bytes of rejected input, as they arrived",
                "parameters": [id_parameter("rejected input")],
                "responses": with_common(json!({
                    "200": {"description": "The raw bytes.",
                            "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
                    "404": not_found()
                }), true, false)
            }},
            "/api/v1/openapi.json": {"get": {
                "operationId": "openapi",
                "summary": "This document",
                "description": "Public. With one of the `api_tokens` as a bearer token it also lists the contract's client ids.",
                "security": [],
                "responses": with_common(json!({
                    "200": {"description": "The OpenAPI 3.1 document.",
                            "content": {"application/json": {"schema": {"type": "object", "required": ["openapi", "paths"]}}}}
                }), false, false)
            }},
            "/webhooks/github": {"post": {
                "operationId": "githubWebhook",
                "summary": "GitHub `issues` and `issue_comment` deliveries",
                "description": "Authenticated by the HMAC-SHA256 of the body with the webhook secret \
                                (`X-Hub-Signature-256`), not by the bearer token.",
                "security": [],
                "parameters": [
                    {"name": "X-Hub-Signature-256", "in": "header", "required": true,
                     "description": "`sha256=` and the hex HMAC-SHA256 of the body.",
                     "schema": {"type": "string"}},
                    {"name": "X-GitHub-Event", "in": "header", "required": true,
                     "description": "`issues` and `issue_comment` are tracked; others are ignored (202).",
                     "schema": {"type": "string"}},
                    {"name": "X-GitHub-Delivery", "in": "header", "required": true,
                     "description": "The delivery id: the idempotency key.",
                     "schema": {"type": "string"}}
                ],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "description": "A GitHub webhook payload."
                }}}},
                "responses": responses_github
            }},
            "/webhooks/jira": {"post": {
                "operationId": "jiraWebhook",
                "summary": "Jira Cloud and Jira Service Management: issues created, comments created, status changes",
                "description": "Authenticated by the HMAC-SHA256 of the body with `[jira] webhook_secret` \
                                (`X-Hub-Signature`), not by the bearer token. Without `[jira]` every delivery is refused (401).",
                "security": [],
                "parameters": [
                    {"name": "X-Hub-Signature", "in": "header", "required": true,
                     "description": "`sha256=` and the hex HMAC-SHA256 of the body.",
                     "schema": {"type": "string"}}
                ],
                "requestBody": ticket_body("A Jira webhook payload."),
                "responses": responses_ticket("`X-Hub-Signature` is missing or does not match the body, or `[jira]` is not configured.")
            }},
            "/webhooks/linear": {"post": {
                "operationId": "linearWebhook",
                "summary": "Linear: issues created, comments created, state changes",
                "description": "Authenticated by the HMAC-SHA256 of the body with `[linear] webhook_secret` \
                                (`Linear-Signature`); the body's `webhookTimestamp` must be within 60 s. \
                                Without `[linear]` every delivery is refused (401).",
                "security": [],
                "parameters": [
                    {"name": "Linear-Signature", "in": "header", "required": true,
                     "description": "The hex HMAC-SHA256 of the body.",
                     "schema": {"type": "string"}}
                ],
                "requestBody": ticket_body("A Linear webhook payload."),
                "responses": responses_ticket("`Linear-Signature` is missing or does not match, or `webhookTimestamp` is more than 60 s away.")
            }},
            "/webhooks/basecamp/{secret}": {"post": {
                "operationId": "basecampWebhook",
                "summary": "Basecamp: messages, to-dos and answers created, comments, to-dos completed",
                "description": "Basecamp signs nothing: the last path segment is `[basecamp] webhook_secret`, \
                                compared in constant time. A wrong one is a 404, as for a path that does not exist.",
                "security": [],
                "parameters": [
                    {"name": "secret", "in": "path", "required": true,
                     "description": "`[basecamp] webhook_secret`.",
                     "schema": {"type": "string"}}
                ],
                "requestBody": ticket_body("A Basecamp webhook payload."),
                "responses": responses_ticket("Not used: a wrong secret is a 404.")
            }},
            "/webhooks/slack": {"post": {
                "operationId": "slackEvents",
                "summary": "Slack Events API: messages in shared channels, url_verification",
                "description": "Authenticated by `X-Slack-Signature` (`v0=` and the hex HMAC-SHA256 of \
                                `v0:{timestamp}:{body}` with `[slack] signing_secret`), checked before the body \
                                is parsed, and `X-Slack-Request-Timestamp` within 5 minutes. Every accepted \
                                request is answered 200 after the commit (Slack retries anything else): a \
                                stored message, a duplicate (Slack's retries carry the same `event_id`), an \
                                ignored event, or the `challenge` of `url_verification`. Without `[slack]` \
                                every request is refused (401).",
                "security": [],
                "parameters": [
                    {"name": "X-Slack-Signature", "in": "header", "required": true,
                     "description": "`v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}`.",
                     "schema": {"type": "string"}},
                    {"name": "X-Slack-Request-Timestamp", "in": "header", "required": true,
                     "description": "Seconds since 1970; at most 5 minutes from the server's clock.",
                     "schema": {"type": "string"}},
                    {"name": "X-Slack-Retry-Num", "in": "header", "required": false,
                     "description": "Slack's retry count: the delivery is a duplicate.",
                     "schema": {"type": "string"}}
                ],
                "requestBody": ticket_body("A Slack Events API request."),
                "responses": responses_slack
            }}
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "One of the configured `api_tokens`."}
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"], "additionalProperties": false,
                    "properties": {
                        "error": {"type": "string", "description": "What is wrong, for a person."},
                        "fields": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"},
                                   "description": "With 422: every bad field."}
                    }
                },
                "FieldError": {
                    "type": "object", "required": ["field", "problem"], "additionalProperties": false,
                    "properties": {
                        "field": {"type": "string", "description": "The JSON name, dotted path, header or parameter."},
                        "problem": {"type": "string", "description": "What is wrong and what is expected."}
                    }
                },
                "Event": event,
                "Recorded": {
                    "type": "object", "required": ["message_id", "conversation_id", "duplicate"],
                    "properties": {
                        "message_id": {"type": "integer"},
                        "conversation_id": {"type": ["integer", "null"],
                                            "description": "null when the contract tracks nothing for this sender."},
                        "duplicate": {"type": "boolean"},
                        "status_url": {"type": "string", "format": "uri",
                                       "description": "Only when this event opened a conversation: the client's status page (`{public_url}/status/{token}`), for the ticket system to show the client. The token is stored only as a hash, so this is the one time it is given out."}
                    }
                },
                "Ignored": {
                    "type": "object", "required": ["ignored", "event", "action", "reason"],
                    "properties": {
                        "ignored": {"const": true},
                        "event": {"type": "string"},
                        "action": {"type": ["string", "null"]},
                        "reason": {"type": "string"}
                    }
                },
                "Timer": timer,
                "Conversation": summary,
                "ConversationDetail": detail,
                "Message": {
                    "type": "object",
                    "required": ["id", "direction", "from", "subject", "body", "status", "awaiting_client", "at", "received_at"],
                    "properties": {
                        "id": {"type": "integer"},
                        "direction": {"type": "string", "description": "inbound, outbound, internal, auto, or none for a status change."},
                        "from": {"type": "string"},
                        "subject": {"type": "string"},
                        "body": {"type": "string"},
                        "status": {"type": ["string", "null"]},
                        "awaiting_client": {"type": "boolean"},
                        "at": {"type": "string", "format": "date-time"},
                        "received_at": {"type": "string", "format": "date-time"}
                    }
                },
                "Step": {
                    "type": "object",
                    "required": ["timer", "seq", "step", "due_at", "fired_at", "late"],
                    "properties": {
                        "timer": {"type": "string"},
                        "seq": {"type": "integer"},
                        "step": {"type": "string"},
                        "due_at": {"type": "string", "format": "date-time"},
                        "fired_at": {"type": "string", "format": "date-time"},
                        "late": {"type": "boolean", "description": "Recorded more than a second after it fell due."}
                    }
                },
                "Rejected": {
                    "type": "object",
                    "required": ["id", "channel", "reason", "detail", "received_at", "size", "preview", "raw_url"],
                    "properties": {
                        "id": {"type": "integer"},
                        "channel": {"type": "string"},
                        "reason": {"type": "string"},
                        "detail": {"type": "string"},
                        "received_at": {"type": "string", "format": "date-time"},
                        "size": {"type": "integer", "minimum": 0},
                        "preview": {"type": "string", "description": "The first 2 KiB as text."},
                        "raw_url": {"type": "string"}
                    }
                }
            },
            "responses": {
                "Unauthorized": {
                    "description": "The bearer token is missing or wrong.",
                    "headers": {"WWW-Authenticate": {"required": true, "schema": {"const": "Bearer"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                },
                "Invalid": {
                    "description": "Bad fields, each named in `fields`.",
                    "content": {"application/json": {"schema": {
                        "allOf": [{"$ref": "#/components/schemas/Error"}],
                        "required": ["fields"]
                    }}}
                },
                "MethodNotAllowed": {
                    "description": "The path exists; the method does not. `Allow` lists the methods.",
                    "headers": {"Allow": {"required": true, "schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                },
                "TooLarge": error_response(&format!("The request body is over {BODY_LIMIT} bytes.")),
                "Unavailable": error_response("The database did not answer; retry.")
            }
        }
    });
    if let (Some(schemas), Value::Object(more)) = (
        doc["components"]["schemas"].as_object_mut(),
        focus_schemas(),
    ) {
        schemas.extend(more);
    }
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.insert(
            "/api/v1/urgency".into(),
            json!({"get": {
                "operationId": "getUrgency",
                "summary": "Urgent share per client over the trailing 30 days; clients above urgent_share_limit with the requests that made them so",
                "responses": with_common(json!({
                    "200": {"description": "The urgency report.",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Urgency"}}}}
                }), true, false)
            }}),
        );
    }
    doc
}

/// The schemas of urgency and focus (README), apart because one `json!`
/// of the whole document would pass the macro recursion limit.
fn focus_schemas() -> Value {
    json!({
                "Step": {
                    "type": "object",
                    "required": ["timer", "seq", "step", "due_at", "fired_at", "late"],
                    "properties": {
                        "timer": {"type": "string"},
                        "seq": {"type": "integer"},
                        "step": {"type": "string"},
                        "due_at": {"type": "string", "format": "date-time"},
                        "fired_at": {"type": "string", "format": "date-time"},
                        "late": {"type": "boolean", "description": "Recorded more than a second after it fell due."},
                        "deferred_until": {"type": ["string", "null"], "format": "date-time",
                                           "description": "The latest instant a notification of this step is held until: the contact's working hours or digest time."},
                        "notifications": {"type": "array", "items": {"$ref": "#/components/schemas/Notification"}}
                    }
                },
                "Notification": {
                    "type": "object",
                    "required": ["contact", "kind", "deferred_until", "sent_at", "outcome", "attempts", "last_error"],
                    "properties": {
                        "contact": {"type": ["string", "null"]},
                        "kind": {"type": "string", "enum": ["email", "webhook", "teams", "pagerduty", "opsgenie", "digest"],
                                 "description": "The target. `digest`: a warning collected into the contact's digest."},
                        "deferred_until": {"type": ["string", "null"], "format": "date-time"},
                        "sent_at": {"type": ["string", "null"], "format": "date-time"},
                        "outcome": {"type": "string", "enum": ["sent", "held", "failing", "refused", "pending"]},
                        "attempts": {"type": "integer", "minimum": 0},
                        "last_error": {"type": ["string", "null"], "description": "Why the last attempt failed."}
                    }
                },
                "Pause": {
                    "type": "object",
                    "description": "Time spent waiting on the client, and the request type's max_pause.",
                    "required": ["paused_business_seconds", "max_pause", "resumed_by_max_pause_at"],
                    "properties": {
                        "paused_business_seconds": {"type": "integer", "minimum": 0},
                        "max_pause": {"type": ["string", "null"], "description": "As written in the contract, e.g. `3d`."},
                        "resumed_by_max_pause_at": {"type": ["string", "null"], "format": "date-time",
                                                    "description": "When max_pause ran out and the resolution timer resumed by itself."}
                    }
                },
                "UrgentShare": {
                    "type": "object",
                    "required": ["client", "client_name", "conversations", "urgent", "share"],
                    "properties": {
                        "client": {"type": "string"},
                        "client_name": {"type": "string"},
                        "conversations": {"type": "integer", "minimum": 0,
                                          "description": "Conversations opened in the trailing window."},
                        "urgent": {"type": "integer", "minimum": 0,
                                   "description": "Of those, classified into an `urgent = true` request type."},
                        "share": {"type": "number", "minimum": 0, "maximum": 1}
                    }
                },
                "Urgency": {
                    "type": "object",
                    "required": ["limit", "limit_share", "window_days", "since", "shares", "above_limit"],
                    "properties": {
                        "limit": {"type": ["string", "null"], "description": "The contract's urgent_share_limit, e.g. `15%`."},
                        "limit_share": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                        "window_days": {"type": "integer"},
                        "since": {"type": "string", "format": "date-time"},
                        "shares": {"type": "array", "items": {"$ref": "#/components/schemas/UrgentShare"}},
                        "above_limit": {"type": "array", "items": {
                            "allOf": [{"$ref": "#/components/schemas/UrgentShare"}],
                            "type": "object",
                            "required": ["requests"],
                            "properties": {
                                "requests": {"type": "array", "items": {
                                    "type": "object",
                                    "required": ["conversation_id", "subject", "request_type", "classification", "channel", "opened_at"],
                                    "properties": {
                                        "conversation_id": {"type": "integer"},
                                        "subject": {"type": "string"},
                                        "request_type": {"type": "string"},
                                        "classification": {"type": "string",
                                                           "description": "The rule that classified it, e.g. `urgent: keyword `outage` in subject`."},
                                        "channel": {"type": "string"},
                                        "opened_at": {"type": "string", "format": "date-time"}
                                    }
                                }}
                            }
                        }}
                    }
                }
    })
}

/// The (path, method) pairs the document describes, methods upper-case.
pub fn described_routes(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in item.as_object().into_iter().flat_map(|m| m.keys()) {
                out.push((path.clone(), method.to_uppercase()));
            }
        }
    }
    out.sort();
    out
}

/// The routes [`api::register`] registers, as [`described_routes`] lists them.
pub fn registered_routes() -> Vec<(String, String)> {
    let mut registered = Vec::new();
    let _ = actix_web::App::new().configure(|cfg| registered = api::register(cfg));
    let mut out: Vec<(String, String)> = registered
        .into_iter()
        .map(|(path, method)| (path.to_string(), method.as_str().to_string()))
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        build(
            &["email".into(), "tickets".into()],
            Some(vec!["acme".into(), UNKNOWN_CLIENT.into(), Value::Null]),
            "2026",
        )
    }

    #[test]
    fn every_registered_route_is_described_and_nothing_else() {
        let described = described_routes(&doc());
        let registered = registered_routes();
        assert!(registered.len() >= 8, "{registered:?}");
        for r in &registered {
            assert!(
                described.contains(r),
                "{r:?} is registered but not in the document"
            );
        }
        for d in &described {
            assert!(
                registered.contains(d),
                "{d:?} is in the document but not registered"
            );
        }
    }

    /// A route added beside the registrar (an actix route macro) would escape
    /// the test above: there must be none in the web module.
    #[test]
    fn no_api_route_bypasses_the_registrar() {
        for (file, text) in [
            ("src/web/api.rs", include_str!("api.rs")),
            ("src/web/mod.rs", include_str!("mod.rs")),
        ] {
            for (n, line) in text.lines().enumerate() {
                let t = line.trim_start();
                let routed = [
                    "#[get(",
                    "#[post(",
                    "#[put(",
                    "#[delete(",
                    "#[patch(",
                    "#[route(",
                ]
                .iter()
                .any(|m| t.starts_with(m));
                let api = t.contains("\"/api/") || t.contains("\"/webhooks/");
                assert!(
                    !(routed && api),
                    "{file}:{}: an API route outside api::register: {t}",
                    n + 1
                );
            }
        }
    }

    #[test]
    fn every_reference_resolves_and_every_operation_answers_errors() {
        let doc = doc();
        fn walk(v: &Value, doc: &Value) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let pointer = r.strip_prefix('#').expect("a local reference");
                        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                    }
                    m.values().for_each(|v| walk(v, doc));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, doc)),
                _ => {}
            }
        }
        walk(&doc, &doc);
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                let public = op.get("security") == Some(&json!([]));
                assert_eq!(
                    responses.contains_key("401"),
                    !public || path.starts_with("/webhooks/"),
                    "{method} {path}: 401 documented iff authenticated"
                );
                for code in ["405", "503"] {
                    assert!(responses.contains_key(code), "{method} {path}: no {code}");
                }
                assert!(
                    responses.keys().any(|c| c.starts_with('2')),
                    "{method} {path}: no success answer"
                );
            }
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn years_before_admits_exactly_the_earlier_years() {
        assert_eq!(
            years_before("2026"),
            "^(?:19(?:0[1-9]|[1-9]\\d)|20[0-1]\\d{1}|202[0-5])-"
        );
        assert_eq!(
            years_before("2100"),
            "^(?:19(?:0[1-9]|[1-9]\\d)|2[0-0]\\d{2})-"
        );
    }
}
