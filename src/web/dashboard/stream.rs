//! `GET /dashboard/stream`: Server-Sent Events. After each commit the ids
//! of the conversations it touched (`change`); every few seconds a `tick`,
//! so the page can say when it last heard from the server and notice a
//! dead connection. Ends when the server shuts down, and a signed-in
//! user's stream when the session ends: at once on a sign-out in this
//! process or at its expiry, within a tick on a sign-out in another.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use futures::stream;
use tokio::sync::broadcast::error::RecvError;

use super::{AppState, Page};
use crate::service::ChangeSet;
use crate::service::sessions::Session as SessionRow;
use crate::web::auth::Viewer;

/// How often an idle stream says it is alive.
pub const TICK: Duration = Duration::from_secs(5);

struct Sse {
    rx: tokio::sync::broadcast::Receiver<ChangeSet>,
    tick: tokio::time::Interval,
    stop: tokio_util::sync::CancellationToken,
    clock: crate::clock::Clock,
    hello: bool,
    /// The session the stream lives by; `None` for a wallboard.
    session: Option<Session>,
}

struct Session {
    state: web::Data<AppState>,
    id_hash: String,
    expires: tokio::time::Instant,
    ended: tokio::sync::broadcast::Receiver<String>,
}

impl Session {
    fn new(state: &web::Data<AppState>, row: SessionRow) -> Session {
        let left = (row.expires_at - state.reads.now())
            .to_std()
            .unwrap_or_default();
        Session {
            state: state.clone(),
            ended: state.dashboard.sessions_ended.subscribe(),
            expires: tokio::time::Instant::now() + left,
            id_hash: row.id_hash,
        }
    }

    /// Resolves when this session is signed out here or expires.
    async fn ended(&mut self) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(self.expires) => return,
                got = self.ended.recv() => match got {
                    Ok(h) if h == self.id_hash => return,
                    Ok(_) => {}
                    // Which sessions ended is lost: the next tick asks the
                    // database.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                },
            }
        }
    }

    /// Still signed in, as the database says (a sign-out in another
    /// process, or the clock moved past the expiry).
    async fn live(&self) -> bool {
        let (sessions, h) = (self.state.sessions.clone(), self.id_hash.clone());
        // A database that does not answer keeps the stream: the page's
        // reloads check the session anyway.
        !matches!(web::block(move || sessions.live(&h)).await, Ok(Ok(false)))
    }
}

async fn session_ended(session: &mut Option<Session>) {
    match session {
        Some(s) => s.ended().await,
        None => std::future::pending().await,
    }
}

fn event(name: &str, data: &str) -> web::Bytes {
    web::Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn change(ids: &[i64]) -> web::Bytes {
    event("change", &serde_json::json!({ "ids": ids }).to_string())
}

pub async fn stream(viewer: Viewer, state: web::Data<AppState>) -> Result<HttpResponse, Page> {
    // A wallboard streams with its token; everyone else needs a session.
    let session = match viewer {
        Viewer::Wall => None,
        Viewer::Team(row) => Some(Session::new(&state, row)),
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.reset();
    let s = Sse {
        rx: state.changes.subscribe(),
        tick,
        stop: state.stopping.clone(),
        clock: state.reads.clock().clone(),
        hello: true,
        session,
    };
    let body = stream::unfold(s, |mut s| async move {
        if s.hello {
            s.hello = false;
            let at = s.clock.now().to_rfc3339();
            let hello = format!("retry: 2000\nevent: hello\ndata: {{\"at\":\"{at}\"}}\n\n");
            return Some((Ok::<_, actix_web::Error>(web::Bytes::from(hello)), s));
        }
        tokio::select! {
            _ = s.stop.cancelled() => None,
            _ = session_ended(&mut s.session) => None,
            got = s.rx.recv() => match got {
                Ok(ids) => Some((Ok(change(&ids)), s)),
                // Missed some: tell the page to look at everything.
                Err(RecvError::Lagged(_)) => Some((Ok(change(&[])), s)),
                Err(RecvError::Closed) => None,
            },
            _ = s.tick.tick() => {
                if let Some(session) = &s.session
                    && !session.live().await
                {
                    return None;
                }
                let at = s.clock.now().to_rfc3339();
                Some((Ok(event("tick", &format!("{{\"at\":\"{at}\"}}"))), s))
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
