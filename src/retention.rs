//! The daily retention job (README, "Retention"): at start and then once a
//! day of the service's clock, [`Deadlines::apply_retention`] removes what is
//! older than `[retention] bodies`, a small batch at a time with a pause
//! between batches, so ingest and pages never wait behind it for long.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Days;
use crate::service::Deadlines;

/// Between two runs.
const EVERY: chrono::Duration = chrono::Duration::days(1);
/// Between two batches of a run: the writer is free for others meanwhile.
const PAUSE: Duration = Duration::from_millis(20);
/// Longest sleep without looking at the clock again.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

pub async fn run(service: Deadlines, days: Days, shutdown: CancellationToken) {
    let mut next = service.now();
    loop {
        if service.now() >= next {
            let now = service.now();
            let (svc, stop) = (service.clone(), shutdown.clone());
            let started = std::time::Instant::now();
            let outcome = tokio::task::spawn_blocking(move || {
                svc.apply_retention(days, now, PAUSE, || stop.is_cancelled())
            })
            .await;
            match outcome {
                Ok(Ok(r)) => {
                    if r.bodies + r.rejected > 0 {
                        tracing::info!(
                            bodies = r.bodies,
                            rejected = r.rejected,
                            days = days.get(),
                            duration_ms = started.elapsed().as_millis() as u64,
                            "retention removed bodies older than the retention period"
                        );
                    }
                    next = now + EVERY;
                }
                // What the batches before committed stands; the next try
                // continues from there.
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "retention run failed; retrying in an hour");
                    next = now + chrono::Duration::hours(1);
                }
                Err(e) => {
                    tracing::error!(error = %e, "retention run panicked; retrying in an hour");
                    next = now + chrono::Duration::hours(1);
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = service.clock().moved() => {}
            _ = tokio::time::sleep(service.clock().until(next).min(MAX_SLEEP)) => {}
        }
    }
    tracing::info!("retention job stopped");
}
