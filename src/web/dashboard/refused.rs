//! Refused notifications on the Rejected page: what a receiver refused for
//! good (not retried), and `POST /rejected/notifications/{id}/send-again`,
//! which sends one again once its cause is fixed.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use minijinja::{Value, context};

use super::{AppState, Page, path_id};
use crate::service::local_words;
use crate::web::auth::SignedIn;
use crate::web::error::blocking;

/// The page's rows: newest refusal first, times in the contract's zone.
pub(super) async fn listed(state: &AppState) -> Result<Vec<Value>, Page> {
    let reads = state.reads.clone();
    let items = blocking(move || reads.refused_notifications(500)).await?;
    let now = state.reads.now();
    let tz = state.contract.current().contract.info().timezone;
    Ok(items
        .into_iter()
        .map(|r| {
            context! {
                id => r.id, what => r.what, kind => r.kind, target => r.target,
                contact => r.contact, conversation_id => r.conversation_id,
                error => r.error, attempts => r.attempts,
                when => local_words(r.refused_at, now, tz),
            }
        })
        .collect())
}

pub(super) async fn send_again(
    signed_in: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Page> {
    let id = path_id(&req)?;
    super::csrf_form(&signed_in, &req, payload).await?;
    let (deadlines, now) = (state.deadlines.clone(), state.reads.now());
    blocking(move || deadlines.send_again(id, now)).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/rejected"))
        .finish())
}
