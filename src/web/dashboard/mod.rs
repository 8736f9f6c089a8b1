//! The team dashboard (README, "The team dashboard"): server-rendered pages from templates
//! embedded in the binary, one small script for live updates and keys.
//! Handlers check the session, call one read model or use case of the
//! service off the async workers, and render.

// Helpers return `Result<_, HttpResponse>` so a handler can answer early
// with the page that says what went wrong; a response is built once per
// request, so its size on the stack does not matter.
#![allow(clippy::result_large_err)]

mod connections;
mod refused;
mod session;
mod stream;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use minijinja::{Environment, Value, context};
use serde::Deserialize;

use super::AppState;
use crate::config::Secret;
use crate::service::{ComplianceRow, QueueView, ServiceError, local_words};
use crate::sla::TicketStatus;
use crate::store::{QueueFilter, SessionRow};

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

/// Templates and what the dashboard checks: built once at start.
pub struct Dashboard {
    env: Environment<'static>,
    pub limiter: LoginLimiter,
    password: Secret,
    wall_tokens: Vec<Secret>,
    /// `Secure` cookies: `public_url` is https.
    secure: bool,
    asset_version: String,
    /// Hashes of sessions signed out in this process: their live streams
    /// end at once.
    pub sessions_ended: tokio::sync::broadcast::Sender<String>,
    /// Clients above the urgent-share limit, for the queue's banner:
    /// computed at most once a minute (the full report is `/urgency`).
    inflated: std::sync::Mutex<Option<(Instant, Inflated)>>,
    /// Mailbox health for the Connections page and the sign-in banner.
    pub connections: Option<std::sync::Arc<crate::service::connections::Connections>>,
    /// [`CSP`], with the providers' sign-in pages as form targets.
    csp: String,
}

/// `(client name, share)` of each client above the urgent-share limit.
type Inflated = Vec<(String, String)>;

/// How long the queue's urgent-share banner is reused.
const INFLATION_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl Dashboard {
    pub fn new(password: Secret, wall_tokens: Vec<Secret>, public_url: &str) -> Dashboard {
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
        // Autoescape is on for `.html` names (minijinja's default): every
        // subject, body and address from mail or a webhook is text.
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{CSS}{JS}").as_bytes());
        Dashboard {
            env,
            limiter: LoginLimiter::default(),
            password,
            wall_tokens,
            secure: public_url.starts_with("https://"),
            asset_version: hex::encode(&digest[..6]),
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

    fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        let needs_sign_in = self
            .connections
            .as_ref()
            .map(|c| c.needing_sign_in())
            .unwrap_or_default();
        let base = context! { asset_version => self.asset_version.clone(), needs_sign_in };
        self.env
            .get_template(name)?
            .render(context! { ..ctx, ..base })
    }

    fn wall_token_ok(&self, presented: &str) -> bool {
        self.wall_tokens.iter().fold(false, |acc, t| {
            acc | session::constant_time_eq(t.expose().as_bytes(), presented.as_bytes())
        })
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/", web::get().to(queue))
        .route("/dashboard/queue", web::get().to(queue_fragment))
        .route("/dashboard/stream", web::get().to(stream::stream))
        .route("/wall", web::get().to(wall))
        .route("/wall/queue", web::get().to(wall_fragment))
        .route("/conversations/{id}", web::get().to(conversation))
        .route(
            "/conversations/{id}/messages/{message}",
            web::get().to(message_text),
        )
        .route("/conversations/{id}/{action}", web::post().to(act))
        .route("/compliance", web::get().to(compliance))
        .route("/compliance.csv", web::get().to(compliance_csv))
        .route("/compliance/conversations", web::get().to(compliance_list))
        .route("/record/{client}", web::get().to(client_record))
        .route("/rejected", web::get().to(rejected))
        .route("/urgency", web::get().to(urgency))
        .route("/connections", web::get().to(connections::connections))
        .route("/connections/sign-in", web::post().to(connections::sign_in))
        .route("/oauth/callback", web::get().to(connections::callback))
        .route("/rejected/{id}/raw", web::get().to(rejected_raw))
        .route(
            "/rejected/notifications/{id}/send-again",
            web::post().to(refused::send_again),
        )
        .route("/static/dashboard.css", web::get().to(css))
        .route("/static/dashboard.js", web::get().to(js));
}

/// A rendered page with the dashboard's headers.
fn page(state: &AppState, status: StatusCode, name: &str, ctx: Value) -> HttpResponse {
    match state.dashboard.render(name, ctx) {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                state.dashboard.csp.as_str(),
            ))
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

/// A page saying what went wrong, with the right status.
pub fn error_page(
    state: &AppState,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> HttpResponse {
    page(
        state,
        status,
        "error.html",
        context! { heading, message, signed_in => false },
    )
}

pub fn not_found(state: &AppState) -> HttpResponse {
    error_page(
        state,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}

fn service_error(state: &AppState, e: ServiceError) -> HttpResponse {
    match e {
        ServiceError::NotFound(what) => error_page(
            state,
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("{what} does not exist."),
        ),
        ServiceError::Invalid(fields) => error_page(
            state,
            StatusCode::BAD_REQUEST,
            "Bad request",
            &crate::ingest::webhook::summary(&fields),
        ),
        other => {
            tracing::error!(error = %other, "dashboard request failed");
            error_page(
                state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The database did not answer. Try again in a moment.",
            )
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    match web::block(f).await {
        Ok(r) => r,
        Err(e) => Err(ServiceError::Store(crate::store::StoreError::Corrupt(
            e.to_string(),
        ))),
    }
}

/// The signed-in session, or the answer to send instead: a redirect to the
/// login page (303) that shows no data.
async fn require(state: &AppState, req: &HttpRequest) -> Result<SessionRow, HttpResponse> {
    let store = state.store.clone();
    let now = state.service.now();
    let cookie = session::cookie_of(req);
    let found = web::block(move || session::current(&store, cookie, now)).await;
    match found {
        Ok(Ok(Some(s))) => Ok(s),
        Ok(Ok(None)) => {
            let next = match req.uri().path_and_query() {
                Some(pq) if req.method() == actix_web::http::Method::GET => pq.as_str().to_string(),
                _ => "/".to_string(),
            };
            Err(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, format!("/login?next={}", encode(&next))))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish())
        }
        Ok(Err(e)) => Err(service_error(state, e.into())),
        Err(e) => Err(service_error(
            state,
            ServiceError::Store(crate::store::StoreError::Corrupt(e.to_string())),
        )),
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode(s: &str) -> String {
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

/// Where to go after login: a path on this site as a browser reads it (an
/// open redirect would let a link send a signed-in user anywhere). Browsers
/// follow the URL standard, which drops tabs and newlines and reads `\` as
/// `/` (`/\t/evil.example` is `//evil.example`), so `next` is resolved the
/// same way and kept only when it stays on this origin; anything else goes
/// to the queue. `None`: it holds control characters, which no link of
/// ours does (and which cannot go into a `Location` header).
fn safe_next(next: &str) -> Option<String> {
    static BASE: LazyLock<url::Url> =
        LazyLock::new(|| url::Url::parse("http://keepword.invalid/").expect("a valid URL"));
    if next.chars().any(char::is_control) {
        return None;
    }
    let local = match BASE.join(next) {
        Ok(u) if u.origin() == BASE.origin() => u[url::Position::BeforePath..].to_string(),
        _ => return Some("/".into()),
    };
    // A path that starts with `//` would itself read as another host.
    if local.starts_with('/') && !local.starts_with("//") {
        Some(local)
    } else {
        Some("/".into())
    }
}

fn bad_next(state: &AppState) -> HttpResponse {
    error_page(
        state,
        StatusCode::BAD_REQUEST,
        "Bad sign-in link",
        "The `next` parameter of this link holds control characters; no page has such an address.",
    )
}

fn peer(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

fn csrf_ok(session: &SessionRow, presented: &str) -> bool {
    session::constant_time_eq(session.csrf.as_bytes(), presented.as_bytes())
}

#[derive(Deserialize, Default)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

async fn login_form(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let next = web::Query::<NextQuery>::from_query(req.query_string())
        .map(|q| q.into_inner().next)
        .unwrap_or_default();
    let Some(target) = safe_next(&next) else {
        return bad_next(&state);
    };
    if let Ok(Ok(Some(_))) = {
        let (store, cookie, now) = (
            state.store.clone(),
            session::cookie_of(&req),
            state.service.now(),
        );
        web::block(move || session::current(&store, cookie, now)).await
    } {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, target))
            .finish();
    }
    login_page(&state, StatusCode::OK, &target, None)
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
) -> HttpResponse {
    let token = session::random_token();
    let mut res = page(
        state,
        status,
        "login.html",
        context! { login_csrf => token.clone(), next => safe_next(next).unwrap_or_else(|| "/".into()), error, signed_in => false },
    );
    let _ = res.add_cookie(&session::login_cookie(&token, state.dashboard.secure));
    res
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// The most a dashboard form may hold: a password, a token and a `next`
/// address fit many times over.
pub const FORM_LIMIT: usize = 16 << 10;

/// A dashboard form, at most [`FORM_LIMIT`] bytes. Handlers read it only
/// after checking what they can without it (the session, the sign-in
/// limit), so a stranger's body is never waited for.
async fn read_form<T: serde::de::DeserializeOwned>(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, HttpResponse> {
    // A browser says when a form comes from another site: refused before
    // its body, as the token in it would be.
    if req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(refused_csrf(state));
    }
    let too_large = || {
        let mut res = error_page(
            state,
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form too large",
            &format!("A form here holds at most {} KiB.", FORM_LIMIT >> 10),
        );
        // The rest of the body is not read: the connection cannot be reused.
        res.head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
        res
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > FORM_LIMIT as u64) {
        return Err(too_large());
    }
    let unreadable = || {
        error_page(
            state,
            StatusCode::BAD_REQUEST,
            "Bad form",
            "The form could not be read.",
        )
    };
    match payload.to_bytes_limited(FORM_LIMIT).await {
        Err(_) => Err(too_large()),
        Ok(Err(_)) => Err(unreadable()),
        Ok(Ok(body)) => serde_urlencoded::from_bytes(&body).map_err(|_| unreadable()),
    }
}

async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    // What needs no body first: the sign-in limit and the form's cookie.
    let addr = peer(&req);
    if let Some(wait) = state.dashboard.limiter.blocked(addr, Instant::now()) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut res = login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            "/",
            Some(&format!(
                "Too many failed sign-ins from your address. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&wait.as_secs().max(1).to_string())
                .unwrap_or(HeaderValue::from_static("60")),
        );
        return res;
    }
    let expired = |next: &str| {
        login_page(
            &state,
            StatusCode::FORBIDDEN,
            next,
            Some("The sign-in form expired. Please enter the password again."),
        )
    };
    let cookie_token = req
        .cookie(session::LOGIN_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if cookie_token.is_empty() {
        return expired("/");
    }
    let form: LoginForm = match read_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    // A session must not be made for a redirect that cannot be sent.
    let Some(target) = safe_next(&form.next) else {
        return bad_next(&state);
    };
    if !session::constant_time_eq(cookie_token.as_bytes(), form.csrf.as_bytes()) {
        return expired(&form.next);
    }
    let expected = state.dashboard.password.expose().as_bytes();
    // Settings refuse an empty password; an app built some other way must
    // still not let an empty field in.
    if expected.is_empty() || !session::constant_time_eq(expected, form.password.as_bytes()) {
        state.dashboard.limiter.failed(addr, Instant::now());
        tracing::info!(client = %addr, "dashboard: failed sign-in");
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &form.next,
            Some("Wrong password."),
        );
    }
    state.dashboard.limiter.succeeded(addr);
    let (store, now) = (state.store.clone(), state.service.now());
    match web::block(move || session::create(&store, now)).await {
        Ok(Ok((id, _))) => {
            let mut res = HttpResponse::SeeOther()
                .insert_header((header::LOCATION, target))
                .finish();
            let _ = res.add_cookie(&session::cookie(
                &id,
                state.dashboard.secure,
                session::LIFETIME,
            ));
            let _ = res.add_removal_cookie(&session::login_cookie("", state.dashboard.secure));
            res
        }
        Ok(Err(e)) => service_error(&state, e.into()),
        Err(e) => service_error(
            &state,
            ServiceError::Store(crate::store::StoreError::Corrupt(e.to_string())),
        ),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn refused_csrf(state: &AppState) -> HttpResponse {
    error_page(
        state,
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form is from an older session. Go back, reload the page and try again.",
    )
}

async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let s = match require(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let form: CsrfForm = match read_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &form.csrf) {
        return refused_csrf(&state);
    }
    let store = state.store.clone();
    let id_hash = s.id_hash.clone();
    let _ = web::block(move || store.with(|c| crate::store::delete_session(c, &id_hash))).await;
    // No stream listening is not an error.
    let _ = state.dashboard.sessions_ended.send(s.id_hash);
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .finish();
    let _ = res.add_removal_cookie(&session::cookie(
        "",
        state.dashboard.secure,
        TimeDelta::zero(),
    ));
    res
}

/// The highest `page` asked for: far past any queue (100,000 open
/// conversations are 2,000 pages), far below where an offset overflows.
const MAX_PAGE: i64 = 1_000_000;

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct QueueQuery {
    client: Option<String>,
    #[serde(rename = "type")]
    request_type: Option<String>,
    health: Option<String>,
    channel: Option<String>,
    status: Option<String>,
    page: Option<i64>,
    /// The wallboard's token (its fragment URL carries it).
    token: Option<String>,
}

impl QueueQuery {
    fn filter(&self) -> Result<QueueFilter, String> {
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let f = QueueFilter {
            client: nonempty(&self.client),
            request_type: nonempty(&self.request_type),
            health: nonempty(&self.health),
            channel: nonempty(&self.channel),
            status: nonempty(&self.status),
        };
        if let Some(h) = &f.health
            && !["on_track", "at_risk", "breached"].contains(&h.as_str())
        {
            return Err(format!(
                "health must be one of on_track, at_risk, breached (got `{h}`)"
            ));
        }
        if let Some(s) = &f.status
            && !["open", "pending", "solved"].contains(&s.as_str())
        {
            return Err(format!(
                "status must be one of open, pending, solved (got `{s}`)"
            ));
        }
        if let Some(p) = self.page
            && !(1..=MAX_PAGE).contains(&p)
        {
            return Err(format!("page must be between 1 and {MAX_PAGE} (got {p})"));
        }
        Ok(f)
    }

    /// The query string of these filters, ending in `&` (links append).
    fn link(&self, without: &[&str]) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("client", &self.client),
            ("type", &self.request_type),
            ("health", &self.health),
            ("channel", &self.channel),
            ("status", &self.status),
            ("token", &self.token),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty())
                && !without.contains(&k)
            {
                parts.push(format!("{k}={}", encode(v)));
            }
        }
        parts.into_iter().map(|p| p + "&").collect()
    }
}

fn parse_queue_query(state: &AppState, req: &HttpRequest) -> Result<QueueQuery, HttpResponse> {
    web::Query::<QueueQuery>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| {
            error_page(
                state,
                StatusCode::BAD_REQUEST,
                "Bad filter",
                &format!("The address has a filter this page does not know: {e}"),
            )
        })
}

async fn load_queue(
    state: &AppState,
    q: &QueueQuery,
) -> Result<(QueueFilter, QueueView), HttpResponse> {
    let filter = q
        .filter()
        .map_err(|e| error_page(state, StatusCode::BAD_REQUEST, "Bad filter", &e))?;
    let (service, f, p) = (state.service.clone(), filter.clone(), q.page.unwrap_or(1));
    let now = state.service.now();
    let view = blocking(move || service.queue(&f, p, now))
        .await
        .map_err(|e| service_error(state, e))?;
    Ok((filter, view))
}

fn queue_context(state: &AppState, q: &QueueQuery, view: &QueueView, base: &str) -> Value {
    let current = state.contract.current();
    let c = &current.contract;
    let mut clients: Vec<Value> = c
        .clients()
        .iter()
        .map(|x| context! { id => x.id.clone(), name => x.name.clone() })
        .collect();
    clients.push(context! { id => crate::contract::UNKNOWN_CLIENT, name => "Unknown senders" });
    let types: Vec<Value> = c
        .request_types()
        .iter()
        .map(|t| context! { id => t.id.clone(), name => t.name.clone() })
        .collect();
    let channels: Vec<String> = c.channels().iter().map(|x| x.id.clone()).collect();
    let mut health_links = BTreeMap::new();
    for h in ["breached", "at_risk", "on_track"] {
        health_links.insert(h, format!("{base}?{}health={h}", q.link(&["health"])));
    }
    let filtered = !q.link(&["token"]).is_empty();
    context! {
        queue => view,
        options => context! { clients, types, channels },
        filter => context! {
            client => q.client.clone().unwrap_or_default(),
            type => q.request_type.clone().unwrap_or_default(),
            health => q.health.clone().unwrap_or_default(),
            channel => q.channel.clone().unwrap_or_default(),
            status => q.status.clone().unwrap_or_default(),
        },
        filtered,
        health_links,
        page_link => format!("{base}?{}", q.link(&[])),
    }
}

async fn queue(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let s = match require(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = match parse_queue_query(&state, &req) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let (_, view) = match load_queue(&state, &q).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut live_q = q.link(&[]);
    if let Some(p) = q.page {
        live_q.push_str(&format!("page={p}"));
    }
    let ctx = queue_context(&state, &q, &view, "/");
    let inflated = inflated_clients(&state).await;
    page(
        &state,
        StatusCode::OK,
        "queue.html",
        context! {
            ..ctx,
            ..context! {
                signed_in => true, csrf => s.csrf, nav => "queue", inflated,
                live => context! { url => format!("/dashboard/queue?{live_q}"), stream => "/dashboard/stream", ids => "*" },
            }
        },
    )
}

/// `(client name, share)` of clients above the urgent-share limit, from a
/// report at most [`INFLATION_TTL`] old. A failure shows no banner (and is
/// logged): the queue matters more.
async fn inflated_clients(state: &AppState) -> Inflated {
    {
        let cached = state
            .dashboard
            .inflated
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some((at, list)) = cached.as_ref()
            && at.elapsed() < INFLATION_TTL
        {
            return list.clone();
        }
    }
    let (service, now) = (state.service.clone(), state.service.now());
    let list = match blocking(move || service.urgent_inflation(now)).await {
        Ok(r) => r
            .above_limit
            .iter()
            .map(|c| {
                (
                    c.share.client_name.clone(),
                    format!("{:.0}%", c.share.share * 100.0),
                )
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard: cannot compute the urgent share");
            Vec::new()
        }
    };
    *state
        .dashboard
        .inflated
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), list.clone()));
    list
}

async fn urgency(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let s = match require(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (service, now) = (state.service.clone(), state.service.now());
    let r = match blocking(move || service.urgent_inflation(now)).await {
        Ok(r) => r,
        Err(e) => return service_error(&state, e),
    };
    // Times in the contract's zone (README, "The team dashboard").
    let tz = state.contract.current().contract.info().timezone;
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    let above: Vec<Value> =
        r.above_limit
            .iter()
            .map(|c| {
                let requests: Vec<Value> = c
                .requests
                .iter()
                .map(|q| context! {
                    conversation_id => q.conversation_id, subject => q.subject.clone(),
                    channel => q.channel.clone(), classification => q.classification.clone(),
                    when => local_words(q.opened_at, now, tz),
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
    page(
        &state,
        StatusCode::OK,
        "urgency.html",
        context! {
            r => context! { window_days => r.window_days, limit => r.limit.clone(), above_limit => above, shares },
            signed_in => true, csrf => s.csrf, nav => "urgency",
        },
    )
}

async fn queue_fragment(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = require(&state, &req).await {
        return r;
    }
    fragment(&state, &req, "/").await
}

async fn fragment(state: &AppState, req: &HttpRequest, base: &str) -> HttpResponse {
    let q = match parse_queue_query(state, req) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let (_, view) = match load_queue(state, &q).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ctx = queue_context(state, &q, &view, base);
    page(state, StatusCode::OK, "queue_rows.html", ctx)
}

fn wall_allowed(state: &AppState, req: &HttpRequest) -> Result<String, HttpResponse> {
    let token = web::Query::<QueueQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().token)
        .unwrap_or_default();
    if !token.is_empty() && state.dashboard.wall_token_ok(&token) {
        Ok(token)
    } else {
        // Unknown and missing tokens look the same: a wallboard URL is a
        // secret, and guessing must learn nothing.
        Err(not_found(state))
    }
}

async fn wall(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let token = match wall_allowed(&state, &req) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let q = match parse_queue_query(&state, &req) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let (_, view) = match load_queue(&state, &q).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let ctx = queue_context(&state, &q, &view, "/wall");
    let t = encode(&token);
    page(
        &state,
        StatusCode::OK,
        "wall.html",
        context! {
            ..ctx,
            ..context! {
                signed_in => false,
                live => context! { url => format!("/wall/queue?{}", q.link(&[])), stream => format!("/dashboard/stream?token={t}"), ids => "*" },
            }
        },
    )
}

async fn wall_fragment(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = wall_allowed(&state, &req) {
        return r;
    }
    fragment(&state, &req, "/wall").await
}

fn path_id(req: &HttpRequest) -> Option<i64> {
    req.match_info().get("id").and_then(|v| v.parse().ok())
}

#[derive(Deserialize, Default)]
struct FragmentQuery {
    #[serde(default)]
    fragment: Option<String>,
    #[serde(default)]
    page: Option<i64>,
}

async fn conversation(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let s = match require(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(id) = path_id(&req) else {
        return not_found(&state);
    };
    let q = match web::Query::<FragmentQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => {
            return error_page(
                &state,
                StatusCode::BAD_REQUEST,
                "Bad address",
                &e.to_string(),
            );
        }
    };
    let p = q.page.unwrap_or(1);
    if !(1..=MAX_PAGE).contains(&p) {
        return error_page(
            &state,
            StatusCode::BAD_REQUEST,
            "Bad address",
            &format!("page must be between 1 and {MAX_PAGE} (got {p})"),
        );
    }
    let fragment = q.fragment.is_some();
    let (service, now) = (state.service.clone(), state.service.now());
    let t = match blocking(move || service.timeline(id, p, now)).await {
        Ok(t) => t,
        Err(e) => return service_error(&state, e),
    };
    let name = if fragment {
        "conversation_body.html"
    } else {
        "conversation.html"
    };
    page(
        &state,
        StatusCode::OK,
        name,
        context! {
            t, signed_in => true, csrf => s.csrf, nav => "queue",
            live => context! { url => format!("/conversations/{id}?fragment=1&page={p}"), stream => "/dashboard/stream", ids => id.to_string() },
        },
    )
}

/// The whole text of one message, which the timeline shows only the start
/// of when it is long: text from mail, never rendered as a page.
async fn message_text(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = require(&state, &req).await {
        return r;
    }
    let message = req
        .match_info()
        .get("message")
        .and_then(|v| v.parse::<i64>().ok());
    let (Some(id), Some(message)) = (path_id(&req), message) else {
        return not_found(&state);
    };
    let service = state.service.clone();
    match blocking(move || service.message_body(id, message)).await {
        Ok(body) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                state.dashboard.csp.as_str(),
            ))
            .body(body),
        Err(e) => service_error(&state, e),
    }
}

async fn act(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let s = match require(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(id) = path_id(&req) else {
        return not_found(&state);
    };
    let status = match req.match_info().get("action") {
        Some("solve") => TicketStatus::Solved,
        Some("reopen") => TicketStatus::Open,
        Some("wait") => TicketStatus::Pending,
        _ => return not_found(&state),
    };
    let form: CsrfForm = match read_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if !csrf_ok(&s, &form.csrf) {
        return refused_csrf(&state);
    }
    let (service, now) = (state.service.clone(), state.service.now());
    match blocking(move || service.set_status(id, status, "dashboard", now)).await {
        Ok(()) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, format!("/conversations/{id}")))
            .finish(),
        Err(e) => service_error(&state, e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
    #[serde(rename = "type")]
    request_type: Option<String>,
    client: Option<String>,
    timer: Option<String>,
    outcome: Option<String>,
    /// `author`: group by who wrote the replies.
    by: Option<String>,
}

/// `[from, to)` as UTC instants; by default the last 30 days. Dates lie in
/// the calendar's years: nothing was recorded outside them, and far ones
/// overflow date arithmetic or the database's own date range.
fn period(q: &PeriodQuery, now: DateTime<Utc>) -> Result<(NaiveDate, NaiveDate), String> {
    let (lo, hi) = crate::ingest::webhook::instant_range();
    let (lo, hi) = (lo.date_naive(), hi.date_naive());
    let parse = |name: &str, v: &Option<String>| -> Result<Option<NaiveDate>, String> {
        match v.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => match s.parse::<NaiveDate>() {
                Ok(d) if (lo..=hi).contains(&d) => Ok(Some(d)),
                Ok(_) => Err(format!(
                    "`{name}` must be a date from {lo} to {hi} (got `{s}`)"
                )),
                Err(_) => Err(format!(
                    "`{name}` must be a date like 2026-12-01 (got `{s}`)"
                )),
            },
        }
    };
    let to = parse("to", &q.to)?.unwrap_or(now.date_naive() + TimeDelta::days(1));
    let from = parse("from", &q.from)?.unwrap_or(to - TimeDelta::days(30));
    if from >= to {
        return Err(format!("`from` ({from}) must be before `to` ({to})"));
    }
    Ok((from, to))
}

fn at_midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// The query and its period, or the 400 page naming what is wrong.
#[allow(clippy::result_large_err)]
fn period_of(
    state: &AppState,
    req: &HttpRequest,
) -> Result<(PeriodQuery, NaiveDate, NaiveDate), HttpResponse> {
    let q = web::Query::<PeriodQuery>::from_query(req.query_string())
        .map(|q| q.into_inner())
        .map_err(|e| error_page(state, StatusCode::BAD_REQUEST, "Bad period", &e.to_string()))?;
    let (from, to) = period(&q, state.service.now())
        .map_err(|e| error_page(state, StatusCode::BAD_REQUEST, "Bad period", &e))?;
    if let Some(by) = q.by.as_deref().filter(|b| !b.is_empty() && *b != "author") {
        return Err(error_page(
            state,
            StatusCode::BAD_REQUEST,
            "Bad grouping",
            &format!("`by` must be `author` (got `{by}`)"),
        ));
    }
    Ok((q, from, to))
}

async fn compliance_rows(
    state: &AppState,
    req: &HttpRequest,
) -> Result<(PeriodQuery, NaiveDate, NaiveDate, Vec<ComplianceRow>), HttpResponse> {
    let (q, from, to) = period_of(state, req)?;
    let service = state.service.clone();
    let rows = blocking(move || service.compliance(at_midnight(from), at_midnight(to)))
        .await
        .map_err(|e| service_error(state, e))?;
    Ok((q, from, to, rows))
}

fn business(secs: Option<i64>) -> String {
    secs.map_or("—".into(), |s| {
        crate::service::span_words(TimeDelta::seconds(s))
    })
}

/// `?by=author`: the compliance report grouped by who wrote the replies.
fn by_author(req: &HttpRequest) -> bool {
    web::Query::<PeriodQuery>::from_query(req.query_string())
        .is_ok_and(|q| q.by.as_deref() == Some("author"))
}

async fn author_rows(
    state: &AppState,
    req: &HttpRequest,
) -> Result<(NaiveDate, NaiveDate, Vec<crate::service::AuthorRow>), HttpResponse> {
    let (_, from, to) = period_of(state, req)?;
    let service = state.service.clone();
    let rows = blocking(move || service.compliance_by_author(at_midnight(from), at_midnight(to)))
        .await
        .map_err(|e| service_error(state, e))?;
    Ok((from, to, rows))
}

/// The client's page as the client sees it, for the signed-in team.
async fn client_record(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = require(&state, &req).await {
        return r;
    }
    let client = req
        .match_info()
        .get("client")
        .unwrap_or_default()
        .to_string();
    if state.contract.current().contract.client(&client).is_none() {
        return error_page(
            &state,
            StatusCode::NOT_FOUND,
            "No such client",
            &format!("The contract declares no client `{client}`."),
        );
    }
    let days = crate::web::client::days(&req);
    let service = state.service.clone();
    match blocking(move || service.client_page_of(&client, days)).await {
        Ok(page) => crate::web::client::team_view(&page),
        Err(e) => service_error(&state, e),
    }
}

async fn compliance(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let s = match require(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if by_author(&req) {
        let (from, to, rows) = match author_rows(&state, &req).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let view: Vec<Value> = rows
            .iter()
            .map(|r| {
                context! {
                    author => r.author.clone(), replies => r.replies,
                    first_responses => r.first_responses, p50 => business(r.p50),
                }
            })
            .collect();
        return page(
            &state,
            StatusCode::OK,
            "compliance.html",
            context! { by_author => true, authors => view, from => from.to_string(), to => to.to_string(), signed_in => true, csrf => s.csrf, nav => "compliance" },
        );
    }
    let (_, from, to, rows) = match compliance_rows(&state, &req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let current = state.contract.current();
    let view: Vec<Value> = rows
        .iter()
        .map(|r| {
            let timer = r.timer.replace(' ', "_");
            let link = |outcome: &str| {
                format!(
                    "/compliance/conversations?from={from}&to={to}&type={}&client={}&timer={timer}&outcome={outcome}",
                    encode(&r.request_type),
                    encode(&r.client_id)
                )
            };
            context! {
                type_name => current.contract.request_type(&r.request_type).map_or(r.request_type.clone(), |t| t.name.clone()),
                client => r.client.clone(), timer => r.timer.clone(),
                conversations => r.conversations, met => r.met, missed => r.missed, breached => r.breached,
                met_pct => r.met_pct.map(|p| format!("{p:.1}%")),
                p50 => business(r.p50), p90 => business(r.p90),
                links => context! { all => link("all"), met => link("met"), missed => link("missed"), breached => link("breached") },
            }
        })
        .collect();
    page(
        &state,
        StatusCode::OK,
        "compliance.html",
        context! { rows => view, from => from.to_string(), to => to.to_string(), signed_in => true, csrf => s.csrf, nav => "compliance" },
    )
}

/// A CSV field: quoted when needed, and a leading `=`, `+`, `-`, `@`, tab
/// or carriage return defused (a spreadsheet would run it as a formula; it
/// skips a leading tab or CR and reads the `=` behind it).
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

async fn compliance_csv(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = require(&state, &req).await {
        return r;
    }
    if by_author(&req) {
        let (from, to, rows) = match author_rows(&state, &req).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let mut out =
            String::from("author,replies,first_responses,p50_first_response_business_seconds\r\n");
        for r in &rows {
            out.push_str(&format!(
                "{},{},{},{}\r\n",
                csv_field(&r.author),
                r.replies,
                r.first_responses,
                r.p50.map_or(String::new(), |v| v.to_string()),
            ));
        }
        return csv_response(&format!("compliance-by-author-{from}-{to}.csv"), out);
    }
    let (_, from, to, rows) = match compliance_rows(&state, &req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut out = String::from(
        "request_type,client_id,client,timer,conversations,met,missed,breached,met_pct,p50_business_seconds,p90_business_seconds\r\n",
    );
    let opt = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    for r in &rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\r\n",
            csv_field(&r.request_type),
            csv_field(&r.client_id),
            csv_field(&r.client),
            csv_field(&r.timer),
            r.conversations,
            r.met,
            r.missed,
            r.breached,
            r.met_pct.map_or(String::new(), |p| format!("{p:.1}")),
            opt(r.p50),
            opt(r.p90),
        ));
    }
    csv_response(&format!("compliance-{from}-{to}.csv"), out)
}

fn csv_response(file: &str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

async fn compliance_list(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let s = match require(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (q, from, to, rows) = match compliance_rows(&state, &req).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let outcome = q.outcome.clone().unwrap_or_else(|| "all".into());
    let timer = q.timer.clone().unwrap_or_default().replace('_', " ");
    let mut ids: Vec<i64> = rows
        .iter()
        .filter(|r| q.request_type.as_ref().is_none_or(|t| *t == r.request_type))
        .filter(|r| q.client.as_ref().is_none_or(|c| *c == r.client_id))
        .filter(|r| timer.is_empty() || r.timer == timer)
        .flat_map(|r| r.ids.get(outcome.as_str()).cloned().unwrap_or_default())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(1000);
    let service = state.service.clone();
    let listed: Vec<Value> = match blocking(move || service.conversation_headlines(&ids)).await {
        Ok(l) => l
            .into_iter()
            .map(|(id, subject, client, status)| context! { id, subject, client, status })
            .collect(),
        Err(e) => return service_error(&state, e),
    };
    let heading = format!(
        "{} conversations: {}{} {}",
        if outcome == "all" {
            "All"
        } else {
            outcome.as_str()
        },
        q.request_type.clone().unwrap_or_default(),
        q.client
            .as_ref()
            .map_or(String::new(), |c| format!(" · {c}")),
        if timer.is_empty() {
            String::new()
        } else {
            format!("· {timer}")
        }
    );
    page(
        &state,
        StatusCode::OK,
        "list.html",
        context! { heading, rows => listed, back => format!("/compliance?from={from}&to={to}"), signed_in => true, csrf => s.csrf, nav => "compliance" },
    )
}

async fn rejected(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let s = match require(&state, &req).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let service = state.service.clone();
    let items = match blocking(move || service.rejected_inputs(500)).await {
        Ok(i) => i,
        Err(e) => return service_error(&state, e),
    };
    let now = state.service.now();
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
    let notifications = match refused::listed(&state).await {
        Ok(n) => n,
        Err(e) => return service_error(&state, e),
    };
    page(
        &state,
        StatusCode::OK,
        "rejected.html",
        context! { items => view, notifications, signed_in => true, csrf => s.csrf, nav => "rejected" },
    )
}

async fn rejected_raw(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Err(r) = require(&state, &req).await {
        return r;
    }
    let Some(id) = path_id(&req) else {
        return not_found(&state);
    };
    let service = state.service.clone();
    match blocking(move || service.rejected_raw(id)).await {
        // Bytes from outside: a download, never rendered by the browser.
        Ok(raw) => HttpResponse::Ok()
            .content_type("application/octet-stream")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"rejected-{id}.eml\""),
            ))
            .body(raw),
        Err(e) => service_error(&state, e),
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

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_that_a_spreadsheet_would_run_are_defused() {
        for (field, expect) in [
            ("=1+1", "'=1+1"),
            ("+1", "'+1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1+1", "'\t=1+1"),
            ("\r=1+1", "\"'\r=1+1\""),
            ("ACME, Inc.", "\"ACME, Inc.\""),
            ("plain", "plain"),
        ] {
            assert_eq!(csv_field(field), expect, "{field:?}");
        }
    }
}
