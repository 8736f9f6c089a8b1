//! `GET /conversations/{id}` (the timeline), the whole text of one of its
//! messages, and the team's actions on it (solve, reopen, wait).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::context;
use serde::Deserialize;

use super::queue::MAX_PAGE;
use super::{AppState, Page, WebError, page, path_id, query};
use crate::sla::TicketStatus;
use crate::web::auth::SignedIn;
use crate::web::error::blocking;

#[derive(Deserialize, Default)]
struct FragmentQuery {
    #[serde(default)]
    fragment: Option<String>,
    #[serde(default)]
    page: Option<i64>,
}

pub(super) async fn conversation(
    signed_in: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let id = path_id(&req)?;
    let q: FragmentQuery = query(&req, "Bad address")?;
    let p = q.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&p) {
        return Err(Page(WebError::BadRequest {
            heading: "Bad address",
            message: format!("page must be between 1 and {MAX_PAGE} (got {p})"),
        }));
    }
    let (reads, now) = (state.reads.clone(), state.reads.now());
    let t = blocking(move || reads.timeline(id, p, now)).await?;
    let name = if q.fragment.is_some() {
        "conversation_body.html"
    } else {
        "conversation.html"
    };
    Ok(page(
        &state,
        StatusCode::OK,
        name,
        context! {
            t, signed_in => true, csrf => signed_in.0.csrf, nav => "queue",
            live => context! { url => format!("/conversations/{id}?fragment=1&page={p}"), stream => "/dashboard/stream", ids => id.to_string() },
        },
    ))
}

/// The whole text of one message, which the timeline shows only the start
/// of when it is long: text from mail, never rendered as a page.
pub(super) async fn message_text(
    _: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let id = path_id(&req)?;
    let message = req
        .match_info()
        .get("message")
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| Page(WebError::not_found("")))?;
    let reads = state.reads.clone();
    let body = blocking(move || reads.message_body(id, message)).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            state.dashboard.csp.as_str(),
        ))
        .body(body))
}

pub(super) async fn act(
    signed_in: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Page> {
    let id = path_id(&req)?;
    let status = match req.match_info().get("action") {
        Some("solve") => TicketStatus::Solved,
        Some("reopen") => TicketStatus::Open,
        Some("wait") => TicketStatus::Pending,
        _ => return Err(Page(WebError::not_found(""))),
    };
    super::csrf_form(&signed_in, &req, payload).await?;
    let (deadlines, now) = (state.deadlines.clone(), state.reads.now());
    blocking(move || deadlines.set_status(id, status, "dashboard", now)).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, format!("/conversations/{id}")))
        .finish())
}
