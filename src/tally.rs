//! The rebuild job of the compliance report's per-day summaries (README, "A
//! year of history"): every few seconds it takes the days marked stale and
//! makes each anew in its own short transaction
//! ([`Deadlines::rebuild_tally_day`]), newest first, until none is left.
//! Until then the report counts those days from their rows, so it is exact
//! whenever it is read; this job only keeps it fast.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::service::Deadlines;

/// Between two looks at the stale days.
const EVERY: Duration = Duration::from_secs(5);
/// Days per round; between rounds the job looks at the stop signal.
const ROUND: i64 = 50;

pub async fn run(service: Deadlines, shutdown: CancellationToken) {
    let svc = service.clone();
    match tokio::task::spawn_blocking(move || svc.remake_tally_if_rules_changed()).await {
        Ok(Ok(true)) => tracing::info!(
            rules = %crate::service::tally_rules(),
            "compliance summaries: made by other rules; every day is made anew"
        ),
        Ok(Ok(false)) => {}
        // The next start looks again; meanwhile the summaries stand.
        Ok(Err(e)) => tracing::error!(error = %e, "compliance summaries: rules not checked"),
        Err(e) => tracing::error!(error = %e, "compliance summaries: rules check panicked"),
    }
    loop {
        let started = Instant::now();
        let mut rebuilt = 0;
        loop {
            let svc = service.clone();
            match tokio::task::spawn_blocking(move || svc.rebuild_tally_days(ROUND)).await {
                Ok(Ok(round)) => {
                    rebuilt += round.rebuilt;
                    // Nothing rebuilt of a full round: the days are another keepword's
                    // (its rules differ) or another process's; look again later.
                    if round.found < ROUND as usize || round.rebuilt == 0 || shutdown.is_cancelled()
                    {
                        break;
                    }
                }
                // The days not rebuilt stay marked: the next look retries.
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "rebuilding the compliance summaries failed");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "rebuilding the compliance summaries panicked");
                    break;
                }
            }
        }
        if rebuilt > 0 {
            tracing::debug!(
                days = rebuilt,
                duration_ms = started.elapsed().as_millis() as u64,
                "compliance summaries rebuilt"
            );
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
    tracing::info!("compliance summary job stopped");
}
