//! `GET /urgency`: every client's urgent share over the trailing window,
//! and the requests that put a client above the limit.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use minijinja::{Value, context};

use super::{AppState, Page, page};
use crate::service::local_words;
use crate::web::auth::SignedIn;
use crate::web::error::blocking;

pub(super) async fn urgency(
    signed_in: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Page> {
    let (reads, now) = (state.reads.clone(), state.reads.now());
    let r = blocking(move || reads.urgent_inflation(now)).await?;
    // Times in the contract's zone (README, "The team dashboard").
    let tz = state.contract.current().contract.info().timezone;
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let above: Vec<Value> = r
        .above_limit
        .iter()
        .map(|c| {
            let requests: Vec<Value> = c
                .requests
                .iter()
                .map(|q| {
                    context! {
                        conversation_id => q.conversation_id, subject => q.subject.clone(),
                        channel => q.channel.clone(), classification => q.classification.clone(),
                        when => local_words(q.opened_at, now, tz),
                    }
                })
                .collect();
            context! {
                client_name => c.share.client_name.clone(), urgent => c.share.urgent,
                conversations => c.share.conversations, pct => pct(c.share.share), requests,
            }
        })
        .collect();
    let shares: Vec<Value> = r
        .shares
        .iter()
        .map(|x| context! { client_name => x.client_name.clone(), conversations => x.conversations, urgent => x.urgent, pct => pct(x.share) })
        .collect();
    Ok(page(
        &state,
        StatusCode::OK,
        "urgency.html",
        context! {
            r => context! { window_days => r.window_days, limit => r.limit.clone(), above_limit => above, shares },
            signed_in => true, csrf => signed_in.0.csrf, nav => "urgency",
        },
    ))
}
