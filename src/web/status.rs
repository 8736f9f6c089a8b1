//! `GET /status/{token}`: the client's own status page (README, "HTTP API"), and its
//! stylesheet. No login: the token is the key. Every answer — the page and
//! the 404 alike — tells robots to stay away and browsers to send no
//! referrer (the token is in the URL, and a link on the page must not
//! carry it to another site), and is not cached.

use std::sync::LazyLock;

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use minijinja::{AutoEscape, Environment, context};

use super::AppState;
use super::error::{Public, WebError, blocking};

const PAGE: &str = "status/page.html";
const NOT_FOUND: &str = "status/not_found.html";
const CSS: &str = include_str!("static/status.css");

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template(PAGE, include_str!("templates/status/page.html"))
        .expect("the status page template compiles");
    env.add_template(NOT_FOUND, include_str!("templates/status/not_found.html"))
        .expect("the not-found template compiles");
    env
});

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Addresses under /status/ that name no page still get the status
    // page's 404: a token in them must not reach robots or referrers either.
    cfg.route("/status/{token}", web::get().to(status_page))
        .route("/status", web::get().to(not_found))
        .route("/status/{rest:.*}", web::get().to(not_found))
        .route("/static/status.css", web::get().to(stylesheet));
}

pub(super) fn private(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header(("X-Robots-Tag", "noindex, nofollow"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(CacheControl(vec![
            CacheDirective::NoStore,
            CacheDirective::Private,
        ]));
    builder
}

async fn not_found() -> HttpResponse {
    not_found_page()
}

pub(super) fn not_found_page() -> HttpResponse {
    let body = TEMPLATES
        .get_template(NOT_FOUND)
        .and_then(|t| t.render(context! {}))
        .unwrap_or_else(|_| "Page not found".into());
    private(HttpResponse::NotFound())
        .content_type(ContentType::html())
        .body(body)
}

async fn status_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Public> {
    let token = req
        .match_info()
        .get("token")
        .unwrap_or_default()
        .to_string();
    let reads = state.reads.clone();
    let page = blocking(move || reads.status_page(&token))
        .await?
        .ok_or_else(|| WebError::not_found("status page"))?;
    Ok(render_status(&page))
}

/// A status page's answer (also the client page's view of one request).
pub(super) fn render_status(page: &crate::service::StatusPage) -> HttpResponse {
    match TEMPLATES
        .get_template(PAGE)
        .and_then(|t| t.render(context! { page }))
    {
        Ok(body) => private(HttpResponse::Ok())
            .content_type(ContentType::html())
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "status page template failed");
            private(HttpResponse::InternalServerError()).finish()
        }
    }
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(3600),
        ]))
        .body(CSS)
}
