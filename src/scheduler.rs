//! The deadline scheduler: sleeps until the earliest `next_check_at` of any
//! conversation (one indexed lookup), or until a new event may have moved it
//! earlier, then runs one [`Service::due_work`] step. It never scans every
//! open conversation on a tick, so its cost does not grow with their number.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::service::Service;

/// Longest sleep without looking: another process on the same PostgreSQL may
/// have scheduled something earlier than this process knows of.
const MAX_IDLE: Duration = Duration::from_secs(2);

pub async fn run(service: Service, shutdown: CancellationToken) {
    let wake = service.scheduler_wake();
    let parallel = service.store().burst_steps();
    let mut burst = false;
    loop {
        // While a step runs its outcome is unknown: every commit wakes us
        // again, so one that lands during the step is not slept through.
        service.set_scheduler_next_unknown();
        let now = service.now();
        let steps = if burst { parallel } else { 1 };
        let sleep = match run_steps(&service, now, steps).await {
            Ok(report) => {
                service.set_scheduler_next(report.next_check);
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
                    Some(next) => service.clock().until(next).min(MAX_IDLE),
                    None => MAX_IDLE,
                }
            }
            Err(e) => {
                burst = false;
                service.set_scheduler_next(Some(service.now()));
                tracing::error!(error = %e, "scheduler step failed; retrying");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = service.clock().moved() => {}
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
    service: &Service,
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
