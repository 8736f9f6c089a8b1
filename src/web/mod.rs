//! HTTP: health, readiness, metrics, the public contract page, and (in
//! [`api`]) the JSON API and webhooks. Handlers are thin: they read state and
//! hand work to the service, the store or the contract.

pub mod api;
pub mod openapi;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, Responder, get, web};
use serde_json::json;

use crate::app::ContractHandle;
use crate::config::Secret;
use crate::contract::ChannelKind;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::store::Store;

/// Credentials the HTTP edge checks.
pub struct Auth {
    pub api_tokens: Vec<Secret>,
    pub github_secret: Secret,
    /// Contract channel GitHub deliveries feed; `None`: the contract's first
    /// ticket channel.
    pub github_channel: Option<String>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Metrics,
    pub contract: ContractHandle,
    pub service: Service,
    pub auth: std::sync::Arc<Auth>,
}

impl AppState {
    pub fn github_channel(&self) -> String {
        if let Some(c) = &self.auth.github_channel {
            return c.clone();
        }
        let current = self.contract.current();
        current
            .contract
            .channels()
            .iter()
            .find(|c| c.kind == ChannelKind::Ticket)
            .map(|c| c.id.clone())
            .unwrap_or_else(|| "tickets".into())
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(api::BODY_LIMIT))
        .configure(api::routes)
        .service(healthz)
        .service(readyz)
        .service(metrics)
        .service(contract_page)
        .service(contract_markdown);
}

/// Counts every request by route *pattern* (not path: ids in paths would make
/// one time series per conversation) and status.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let tracked = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let res = next.call(req).await?;
    if let Some(m) = tracked {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let status = res.status().as_u16().to_string();
        m.http_requests
            .with_label_values(&[&route, &method, &status])
            .inc();
        m.http_duration
            .with_label_values(&[&route, &method])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// Liveness: the process serves HTTP.
#[get("/healthz")]
async fn healthz() -> impl Responder {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: the database answers.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    match web::block(move || store.ping()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({"status": "ready", "database": "ok"})),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            HttpResponse::ServiceUnavailable()
                .json(json!({"status": "not ready", "database": e.to_string()}))
        }
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({"status": "not ready", "database": e.to_string()})),
    }
}

#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // The open-conversation gauge is a count in the database: read it at
    // scrape time rather than keeping a second copy in memory.
    let service = state.service.clone();
    if let Err(e) = web::block(move || service.refresh_open_gauge()).await {
        tracing::warn!(error = %e, "cannot refresh keepword_conversations_open");
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
