//! A scenario's rig: a fresh store, the real outbox worker running its loop
//! (short back-offs and timeouts, so a fault and its recovery take seconds),
//! the notifications it enqueued, and a capture of the worker's log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keepword::config::{Secret, SmtpSettings, Tls};
use keepword::notify::{OutboxWorker, Senders, SmtpSender, WebhookSender, WorkerConfig};
use keepword::outbox::{EmailDraft, OutboxMessage, new_email, new_webhook};
use keepword::store::{self, Store};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::checker::{Expected, Must, Report, check};
use crate::support::recorders::History;

/// The worker's tuning in every scenario: a send may take 2 s, back-offs
/// run 0.2 s … 2 s. The stated lateness bound follows from it.
pub fn tuning() -> WorkerConfig {
    WorkerConfig {
        batch_size: 50,
        per_receiver: 4,
        lease: Duration::from_secs(4),
        send_timeout: Duration::from_secs(2),
        base_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        idle_poll: Duration::from_millis(200),
        error_pause: Duration::from_millis(200),
    }
}

/// Once a fault ends, every notification must be taken within this: the
/// longest back-off, a send timeout, and a poll, with room for a loaded
/// machine.
pub const BOUND: Duration = Duration::from_secs(10);

pub fn smtp_settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        tls: Tls::None,
        username: String::new(),
        password: Secret::default(),
        password_file: None,
        from: "Northwind Support <support@example.com>".parse().unwrap(),
        ca_file: None,
        auth: Default::default(),
        oauth: None,
    }
}

/// A log line the worker wrote (level and message with its fields).
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    /// Captures this thread's log lines (INFO and up) while the guard
    /// lives. The scenarios run on a current-thread runtime, so this
    /// thread's subscriber sees every line the tasks they spawn write.
    pub fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Enqueues `row` (recorded by the receivers under `key`): what the checker
/// expects of it.
/// While a fault lasts the enqueue itself may fail: it is tried again, as a
/// use case's caller would (a 503 answered, a mail left unread).
pub fn enqueue(store: &Store, row: store::NewOutbox, key: &str, must: Must) -> Expected {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_enqueue(store, &row, key, must) {
            Ok(e) => return e,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "enqueue failed; again");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot enqueue {key}: {e}"),
        }
    }
}

/// One attempt at [`enqueue`].
pub fn try_enqueue(
    store: &Store,
    row: &store::NewOutbox,
    key: &str,
    must: Must,
) -> Result<Expected, store::StoreError> {
    let identity = match serde_json::from_str(&row.payload).unwrap() {
        OutboxMessage::Email { message_id, .. } => message_id,
        OutboxMessage::Webhook { webhook_id, .. } => webhook_id.unwrap_or_default(),
        _ => String::new(),
    };
    // `false`: an earlier attempt committed although its answer was lost.
    store.transaction(|c| store::enqueue(c, row))?;
    Ok(Expected {
        key: key.to_string(),
        identity,
        must,
    })
}

/// A webhook row with body `{"key": key}` to `url`.
pub fn webhook_row(key: &str, url: &str) -> store::NewOutbox {
    let body = serde_json::json!({ "key": key, "text": format!("alert {key}") });
    new_webhook(url, body, key, chrono::Utc::now()).unwrap()
}

/// Enqueues a webhook with body `{"key": key}` to `url`.
pub fn webhook(store: &Store, key: &str, url: &str, must: Must) -> Expected {
    enqueue(store, webhook_row(key, url), key, must)
}

/// [`Rig::uncertain`] from a `/metrics` text (the rig's, or a process's).
pub fn uncertain_in(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("keepword_notifications_uncertain_total")
                || l.starts_with("keepword_outbox_lease_lost_total")
                || l.starts_with("keepword_outbox_outcomes_unrecorded_total")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

pub struct Rig {
    pub store: Store,
    pub history: History,
    pub expected: Vec<Expected>,
    pub log: Log,
    registry: Registry,
    wake: Arc<Notify>,
    stop: CancellationToken,
    worker: Option<tokio::task::JoinHandle<()>>,
    _log_guard: tracing::subscriber::DefaultGuard,
    pub started: Instant,
}

impl Rig {
    /// The worker over a fresh store at `url`, mailing through
    /// 127.0.0.1:`smtp_port` (which may not listen yet).
    pub fn start(url: &str, smtp_port: u16) -> Rig {
        let (log, guard) = Log::capture();
        let store = Store::open(url).unwrap();
        let senders = Senders {
            smtp: Some(SmtpSender::new(&smtp_settings(smtp_port)).unwrap()),
            webhook: WebhookSender::with_timeout(Duration::from_secs(2)).unwrap(),
            slack: None,
        };
        let worker = OutboxWorker::new(store.clone(), senders, tuning());
        let registry = Registry::new_custom(Some("keepword".into()), None).unwrap();
        for c in worker.collectors() {
            registry.register(c).unwrap();
        }
        let (wake, stop) = (Arc::new(Notify::new()), CancellationToken::new());
        let task = tokio::spawn(worker.run(stop.clone(), wake.clone()));
        Rig {
            store,
            history: History::default(),
            expected: Vec::new(),
            log,
            registry,
            wake,
            stop,
            worker: Some(task),
            _log_guard: guard,
            started: Instant::now(),
        }
    }

    /// Wakes the worker (after rows were enqueued around the rig).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One attempt to enqueue a webhook: the database's answer.
    pub fn try_webhook(&mut self, key: &str, url: &str) -> Result<(), store::StoreError> {
        let e = try_enqueue(&self.store, &webhook_row(key, url), key, Must::Deliver)?;
        self.expected.push(e);
        self.wake.notify_one();
        Ok(())
    }

    /// An email with subject `key` to `to`.
    pub fn email(&mut self, key: &str, to: &str, must: Must) {
        let draft = EmailDraft {
            to: vec![to.to_string()],
            subject: key.to_string(),
            text: format!("Notification {key}."),
            html: None,
            headers: vec![("Auto-Submitted".into(), "auto-replied".into())],
        };
        let row = new_email(draft, "example.com", key, chrono::Utc::now()).unwrap();
        // A recipient refused at RCPT is recorded under its address, before
        // any header (the Message-ID) was sent.
        let recorded = match must {
            Must::BeRefused => format!("rcpt:{to}"),
            Must::Deliver => key.to_string(),
        };
        let mut expected = enqueue(&self.store, row, &recorded, must);
        if must == Must::BeRefused {
            expected.identity.clear();
        }
        self.expected.push(expected);
        self.wake.notify_one();
    }

    /// A webhook with body `{"key": key}` to `url`.
    pub fn webhook(&mut self, key: &str, url: &str, must: Must) {
        self.expected.push(webhook(&self.store, key, url, must));
        self.wake.notify_one();
    }

    /// Waits (up to `within`) until every notification that must be
    /// delivered was taken and every refusal was answered.
    pub async fn settle(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let h = self.history.all();
            let done = self.expected.iter().all(|e| {
                h.iter().any(|d| {
                    d.key == e.key
                        && match e.must {
                            Must::Deliver => {
                                d.answer == crate::support::recorders::Answer::Accepted
                            }
                            Must::BeRefused => true,
                        }
                })
            });
            if done {
                // Outcomes are recorded right after the answers.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The worker's metrics, as `/metrics` shows them.
    pub fn metrics(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    /// The value of the sample `line` starts with (0 when absent).
    pub fn metric(&self, line: &str) -> u64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64)
    }

    /// Attempts after which a receiver may have a notification keepword
    /// will send again: outcomes unknown (all kinds), outcomes fenced off by
    /// a lost lease, outcomes the database would not record.
    pub fn uncertain(&self) -> u64 {
        uncertain_in(&self.metrics())
    }

    /// The checker's report on what the receivers recorded; the fault ended
    /// at `fault_ended` (when the receivers stopped acting it out).
    pub fn report(&self, scenario: &str, injected: &str, fault_ended: Instant) -> Report {
        let mut r = check(
            scenario,
            injected,
            &self.expected,
            &self.history.all(),
            fault_ended,
            BOUND,
            self.uncertain(),
        );
        r.backend = match self.store.backend() {
            keepword::store::Backend::Sqlite => "sqlite".into(),
            keepword::store::Backend::Postgres => "postgres".into(),
        };
        r
    }

    /// The stored rows and the history of the notifications the report
    /// found lost: what to read when a scenario fails.
    pub fn explain(&self, report: &Report) -> String {
        let rows = self.store.with(store::outbox::all).unwrap();
        let mut out = String::new();
        for key in &report.lost {
            for r in rows.iter().filter(|r| &r.dedupe_key == key) {
                out.push_str(&format!("{r:?}\n"));
                let id = format!("outbox.id={} ", r.id);
                for l in self.log.text().lines().filter(|l| l.contains(&id)) {
                    out.push_str(&format!("  {l}\n"));
                }
            }
            for d in self.history.all().iter().filter(|d| &d.key == key) {
                out.push_str(&format!("  received {d:?}\n"));
            }
        }
        out
    }

    /// When the last attempt that was not accepted arrived: the end of a
    /// fault the receivers act out by attempt.
    pub fn last_fault(&self) -> Instant {
        self.history
            .all()
            .iter()
            .filter(|d| d.answer != crate::support::recorders::Answer::Accepted)
            .map(|d| d.at)
            .max()
            .unwrap_or(self.started)
    }

    /// Stops the worker (finishing the step in hand).
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(t) = self.worker.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}
