//! `GET /rejected`: input that could not be processed, newest first, and
//! each one's raw bytes as a download; below it the notifications refused
//! for good ([`super::refused`]).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::{Value, context};

use super::{AppState, Page, page, path_id};
use crate::service::local_words;
use crate::web::auth::SignedIn;
use crate::web::error::blocking;

pub(super) async fn rejected(
    signed_in: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Page> {
    let reads = state.reads.clone();
    let items = blocking(move || reads.rejected_inputs(500)).await?;
    let now = state.reads.now();
    // Times in the contract's zone (README, "The team dashboard").
    let tz = state.contract.current().contract.info().timezone;
    let view: Vec<Value> = items
        .into_iter()
        .map(|r| {
            context! {
                id => r.id, channel => r.channel, reason => r.reason, detail => r.detail,
                size => r.size, preview => r.preview, when => local_words(r.received_at, now, tz),
            }
        })
        .collect();
    let notifications = super::refused::listed(&state).await?;
    Ok(page(
        &state,
        StatusCode::OK,
        "rejected.html",
        context! { items => view, notifications, signed_in => true, csrf => signed_in.0.csrf, nav => "rejected" },
    ))
}

pub(super) async fn raw(
    _: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let id = path_id(&req)?;
    let reads = state.reads.clone();
    let raw = blocking(move || reads.rejected_raw(id)).await?;
    // Bytes from outside: a download, never rendered by the browser.
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"rejected-{id}.eml\""),
        ))
        .body(raw))
}
