//! The Connections page (`GET /connections`): every mailbox and SMTP,
//! connected or not, IDLE or polling, the last read, the last error in
//! words with its fix, and how long the OAuth token is good for.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::{Value, context};

use super::{page, require};
use crate::service::local_words;
use crate::web::AppState;

pub(super) async fn connections(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let s = match require(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = state.service.now();
    let tz = state.contract.current().contract.info().timezone;
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| local_words(t, now, tz));
    let grant = |g: &Option<crate::oauth::GrantStatus>| {
        g.as_ref().map(|g| {
            context! {
                valid_until => when(g.valid_until),
                needs_sign_in => g.needs_sign_in,
                last_error => g.last_error.clone(),
            }
        })
    };
    let (mailboxes, smtp) = match &state.dashboard.connections {
        Some(c) => {
            let (m, s) = c.snapshot();
            (m, Some(s))
        }
        None => (Vec::new(), None),
    };
    let mailboxes: Vec<Value> = mailboxes
        .iter()
        .map(|m| {
            context! {
                name => m.name.clone(), server => m.server.clone(), username => m.username.clone(),
                login => m.login.clone(), connected => m.connected, idle => m.idle,
                last_read => when(m.last_read), last_error => m.last_error.clone(),
                last_error_at => when(m.last_error_at), fix => m.fix.clone(),
                grant => grant(&m.grant),
            }
        })
        .collect();
    let smtp = smtp.map(|s| {
        context! {
            server => s.server.clone(), username => s.username.clone(), login => s.login.clone(),
            grant => grant(&s.grant),
        }
    });
    page(
        &state,
        StatusCode::OK,
        "connections.html",
        context! { mailboxes, smtp, signed_in => true, csrf => s.csrf, nav => "connections" },
    )
}
