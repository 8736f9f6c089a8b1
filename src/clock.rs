//! The one place that reads the system clock.
//!
//! Everything that needs "now" asks a [`Clock`]: the service, the scheduler,
//! the outbox worker, the mail sink and the HTTP handlers. Production uses
//! [`Clock::system`]; tests use [`Clock::manual`] and move it across
//! weekends, holidays and DST changes in microseconds, and the loops that
//! sleep until a due wake up when it moves ([`Clock::moved`]).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

#[derive(Clone)]
pub struct Clock(Arc<Source>);

enum Source {
    System,
    Manual {
        now: Mutex<DateTime<Utc>>,
        moved: Notify,
    },
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Source::System => f.write_str("Clock::system"),
            Source::Manual { .. } => write!(f, "Clock::manual({})", self.now()),
        }
    }
}

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(Source::System))
    }

    /// A clock that stands at `start` until moved.
    pub fn manual(start: DateTime<Utc>) -> Clock {
        Clock(Arc::new(Source::Manual {
            now: Mutex::new(start),
            moved: Notify::new(),
        }))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &*self.0 {
            Source::System => Utc::now(),
            Source::Manual { now, .. } => *now.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock to `t` (backwards too) and wakes every loop
    /// sleeping on [`Clock::moved`]. The system clock cannot be moved.
    pub fn set(&self, t: DateTime<Utc>) {
        match &*self.0 {
            Source::System => panic!("the system clock cannot be moved"),
            Source::Manual { now, moved } => {
                *now.lock().unwrap_or_else(|p| p.into_inner()) = t;
                moved.notify_waiters();
            }
        }
    }

    pub fn advance(&self, by: Duration) {
        self.set(self.now() + by);
    }

    /// Resolves when a manual clock is moved; never for the system clock.
    /// A loop that sleeps until an instant selects on this too, so a test
    /// that jumps the clock past the instant does not wait in real time.
    pub async fn moved(&self) {
        match &*self.0 {
            Source::System => std::future::pending().await,
            Source::Manual { moved, .. } => moved.notified().await,
        }
    }

    /// How long to sleep, in real time, until `t` by this clock.
    pub fn until(&self, t: DateTime<Utc>) -> std::time::Duration {
        (t - self.now())
            .to_std()
            .unwrap_or(std::time::Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_moved() {
        let t: DateTime<Utc> = "2026-12-24T08:00:00Z".parse().unwrap();
        let c = Clock::manual(t);
        assert_eq!(c.now(), t);
        c.advance(Duration::days(3));
        assert_eq!(c.now(), t + Duration::days(3));
        assert_eq!(c.until(t), std::time::Duration::ZERO);
        assert_eq!(
            c.until(t + Duration::days(3) + Duration::seconds(5)),
            std::time::Duration::from_secs(5)
        );
    }

    #[tokio::test]
    async fn moving_the_clock_wakes_a_sleeper() {
        let c = Clock::manual("2026-12-24T08:00:00Z".parse().unwrap());
        let sleeper = {
            let c = c.clone();
            tokio::spawn(async move { c.moved().await })
        };
        // Let the sleeper register before moving.
        tokio::task::yield_now().await;
        while !sleeper.is_finished() {
            c.advance(Duration::hours(1));
            tokio::task::yield_now().await;
        }
        sleeper.await.unwrap();
    }
}
