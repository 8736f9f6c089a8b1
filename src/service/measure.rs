//! Measuring the timers stored before `timers.business_seconds` existed
//! (migration `2026-12-07-000052_timer_business_seconds`): the refresh
//! stores a reply's business seconds when it settles it, and this walk does
//! the same for the older ones, a small batch per transaction, as
//! retention does. Until it is through, the reports tally rows.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::dashboard::{Calendars, business_between};
use super::retention::until_done;
use super::*;

/// Timers per transaction: a writer waiting behind one waits milliseconds.
pub const MEASURE_BATCH: i64 = 2_000;

/// What a walk (or one batch of it) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MeasureReport {
    /// Timers given their business seconds.
    pub measured: usize,
    /// No older timer is left to measure.
    pub done: bool,
}

impl Deadlines {
    /// One batch of the walk, in its own transaction.
    pub fn measure_settled_batch(
        &self,
        batch: i64,
        now: DateTime<Utc>,
    ) -> Result<MeasureReport, ServiceError> {
        let (rows, reached) = self
            .store()
            .with(|conn| store::unmeasured_replies(conn, batch))?;
        // A batch's thousands of timers share a few calendars. Measured
        // outside the transaction that stores them: looking a calendar up
        // reads the contract version on a connection of its own.
        let mut calendars = Calendars::default();
        let measured: Vec<(i64, Option<i64>)> = rows
            .iter()
            .map(|t| {
                let cal = calendars.of(&self.core, t);
                (
                    t.id,
                    business_between(cal.as_ref(), t.started_at, t.stopped_at),
                )
            })
            .collect();
        self.store().transaction(|conn| {
            store::save_measured(conn, &measured, reached, now)?;
            let done = !store::business_seconds_pending(conn)?;
            Ok::<_, ServiceError>(MeasureReport {
                measured: measured.iter().filter(|m| m.1.is_some()).count(),
                done,
            })
        })
    }

    /// The whole walk: batches until it is through, `pause` between them,
    /// stopping early when `stop` says so (shutdown; the next start goes on
    /// from there).
    pub fn measure_settled(
        &self,
        pause: Duration,
        stop: impl Fn() -> bool,
    ) -> Result<MeasureReport, ServiceError> {
        let mut total = MeasureReport::default();
        total.done = until_done(pause, stop, || {
            let r = self.measure_settled_batch(MEASURE_BATCH, self.now())?;
            total.measured += r.measured;
            Ok(r.done)
        })?;
        Ok(total)
    }
}
