//! The outbox worker: a loop around one step (claim due rows, send them,
//! record each outcome), sleeping until the earliest pending row falls due,
//! an enqueuer wakes it, or shutdown.
//!
//! Several workers (processes) may share one PostgreSQL database: the claim
//! leases rows with `FOR UPDATE SKIP LOCKED` (see [`crate::store::outbox`]),
//! so each row is sent by one worker at a time. Sends of one batch run
//! concurrently, each bounded by a timeout well inside the lease, so a lease
//! cannot run out while its row is still being sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGauge, Opts};
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::smtp::EmailParts;
use super::{NotifyError, OutboxMessage, SmtpSender, WebhookSender};
use crate::clock::Clock;
use crate::config::SmtpSettings;
use crate::store::{AnyConnection, OutboxRow, Store, StoreError, outbox};

/// Tuning of the worker. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Rows claimed per step.
    pub batch_size: i64,
    /// How long a claimed row stays invisible to other claimers. Must exceed
    /// `send_timeout` by a margin, or a slow send could be claimed twice.
    pub lease: Duration,
    /// Upper bound of one send, whatever the transport's own timeouts.
    pub send_timeout: Duration,
    /// Back-off after the first failure; doubles per attempt.
    pub base_backoff: Duration,
    /// Longest back-off; also used at once for permanent failures.
    pub max_backoff: Duration,
    /// Longest sleep with nothing due. Rows enqueued by another process do
    /// not wake this one, so it looks at least this often.
    pub idle_poll: Duration,
    /// Pause after a step failed (database unreachable).
    pub error_pause: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            batch_size: 20,
            lease: Duration::from_secs(120),
            send_timeout: Duration::from_secs(45),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            idle_poll: Duration::from_secs(30),
            error_pause: Duration::from_secs(5),
        }
    }
}

/// The transports. `smtp` is `None` when the service runs without a mail
/// server; email rows then wait (and say why in `last_error`).
#[derive(Debug, Clone)]
pub struct Senders {
    pub smtp: Option<SmtpSender>,
    pub webhook: WebhookSender,
}

impl Senders {
    pub fn from_settings(smtp: &SmtpSettings) -> Result<Senders, NotifyError> {
        Ok(Senders {
            smtp: Some(SmtpSender::new(smtp)?),
            webhook: WebhookSender::new()?,
        })
    }

    /// Sends one decoded payload.
    pub async fn send(&self, message: &OutboxMessage) -> Result<(), NotifyError> {
        match message {
            OutboxMessage::Email {
                to,
                subject,
                text,
                html,
                headers,
                message_id,
            } => {
                let smtp = self.smtp.as_ref().ok_or(NotifyError::NoSmtp)?;
                smtp.send(EmailParts {
                    to,
                    subject,
                    text,
                    html: html.as_deref(),
                    headers,
                    message_id,
                })
                .await
            }
            OutboxMessage::Webhook { url, body } => self.webhook.send(url, body).await,
        }
    }
}

/// What one [`OutboxWorker::step`] did, and what is left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    pub claimed: usize,
    pub sent: usize,
    pub failed: usize,
    /// Unsent rows after the step (the `outbox_pending` gauge).
    pub pending: i64,
    /// When the earliest unsent row falls due (`None`: nothing pending).
    pub next_due: Option<DateTime<Utc>>,
}

#[derive(Clone)]
struct WorkerMetrics {
    pending: IntGauge,
    notifications: IntCounterVec,
}

impl WorkerMetrics {
    fn new() -> WorkerMetrics {
        WorkerMetrics {
            pending: IntGauge::new(
                "outbox_pending",
                "Notifications in the outbox not yet delivered (due or backing off; not those held for a contact's working hours or digest).",
            )
            .expect("valid metric"),
            notifications: IntCounterVec::new(
                Opts::new(
                    "notifications_total",
                    "Notification delivery attempts by kind (email, webhook) and result (sent, failed).",
                ),
                &["kind", "result"],
            )
            .expect("valid metric"),
        }
    }
}

pub struct OutboxWorker {
    store: Store,
    senders: Arc<Senders>,
    config: WorkerConfig,
    metrics: WorkerMetrics,
    clock: Clock,
}

impl OutboxWorker {
    pub fn new(store: Store, senders: Senders, mut config: WorkerConfig) -> OutboxWorker {
        // A lease shorter than a send would let a second worker claim a row
        // that is still on its way out.
        config.lease = config.lease.max(config.send_timeout * 2);
        config.batch_size = config.batch_size.max(1);
        OutboxWorker {
            store,
            senders: Arc::new(senders),
            config,
            metrics: WorkerMetrics::new(),
            clock: Clock::system(),
        }
    }

    /// Reads time from `clock` (tests pass a manual one).
    pub fn with_clock(mut self, clock: Clock) -> OutboxWorker {
        self.clock = clock;
        self
    }

    /// The production worker: SMTP from `[smtp]`, default tuning.
    pub fn from_settings(store: Store, smtp: &SmtpSettings) -> Result<OutboxWorker, NotifyError> {
        Ok(Self::new(
            store,
            Senders::from_settings(smtp)?,
            WorkerConfig::default(),
        ))
    }

    /// `outbox_pending` and `notifications_total`, for the app's registry
    /// (which adds the `keepword_` prefix). Clones share their values.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.metrics.pending.clone()),
            Box::new(self.metrics.notifications.clone()),
        ]
    }

    /// One round: claim the due rows, send them concurrently, record each
    /// outcome as soon as it is known, then refresh the backlog figures.
    /// `now` decides what is due; sends take real time, which is added to it
    /// for `sent_at` and for the start of a back-off.
    pub async fn step(&self, now: DateTime<Utc>) -> Result<StepReport, NotifyError> {
        let started = Instant::now();
        let lease_until = now + self.config.lease;
        let limit = self.config.batch_size;
        let rows = db(&self.store, move |c| {
            outbox::claim_due(c, now, lease_until, limit)
        })
        .await?;
        let mut report = StepReport {
            claimed: rows.len(),
            ..StepReport::default()
        };

        let mut tasks = tokio::task::JoinSet::new();
        for row in rows {
            let job = Delivery {
                store: self.store.clone(),
                senders: self.senders.clone(),
                config: self.config.clone(),
                metrics: self.metrics.clone(),
                now,
                started,
            };
            tasks.spawn(job.deliver(row));
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(true) => report.sent += 1,
                Ok(false) => report.failed += 1,
                // A panicking send loses nothing: its lease runs out and the
                // row is claimed again.
                Err(e) => {
                    tracing::error!(error = %e, "outbox delivery task failed");
                    report.failed += 1;
                }
            }
        }

        let (pending, next_due) = db(&self.store, move |c| outbox::backlog(c, now)).await?;
        self.metrics.pending.set(pending);
        report.pending = pending;
        report.next_due = next_due;
        Ok(report)
    }

    /// Steps until `shutdown`: after each step it sleeps until the earliest
    /// pending row is due, `wake` is notified (enqueuers call `notify_one`
    /// after their commit; a notification during a step is kept, not lost),
    /// or `idle_poll` passed. The step in hand is finished before exiting.
    pub async fn run(self, shutdown: CancellationToken, wake: Arc<Notify>) {
        tracing::info!("outbox worker started");
        while !shutdown.is_cancelled() {
            let pause = match self.step(self.clock.now()).await {
                Ok(r) => self.pause_after(&r, self.clock.now()),
                Err(e) => {
                    tracing::error!(error = %e, "outbox step failed");
                    self.config.error_pause
                }
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = self.clock.moved() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tracing::info!("outbox worker stopped");
    }

    fn pause_after(&self, r: &StepReport, now: DateTime<Utc>) -> Duration {
        if r.claimed as i64 >= self.config.batch_size {
            // A full batch: more rows are probably due right now.
            return Duration::ZERO;
        }
        match r.next_due {
            None => self.config.idle_poll,
            Some(due) => match (due - now).to_std() {
                Ok(d) => d.min(self.config.idle_poll),
                // Due yet not claimed: another process holds its lock and is
                // about to lease it. Look again shortly rather than spin.
                Err(_) if r.claimed == 0 => Duration::from_millis(100),
                Err(_) => Duration::ZERO,
            },
        }
    }
}

/// One claimed row on its way out; owns what its task needs.
struct Delivery {
    store: Store,
    senders: Arc<Senders>,
    config: WorkerConfig,
    metrics: WorkerMetrics,
    now: DateTime<Utc>,
    started: Instant,
}

impl Delivery {
    /// Sends one row and records the outcome; `true` if it was delivered.
    async fn deliver(self, row: OutboxRow) -> bool {
        let result = match serde_json::from_str::<OutboxMessage>(&row.payload) {
            Ok(message) => {
                let secs = self.config.send_timeout.as_secs();
                tokio::time::timeout(self.config.send_timeout, self.senders.send(&message))
                    .await
                    .unwrap_or(Err(NotifyError::Timeout {
                        what: "sending",
                        secs,
                    }))
            }
            Err(e) => Err(NotifyError::Payload {
                id: row.id,
                reason: e.to_string(),
            }),
        };
        let at = self.now + self.started.elapsed();
        let id = row.id;
        match result {
            Ok(()) => {
                self.metrics
                    .notifications
                    .with_label_values(&[row.kind.as_str(), "sent"])
                    .inc();
                tracing::info!(outbox.id = id, kind = %row.kind, attempts = row.attempts, "notification sent");
                self.record_sent(id, at).await;
                true
            }
            Err(error) => {
                self.metrics
                    .notifications
                    .with_label_values(&[row.kind.as_str(), "failed"])
                    .inc();
                let wait = if error.is_permanent() {
                    self.config.max_backoff
                } else {
                    backoff(
                        row.attempts,
                        self.config.base_backoff,
                        self.config.max_backoff,
                    )
                };
                let retry_at = at + wait;
                let message = error.to_string();
                tracing::warn!(
                    outbox.id = id,
                    kind = %row.kind,
                    attempts = row.attempts,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %message,
                    "notification not sent; will retry"
                );
                if let Err(e) = db(&self.store, move |c| {
                    outbox::mark_failed(c, id, retry_at, &message)
                })
                .await
                {
                    // The lease still ends, so the row is retried anyway.
                    tracing::error!(outbox.id = id, error = %e, "cannot record a failed send");
                }
                false
            }
        }
    }

    /// Marks the row sent. This write is all that stands between an accepted
    /// message and a duplicate after the lease, so it is retried briefly
    /// before giving up.
    async fn record_sent(&self, id: i64, at: DateTime<Utc>) {
        for attempt in 1..=3 {
            match db(&self.store, move |c| outbox::mark_delivered(c, id, at)).await {
                Ok(()) => return,
                Err(e) if attempt < 3 => {
                    tracing::warn!(outbox.id = id, error = %e, "cannot record a sent notification; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => tracing::error!(
                    outbox.id = id,
                    error = %e,
                    "delivered but not recorded: it will be sent again when its lease ends"
                ),
            }
        }
    }
}

/// Back-off before attempt `attempts + 1`: `base · 2^(attempts-1)`, capped at
/// `max`, with "equal jitter" (a random point in the upper half) so rows that
/// failed together (server down) do not all retry in the same instant.
pub fn backoff(attempts: i32, base: Duration, max: Duration) -> Duration {
    let exp = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

/// Runs a store call off the async threads (diesel is synchronous).
async fn db<T, F>(store: &Store, f: F) -> Result<T, NotifyError>
where
    T: Send + 'static,
    F: FnOnce(&mut AnyConnection) -> Result<T, StoreError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.with(f))
        .await
        .map_err(|e| NotifyError::Task(e.to_string()))?
        .map_err(NotifyError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(300);
        for _ in 0..200 {
            for (attempts, full) in [(1, 1_000u64), (2, 2_000), (3, 4_000), (9, 256_000)] {
                let d = backoff(attempts, base, max).as_millis() as u64;
                assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d} ms");
            }
            for attempts in [10, 11, 50, i32::MAX] {
                let d = backoff(attempts, base, max);
                assert!(d >= max / 2 && d <= max, "attempt {attempts}: {d:?}");
            }
            assert!(backoff(0, base, max) <= base);
        }
    }

    #[test]
    fn the_loop_sleeps_until_the_next_due_row() {
        let store = Store::open("sqlite::memory:").unwrap();
        let senders = Senders {
            smtp: None,
            webhook: WebhookSender::new().unwrap(),
        };
        let w = OutboxWorker::new(store, senders, WorkerConfig::default());
        let now: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let report = |claimed, next_due| StepReport {
            claimed,
            next_due,
            ..StepReport::default()
        };
        assert_eq!(w.pause_after(&report(20, None), now), Duration::ZERO);
        assert_eq!(
            w.pause_after(&report(0, None), now),
            Duration::from_secs(30)
        );
        let soon = now + Duration::from_secs(3);
        assert_eq!(
            w.pause_after(&report(1, Some(soon)), now),
            Duration::from_secs(3)
        );
        let late = now + Duration::from_secs(3_600);
        assert_eq!(
            w.pause_after(&report(1, Some(late)), now),
            Duration::from_secs(30)
        );
        let past = now - Duration::from_secs(1);
        assert_eq!(
            w.pause_after(&report(0, Some(past)), now),
            Duration::from_millis(100)
        );
    }
}
