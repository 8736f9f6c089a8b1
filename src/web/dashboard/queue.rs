//! `GET /` (the queue), its live fragment, and the wallboard (`/wall`),
//! which shows the same queue to a screen that holds a wall token.

use std::collections::BTreeMap;
use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{AppState, Page, WebError, encode, page, query};
use crate::service::{QueueFilter, QueueView};
use crate::web::auth::{SignedIn, Wallboard};
use crate::web::error::blocking;

/// `(client name, share)` of each client above the urgent-share limit.
pub(super) type Inflated = Vec<(String, String)>;

/// How long the queue's urgent-share banner is reused.
const INFLATION_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// The highest `page` asked for: far past any queue (100,000 open
/// conversations are 2,000 pages), far below where an offset overflows.
pub(super) const MAX_PAGE: i64 = 1_000_000;

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
            health: parse_named(&self.health)?,
            channel: nonempty(&self.channel),
            status: parse_named(&self.status)?,
        };
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

/// A filter's value as its type; empty is no filter, anything else unknown
/// is an error naming the values there are.
fn parse_named<T: std::str::FromStr<Err = crate::sla::ParseError>>(
    v: &Option<String>,
) -> Result<Option<T>, String> {
    match v.as_deref().filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e: crate::sla::ParseError| format!("{} {}", e.what, e.must_be())),
    }
}

fn bad_filter(message: String) -> Page {
    Page(WebError::BadRequest {
        heading: "Bad filter",
        message,
    })
}

fn parse_queue_query(req: &HttpRequest) -> Result<QueueQuery, Page> {
    query::<QueueQuery>(req, "Bad filter").map_err(|e| {
        bad_filter(format!(
            "The address has a filter this page does not know: {}",
            e.0
        ))
    })
}

async fn load_queue(state: &AppState, q: &QueueQuery) -> Result<QueueView, Page> {
    let filter = q.filter().map_err(bad_filter)?;
    let (reads, p) = (state.reads.clone(), q.page.unwrap_or(1));
    let now = state.reads.now();
    Ok(blocking(move || reads.queue(&filter, p, now)).await?)
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

pub(super) async fn queue(
    signed_in: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let q = parse_queue_query(&req)?;
    let view = load_queue(&state, &q).await?;
    let mut live_q = q.link(&[]);
    if let Some(p) = q.page {
        live_q.push_str(&format!("page={p}"));
    }
    let ctx = queue_context(&state, &q, &view, "/");
    let inflated = inflated_clients(&state).await;
    Ok(page(
        &state,
        StatusCode::OK,
        "queue.html",
        context! {
            ..ctx,
            ..context! {
                signed_in => true, csrf => signed_in.0.csrf, nav => "queue", inflated,
                live => context! { url => format!("/dashboard/queue?{live_q}"), stream => "/dashboard/stream", ids => "*" },
            }
        },
    ))
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
    let (reads, now) = (state.reads.clone(), state.reads.now());
    let list = match blocking(move || reads.shares_above_limit(now)).await {
        Ok(above) => above
            .iter()
            .map(|c| (c.client_name.clone(), format!("{:.0}%", c.share * 100.0)))
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

/// The queue's rows alone, which the page's script swaps in on a change.
pub(super) async fn fragment(
    _: SignedIn,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    rows(&state, &req, "/").await
}

async fn rows(state: &AppState, req: &HttpRequest, base: &str) -> Result<HttpResponse, Page> {
    let q = parse_queue_query(req)?;
    let view = load_queue(state, &q).await?;
    let ctx = queue_context(state, &q, &view, base);
    Ok(page(state, StatusCode::OK, "queue_rows.html", ctx))
}

pub(super) async fn wall(
    wall: Wallboard,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    let q = parse_queue_query(&req)?;
    let view = load_queue(&state, &q).await?;
    let ctx = queue_context(&state, &q, &view, "/wall");
    let t = encode(&wall.token);
    Ok(page(
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
    ))
}

pub(super) async fn wall_fragment(
    _: Wallboard,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Page> {
    rows(&state, &req, "/wall").await
}
