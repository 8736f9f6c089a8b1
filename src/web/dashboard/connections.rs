//! The Connections page (`GET /connections`): every mailbox and SMTP, Slack
//! (its workspaces and the replies in threads that wait, with why),
//! connected or not, IDLE or polling, the last read, the last error in
//! words with its fix, and how long the OAuth token is good for; and the
//! delegated sign-in (authorization code with PKCE): `POST
//! /connections/sign-in` sends the browser to the provider, `GET
//! /oauth/callback` finishes in the same dashboard session.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{Page, WebError, form_expired, page};
use crate::service::connections::SignInError;
use crate::service::local_words;
use crate::web::AppState;
use crate::web::auth::SignedIn;
use crate::web::error::blocking;

fn refused(heading: &'static str, message: String) -> Page {
    Page(WebError::BadRequest { heading, message })
}

pub(super) async fn connections(
    signed_in: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Page> {
    let now = state.reads.now();
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
                grant => grant(&m.grant), delegated => m.delegated,
            }
        })
        .collect();
    let smtp = smtp.map(|s| {
        context! {
            server => s.server.clone(), username => s.username.clone(), login => s.login.clone(),
            grant => grant(&s.grant), delegated => s.delegated,
        }
    });
    let slack = match &state.auth.slack {
        Some(cfg) => {
            let reads = state.reads.clone();
            let failures = blocking(move || reads.slack_failures(20)).await?;
            let failures: Vec<Value> = failures
                .iter()
                .map(|f| {
                    context! {
                        conversation_id => f.conversation_id, target => f.target.clone(),
                        attempts => f.attempts, error => f.error.clone(),
                        permanent => f.permanent, next_attempt => when(Some(f.next_attempt)),
                    }
                })
                .collect();
            let api = reqwest::Url::parse(&cfg.api_url)
                .map(|u| format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default()))
                .unwrap_or_default();
            Some(context! {
                team_ids => cfg.team_ids.clone(),
                channel => state.slack_channel(cfg.channel.as_deref()),
                api, failures,
            })
        }
        None => None,
    };
    Ok(page(
        &state,
        StatusCode::OK,
        "connections.html",
        context! { mailboxes, smtp, slack, signed_in => true, csrf => signed_in.0.csrf, nav => "connections" },
    ))
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    csrf: String,
    /// A mailbox's name, or `smtp`.
    target: String,
}

pub(super) async fn sign_in(
    signed_in: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Page> {
    let form: SignInForm = super::read_form(&req, payload).await?;
    if !signed_in.csrf_ok(&form.csrf) {
        return Err(form_expired());
    }
    let c = state
        .dashboard
        .connections
        .as_ref()
        .ok_or_else(|| Page(WebError::not_found("")))?;
    let url = c
        .start_sign_in(&signed_in.0.id_hash, &form.target)
        .map_err(|e| refused("Cannot sign in", e))?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, url))
        .finish())
}

#[derive(Deserialize)]
pub(super) struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

pub(super) async fn callback(
    signed_in: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let q: Callback = super::query(&req, "Sign-in failed")?;
    let c = state
        .dashboard
        .connections
        .as_ref()
        .ok_or_else(|| Page(WebError::not_found("")))?;
    let refused = |why: String| Err(refused("Sign-in failed", why));
    if let Some(error) = &q.error {
        return refused(format!(
            "The provider answered {error}{}. Try again from the Connections page.",
            q.error_description
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ));
    }
    let Some(code) = &q.code else {
        return refused("The provider sent no code.".into());
    };
    match c.finish_sign_in(&signed_in.0.id_hash, &q.state, code).await {
        Ok(_) => Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/connections"))
            .finish()),
        Err(SignInError::State) => refused(
            "This sign-in was not started from this dashboard session, was already used or \
             took longer than 15 minutes. Start it again from the Connections page."
                .into(),
        ),
        Err(SignInError::Refused(why)) => refused(why),
    }
}
