//! Retention (README, "Retention"): message bodies, raw mail and rejected
//! input older than `[retention] bodies` are removed, a small batch per
//! transaction. The SLA record — conversations, messages' instants and
//! directions, timers, fired steps, subjects — is not touched, so the
//! compliance figures of any period read the same before and after.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::*;
use crate::config::Days;

/// Rows per retention transaction: small enough that a writer waiting
/// behind one (SQLite has one) waits a few milliseconds.
pub const RETENTION_BATCH: i64 = 500;

/// What a retention run (or one batch of it) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Message bodies emptied, with their raw mail.
    pub bodies: usize,
    /// Rejected inputs deleted.
    pub rejected: usize,
    /// Nothing older than the cutoff is left.
    pub done: bool,
}

impl Deadlines {
    /// One batch: at most `batch` bodies and `batch` rejected inputs older
    /// than `days` before `now`, each in its own transaction.
    pub fn retention_batch(
        &self,
        days: Days,
        now: DateTime<Utc>,
        batch: i64,
    ) -> Result<RetentionReport, ServiceError> {
        let cutoff = now - chrono::Duration::days(i64::from(days.get()));
        let store = self.store();
        let bodies =
            store.transaction(|c| store::remove_old_bodies(c, cutoff, days.get(), batch, now))?;
        self.metrics()
            .retention_deleted
            .with_label_values(&["message_bodies"])
            .inc_by(bodies.removed as u64);
        let rejected = store.transaction(|c| store::remove_old_rejected(c, cutoff, batch))?;
        self.metrics()
            .retention_deleted
            .with_label_values(&["rejected_input"])
            .inc_by(rejected.removed as u64);
        Ok(RetentionReport {
            bodies: bodies.removed,
            rejected: rejected.removed,
            done: bodies.done && rejected.done,
        })
    }

    /// A whole run: batches until nothing older is left, `pause` between
    /// them so that other writers get their turn, stopping early when
    /// `stop` says so (shutdown).
    pub fn apply_retention(
        &self,
        days: Days,
        now: DateTime<Utc>,
        pause: Duration,
        stop: impl Fn() -> bool,
    ) -> Result<RetentionReport, ServiceError> {
        let mut total = RetentionReport::default();
        loop {
            let r = self.retention_batch(days, now, RETENTION_BATCH)?;
            total.bodies += r.bodies;
            total.rejected += r.rejected;
            if r.done {
                total.done = true;
                return Ok(total);
            }
            if stop() {
                return Ok(total);
            }
            std::thread::sleep(pause);
        }
    }
}
