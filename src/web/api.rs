//! `/api/v1/*` and `/webhooks/*`. Handlers take the caller's credential
//! ([`ApiCaller`]) as their first argument, parse, call one use case in
//! `spawn_blocking`, and map the outcome; every error is a [`WebError`]
//! in its JSON rendering, which names what the caller got wrong and never
//! leaks internals.
//!
//! Nothing here uses actix's extractors that answer on their own (`Path`,
//! `Json`, `Bytes`): their errors would be actix's plain text. Path ids,
//! query strings and bodies are read by the helpers below, and a wrong
//! method or an unknown path is answered by [`WebError`] too, so every API
//! error has the one JSON shape. The routes are registered through
//! [`register`], which also lists them for the OpenAPI document's test.

use actix_web::http::{Method, StatusCode};
use actix_web::{Handler, HttpRequest, HttpResponse, Responder, ResponseError, web};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::ApiCaller;
use super::error::{WebError, blocking};
use crate::ingest::{self, FieldError, IncomingEvent, MAX_BODY_BYTES};
use crate::service::ConversationFilter;
use crate::sla::{Health, TicketStatus};

/// Request bodies above this are refused with 413. It is above the 1 MiB
/// limit of the `body` field so that the field's own check (a 422 naming
/// it) is what a long body meets: JSON escaping can make a string up to six
/// times its UTF-8 size (`\u0001`), and the other fields need room too.
pub const BODY_LIMIT: usize = 6 * MAX_BODY_BYTES + (64 << 10);

/// A registered route: a path pattern and one method it answers.
pub type RouteEntry = (&'static str, Method);

pub fn routes(cfg: &mut web::ServiceConfig) {
    register(cfg);
}

/// Registers every API route and the JSON 404 for unknown paths; returns
/// the routes registered, in order.
pub fn register(cfg: &mut web::ServiceConfig) -> Vec<RouteEntry> {
    let mut api = Registrar {
        cfg,
        routes: Vec::new(),
    };
    api.resource("/api/v1/events", vec![on(Method::POST, post_event)]);
    api.resource(
        "/api/v1/conversations",
        vec![on(Method::GET, list_conversations)],
    );
    api.resource(
        "/api/v1/conversations/{id}",
        vec![on(Method::GET, get_conversation)],
    );
    api.resource(
        "/api/v1/conversations/{id}/solve",
        vec![on(Method::POST, solve)],
    );
    api.resource("/api/v1/urgency", vec![on(Method::GET, urgency)]);
    api.resource("/api/v1/rejected", vec![on(Method::GET, list_rejected)]);
    api.resource(
        "/api/v1/rejected/{id}/raw",
        vec![on(Method::GET, rejected_raw)],
    );
    api.resource(
        "/api/v1/openapi.json",
        vec![on(Method::GET, super::openapi::serve)],
    );
    api.resource("/webhooks/github", vec![on(Method::POST, github)]);
    api.resource(
        "/webhooks/jira",
        vec![on(Method::POST, super::tickets::jira)],
    );
    api.resource(
        "/webhooks/linear",
        vec![on(Method::POST, super::tickets::linear)],
    );
    api.resource(
        "/webhooks/basecamp/{secret}",
        vec![on(Method::POST, super::tickets::basecamp)],
    );
    api.resource(
        "/webhooks/slack",
        vec![on(Method::POST, super::tickets::slack)],
    );
    api.cfg.default_service(web::route().to(unknown_path));
    api.routes
}

struct Registrar<'a> {
    cfg: &'a mut web::ServiceConfig,
    routes: Vec<RouteEntry>,
}

impl Registrar<'_> {
    /// One path with its methods; any other method is a 405 naming them in
    /// `Allow` (actix's route macros would answer 404, as if the path did
    /// not exist).
    fn resource(&mut self, path: &'static str, routes: Vec<(Method, actix_web::Route)>) {
        let allowed: Vec<Method> = routes.iter().map(|(m, _)| m.clone()).collect();
        let mut resource = web::resource(path);
        for (method, route) in routes {
            self.routes.push((path, method));
            resource = resource.route(route);
        }
        let resource = resource.default_service(web::route().to(move || {
            let allowed = allowed.clone();
            async move { Err::<HttpResponse, _>(WebError::MethodNotAllowed(allowed)) }
        }));
        self.cfg.service(resource);
    }
}

/// A route for `method` only, paired with that method so the two cannot
/// disagree.
fn on<F, Args>(method: Method, handler: F) -> (Method, actix_web::Route)
where
    F: Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: Responder + 'static,
{
    (method.clone(), web::method(method).to(handler))
}

/// No route matched. API paths get the JSON error; others the dashboard's
/// 404 page.
async fn unknown_path(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    if path.starts_with("/api/") || path.starts_with("/webhooks/") {
        WebError::NotFound(format!("no route {} {path}", req.method())).error_response()
    } else {
        WebError::not_found("").page()
    }
}

/// The request body, at most [`BODY_LIMIT`] bytes. Read by the handler
/// (not an extractor) so that the bearer token is checked before a large
/// body is read, and so that a 413 has the API's shape.
pub(super) async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<web::Bytes, WebError> {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(WebError::PayloadTooLarge { limit: BODY_LIMIT });
    }
    match payload.to_bytes_limited(BODY_LIMIT).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(e)) => Err(WebError::bad_request(format!(
            "cannot read the request body: {e}"
        ))),
        Err(_) => Err(WebError::PayloadTooLarge { limit: BODY_LIMIT }),
    }
}

/// The `{id}` path segment as an id. Ids are integers, so anything else
/// names nothing: 404, like an id that does not exist.
fn path_id(req: &HttpRequest, what: &str) -> Result<i64, WebError> {
    let raw = req.match_info().get("id").unwrap_or_default();
    raw.parse().map_err(|_| {
        WebError::NotFound(format!(
            "{what} `{}` not found: ids are integers",
            raw.chars().take(40).collect::<String>()
        ))
    })
}

/// Stores an event with its raw body and answers 201 when new, 200 when
/// its idempotency key was seen before — only after the commit.
pub(super) async fn record(
    state: &AppState,
    event: IncomingEvent,
    body: &[u8],
    now: chrono::DateTime<Utc>,
) -> Result<HttpResponse, WebError> {
    let intake = state.intake.clone();
    let raw = body.to_vec();
    let r = intake.submit_event(event, Some(raw), now).await?;
    let status = if r.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut body = json!({
        "message_id": r.message_id,
        "conversation_id": r.conversation_id,
        "duplicate": r.duplicate,
    });
    if let Some(url) = r.status_url {
        body["status_url"] = json!(url);
    }
    Ok(HttpResponse::build(status).json(body))
}

/// The generic ticket event (README, "HTTP API"). 201 when new, 200 when the id was
/// seen before; answered only after the commit.
async fn post_event(
    _: ApiCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let body = read_body(&req, payload).await?;
    let now = state.reads.now();
    let event = match ingest::parse_generic(&body, now) {
        Ok(e) => e,
        Err(e) => {
            super::tickets::count_unreadable(&state, "api", &e);
            return Err(e.into());
        }
    };
    record(&state, event, &body, now).await
}

/// GitHub `issues` and `issue_comment` deliveries. The delivery id is the
/// idempotency key; other events are acknowledged (202) and counted.
async fn github(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    // The signature covers the body: read it first.
    let body = read_body(&req, payload).await?;
    let signature = req
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    ingest::verify_github_signature(
        state.auth.github_secret.expose().as_bytes(),
        &body,
        signature,
    )
    .map_err(|e| {
        state
            .metrics
            .ingest_rejected
            .with_label_values(&["github", "signature"])
            .inc();
        WebError::BadSignature(e.to_string())
    })?;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| WebError::bad_request(format!("missing header {name}")))
    };
    let event_name = header("x-github-event")?;
    let delivery = header("x-github-delivery")?;
    let now = state.reads.now();
    let parse = |channel: &str, _: &crate::contract::Contract| {
        ingest::parse_github(&event_name, &delivery, &body, channel, now)
    };
    let channel = state.auth.github_channel.as_deref();
    super::tickets::deliver(&state, super::tickets::GITHUB, channel, &body, now, parse).await
}

/// The query string as `T`; an unknown or malformed parameter is a 400
/// naming it.
fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, WebError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| WebError::bad_request(format!("query string: {e}")))
}

/// Page size of the list endpoints: 100 by default, at most 1,000.
fn page_limit(limit: Option<i64>) -> Result<i64, FieldError> {
    let limit = limit.unwrap_or(100);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(FieldError {
            field: "limit".into(),
            problem: format!("must be between 1 and 1000 (got {limit})"),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    health: Option<String>,
    client: Option<String>,
    #[serde(rename = "type")]
    request_type: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    before: Option<i64>,
}

async fn list_conversations(
    _: ApiCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let q: ListQuery = query(&req)?;
    let mut problems = Vec::new();
    // A NUL can match no stored id, and PostgreSQL refuses it in a query:
    // say so rather than fail.
    for (field, value) in [("client", &q.client), ("type", &q.request_type)] {
        if value.as_ref().is_some_and(|v| v.contains('\0')) {
            problems.push(FieldError {
                field: field.into(),
                problem: "must not contain NUL".into(),
            });
        }
    }
    let health = named::<Health>("health", &q.health, &mut problems);
    let status = named::<TicketStatus>("status", &q.status, &mut problems);
    let limit = page_limit(q.limit).unwrap_or_else(|e| {
        problems.push(e);
        0
    });
    if !problems.is_empty() {
        return Err(WebError::Invalid(problems));
    }
    let filter = ConversationFilter {
        health,
        client: q.client,
        request_type: q.request_type,
        status,
        before_id: q.before,
        limit,
    };
    let reads = state.reads.clone();
    let list = blocking(move || reads.list_conversations(&filter)).await?;
    Ok(HttpResponse::Ok().json(json!({ "conversations": list })))
}

/// A query parameter as its type, or a problem naming the values there are.
fn named<T: std::str::FromStr<Err = crate::sla::ParseError>>(
    field: &str,
    value: &Option<String>,
    problems: &mut Vec<FieldError>,
) -> Option<T> {
    value
        .as_deref()?
        .parse()
        .map_err(|e: crate::sla::ParseError| {
            problems.push(FieldError {
                field: field.into(),
                problem: e.must_be(),
            })
        })
        .ok()
}

async fn get_conversation(
    _: ApiCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let id = path_id(&req, "conversation")?;
    let reads = state.reads.clone();
    let detail = blocking(move || reads.conversation_detail(id)).await?;
    Ok(HttpResponse::Ok().json(detail))
}

async fn solve(
    _: ApiCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let id = path_id(&req, "conversation")?;
    let (deadlines, reads) = (state.deadlines.clone(), state.reads.clone());
    let detail = blocking(move || {
        deadlines.solve(id, deadlines.now())?;
        reads.conversation_detail(id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(detail))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectedQuery {
    limit: Option<i64>,
}

/// Input that could not be processed (unparseable mail, messages the
/// database refused), newest first: metadata and a text preview. The raw
/// bytes are at `/api/v1/rejected/{id}/raw`.
async fn list_rejected(
    _: ApiCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let q: RejectedQuery = query(&req)?;
    let limit = page_limit(q.limit).map_err(|e| WebError::Invalid(vec![e]))?;
    let reads = state.reads.clone();
    let items = blocking(move || reads.rejected_inputs(limit)).await?;
    Ok(HttpResponse::Ok().json(json!({ "rejected": items })))
}

async fn rejected_raw(
    _: ApiCaller,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let id = path_id(&req, "rejected input")?;
    let reads = state.reads.clone();
    let raw = blocking(move || reads.rejected_raw(id)).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(raw))
}

/// Urgency inflation (README, "Urgency and focus"): every client's urgent share over the
/// trailing 30 days, and the clients above `urgent_share_limit` with the
/// requests (and their classification rules) that put them there.
async fn urgency(_: ApiCaller, state: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let reads = state.reads.clone();
    let report = blocking(move || reads.urgent_inflation(reads.now())).await?;
    Ok(HttpResponse::Ok().json(report))
}

#[cfg(test)]
mod tests {
    use super::super::dashboard::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
