//! Live changes between processes that share a PostgreSQL: the ids of the
//! conversations a commit touched travel on `NOTIFY`, and every process
//! `LISTEN`s. One connection sends and one listens, each on its own thread
//! (diesel is blocking). SQLite has one process: nothing travels.

use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use tokio_util::sync::CancellationToken;

use super::{DatabaseUrl, Store};

/// The PostgreSQL channel the ids travel on.
pub const CHANNEL: &str = "keepword_changes";

/// How often the listener looks for notifications (diesel cannot wait for
/// one): well under the second a row may take to change on screen.
const POLL: Duration = Duration::from_millis(50);

/// What the listener hears: conversation ids, or `None` after it lost and
/// regained its connection (anything may have changed meanwhile).
pub type Heard = Option<Vec<i64>>;

/// The two threads of a process's relay. Cancelling the token given to
/// [`Store::relay_changes`] stops both; [`Relay::join`] waits for them.
pub struct Relay {
    outgoing: mpsc::Sender<Vec<i64>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// Sends ids to every process (this one included, through its
    /// listener); gives them back when the sender has stopped.
    pub fn send(&self, ids: Vec<i64>) -> Result<(), Vec<i64>> {
        self.outgoing.send(ids).map_err(|e| e.0)
    }

    /// Waits for the threads (well under a second once stopped): a thread
    /// still inside libpq while the process tears down can crash the exit.
    pub fn join(self) {
        drop(self.outgoing);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

impl Store {
    /// Starts relaying changes between the processes sharing this database,
    /// handing what the listener hears to `heard`; `None` on SQLite, where
    /// one process owns the database and changes stay in it.
    pub fn relay_changes(
        &self,
        heard: impl Fn(Heard) + Send + 'static,
        stop: CancellationToken,
    ) -> Option<Relay> {
        let DatabaseUrl::Postgres(url) = &self.url else {
            return None;
        };
        let (tx, rx) = mpsc::channel::<Vec<i64>>();
        let mut threads = Vec::new();
        let (send_url, send_stop) = (url.clone(), stop.clone());
        match std::thread::Builder::new()
            .name("changes-notify".into())
            .spawn(move || notify_loop(&send_url, rx, &send_stop))
        {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "live updates: cannot start the sender"),
        }
        let listen_url = url.clone();
        match std::thread::Builder::new()
            .name("changes-listen".into())
            .spawn(move || listen_loop(&listen_url, &heard, &stop))
        {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "live updates: cannot start the listener"),
        }
        Some(Relay {
            outgoing: tx,
            threads,
        })
    }
}

fn connect(url: &str, stop: &CancellationToken) -> Option<PgConnection> {
    let mut wait = Duration::from_millis(200);
    while !stop.is_cancelled() {
        match PgConnection::establish(url) {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "live updates: cannot connect to PostgreSQL; retrying");
                let until = std::time::Instant::now() + wait;
                while std::time::Instant::now() < until && !stop.is_cancelled() {
                    std::thread::sleep(POLL);
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
    None
}

/// Sends what the commits of this process touched, coalescing what arrives
/// together into one notification (payloads stay under PostgreSQL's 8,000
/// bytes).
fn notify_loop(url: &str, rx: mpsc::Receiver<Vec<i64>>, stop: &CancellationToken) {
    let mut conn: Option<PgConnection> = None;
    while !stop.is_cancelled() {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(ids) => ids,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut ids = first;
        while let Ok(more) = rx.try_recv() {
            ids.extend(more);
        }
        ids.sort_unstable();
        ids.dedup();
        if conn.is_none() {
            conn = connect(url, stop);
        }
        let Some(c) = conn.as_mut() else { return };
        for chunk in ids.chunks(500) {
            let payload: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let sent = diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<diesel::sql_types::Text, _>(CHANNEL)
                .bind::<diesel::sql_types::Text, _>(payload.join(","))
                .execute(c);
            if let Err(e) = sent {
                tracing::warn!(error = %e, "live updates: NOTIFY failed; reconnecting");
                conn = None;
                break;
            }
        }
    }
}

/// Hands every notification on the channel to `heard`.
fn listen_loop(url: &str, heard: &impl Fn(Heard), stop: &CancellationToken) {
    let mut first = true;
    while !stop.is_cancelled() {
        let Some(mut conn) = connect(url, stop) else {
            return;
        };
        if let Err(e) = conn.batch_execute(&format!("LISTEN {CHANNEL}")) {
            tracing::warn!(error = %e, "live updates: LISTEN failed; retrying");
            std::thread::sleep(Duration::from_millis(500));
            continue;
        }
        if !first {
            // Whatever was committed while we were away: look again.
            heard(None);
        }
        first = false;
        'poll: while !stop.is_cancelled() {
            for n in conn.notifications_iter() {
                match n {
                    Ok(n) => {
                        let ids: Vec<i64> = n
                            .payload
                            .split(',')
                            .filter_map(|s| s.parse().ok())
                            .collect();
                        if !ids.is_empty() {
                            heard(Some(ids));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "live updates: lost the LISTEN connection");
                        break 'poll;
                    }
                }
            }
            std::thread::sleep(POLL);
        }
    }
}
