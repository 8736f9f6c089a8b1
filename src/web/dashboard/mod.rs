//! The team dashboard (README, "The team dashboard"): server-rendered pages
//! from templates embedded in the binary, one small script for live updates
//! and keys. A handler takes the credential it needs ([`crate::web::auth::SignedIn`] or
//! [`crate::web::auth::Wallboard`]) as an argument, calls one read model or use case of the
//! service off the async workers, and renders; whatever goes wrong is a
//! [`crate::web::error::Page`] of the one error type.
//!
//! One file per page: `login`, `queue` (and the wallboard),
//! `conversation`, `compliance` (and the team's view of a client's
//! record), `rejected`, `urgency`, `connections`, and the live `stream`.

mod compliance;
mod connections;
mod conversation;
mod login;
mod queue;
mod refused;
mod rejected;
pub mod session;
mod stream;
mod urgency;

use std::sync::LazyLock;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::{Environment, Value, context};
use serde::Deserialize;

use super::AppState;
use super::error::{Page, WebError};
use crate::config::{PublicUrl, Secret};

pub use session::{LoginLimiter, constant_time_eq};
pub use stream::TICK as STREAM_TICK;

/// The policy of every dashboard page: nothing inline, nothing from
/// elsewhere, never framed. Forms post to the dashboard only, and to the
/// sign-in pages of the OAuth providers (see [`Dashboard::with_sign_in_pages`]):
/// browsers apply `form-action` to the redirect after a post too, and the
/// Sign in button's answer is a redirect to the provider.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("../static/dashboard.css");
const JS: &str = include_str!("../static/dashboard.js");

/// The pages' templates, compiled once. Autoescape is on for `.html`
/// names (minijinja's default): every subject, body and address from mail
/// or a webhook is text.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../templates/base.html")),
        ("login.html", include_str!("../templates/login.html")),
        ("error.html", include_str!("../templates/error.html")),
        ("queue.html", include_str!("../templates/queue.html")),
        (
            "queue_rows.html",
            include_str!("../templates/queue_rows.html"),
        ),
        ("wall.html", include_str!("../templates/wall.html")),
        (
            "conversation.html",
            include_str!("../templates/conversation.html"),
        ),
        (
            "conversation_body.html",
            include_str!("../templates/conversation_body.html"),
        ),
        (
            "compliance.html",
            include_str!("../templates/compliance.html"),
        ),
        ("list.html", include_str!("../templates/list.html")),
        ("rejected.html", include_str!("../templates/rejected.html")),
        ("urgency.html", include_str!("../templates/urgency.html")),
        (
            "connections.html",
            include_str!("../templates/connections.html"),
        ),
    ] {
        env.add_template(name, source)
            .expect("the built-in dashboard templates compile");
    }
    env
});

/// Part of the assets' URLs, so a new build's stylesheet and script are
/// not taken from a browser's cache.
static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{CSS}{JS}").as_bytes());
    hex::encode(&digest[..6])
});

/// What the dashboard checks and remembers: built once at start.
pub struct Dashboard {
    pub limiter: LoginLimiter,
    password: Secret,
    wall_tokens: Vec<Secret>,
    /// `Secure` cookies: `public_url` is https.
    secure: bool,
    /// Hashes of sessions signed out in this process: their live streams
    /// end at once.
    pub sessions_ended: tokio::sync::broadcast::Sender<String>,
    /// Clients above the urgent-share limit, for the queue's banner:
    /// computed at most once a minute (the full report is `/urgency`).
    inflated: std::sync::Mutex<Option<(Instant, queue::Inflated)>>,
    /// Mailbox health for the Connections page and the sign-in banner.
    pub connections: Option<std::sync::Arc<crate::service::connections::Connections>>,
    /// [`CSP`], with the providers' sign-in pages as form targets.
    csp: String,
}

impl Dashboard {
    pub fn new(password: Secret, wall_tokens: Vec<Secret>, public_url: &PublicUrl) -> Dashboard {
        Dashboard {
            limiter: LoginLimiter::default(),
            password,
            wall_tokens,
            secure: public_url.is_https(),
            sessions_ended: tokio::sync::broadcast::channel(64).0,
            inflated: std::sync::Mutex::new(None),
            connections: None,
            csp: CSP.to_string(),
        }
    }

    pub fn with_connections(
        mut self,
        connections: std::sync::Arc<crate::service::connections::Connections>,
    ) -> Dashboard {
        self.connections = Some(connections);
        self
    }

    /// Lets the Sign in buttons' posts end at these sign-in pages: each
    /// URL's origin is added to `form-action`.
    pub fn with_sign_in_pages(mut self, urls: &[String]) -> Dashboard {
        let mut origins: Vec<String> = urls
            .iter()
            .filter_map(|u| reqwest::Url::parse(u).ok())
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null")
            .collect();
        origins.sort();
        origins.dedup();
        if !origins.is_empty() {
            self.csp = CSP.replace(
                "form-action 'self'",
                &format!("form-action 'self' {}", origins.join(" ")),
            );
        }
        self
    }

    pub(crate) fn wall_tokens(&self) -> &[Secret] {
        &self.wall_tokens
    }

    fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        let needs_sign_in = self
            .connections
            .as_ref()
            .map(|c| c.needing_sign_in())
            .unwrap_or_default();
        render(name, context! { ..ctx, ..context! { needs_sign_in } })
    }
}

fn render(name: &str, ctx: Value) -> Result<String, minijinja::Error> {
    let base = context! { asset_version => ASSET_VERSION.as_str() };
    TEMPLATES
        .get_template(name)?
        .render(context! { ..ctx, ..base })
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login::form))
        .route("/login", web::post().to(login::login))
        .route("/logout", web::post().to(login::logout))
        .route("/", web::get().to(queue::queue))
        .route("/dashboard/queue", web::get().to(queue::fragment))
        .route("/dashboard/stream", web::get().to(stream::stream))
        .route("/wall", web::get().to(queue::wall))
        .route("/wall/queue", web::get().to(queue::wall_fragment))
        .route(
            "/conversations/{id}",
            web::get().to(conversation::conversation),
        )
        .route(
            "/conversations/{id}/messages/{message}",
            web::get().to(conversation::message_text),
        )
        .route(
            "/conversations/{id}/{action}",
            web::post().to(conversation::act),
        )
        .route("/compliance", web::get().to(compliance::compliance))
        .route("/compliance.csv", web::get().to(compliance::csv))
        .route(
            "/compliance/conversations",
            web::get().to(compliance::conversations),
        )
        .route("/record/{client}", web::get().to(compliance::client_record))
        .route("/rejected", web::get().to(rejected::rejected))
        .route("/rejected/{id}/raw", web::get().to(rejected::raw))
        .route(
            "/rejected/notifications/{id}/send-again",
            web::post().to(refused::send_again),
        )
        .route("/urgency", web::get().to(urgency::urgency))
        .route("/connections", web::get().to(connections::connections))
        .route("/connections/sign-in", web::post().to(connections::sign_in))
        .route("/oauth/callback", web::get().to(connections::callback))
        .route("/static/dashboard.css", web::get().to(css))
        .route("/static/dashboard.js", web::get().to(js));
}

/// A rendered page with the dashboard's headers.
fn page(state: &AppState, status: StatusCode, name: &str, ctx: Value) -> HttpResponse {
    respond(
        status,
        name,
        state.dashboard.render(name, ctx),
        &state.dashboard.csp,
    )
}

fn respond(
    status: StatusCode,
    name: &str,
    rendered: Result<String, minijinja::Error>,
    csp: &str,
) -> HttpResponse {
    match rendered {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CONTENT_SECURITY_POLICY, csp))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(html),
        Err(e) => {
            tracing::error!(error = %e, template = name, "cannot render a dashboard page");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("the page could not be rendered; the error is in the log")
        }
    }
}

/// A page saying what went wrong, with the right status (the rendering of
/// [`WebError::page`]). It shows nothing of a session, so it needs none.
pub(crate) fn error_page(status: StatusCode, heading: &str, message: &str) -> HttpResponse {
    let ctx = context! { heading, message, signed_in => false };
    respond(status, "error.html", render("error.html", ctx), CSP)
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `{id}` path segment; anything but an integer names nothing.
fn path_id(req: &HttpRequest) -> Result<i64, Page> {
    req.match_info()
        .get("id")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Page(WebError::not_found("")))
}

/// The query string as `T`; a parameter this page does not know is a 400
/// titled `heading`.
fn query<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    heading: &'static str,
) -> Result<T, Page> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| {
            Page(WebError::BadRequest {
                heading,
                message: e.to_string(),
            })
        })
}

/// The most a dashboard form may hold: a password, a token and a `next`
/// address fit many times over.
pub const FORM_LIMIT: usize = 16 << 10;

fn form_expired() -> Page {
    Page(WebError::Forbidden {
        heading: "Form expired",
        message: "This form is from an older session. Go back, reload the page and try again."
            .into(),
    })
}

/// A dashboard form, at most [`FORM_LIMIT`] bytes. Handlers read it only
/// after checking what they can without it (the session, the sign-in
/// limit), so a stranger's body is never waited for.
async fn read_form<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, Page> {
    // A browser says when a form comes from another site: refused before
    // its body, as the token in it would be.
    if req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(form_expired());
    }
    let too_large = || Page(WebError::PayloadTooLarge { limit: FORM_LIMIT });
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > FORM_LIMIT as u64) {
        return Err(too_large());
    }
    let unreadable = || {
        Page(WebError::BadRequest {
            heading: "Bad form",
            message: "The form could not be read.".into(),
        })
    };
    match payload.to_bytes_limited(FORM_LIMIT).await {
        Err(_) => Err(too_large()),
        Ok(Err(_)) => Err(unreadable()),
        Ok(Ok(body)) => serde_urlencoded::from_bytes(&body).map_err(|_| unreadable()),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// A signed-in member's form that carries the session's CSRF token.
async fn csrf_form(
    signed_in: &super::auth::SignedIn,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(), Page> {
    let form: CsrfForm = read_form(req, payload).await?;
    if signed_in.csrf_ok(&form.csrf) {
        Ok(())
    } else {
        Err(form_expired())
    }
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(CSS)
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(JS)
}
