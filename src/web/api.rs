//! `/api/v1/*` and `/webhooks/*`. Handlers parse, call one use case in
//! `spawn_blocking`, and map the outcome; every error goes through
//! [`ApiError`], which names what the caller got wrong and never leaks
//! internals.

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, HttpResponse, ResponseError, get, post, web};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::ingest::{self, EventError, FieldError, GithubOutcome, IncomingEvent};
use crate::service::ServiceError;
use crate::store::ConversationFilter;

/// Request bodies above this are refused with 413 before they are read whole.
pub const BODY_LIMIT: usize = 1 << 20;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(post_event)
        .service(github)
        .service(list_conversations)
        .service(get_conversation)
        .service(solve)
        .service(list_rejected)
        .service(rejected_raw);
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(String),
    #[error("temporarily unavailable, retry")]
    Unavailable,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    fn error_response(&self) -> HttpResponse {
        let body = match self {
            ApiError::Invalid(fields) => json!({"error": "invalid input", "fields": fields}),
            other => json!({"error": other.to_string()}),
        };
        let mut r = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            r.insert_header(("WWW-Authenticate", "Bearer"));
        }
        r.json(body)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(fields) => ApiError::Invalid(fields),
            ServiceError::NotFound(what) => ApiError::NotFound(what),
            other => {
                // The caller cannot fix these; say so without internals.
                tracing::error!(error = %other, "request failed");
                ApiError::Unavailable
            }
        }
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::Malformed(m) => ApiError::BadRequest(m),
            EventError::Invalid(fields) => ApiError::Invalid(fields),
        }
    }
}

/// Runs a blocking use case off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    match web::block(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = %e, "blocking task failed");
            Err(ApiError::Unavailable)
        }
    }
}

/// Constant-time comparison against each configured token.
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let ok = state.auth.api_tokens.iter().fold(false, |acc, t| {
        acc | constant_time_eq(t.expose().as_bytes(), presented.as_bytes())
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Stores an event with its raw body and answers 201 when new, 200 when
/// its idempotency key was seen before — only after the commit.
async fn record(
    state: &AppState,
    event: IncomingEvent,
    body: &[u8],
    now: chrono::DateTime<Utc>,
) -> Result<HttpResponse, ApiError> {
    let service = state.service.clone();
    let raw = body.to_vec();
    let r = blocking(move || service.record_event(event, Some(raw), now)).await?;
    let status = if r.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(HttpResponse::build(status).json(json!({
        "message_id": r.message_id,
        "conversation_id": r.conversation_id,
        "duplicate": r.duplicate,
    })))
}

/// The generic ticket event (SPEC 5). 201 when new, 200 when the id was
/// seen before; answered only after the commit.
#[post("/api/v1/events")]
async fn post_event(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, req.headers())?;
    let now = state.service.now();
    let event = match ingest::parse_generic(&body, now) {
        Ok(e) => e,
        Err(e) => {
            let reason = match &e {
                EventError::Malformed(_) => "malformed",
                EventError::Invalid(_) => "invalid",
            };
            state
                .metrics
                .ingest_rejected
                .with_label_values(&["api", reason])
                .inc();
            return Err(e.into());
        }
    };
    record(&state, event, &body, now).await
}

/// GitHub `issues` and `issue_comment` deliveries. The delivery id is the
/// idempotency key; other events are acknowledged (202) and counted.
#[post("/webhooks/github")]
async fn github(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
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
        ApiError::BadSignature(e.to_string())
    })?;
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| ApiError::BadRequest(format!("missing header {name}")))
    };
    let event_name = header("x-github-event")?;
    let delivery = header("x-github-delivery")?;
    let now = state.service.now();
    let channel = state.github_channel();
    let outcome =
        ingest::parse_github(&event_name, &delivery, &body, &channel, now).map_err(|e| {
            state
                .metrics
                .ingest_rejected
                .with_label_values(&["github", "invalid"])
                .inc();
            ApiError::from(e)
        })?;
    match outcome {
        GithubOutcome::Ignored {
            event,
            action,
            reason,
        } => {
            state
                .metrics
                .webhook_ignored
                .with_label_values(&["github", super::github_event_label(&event)])
                .inc();
            Ok(HttpResponse::Accepted().json(json!({
                "ignored": true, "event": event, "action": action, "reason": reason,
            })))
        }
        GithubOutcome::Event(event) => record(&state, event, &body, now).await,
    }
}

/// The query string as `T`; an unknown or malformed parameter is a 400
/// naming it.
fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::BadRequest(format!("query string: {e}")))
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

#[get("/api/v1/conversations")]
async fn list_conversations(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, req.headers())?;
    let q: ListQuery = query(&req)?;
    let mut problems = Vec::new();
    let mut check = |field: &str, value: &Option<String>, allowed: &[&str]| {
        if let Some(v) = value
            && !allowed.contains(&v.as_str())
        {
            problems.push(FieldError {
                field: field.into(),
                problem: format!("must be one of {} (got `{v}`)", allowed.join(", ")),
            });
        }
    };
    check("health", &q.health, &["on_track", "at_risk", "breached"]);
    check("status", &q.status, &["open", "pending", "solved"]);
    let limit = page_limit(q.limit).unwrap_or_else(|e| {
        problems.push(e);
        0
    });
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let filter = ConversationFilter {
        health: q.health,
        client: q.client,
        request_type: q.request_type,
        status: q.status,
        before_id: q.before,
        limit,
    };
    let service = state.service.clone();
    let list = blocking(move || service.list_conversations(&filter)).await?;
    Ok(HttpResponse::Ok().json(json!({ "conversations": list })))
}

#[get("/api/v1/conversations/{id}")]
async fn get_conversation(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, req.headers())?;
    let service = state.service.clone();
    let id = id.into_inner();
    let detail = blocking(move || service.conversation_detail(id)).await?;
    Ok(HttpResponse::Ok().json(detail))
}

#[post("/api/v1/conversations/{id}/solve")]
async fn solve(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, req.headers())?;
    let service = state.service.clone();
    let id = id.into_inner();
    let detail = blocking(move || {
        service.solve(id, service.now())?;
        service.conversation_detail(id)
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
#[get("/api/v1/rejected")]
async fn list_rejected(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, req.headers())?;
    let q: RejectedQuery = query(&req)?;
    let limit = page_limit(q.limit).map_err(|e| ApiError::Invalid(vec![e]))?;
    let store = state.store.clone();
    let rows =
        blocking(move || Ok(store.with(|c| crate::store::rejected_inputs(c, limit))?)).await?;
    let items: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            let preview: String =
                String::from_utf8_lossy(&r.raw[..r.raw.len().min(2048)]).into_owned();
            json!({
                "id": r.id,
                "channel": r.channel,
                "reason": r.reason,
                "detail": r.detail,
                "received_at": crate::store::from_db(r.received_at),
                "size": r.raw.len(),
                "preview": preview,
                "raw_url": format!("/api/v1/rejected/{}/raw", r.id),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "rejected": items })))
}

#[get("/api/v1/rejected/{id}/raw")]
async fn rejected_raw(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    authorize(&state, req.headers())?;
    let store = state.store.clone();
    let id = id.into_inner();
    let row = blocking(move || Ok(store.with(|c| crate::store::rejected_input(c, id))?))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("rejected input {id}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(row.raw))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
