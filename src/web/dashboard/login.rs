//! `GET`/`POST /login` and `POST /logout`: the team's password, a session
//! cookie, and where to go afterwards.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::TimeDelta;
use minijinja::context;
use serde::Deserialize;

use super::{AppState, Page, WebError, page, read_form, session};
use crate::web::auth::SignedIn;
use crate::web::error::blocking;

#[derive(Deserialize, Default)]
struct NextQuery {
    #[serde(default)]
    next: String,
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

fn bad_next() -> Page {
    Page(WebError::BadRequest {
        heading: "Bad sign-in link",
        message: "The `next` parameter of this link holds control characters; no page has such an address."
            .into(),
    })
}

fn peer(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

pub(super) async fn form(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let next = web::Query::<NextQuery>::from_query(req.query_string())
        .map(|q| q.into_inner().next)
        .unwrap_or_default();
    let target = safe_next(&next).ok_or_else(bad_next)?;
    let sessions = state.sessions.clone();
    let cookie = session::cookie_of(&req);
    // Already signed in: straight on. A database that does not answer
    // shows the form (signing in will say what is wrong).
    if let Ok(Some(_)) = blocking(move || sessions.current(cookie.as_deref())).await {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, target))
            .finish());
    }
    Ok(login_page(&state, StatusCode::OK, &target, None))
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

pub(super) async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Page> {
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
        return Ok(res);
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
        return Ok(expired("/"));
    }
    let form: LoginForm = read_form(&req, payload).await?;
    // A session must not be made for a redirect that cannot be sent.
    let target = safe_next(&form.next).ok_or_else(bad_next)?;
    if !session::constant_time_eq(cookie_token.as_bytes(), form.csrf.as_bytes()) {
        return Ok(expired(&form.next));
    }
    let expected = state.dashboard.password.expose().as_bytes();
    // Settings refuse an empty password; an app built some other way must
    // still not let an empty field in.
    if expected.is_empty() || !session::constant_time_eq(expected, form.password.as_bytes()) {
        state.dashboard.limiter.failed(addr, Instant::now());
        tracing::info!(client = %addr, "dashboard: failed sign-in");
        return Ok(login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &form.next,
            Some("Wrong password."),
        ));
    }
    state.dashboard.limiter.succeeded(addr);
    let sessions = state.sessions.clone();
    let (id, _) = blocking(move || sessions.create()).await?;
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, target))
        .finish();
    let _ = res.add_cookie(&session::cookie(
        &id,
        state.dashboard.secure,
        session::LIFETIME,
    ));
    let _ = res.add_removal_cookie(&session::login_cookie("", state.dashboard.secure));
    Ok(res)
}

pub(super) async fn logout(
    signed_in: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Page> {
    super::csrf_form(&signed_in, &req, payload).await?;
    let sessions = state.sessions.clone();
    let id_hash = signed_in.0.id_hash.clone();
    // Signed out here even if the database does not answer now: the
    // cookie goes, and the row expires.
    if let Err(e) = blocking(move || sessions.end(&id_hash)).await {
        tracing::warn!(error = %e, "dashboard: cannot delete a signed-out session");
    }
    // No stream listening is not an error.
    let _ = state.dashboard.sessions_ended.send(signed_in.0.id_hash);
    let mut res = HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .finish();
    let _ = res.add_removal_cookie(&session::cookie(
        "",
        state.dashboard.secure,
        TimeDelta::zero(),
    ));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            safe_next("/conversations/3").as_deref(),
            Some("/conversations/3")
        );
        assert_eq!(safe_next("//evil.example").as_deref(), Some("/"));
        assert_eq!(safe_next("/\\evil.example").as_deref(), Some("/"));
        assert_eq!(safe_next("https://evil.example/").as_deref(), Some("/"));
        assert_eq!(safe_next("/\n/x"), None);
    }
}
