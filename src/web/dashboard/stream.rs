//! `GET /dashboard/stream`: Server-Sent Events. After each commit the ids
//! of the conversations it touched (`change`); every few seconds a `tick`,
//! so the page can say when it last heard from the server and notice a
//! dead connection. Ends when the server shuts down.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::stream;
use tokio::sync::broadcast::error::RecvError;

use super::{AppState, require};
use crate::service::ChangeSet;

/// How often an idle stream says it is alive.
pub const TICK: Duration = Duration::from_secs(5);

struct Sse {
    rx: tokio::sync::broadcast::Receiver<ChangeSet>,
    tick: tokio::time::Interval,
    stop: tokio_util::sync::CancellationToken,
    hello: bool,
}

fn event(name: &str, data: &str) -> web::Bytes {
    web::Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn change(ids: &[i64]) -> web::Bytes {
    event("change", &serde_json::json!({ "ids": ids }).to_string())
}

pub async fn stream(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    // A wallboard streams with its token; everyone else needs a session.
    if super::wall_allowed(&state, &req).is_err()
        && let Err(r) = require(&state, &req).await
    {
        return r;
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let s = Sse {
        rx: state.service.changes().subscribe(),
        tick,
        stop: state.stopping.clone(),
        hello: true,
    };
    let body = stream::unfold(s, |mut s| async move {
        if s.hello {
            s.hello = false;
            let at = chrono::Utc::now().to_rfc3339();
            let hello = format!("retry: 2000\nevent: hello\ndata: {{\"at\":\"{at}\"}}\n\n");
            return Some((Ok::<_, actix_web::Error>(web::Bytes::from(hello)), s));
        }
        tokio::select! {
            _ = s.stop.cancelled() => None,
            got = s.rx.recv() => match got {
                Ok(ids) => Some((Ok(change(&ids)), s)),
                // Missed some: tell the page to look at everything.
                Err(RecvError::Lagged(_)) => Some((Ok(change(&[])), s)),
                Err(RecvError::Closed) => None,
            },
            _ = s.tick.tick() => {
                let at = chrono::Utc::now().to_rfc3339();
                Some((Ok(event("tick", &format!("{{\"at\":\"{at}\"}}"))), s))
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}
