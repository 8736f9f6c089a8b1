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
    loop {
        // While a step runs its outcome is unknown: every commit wakes us
        // again, so one that lands during the step is not slept through.
        service.set_scheduler_next_unknown();
        let svc = service.clone();
        let now = service.now();
        let sleep = match tokio::task::spawn_blocking(move || svc.due_work(now)).await {
            Ok(Ok(report)) => {
                service.set_scheduler_next(report.next_check);
                if report.fired > 0 {
                    tracing::info!(
                        conversations = report.conversations,
                        fired = report.fired,
                        "scheduler fired due steps"
                    );
                }
                match report.next_check {
                    // A full batch may have left more due work behind.
                    _ if report.conversations >= crate::service::DUE_BATCH as usize => {
                        Duration::ZERO
                    }
                    Some(next) => service.clock().until(next).min(MAX_IDLE),
                    None => MAX_IDLE,
                }
            }
            Ok(Err(e)) => {
                service.set_scheduler_next(Some(service.now()));
                tracing::error!(error = %e, "scheduler step failed; retrying");
                Duration::from_secs(1)
            }
            Err(e) => {
                service.set_scheduler_next(Some(service.now()));
                tracing::error!(error = %e, "scheduler step panicked; retrying");
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
