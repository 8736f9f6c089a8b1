//! Refused notifications on the Rejected page: what a receiver refused for
//! good (not retried), and `POST /rejected/notifications/{id}/send-again`,
//! which sends one again once its cause is fixed.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use minijinja::{Value, context};

use super::{
    CsrfForm, blocking, csrf_ok, not_found, path_id, read_form, refused_csrf, require,
    service_error,
};
use crate::service::{ServiceError, local_words};
use crate::web::AppState;

/// The page's rows: newest refusal first, times in the contract's zone.
pub(super) async fn listed(state: &AppState) -> Result<Vec<Value>, ServiceError> {
    let service = state.service.clone();
    let items = blocking(move || service.refused_notifications(500)).await?;
    let now = state.service.now();
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
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let s = match require(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(id) = path_id(&req) else {
        return not_found(&state);
    };
    let form: CsrfForm = match read_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &form.csrf) {
        return refused_csrf(&state);
    }
    let (service, now) = (state.service.clone(), state.service.now());
    match blocking(move || service.send_again(id, now)).await {
        Ok(()) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/rejected"))
            .finish(),
        Err(e) => service_error(&state, e),
    }
}
