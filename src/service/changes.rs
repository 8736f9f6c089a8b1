//! What changed, for live pages: after each commit the service publishes the
//! ids of the conversations it touched; the dashboard's event stream passes
//! them on. With PostgreSQL the ids travel through `NOTIFY`, so a browser
//! connected to one keepword process hears of a commit made by another.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use tokio::sync::broadcast;

/// The PostgreSQL channel the ids travel on.
pub const CHANNEL: &str = "keepword_changes";

/// How often the listener looks for notifications: well under the second a
/// row may take to change on screen.
const POLL: Duration = Duration::from_millis(50);

/// Conversation ids; empty means "anything may have changed" (after the
/// listener lost and regained its connection).
pub type ChangeSet = Arc<[i64]>;

/// Cheap to clone. Dropping the last clone stops its threads.
#[derive(Clone)]
pub struct Changes {
    inner: Arc<Inner>,
}

struct Inner {
    local: broadcast::Sender<ChangeSet>,
    /// To the `NOTIFY` thread (PostgreSQL); `None`: in-process only.
    outgoing: Option<mpsc::Sender<Vec<i64>>>,
    stop: Arc<AtomicBool>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Default for Changes {
    fn default() -> Self {
        Changes::local()
    }
}

impl Changes {
    /// In this process only (SQLite: one process owns the database).
    pub fn local() -> Changes {
        let (local, _) = broadcast::channel(1024);
        Changes {
            inner: Arc::new(Inner {
                local,
                outgoing: None,
                stop: Arc::new(AtomicBool::new(false)),
                threads: Default::default(),
            }),
        }
    }

    /// Through PostgreSQL's `LISTEN`/`NOTIFY` on `url`: one connection sends,
    /// one listens, each on its own thread (diesel is blocking).
    pub fn postgres(url: &str) -> Changes {
        let (local, _) = broadcast::channel(1024);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Vec<i64>>();
        let mut threads = Vec::new();
        {
            let (url, stop) = (url.to_string(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("changes-notify".into())
                    .spawn(move || notify_loop(&url, rx, &stop))
                    .expect("spawning a thread"),
            );
        }
        {
            let (url, stop, local) = (url.to_string(), stop.clone(), local.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("changes-listen".into())
                    .spawn(move || listen_loop(&url, &local, &stop))
                    .expect("spawning a thread"),
            );
        }
        Changes {
            inner: Arc::new(Inner {
                local,
                outgoing: Some(tx),
                stop,
                threads: std::sync::Mutex::new(threads),
            }),
        }
    }

    /// After a commit: these conversations changed.
    pub fn committed(&self, ids: Vec<i64>) {
        if ids.is_empty() {
            return;
        }
        match &self.inner.outgoing {
            Some(tx) => {
                if tx.send(ids.clone()).is_err() {
                    let _ = self.inner.local.send(ids.into());
                }
            }
            None => {
                // No subscriber is not an error: nobody is looking.
                let _ = self.inner.local.send(ids.into());
            }
        }
    }

    /// Stops the PostgreSQL threads and waits for them (well under a
    /// second). At shutdown, before the process exits: a thread still inside
    /// libpq while the process tears down its libraries can crash the exit.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let threads =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ChangeSet> {
        self.inner.local.subscribe()
    }

    /// Streams connected now (the fan-out benchmark waits for them).
    pub fn subscribers(&self) -> usize {
        self.inner.local.receiver_count()
    }
}

fn connect(url: &str, stop: &AtomicBool) -> Option<PgConnection> {
    let mut wait = Duration::from_millis(200);
    while !stop.load(Ordering::SeqCst) {
        match PgConnection::establish(url) {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "live updates: cannot connect to PostgreSQL; retrying");
                let until = std::time::Instant::now() + wait;
                while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
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
fn notify_loop(url: &str, rx: mpsc::Receiver<Vec<i64>>, stop: &AtomicBool) {
    let mut conn: Option<PgConnection> = None;
    while !stop.load(Ordering::SeqCst) {
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

/// Passes every notification on the channel to this process's streams.
fn listen_loop(url: &str, local: &broadcast::Sender<ChangeSet>, stop: &AtomicBool) {
    let mut first = true;
    while !stop.load(Ordering::SeqCst) {
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
            let _ = local.send(Arc::from(Vec::new()));
        }
        first = false;
        'poll: while !stop.load(Ordering::SeqCst) {
            for n in conn.notifications_iter() {
                match n {
                    Ok(n) => {
                        let ids: Vec<i64> = n
                            .payload
                            .split(',')
                            .filter_map(|s| s.parse().ok())
                            .collect();
                        if !ids.is_empty() {
                            let _ = local.send(ids.into());
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
