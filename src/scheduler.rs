//! The deadline scheduler: sleeps until the earliest `next_check_at` of any
//! conversation (one indexed lookup), or until a new event may have moved it
//! earlier, then runs one [`Deadlines::due_work`] step. It never scans every
//! open conversation on a tick, so its cost does not grow with their number.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::service::Deadlines;

/// When the scheduler will look next, and how to wake it sooner. A commit
/// wakes it only when it wrote an earlier check: waking it after every
/// event would cost a scheduler transaction per event for nothing.
#[derive(Clone)]
pub struct Plan {
    inner: Arc<PlanInner>,
}

struct PlanInner {
    /// µs since the epoch. `i64::MAX` while there is nothing to wait for,
    /// and while a step runs (its outcome is unknown): then every commit
    /// with a check wakes it again, so one that lands during the step is
    /// not slept through.
    next: AtomicI64,
    wake: Notify,
}

impl Plan {
    pub fn new() -> Plan {
        Plan {
            inner: Arc::new(PlanInner {
                next: AtomicI64::new(i64::MAX),
                wake: Notify::new(),
            }),
        }
    }

    /// A commit wrote `next_check`: wake the scheduler if that is earlier
    /// than it planned to look.
    pub fn wake_if_earlier(&self, next_check: Option<DateTime<Utc>>) {
        let planned = self.inner.next.load(Ordering::SeqCst);
        if next_check.is_some_and(|t| t.timestamp_micros() < planned) {
            self.inner.wake.notify_one();
        }
    }

    /// The scheduler will look at `at` (`None`: nothing pending).
    pub fn looking_at(&self, at: Option<DateTime<Utc>>) {
        self.inner.next.store(
            at.map_or(i64::MAX, |t| t.timestamp_micros()),
            Ordering::SeqCst,
        );
    }

    /// A step is running.
    fn stepping(&self) {
        self.inner.next.store(i64::MAX, Ordering::SeqCst);
    }

    async fn woken(&self) {
        self.inner.wake.notified().await
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan::new()
    }
}

/// Longest sleep without looking: another process on the same PostgreSQL may
/// have scheduled something earlier than this process knows of.
const MAX_IDLE: Duration = Duration::from_secs(2);

pub async fn run(service: Deadlines, plan: Plan, shutdown: CancellationToken) {
    let parallel = service.burst_steps();
    let clock = service.clock().clone();
    let mut burst = false;
    loop {
        // While a step runs its outcome is unknown: every commit wakes us
        // again, so one that lands during the step is not slept through.
        plan.stepping();
        let now = service.now();
        let steps = if burst { parallel } else { 1 };
        let sleep = match run_steps(&service, now, steps).await {
            Ok(report) => {
                plan.looking_at(report.next_check);
                if report.fired > 0 {
                    tracing::info!(
                        conversations = report.conversations,
                        fired = report.fired,
                        "scheduler fired due steps"
                    );
                }
                burst = report.full;
                match report.next_check {
                    // A full batch may have left more due work behind.
                    _ if report.full => Duration::ZERO,
                    Some(next) => clock.until(next).min(MAX_IDLE),
                    None => MAX_IDLE,
                }
            }
            Err(e) => {
                burst = false;
                plan.looking_at(Some(service.now()));
                tracing::error!(error = %e, "scheduler step failed; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = plan.woken() => {}
            _ = clock.moved() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }
    tracing::info!("scheduler stopped");
}

/// What `steps` concurrent scheduler steps did together.
struct Steps {
    conversations: usize,
    fired: usize,
    /// Some step took a full batch: more may be due right now.
    full: bool,
    next_check: Option<chrono::DateTime<chrono::Utc>>,
}

async fn run_steps(
    service: &Deadlines,
    now: chrono::DateTime<chrono::Utc>,
    steps: usize,
) -> Result<Steps, String> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..steps {
        let svc = service.clone();
        tasks.spawn_blocking(move || svc.due_work(now));
    }
    let mut all = Steps {
        conversations: 0,
        fired: 0,
        full: false,
        next_check: None,
    };
    let mut error = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(r)) => {
                all.conversations += r.conversations;
                all.fired += r.fired;
                all.full |= r.conversations >= crate::service::DUE_BATCH as usize;
                all.next_check = match (all.next_check, r.next_check) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            // What the other steps committed stands; this one is retried.
            Ok(Err(e)) => error = Some(e.to_string()),
            Err(e) => error = Some(format!("panicked: {e}")),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(all),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOON: Duration = Duration::from_millis(200);

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_commit_during_a_step_or_before_the_first_wakes_the_scheduler() {
        let plan = Plan::new();
        plan.wake_if_earlier(Some(at("2026-12-07T10:00:00Z")));
        tokio::time::timeout(SOON, plan.woken())
            .await
            .expect("before the first step, any check wakes it");
        plan.stepping();
        plan.wake_if_earlier(Some(at("2030-01-01T00:00:00Z")));
        tokio::time::timeout(SOON, plan.woken())
            .await
            .expect("during a step, any check wakes it");
    }

    #[tokio::test]
    async fn only_an_earlier_check_wakes_a_sleeping_scheduler() {
        let plan = Plan::new();
        plan.looking_at(Some(at("2026-12-07T10:00:00Z")));
        plan.wake_if_earlier(Some(at("2026-12-07T11:00:00Z")));
        plan.wake_if_earlier(None);
        assert!(
            tokio::time::timeout(SOON, plan.woken()).await.is_err(),
            "a later check lets it sleep"
        );
        plan.wake_if_earlier(Some(at("2026-12-07T09:59:00Z")));
        tokio::time::timeout(SOON, plan.woken())
            .await
            .expect("an earlier check wakes it");
        plan.looking_at(None);
        plan.wake_if_earlier(Some(at("2030-01-01T00:00:00Z")));
        tokio::time::timeout(SOON, plan.woken())
            .await
            .expect("with nothing planned, any check wakes it");
    }
}
