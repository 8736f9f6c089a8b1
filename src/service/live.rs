//! What changed, for live pages: after each commit the service publishes the
//! ids of the conversations it touched; the dashboard's event stream passes
//! them on. Where the store relays changes between processes (PostgreSQL),
//! a browser connected to one keepword process hears of a commit made by
//! another.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::{Relay, Store};

/// Conversation ids; empty means "anything may have changed" (after the
/// relay lost and regained its connection).
pub type ChangeSet = Arc<[i64]>;

/// Cheap to clone. Dropping the last clone stops the relay.
#[derive(Clone)]
pub struct Changes {
    inner: Arc<Inner>,
}

struct Inner {
    local: broadcast::Sender<ChangeSet>,
    /// To every process sharing the database; `None`: in-process only.
    relay: std::sync::Mutex<Option<Relay>>,
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Default for Changes {
    fn default() -> Self {
        Changes::local()
    }
}

impl Changes {
    /// In this process only.
    pub fn local() -> Changes {
        let (local, _) = broadcast::channel(1024);
        Changes::with_relay(local, None, CancellationToken::new())
    }

    /// Through whatever the store relays between processes (PostgreSQL's
    /// `LISTEN`/`NOTIFY`), else in this process only.
    pub fn for_store(store: &Store) -> Changes {
        let (local, _) = broadcast::channel(1024);
        let stop = CancellationToken::new();
        let heard = {
            let local = local.clone();
            move |ids: Option<Vec<i64>>| {
                // No subscriber is not an error: nobody is looking.
                let _ = local.send(Arc::from(ids.unwrap_or_default()));
            }
        };
        let relay = store.relay_changes(heard, stop.clone());
        Changes::with_relay(local, relay, stop)
    }

    fn with_relay(
        local: broadcast::Sender<ChangeSet>,
        relay: Option<Relay>,
        stop: CancellationToken,
    ) -> Changes {
        Changes {
            inner: Arc::new(Inner {
                local,
                relay: std::sync::Mutex::new(relay),
                stop,
            }),
        }
    }

    /// After a commit: these conversations changed.
    pub fn committed(&self, ids: Vec<i64>) {
        if ids.is_empty() {
            return;
        }
        let unsent = match self.relay().as_ref() {
            // Heard back through the listener, like every other process.
            Some(relay) => relay.send(ids).err(),
            None => Some(ids),
        };
        if let Some(ids) = unsent {
            let _ = self.inner.local.send(ids.into());
        }
    }

    /// Stops the relay and waits for it, at shutdown before the process
    /// exits.
    pub fn stop(&self) {
        self.inner.stop.cancel();
        if let Some(relay) = self.relay().take() {
            relay.join();
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ChangeSet> {
        self.inner.local.subscribe()
    }

    /// Streams connected now (the fan-out benchmark waits for them).
    pub fn subscribers(&self) -> usize {
        self.inner.local.receiver_count()
    }

    fn relay(&self) -> std::sync::MutexGuard<'_, Option<Relay>> {
        self.inner.relay.lock().unwrap_or_else(|p| p.into_inner())
    }
}
