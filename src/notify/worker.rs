//! The outbox worker: a loop around one step (claim due rows, send them,
//! record each outcome), sleeping until the earliest pending row falls due,
//! an enqueuer wakes it, or shutdown.
//!
//! Several workers (processes) may share one PostgreSQL database: the claim
//! leases rows with `FOR UPDATE SKIP LOCKED` (see [`crate::store::outbox`]),
//! so each row is sent by one worker at a time.
//!
//! Dues come in bursts (an opening hour, 17:00, a batch import), so a step
//! claims a large batch in one transaction, sends it concurrently with at
//! most `per_receiver` sends in flight to any one receiver (a webhook's
//! scheme, host and port; the SMTP server), and records outcomes in batches
//! (one UPDATE for many delivered rows) as they come in. A lease cannot run
//! out while its row is still being sent: a send must start within
//! `send_timeout` of the claim and ends within `send_timeout` of its start,
//! and the lease is at least twice that. A row still waiting for its
//! receiver when its start time is over is given back unattempted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGauge, Opts};
use rand::Rng;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::smtp::EmailParts;
use super::{NotifyError, OutboxMessage, SmtpSender, WebhookSender};
use crate::clock::Clock;
use crate::config::Settings;
use crate::store::{AnyConnection, OutboxRow, Store, StoreError, outbox};

/// Tuning of the worker. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Rows claimed per step (one transaction).
    pub batch_size: i64,
    /// Sends in flight at once to one receiver: a webhook's scheme, host and
    /// port, or the SMTP server. What a receiver sees from this process; a
    /// burst to one receiver is spread over this many connections.
    pub per_receiver: usize,
    /// How long a claimed row stays invisible to other claimers. Must exceed
    /// `send_timeout` by a margin, or a slow send could be claimed twice.
    pub lease: Duration,
    /// Upper bound of one send, whatever the transport's own timeouts.
    pub send_timeout: Duration,
    /// Back-off after the first failure; doubles per attempt.
    pub base_backoff: Duration,
    /// Longest back-off; also used at once while a setting is missing (no
    /// SMTP server, no Slack token).
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
            batch_size: 200,
            per_receiver: 16,
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
    /// `None` without `[slack]`: Slack rows wait and say why.
    pub slack: Option<super::SlackSender>,
}

impl Senders {
    pub fn from_settings(settings: &Settings) -> Result<Senders, NotifyError> {
        let endpoints = super::Endpoints {
            pagerduty_url: settings.pagerduty_url.clone(),
            opsgenie_url: settings.opsgenie_url.clone(),
            signing_key: settings
                .webhooks
                .signing_key()
                .map_err(NotifyError::Invalid)?,
        };
        Ok(Senders {
            smtp: Some(SmtpSender::new(&settings.smtp)?),
            webhook: WebhookSender::new()?.with_endpoints(endpoints),
            slack: settings
                .slack
                .as_ref()
                .map(super::SlackSender::new)
                .transpose()?,
        })
    }

    /// Sends one decoded payload; `id` is its outbox row's.
    pub async fn send(&self, message: &OutboxMessage, id: i64) -> Result<(), NotifyError> {
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
            OutboxMessage::Webhook {
                url,
                body,
                webhook_id,
            } => {
                let fallback = format!("msg_outbox_{id}");
                let webhook_id = webhook_id.as_deref().unwrap_or(&fallback);
                self.webhook.send(url, body, webhook_id).await
            }
            OutboxMessage::Teams { url, body } => self.webhook.send_teams(url, body).await,
            OutboxMessage::PagerDuty { event } => self.webhook.send_pagerduty(event).await,
            OutboxMessage::Opsgenie {
                key,
                alias,
                close,
                body,
            } => self.webhook.send_opsgenie(key, alias, *close, body).await,
            OutboxMessage::Slack {
                channel,
                thread_ts,
                text,
            } => {
                let slack = self.slack.as_ref().ok_or(NotifyError::NoSlack)?;
                slack.post(channel, thread_ts, text).await
            }
        }
    }
}

/// What one [`OutboxWorker::step`] did, and what is left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    pub claimed: usize,
    pub sent: usize,
    /// Failed and due again (after a back-off or the receiver's
    /// `Retry-After`).
    pub failed: usize,
    /// Refused for good by the receiver: parked, not retried.
    pub refused: usize,
    /// Claimed but never attempted: the receiver stayed busy until the send
    /// could no longer finish inside the lease. Due again at once.
    pub released: usize,
    /// Unsent rows after the step (the `outbox_pending` gauge).
    pub pending: i64,
    /// When the earliest unsent row falls due (`None`: nothing pending).
    pub next_due: Option<DateTime<Utc>>,
}

#[derive(Clone)]
struct WorkerMetrics {
    pending: IntGauge,
    notifications: IntCounterVec,
    /// Outcomes not recorded because the lease had ended and another
    /// claimer may hold the row.
    lease_lost: prometheus::IntCounter,
    /// Attempts whose outcome is unknown: the receiver may have it.
    uncertain: IntCounterVec,
    /// Outcomes given up on after the recording retries: those rows go out
    /// again when their lease ends, with the same identity.
    unrecorded: prometheus::IntCounter,
    /// Claims and recordings the database refused (unreachable, a session
    /// ended, a lock held past the lock timeout), by stage.
    database_errors: IntCounterVec,
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
                    "Notification delivery attempts by kind (email, webhook, …) and result (sent; failed, retried; refused for good, not retried).",
                ),
                &["kind", "result"],
            )
            .expect("valid metric"),
            uncertain: IntCounterVec::new(
                Opts::new(
                    "notifications_uncertain_total",
                    "Delivery attempts whose outcome is unknown (a timeout after the request was sent, the connection lost before the answer): the receiver may have the notification, and the retry carries the same identity (Message-ID, webhook-id, dedup_key).",
                ),
                &["kind"],
            )
            .expect("valid metric"),
            unrecorded: prometheus::IntCounter::new(
                "outbox_outcomes_unrecorded_total",
                "Delivery outcomes the database would not take (after retries): their rows are sent again when the lease ends, with the same identity, so a receiver may see them twice.",
            )
            .expect("valid metric"),
            database_errors: IntCounterVec::new(
                Opts::new(
                    "outbox_database_errors_total",
                    "Outbox steps the database failed, by stage: claim (nothing was sent; the step is tried again after a pause) or record (outcomes retried, then left to the lease: those rows are sent again, with the same identity).",
                ),
                &["stage"],
            )
            .expect("valid metric"),
            lease_lost: prometheus::IntCounter::new(
                "outbox_lease_lost_total",
                "Delivery outcomes not recorded because this process's lease on the row had ended (it stalled or was cut off past the lease); the row is sent again by its next claimer, with the same identity.",
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
    gates: Gates,
    backlog: Backlog,
}

/// The backlog's last count. Counting reads every unsent row, and a step
/// runs for every notification enqueued: during an outage of the SMTP
/// server a backlog of 50,000 cost 23 ms a step to count (BENCHMARKS.md,
/// i.7). A large backlog is therefore counted at most once a second, and
/// no more often than every twenty times the last count took (a backlog of
/// millions takes the database a twentieth of its time at most); the
/// `outbox_pending` gauge may lag it by that much. A small one is counted
/// every step.
#[derive(Clone, Default)]
struct Backlog(Arc<Mutex<Option<Counted>>>);

#[derive(Clone, Copy)]
struct Counted {
    at: Instant,
    took: Duration,
    pending: i64,
}

impl Backlog {
    /// From this many unsent rows on, a count stands for a while.
    const LARGE: i64 = 1_000;
    const FOR: Duration = Duration::from_secs(1);

    /// The last count, if it may stand for a new one.
    fn recent(&self) -> Option<i64> {
        let last = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        last.filter(|c| c.pending >= Self::LARGE && c.at.elapsed() < Self::FOR.max(c.took * 20))
            .map(|c| c.pending)
    }

    fn counted(&self, pending: i64, took: Duration) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(Counted {
            at: Instant::now(),
            took,
            pending,
        });
    }
}

/// One semaphore per receiver, created on first use; the receivers are the
/// contract's contacts and the SMTP server, so the map stays small.
#[derive(Clone, Default)]
struct Gates(Arc<Mutex<HashMap<String, Arc<Semaphore>>>>);

impl Gates {
    fn of(&self, receiver: String, permits: usize) -> Arc<Semaphore> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(receiver)
            .or_insert_with(|| Arc::new(Semaphore::new(permits)))
            .clone()
    }
}

/// Which receiver a message goes to, for the bound on sends in flight.
fn receiver_of(message: &OutboxMessage) -> String {
    match message {
        // One SMTP server takes all mail.
        OutboxMessage::Email { .. } => "smtp".into(),
        OutboxMessage::PagerDuty { .. } => "pagerduty".into(),
        OutboxMessage::Opsgenie { .. } => "opsgenie".into(),
        OutboxMessage::Slack { .. } => "slack".into(),
        OutboxMessage::Webhook { url, .. } | OutboxMessage::Teams { url, .. } => {
            match reqwest::Url::parse(url) {
                Ok(u) => format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or_default(),
                    u.port_or_known_default().unwrap_or_default()
                ),
                // It fails at once in the sender; any gate will do.
                Err(_) => "webhook".into(),
            }
        }
    }
}

impl OutboxWorker {
    pub fn new(store: Store, senders: Senders, mut config: WorkerConfig) -> OutboxWorker {
        // A lease shorter than a send would let a second worker claim a row
        // that is still on its way out.
        config.lease = config.lease.max(config.send_timeout * 2);
        config.batch_size = config.batch_size.max(1);
        config.per_receiver = config.per_receiver.max(1);
        OutboxWorker {
            store,
            senders: Arc::new(senders),
            config,
            metrics: WorkerMetrics::new(),
            clock: Clock::system(),
            gates: Gates::default(),
            backlog: Backlog::default(),
        }
    }

    /// Reads time from `clock` (tests pass a manual one).
    pub fn with_clock(mut self, clock: Clock) -> OutboxWorker {
        self.clock = clock;
        self
    }

    /// The production worker: SMTP from `[smtp]`, the paging services and
    /// webhook signing from their settings, default tuning.
    pub fn from_settings(store: Store, settings: &Settings) -> Result<OutboxWorker, NotifyError> {
        Ok(Self::new(
            store,
            Senders::from_settings(settings)?,
            WorkerConfig::default(),
        ))
    }

    /// `outbox_pending` and `notifications_total`, for the app's registry
    /// (which adds the `keepword_` prefix). Clones share their values.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.metrics.pending.clone()),
            Box::new(self.metrics.notifications.clone()),
            Box::new(self.metrics.lease_lost.clone()),
            Box::new(self.metrics.uncertain.clone()),
            Box::new(self.metrics.database_errors.clone()),
            Box::new(self.metrics.unrecorded.clone()),
        ]
    }

    /// One round: claim a batch of due rows, send them concurrently (at most
    /// `per_receiver` in flight per receiver), record the outcomes in
    /// batches as they come in, then refresh the backlog figures. `now`
    /// decides what is due; sends take real time, which is added to it for
    /// `sent_at` and for the start of a back-off.
    pub async fn step(&self, now: DateTime<Utc>) -> Result<StepReport, NotifyError> {
        let started = Instant::now();
        let lease_until = now + self.config.lease;
        let limit = self.config.batch_size;
        let rows = write(&self.store, move |c| {
            outbox::claim_due_in(c, now, lease_until, limit)
        })
        .await?;
        // The claim is committed and nothing is sent yet: a crash or a stall
        // here must cost only the lease, never a notification.
        blocking_failpoint(|| fail::fail_point!("outbox-after-claim"));
        let mut report = StepReport {
            claimed: rows.len(),
            ..StepReport::default()
        };

        // A send that starts by then ends (timeout) by `started + 2 ×
        // send_timeout`, inside the lease.
        let start_by = tokio::time::Instant::from_std(started) + self.config.send_timeout;
        let (outcomes, received) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(record(
            self.store.clone(),
            received,
            lease_until,
            self.metrics.clone(),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for row in rows {
            let message = serde_json::from_str::<OutboxMessage>(&row.payload);
            let gate = message
                .as_ref()
                .ok()
                .map(|m| self.gates.of(receiver_of(m), self.config.per_receiver));
            let job = Delivery {
                senders: self.senders.clone(),
                config: self.config.clone(),
                metrics: self.metrics.clone(),
                outcomes: outcomes.clone(),
                gate,
                start_by,
                now,
                started,
            };
            tasks.spawn(job.deliver(row, message));
        }
        drop(outcomes);
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Attempt::Sent) => report.sent += 1,
                Ok(Attempt::Failed) => report.failed += 1,
                Ok(Attempt::Refused) => report.refused += 1,
                Ok(Attempt::Released) => report.released += 1,
                // A panicking send loses nothing: its lease runs out and the
                // row is claimed again.
                Err(e) => {
                    tracing::error!(error = %e, "outbox delivery task failed");
                    report.failed += 1;
                }
            }
        }
        // Every sender is gone, so the recorder ends after its last batch.
        if let Err(e) = recorder.await {
            tracing::error!(error = %e, "outbox recorder task failed");
        }

        let next_due = db(&self.store, outbox::next_due).await?;
        let pending = match self.backlog.recent() {
            Some(n) => n,
            None => {
                let counting = Instant::now();
                let n = db(&self.store, move |c| outbox::backlog_count(c, now)).await?;
                self.backlog.counted(n, counting.elapsed());
                n
            }
        };
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
                    self.metrics
                        .database_errors
                        .with_label_values(&["claim"])
                        .inc();
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
        if r.claimed as i64 >= self.config.batch_size || r.released > 0 {
            // A full batch: more rows are probably due right now. Released
            // rows are due again at once.
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

/// What became of one claimed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Sent,
    Failed,
    Refused,
    Released,
}

/// An outcome to record; the recorder writes them in batches.
#[derive(Debug)]
enum Outcome {
    Sent {
        id: i64,
        at: DateTime<Utc>,
    },
    Failed {
        id: i64,
        retry_at: DateTime<Utc>,
        error: String,
    },
    Refused {
        id: i64,
        at: DateTime<Utc>,
        error: String,
    },
    Released {
        id: i64,
        at: DateTime<Utc>,
    },
}

/// Outcomes written per transaction at most.
const RECORD_BATCH: usize = 500;

/// Writes outcomes as they arrive: it waits for one, takes whatever else has
/// come in meanwhile, and writes them all in one transaction. With one send
/// in flight that is a write per row, as soon as it is known; in a burst,
/// one transaction (and one UPDATE for the delivered rows) per batch. Ends
/// when every sender is gone and all is written.
async fn record(
    store: Store,
    mut received: mpsc::UnboundedReceiver<Outcome>,
    lease_until: DateTime<Utc>,
    metrics: WorkerMetrics,
) {
    let mut batch = Vec::new();
    while received.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let outcomes = Arc::new(std::mem::take(&mut batch));
        // This write is all that stands between an accepted message and a
        // duplicate after the lease, so it is retried briefly before giving up.
        for attempt in 1..=3u64 {
            let o = outcomes.clone();
            match write(&store, move |c| write_outcomes(c, &o, lease_until)).await {
                Ok(0) => break,
                Ok(lost) => {
                    metrics.lease_lost.inc_by(lost as u64);
                    tracing::warn!(
                        rows = lost,
                        "outcomes not recorded: the lease on them had ended; their next claimer sends them again"
                    );
                    break;
                }
                Err(e) if attempt < 3 => {
                    metrics.database_errors.with_label_values(&["record"]).inc();
                    tracing::warn!(rows = outcomes.len(), error = %e, "cannot record sent notifications; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => {
                    metrics.database_errors.with_label_values(&["record"]).inc();
                    metrics.unrecorded.inc_by(outcomes.len() as u64);
                    let ids: Vec<i64> = outcomes
                        .iter()
                        .map(|o| match o {
                            Outcome::Sent { id, .. }
                            | Outcome::Failed { id, .. }
                            | Outcome::Refused { id, .. }
                            | Outcome::Released { id, .. } => *id,
                        })
                        .collect();
                    tracing::error!(
                        outbox.ids = ?ids,
                        error = %e,
                        "outcomes not recorded: delivered rows will be sent again when their lease ends"
                    );
                }
            }
        }
    }
}

/// Returns how many outcomes were not recorded because the lease on their
/// row had ended.
fn write_outcomes(
    c: &mut AnyConnection,
    outcomes: &[Outcome],
    lease_until: DateTime<Utc>,
) -> Result<usize, StoreError> {
    outbox::bound_lock_waits(c)?;
    let mut lost = 0;
    let mut sent = Vec::new();
    let mut sent_by = None;
    let mut released = Vec::new();
    let mut released_at = None;
    for o in outcomes {
        match o {
            Outcome::Sent { id, at } => {
                sent.push(*id);
                // One instant for the batch: the last delivery in it.
                sent_by = sent_by.max(Some(*at));
            }
            // Each failure has its own back-off and reason.
            Outcome::Failed {
                id,
                retry_at,
                error,
            } => {
                if !outbox::mark_failed(c, *id, lease_until, *retry_at, error)? {
                    lost += 1;
                }
            }
            Outcome::Refused { id, at, error } => {
                if !outbox::mark_refused(c, *id, lease_until, *at, error)? {
                    lost += 1;
                }
            }
            Outcome::Released { id, at } => {
                released.push(*id);
                released_at = released_at.max(Some(*at));
            }
        }
    }
    if let Some(at) = sent_by {
        lost += sent.len() - outbox::mark_delivered_many(c, &sent, lease_until, at)?;
    }
    if let Some(at) = released_at {
        outbox::release_unsent(c, &released, lease_until, at)?;
    }
    // Everything is written and nothing committed: an error or a crash here
    // loses the whole batch's outcomes, so its rows are sent again.
    fail::fail_point!("outbox-record-before-commit", |_| Err(StoreError::Pool(
        "failpoint outbox-record-before-commit".into()
    )));
    Ok(lost)
}

/// One claimed row on its way out; owns what its task needs.
struct Delivery {
    senders: Arc<Senders>,
    config: WorkerConfig,
    metrics: WorkerMetrics,
    outcomes: mpsc::UnboundedSender<Outcome>,
    /// The row's receiver's bound (`None`: the payload is unreadable).
    gate: Option<Arc<Semaphore>>,
    /// The latest a send may start and still end inside the lease.
    start_by: tokio::time::Instant,
    now: DateTime<Utc>,
    started: Instant,
}

impl Delivery {
    /// Sends one row once its receiver has room and hands the outcome to the
    /// recorder.
    async fn deliver(
        self,
        row: OutboxRow,
        message: Result<OutboxMessage, serde_json::Error>,
    ) -> Attempt {
        let id = row.id;
        let result = match message {
            Ok(message) => {
                let _permit = match &self.gate {
                    Some(gate) => {
                        match tokio::time::timeout_at(self.start_by, gate.clone().acquire_owned())
                            .await
                        {
                            Ok(Ok(permit)) => Some(permit),
                            // Too late to start inside the lease (or the gate
                            // closed, which it never is): give the row back.
                            _ => {
                                tracing::info!(
                                    outbox.id = id,
                                    kind = %row.kind,
                                    "receiver busy for the whole lease; notification due again"
                                );
                                let at = self.now + self.started.elapsed();
                                let _ = self.outcomes.send(Outcome::Released { id, at });
                                return Attempt::Released;
                            }
                        }
                    }
                    None => None,
                };
                let secs = self.config.send_timeout.as_secs();
                tokio::time::timeout(self.config.send_timeout, self.senders.send(&message, id))
                    .await
                    .unwrap_or(Err(NotifyError::Timeout {
                        what: "sending",
                        secs,
                    }))
            }
            Err(e) => Err(NotifyError::Payload {
                id,
                reason: e.to_string(),
            }),
        };
        if result.is_ok() {
            // The receiver has it and nothing is recorded yet: the window in
            // which a crash sends it twice (with the same identity).
            blocking_failpoint(|| fail::fail_point!("outbox-after-send"));
        }
        let at = self.now + self.started.elapsed();
        match result {
            Ok(()) => {
                self.metrics
                    .notifications
                    .with_label_values(&[row.kind.as_str(), "sent"])
                    .inc();
                tracing::info!(outbox.id = id, kind = %row.kind, attempts = row.attempts, "notification sent");
                let _ = self.outcomes.send(Outcome::Sent { id, at });
                Attempt::Sent
            }
            Err(error) if error.is_refused() => {
                self.metrics
                    .notifications
                    .with_label_values(&[row.kind.as_str(), "refused"])
                    .inc();
                let message = error.to_string();
                tracing::error!(
                    outbox.id = id,
                    kind = %row.kind,
                    target = %row.target,
                    conversation.id = row.conversation_id,
                    attempts = row.attempts,
                    error = %message,
                    "notification refused for good; not retried (shown on the Rejected page, where it can be sent again)"
                );
                let _ = self.outcomes.send(Outcome::Refused {
                    id,
                    at,
                    error: message,
                });
                Attempt::Refused
            }
            Err(error) => {
                self.metrics
                    .notifications
                    .with_label_values(&[row.kind.as_str(), "failed"])
                    .inc();
                if error.is_uncertain() {
                    self.metrics
                        .uncertain
                        .with_label_values(&[row.kind.as_str()])
                        .inc();
                }
                let wait = if let NotifyError::RetryAfter { secs, .. } = &error {
                    // The receiver said when: sooner would be refused again.
                    Duration::from_secs(*secs)
                } else if error.is_permanent() {
                    self.config.max_backoff
                } else {
                    backoff(
                        row.attempts,
                        self.config.base_backoff,
                        self.config.max_backoff,
                    )
                };
                let message = error.to_string();
                tracing::warn!(
                    outbox.id = id,
                    kind = %row.kind,
                    attempts = row.attempts,
                    retry_in_ms = wait.as_millis() as u64,
                    error = %message,
                    "notification not sent; will retry"
                );
                // If it is never recorded the lease still ends, so the row
                // is retried anyway.
                let _ = self.outcomes.send(Outcome::Failed {
                    id,
                    retry_at: at + wait,
                    error: message,
                });
                Attempt::Failed
            }
        }
    }
}

/// Runs a failpoint of the async path (feature `failpoints`; without it the
/// closure is empty). Its `sleep` blocks the thread, so on a multi-threaded
/// runtime it runs as blocking code: other tasks move to other threads
/// instead of waiting behind the stall (a stalled step must not also stall
/// the HTTP server that a test reads).
fn blocking_failpoint(hit: impl FnOnce()) {
    #[cfg(feature = "failpoints")]
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread
    {
        return tokio::task::block_in_place(hit);
    }
    hit()
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

/// Runs a write in one transaction off the async threads. On SQLite it
/// queues on the store's writer lock, behind the scheduler's transactions,
/// instead of polling in SQLite's busy handler (sleeps of up to 100 ms).
async fn write<T, F>(store: &Store, f: F) -> Result<T, NotifyError>
where
    T: Send + 'static,
    F: FnOnce(&mut AnyConnection) -> Result<T, StoreError> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.transaction(f))
        .await
        .map_err(|e| NotifyError::Task(e.to_string()))?
        .map_err(NotifyError::from)
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
    fn a_large_backlog_is_counted_at_most_once_a_second() {
        let b = Backlog::default();
        let quick = Duration::from_millis(20);
        assert_eq!(b.recent(), None, "never counted");
        b.counted(Backlog::LARGE - 1, quick);
        assert_eq!(b.recent(), None, "a small backlog is counted every step");
        b.counted(Backlog::LARGE, quick);
        assert_eq!(b.recent(), Some(Backlog::LARGE));
        let aged = |took: Duration| {
            *b.0.lock().unwrap() = Some(Counted {
                at: Instant::now() - Backlog::FOR,
                took,
                pending: 50_000,
            });
        };
        aged(quick);
        assert_eq!(b.recent(), None, "a second later it is counted again");
        // A count that took 200 ms stands for four seconds.
        aged(Duration::from_millis(200));
        assert_eq!(b.recent(), Some(50_000));
    }

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
            slack: None,
        };
        let w = OutboxWorker::new(store, senders, WorkerConfig::default());
        let now: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let report = |claimed, next_due| StepReport {
            claimed,
            next_due,
            ..StepReport::default()
        };
        let full = w.config.batch_size as usize;
        assert_eq!(w.pause_after(&report(full, None), now), Duration::ZERO);
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
