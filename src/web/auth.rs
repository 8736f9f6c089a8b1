//! Who may reach a handler, as a type in its signature: a handler that
//! takes [`ApiCaller`], [`SignedIn`], [`Wallboard`] or [`Scraper`] cannot run
//! without that check having passed, and the refusal is the one error
//! type's ([`WebError`]) in the handler's rendering.
//!
//! Put the credential first among a handler's arguments: actix extracts
//! them in order, so a stranger is refused before anything else is read.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use super::dashboard::{constant_time_eq, session};
use super::error::{Page, WebError, blocking};
use crate::service::sessions::Session;

fn state(req: &HttpRequest) -> Result<&web::Data<AppState>, WebError> {
    req.app_data::<web::Data<AppState>>().ok_or_else(|| {
        tracing::error!("the application state is missing");
        WebError::Unavailable
    })
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Whether `presented` is one of `tokens`, in constant time per token.
fn one_of(tokens: &[crate::config::Secret], presented: &str) -> bool {
    tokens.iter().fold(false, |acc, t| {
        acc | constant_time_eq(t.expose().as_bytes(), presented.as_bytes())
    })
}

/// A caller of the JSON API: it showed one of the API tokens.
pub struct ApiCaller(());

impl ApiCaller {
    /// The check itself; the request guard runs it before reading a body,
    /// the extractor again in front of the handler.
    pub fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<ApiCaller, WebError> {
        let presented = bearer(headers).ok_or(WebError::Unauthorized)?;
        if one_of(&state.auth.api_tokens, presented) {
            Ok(ApiCaller(()))
        } else {
            Err(WebError::Unauthorized)
        }
    }
}

impl FromRequest for ApiCaller {
    type Error = WebError;
    type Future = std::future::Ready<Result<ApiCaller, WebError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(state(req).and_then(|s| ApiCaller::from_headers(s, req.headers())))
    }
}

/// A Prometheus scraper: it showed `metrics_token`, or none is set.
pub struct Scraper(());

impl FromRequest for Scraper {
    type Error = WebError;
    type Future = std::future::Ready<Result<Scraper, WebError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(state(req).and_then(|s| {
            let token = s.auth.metrics_token.expose();
            let shown = bearer(req.headers())
                .is_some_and(|p| constant_time_eq(token.as_bytes(), p.as_bytes()));
            if token.is_empty() || shown {
                Ok(Scraper(()))
            } else {
                Err(WebError::Unauthorized)
            }
        }))
    }
}

/// A signed-in member of the team, with the live session its cookie names.
/// Without one the answer is a redirect to the sign-in page (303), which
/// shows no data and comes back here (for a `GET`) afterwards.
pub struct SignedIn(pub Session);

impl SignedIn {
    pub fn csrf_ok(&self, presented: &str) -> bool {
        constant_time_eq(self.0.csrf.as_bytes(), presented.as_bytes())
    }
}

impl FromRequest for SignedIn {
    type Error = Page;
    type Future = Pin<Box<dyn Future<Output = Result<SignedIn, Page>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let sessions = state(&req)?.sessions.clone();
            let cookie = session::cookie_of(&req);
            match blocking(move || sessions.current(cookie.as_deref())).await? {
                Some(s) => Ok(SignedIn(s)),
                None => {
                    let next = match req.uri().path_and_query() {
                        Some(pq) if req.method() == actix_web::http::Method::GET => {
                            pq.as_str().to_string()
                        }
                        _ => "/".to_string(),
                    };
                    Err(Page(WebError::SignIn { next }))
                }
            }
        })
    }
}

/// A wallboard: its URL carries one of the wall tokens. Unknown and
/// missing tokens look the same, a 404: a wallboard URL is a secret, and
/// guessing must learn nothing.
pub struct Wallboard {
    pub token: String,
}

impl Wallboard {
    fn of(req: &HttpRequest) -> Result<Wallboard, WebError> {
        let token =
            web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
                .ok()
                .and_then(|q| q.get("token").cloned())
                .unwrap_or_default();
        if !token.is_empty() && one_of(state(req)?.dashboard.wall_tokens(), &token) {
            Ok(Wallboard { token })
        } else {
            Err(WebError::not_found(""))
        }
    }
}

impl FromRequest for Wallboard {
    type Error = Page;
    type Future = std::future::Ready<Result<Wallboard, Page>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Wallboard::of(req).map_err(Page))
    }
}

/// Whoever may watch the live stream: a wallboard by its token, anyone
/// else by a session.
pub enum Viewer {
    Wall,
    Team(Session),
}

impl FromRequest for Viewer {
    type Error = Page;
    type Future = Pin<Box<dyn Future<Output = Result<Viewer, Page>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if Wallboard::of(req).is_ok() {
            return Box::pin(std::future::ready(Ok(Viewer::Wall)));
        }
        let signed_in = SignedIn::from_request(req, payload);
        Box::pin(async move { signed_in.await.map(|s| Viewer::Team(s.0)) })
    }
}
