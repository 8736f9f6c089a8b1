//! HTTP: health, readiness, metrics, the public contract page, and (in
//! [`api`]) the JSON API and webhooks. Handlers are thin: they take the
//! credential they need as an argument ([`auth`]), hand work to the service
//! or the contract, and answer; what goes wrong is the one [`error`] type.

pub mod api;
pub mod auth;
pub mod changes;
pub mod client;
pub mod dashboard;
pub mod error;
pub mod openapi;
mod record_chart;
pub mod status;
mod tickets;

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::http::header::{
    CONTENT_LENGTH, CacheControl, CacheDirective, ContentType, TRANSFER_ENCODING,
};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, Responder, ResponseError, get, web};
use futures::Stream;
use serde_json::json;

use crate::config::Secret;
use crate::contract::ChannelKind;
use crate::metrics::Metrics;
use crate::service::sessions::Sessions;
use crate::service::{Changes, ContractHandle, Deadlines, Intake, Reads};

/// Credentials the HTTP edge checks.
pub struct Auth {
    pub api_tokens: Vec<Secret>,
    pub github_secret: Secret,
    /// Contract channel GitHub deliveries feed; `None`: the contract's first
    /// ticket channel.
    pub github_channel: Option<String>,
    /// `[jira]`, `[linear]`, `[basecamp]`; `None`: that webhook is off (404).
    pub jira: Option<crate::config::TicketWebhookSettings>,
    pub linear: Option<crate::config::TicketWebhookSettings>,
    pub basecamp: Option<crate::config::BasecampSettings>,
    /// `[slack]`; `None`: `/webhooks/slack` refuses every request (401).
    pub slack: Option<crate::config::SlackSettings>,
    /// The bearer token `/metrics` asks for; empty: none.
    pub metrics_token: Secret,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Metrics,
    pub contract: ContractHandle,
    /// Arrivals from every channel.
    pub intake: Intake,
    /// The team's status changes (solve, reopen, wait).
    pub deadlines: Deadlines,
    /// Every page's and the API's reading.
    pub reads: Reads,
    /// Committed changes, for the live stream.
    pub changes: Changes,
    /// The dashboard's sessions.
    pub sessions: Sessions,
    pub auth: std::sync::Arc<Auth>,
    pub dashboard: std::sync::Arc<dashboard::Dashboard>,
    /// The process's stop signal ([`crate::app::Application::shutdown`]):
    /// long-lived responses (the live stream) end when it is cancelled
    /// instead of holding the shutdown up.
    pub stopping: tokio_util::sync::CancellationToken,
}

impl AppState {
    pub fn github_channel(&self) -> String {
        self.ticket_channel(self.auth.github_channel.as_deref())
    }

    /// The channel Slack feeds: the configured one, else the contract's
    /// first `slack` channel.
    pub fn slack_channel(&self, configured: Option<&str>) -> String {
        self.channel_of(configured, ChannelKind::Slack, "slack")
    }

    /// The channel a ticket webhook feeds: the configured one, else the
    /// contract's first ticket channel.
    pub fn ticket_channel(&self, configured: Option<&str>) -> String {
        self.channel_of(configured, ChannelKind::Ticket, "tickets")
    }

    fn channel_of(&self, configured: Option<&str>, kind: ChannelKind, fallback: &str) -> String {
        if let Some(c) = configured {
            return c.to_owned();
        }
        let current = self.contract.current();
        current
            .contract
            .channels()
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| c.id.clone())
            .unwrap_or_else(|| fallback.into())
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(api::BODY_LIMIT))
        .configure(dashboard::routes)
        .configure(api::routes)
        .service(healthz)
        .service(readyz)
        .service(metrics)
        .service(contract_page)
        .service(contract_markdown)
        .configure(status::routes)
        .configure(client::routes)
        .configure(changes::routes);
}

/// The longest a request body may take to arrive, whole. A client that
/// announces a body and stalls would otherwise hold its connection (and a
/// worker's attention) for as long as it likes.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `/readyz` waits for the database: a probe wants an answer, not
/// the pool's ten-second connection timeout.
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_millis(800);

/// The `method` label: outside input, so only the methods HTTP defines, or
/// `other` (one series per invented method name would let anyone without a
/// token grow the scrape without bound).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The `event` label of ignored GitHub deliveries: the events GitHub sends
/// to a repository webhook, or `other`.
pub fn github_event_label(event: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "ping",
        "issues",
        "issue_comment",
        "push",
        "pull_request",
        "pull_request_review",
        "pull_request_review_comment",
        "pull_request_review_thread",
        "create",
        "delete",
        "fork",
        "star",
        "watch",
        "release",
        "label",
        "milestone",
        "member",
        "public",
        "repository",
        "status",
        "check_run",
        "check_suite",
        "workflow_run",
        "workflow_job",
        "deployment",
        "deployment_status",
        "discussion",
        "discussion_comment",
        "gollum",
        "commit_comment",
        "meta",
    ];
    KNOWN
        .iter()
        .find(|k| **k == event)
        .copied()
        .unwrap_or("other")
}

/// Headers every response carries: no MIME sniffing, never framed, no
/// referrer leaving the site. A page that sets its own policy (the
/// dashboard's strict CSP) keeps it.
pub async fn headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::http::header::{self, HeaderValue};
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    if !h.contains_key(header::REFERRER_POLICY) {
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    Ok(res)
}

/// `HEAD` is `GET` without the body: routed as `GET` (the connection
/// already knows not to send a body, and still sends a sized one's
/// `Content-Length`); a streamed answer, the live stream, is ended at once
/// rather than kept open for nobody.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    use actix_web::body::BodySize;
    use actix_web::http::Method;
    let head = req.method() == Method::HEAD;
    if head {
        req.head_mut().method = Method::GET;
    }
    let res = next.call(req).await?;
    if head && matches!(res.response().body().size(), BodySize::Stream) {
        return Ok(res.map_body(|_, _| BoxBody::new(())));
    }
    Ok(res.map_into_boxed_body())
}

/// Counts every request by route *pattern* (not path: ids in paths would make
/// one time series per conversation), method and status; see [`guard`] for
/// what happens before the handler.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let tracked = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let res = guard(req, next).await?;
    if let Some(m) = tracked {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let status = res.status().as_u16().to_string();
        m.http_requests
            .with_label_values(&[&route, method, &status])
            .inc();
        m.http_duration
            .with_label_values(&[&route, method])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// Before the handler reads a body: an API request that carries one must
/// show its token first, a GitHub delivery a well-formed signature header
/// (401 without reading a byte), and every body must arrive within
/// [`BODY_READ_TIMEOUT`] (408, connection closed).
async fn guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if has_body(&req)
        && let Some(state) = req.app_data::<web::Data<AppState>>()
    {
        let refused = if req.path().starts_with("/api/") {
            auth::ApiCaller::from_headers(state, req.headers()).err()
        } else if req.path() == "/webhooks/github" && req.method() == actix_web::http::Method::POST
        {
            // The signature needs the body; its header's shape does not.
            let header = req
                .headers()
                .get("x-hub-signature-256")
                .and_then(|v| v.to_str().ok());
            crate::ingest::signature_digest(header).err().map(|e| {
                state
                    .metrics
                    .ingest_rejected
                    .with_label_values(&["github", "signature"])
                    .inc();
                error::WebError::BadSignature(e.to_string())
            })
        } else {
            tickets::before_body(state, &req)
        };
        if let Some(e) = refused {
            let mut res = e.error_response();
            // The body is left unread: the connection cannot be reused.
            res.head_mut().set_connection_type(ConnectionType::Close);
            return Ok(req.into_response(res));
        }
    }
    let timed_out = Rc::new(Cell::new(false));
    let inner = req.take_payload();
    req.set_payload(Payload::Stream {
        payload: Box::pin(TimedPayload {
            inner,
            deadline: Box::pin(tokio::time::sleep(BODY_READ_TIMEOUT)),
            timed_out: timed_out.clone(),
        }),
    });
    let res = next.call(req).await?;
    if timed_out.get() {
        let mut timeout = HttpResponse::RequestTimeout().json(json!({
            "error": format!(
                "the request body did not arrive within {} seconds",
                BODY_READ_TIMEOUT.as_secs()
            )
        }));
        timeout
            .head_mut()
            .set_connection_type(ConnectionType::Close);
        return Ok(res.into_response(timeout));
    }
    Ok(res.map_into_boxed_body())
}

fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// The request body, failing once the deadline has passed.
struct TimedPayload {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: Rc<Cell<bool>>,
}

impl Stream for TimedPayload {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.timed_out.set(true);
                Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "request body timed out",
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Liveness: the process serves HTTP.
#[get("/healthz")]
async fn healthz() -> impl Responder {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the database answers, within [`READY_CHECK_TIMEOUT`]. The
/// reason for a failure is logged; the answer names none (a driver's
/// message carries host, port and database name, and `/readyz` is public).
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let reads = state.reads.clone();
    let check = web::block(move || reads.ready(READY_CHECK_TIMEOUT));
    // The outer bound covers a query that hangs on a connection it got.
    let failure =
        match tokio::time::timeout(READY_CHECK_TIMEOUT + Duration::from_millis(100), check).await {
            Ok(Ok(Ok(()))) => {
                return HttpResponse::Ok().json(json!({"status": "ready", "database": "ok"}));
            }
            Ok(Ok(Err(e))) => e.to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!(
                "no answer within {} ms",
                (READY_CHECK_TIMEOUT + Duration::from_millis(100)).as_millis()
            ),
        };
    tracing::warn!(error = %failure, "readiness check failed");
    HttpResponse::ServiceUnavailable()
        .json(json!({"status": "not ready", "database": "unavailable"}))
}

#[get("/metrics")]
async fn metrics(_: auth::Scraper, state: web::Data<AppState>) -> HttpResponse {
    // The open-conversation gauge is a count in the database: read it at
    // scrape time rather than keeping a second copy in memory.
    let reads = state.reads.clone();
    if let Err(e) = web::block(move || reads.refresh_open_gauge()).await {
        tracing::warn!(error = %e, "cannot refresh keepword_conversations_open");
    }
    let reads = state.reads.clone();
    if let Err(e) = web::block(move || reads.refresh_urgent_share_gauge(reads.now())).await {
        tracing::warn!(error = %e, "cannot refresh keepword_urgent_share");
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// The contract as clients read it, rendered once per contract version.
#[get("/contract")]
async fn contract_page(state: web::Data<AppState>) -> HttpResponse {
    let current = state.contract.current();
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header(("X-Contract-Version", current.version.clone()))
        .body(current.html.clone())
}

#[get("/contract.md")]
async fn contract_markdown(state: web::Data<AppState>) -> HttpResponse {
    let current = state.contract.current();
    HttpResponse::Ok()
        .content_type("text/markdown; charset=utf-8")
        .insert_header(("X-Contract-Version", current.version.clone()))
        .body(current.markdown.clone())
}
