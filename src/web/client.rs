//! `GET /clients/{token}`: the client's own record (README, "The client's
//! record"), and `GET /clients/{token}/requests/{id}`, the status page of
//! one of its requests. No login: the token is the key. Every answer — the
//! pages and the 404 alike — keeps robots and referrers out and is not
//! cached, as the status page's are; the same stylesheet, no script.

use std::sync::LazyLock;

use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::{AutoEscape, Environment, Value, context};

use super::AppState;
use super::error::{Public, WebError, blocking};
use super::record_chart;
use super::status::{not_found_page, private, render_status};
use crate::service::{ClientPage, DEFAULT_RECORD_DAYS, RECORD_DAYS};

const PAGE: &str = "client/page.html";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template(PAGE, include_str!("templates/client/page.html"))
        .expect("the client page template compiles");
    env
});

pub fn routes(cfg: &mut web::ServiceConfig) {
    // Addresses under /clients/ that name no page get the same 404: a
    // token in them must not reach robots or referrers either.
    cfg.route("/clients/{token}", web::get().to(client_page))
        .route(
            "/clients/{token}/requests/{id}",
            web::get().to(request_page),
        )
        .route("/clients", web::get().to(not_found))
        .route("/clients/{rest:.*}", web::get().to(not_found));
}

async fn not_found() -> HttpResponse {
    not_found_page()
}

/// `?days=30|90|365`; anything else is the default (a shared link with a
/// typo still opens the page).
pub(crate) fn days(req: &HttpRequest) -> i64 {
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("days").and_then(|d| d.parse::<i64>().ok()))
        .filter(|d| RECORD_DAYS.contains(d))
        .unwrap_or(DEFAULT_RECORD_DAYS)
}

/// `?broken=N`: which page of the broken promises (from 1); anything else
/// is the first.
pub(crate) fn broken_page(req: &HttpRequest) -> usize {
    web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("broken").and_then(|d| d.parse::<usize>().ok()))
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

async fn client_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, Public> {
    let token = req
        .match_info()
        .get("token")
        .unwrap_or_default()
        .to_string();
    let days = days(&req);
    let broken = broken_page(&req);
    let reads = state.reads.clone();
    let page = blocking(move || reads.client_page(&token, days, broken))
        .await?
        .ok_or_else(|| WebError::not_found("client page"))?;
    // Links on the page stay under the client's own address.
    let base = req.path().trim_end_matches('/').to_string();
    Ok(respond(&page, &base, false))
}

/// The page as its client sees it, for the signed-in team (the dashboard's
/// client filter links here); links to requests go to the team's timeline.
pub fn team_view(page: &ClientPage) -> HttpResponse {
    respond(page, "", true)
}

fn respond(page: &ClientPage, base: &str, team: bool) -> HttpResponse {
    match render(page, base, team) {
        Ok(body) => private(HttpResponse::Ok())
            .content_type(actix_web::http::header::ContentType::html())
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "client page template failed");
            private(HttpResponse::InternalServerError()).finish()
        }
    }
}

/// The page's HTML. `base` is the page's own path (request links are
/// `{base}/requests/{id}`); `team`: the signed-in team's view, whose request
/// links open the dashboard's timeline.
pub fn render(page: &ClientPage, base: &str, team: bool) -> Result<String, minijinja::Error> {
    let charts: Vec<Value> = page
        .record
        .types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            context! {
                svg => Value::from_safe_string(record_chart::svg(t, &format!("chart-{i}"))),
                summary => record_chart::summary(t),
            }
        })
        .collect();
    let link = |id: i64| {
        if team {
            format!("/conversations/{id}")
        } else {
            format!("{base}/requests/{id}")
        }
    };
    let open: Vec<Value> = page
        .open
        .iter()
        .map(|o| context! { o => o, link => link(o.id) })
        .collect();
    let broken: Vec<Value> = page
        .record
        .broken_promises
        .iter()
        .map(|b| context! { b => b, link => link(b.conversation_id) })
        .collect();
    let periods: Vec<Value> = RECORD_DAYS
        .iter()
        .map(|d| {
            context! {
                days => d,
                current => *d == page.record.days,
                href => if team { format!("?days={d}") } else { format!("{base}?days={d}") },
            }
        })
        .collect();
    // The other pages of the broken promises: newer (lower numbers) and
    // older, each keeping the period.
    let broken_href = |n: usize| {
        let q = format!("?days={}&broken={n}", page.record.days);
        if team { q } else { format!("{base}{q}") }
    };
    let (n, pages) = (page.record.broken_page, page.record.broken_pages);
    let newer = (n > 1).then(|| broken_href(n.min(pages + 1) - 1));
    let older = (n < pages).then(|| broken_href(n + 1));
    // `?broken=` is the visitor's: no arithmetic on it may overflow.
    let first_shown = (n - 1)
        .saturating_mul(crate::service::BROKEN_LISTED)
        .saturating_add(1);
    let last_shown = first_shown.saturating_add(page.record.broken_promises.len().max(1) - 1);
    TEMPLATES.get_template(PAGE)?.render(context! {
        page, charts, open, broken, periods, team, newer, older, first_shown, last_shown,
    })
}

async fn request_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Public> {
    let token = req
        .match_info()
        .get("token")
        .unwrap_or_default()
        .to_string();
    let id = req
        .match_info()
        .get("id")
        .and_then(|i| i.parse::<i64>().ok())
        .ok_or_else(|| WebError::not_found("request"))?;
    let reads = state.reads.clone();
    let page = blocking(move || reads.client_request_page(&token, id))
        .await?
        .ok_or_else(|| WebError::not_found("request"))?;
    Ok(render_status(&page))
}
