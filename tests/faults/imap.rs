//! The IMAP side's faults: the connection cut in the middle of a large
//! FETCH response, and dropped silently (no RST, no FIN) while the poller
//! waits in IDLE, both acted out by a proxy (tests/support/proxy.rs)
//! between the real poller and a private Dovecot. Here the "receiver" is
//! keepword's own store: a recording sink around the real one records each
//! mail as its batch commits, and the checker reads that history — every
//! mail read once (lost: never committed; duplicated: committed twice,
//! which no uncertain attempt excuses here).

use std::sync::Arc;
use std::time::{Duration, Instant};

use keepword::config::{MailboxSettings, Secret, Tls};
use keepword::imap::{
    FetchedMail, FolderCheckpoint, FolderKind, ImapMetrics, MailSink, MailboxPoller, PollerTiming,
};
use keepword::service::{EmailSink, MailboxContext};
use tokio_util::sync::CancellationToken;

use crate::checker::{Expected, Must, check};
use crate::rig::Log;
use crate::support;
use crate::support::dovecot::Dovecot;
use crate::support::proxy::Proxy;
use crate::support::recorders::{Answer, Delivery, History};

const USER: &str = "support@test.local";
const PASSWORD: &str = "supportpw";
const MAILBOX: &str = "support";

/// Records every mail of a batch the real sink committed, and each
/// batch's size in bytes.
struct RecordingSink {
    inner: EmailSink,
    history: History,
    batches: Arc<std::sync::Mutex<Vec<usize>>>,
}

fn message_id(raw: &[u8]) -> String {
    let head = &raw[..raw.len().min(4096)];
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .map(|id| id.trim().to_string())
        .unwrap_or_default()
}

impl MailSink for RecordingSink {
    fn checkpoint(&self, mailbox: &str, folder: &str) -> Result<Option<FolderCheckpoint>, String> {
        self.inner.checkpoint(mailbox, folder)
    }

    fn ingest(
        &self,
        mailbox: &str,
        folder: &str,
        kind: FolderKind,
        uidvalidity: u32,
        batch: Vec<FetchedMail>,
    ) -> Result<(), String> {
        let ids: Vec<String> = batch.iter().map(|m| message_id(&m.raw)).collect();
        let bytes = batch.iter().map(|m| m.raw.len()).sum();
        self.inner
            .ingest(mailbox, folder, kind, uidvalidity, batch)?;
        self.batches.lock().unwrap().push(bytes);
        for id in ids {
            self.history.record(Delivery {
                receiver: "store".into(),
                key: id.clone(),
                identity: id,
                answer: Answer::Accepted,
                at: Instant::now(),
            });
        }
        Ok(())
    }
}

/// A mail of about `size` bytes (a base64 attachment), `Message-ID: <tag@acme.com>`.
pub fn mail(tag: &str, size: usize) -> Vec<u8> {
    let mut raw = format!(
        "From: Jane <jane@acme.com>\r\nTo: {USER}\r\nSubject: Question {tag}\r\n\
         Message-ID: <{tag}@acme.com>\r\nDate: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nHello, see the attachment.\r\n--b\r\n\
         Content-Type: application/octet-stream; name=\"log.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
        chrono::Utc::now().to_rfc2822()
    )
    .into_bytes();
    let line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n";
    while raw.len() + line.len() < size {
        raw.extend_from_slice(line);
    }
    raw.extend_from_slice(b"--b--\r\n");
    raw
}

fn settings(port: u16) -> MailboxSettings {
    MailboxSettings {
        name: MAILBOX.into(),
        channel: "email".into(),
        host: "127.0.0.1".into(),
        port,
        tls: Tls::None,
        username: USER.into(),
        password: Secret::new(PASSWORD),
        password_file: None,
        inbox: "INBOX".into(),
        sent: None,
        team_addresses: vec!["@example.com".into()],
        ca_file: None,
        auth: Default::default(),
        oauth: None,
        sasl: None,
    }
}

/// One scenario's world: Dovecot, the proxy in front of it, the real
/// service's sink over a fresh SQLite, and the poller running through the
/// proxy with `timing`.
struct ImapRig {
    dovecot: Dovecot,
    proxy: Proxy,
    history: History,
    /// The bytes of each batch the sink committed.
    batches: Arc<std::sync::Mutex<Vec<usize>>>,
    metrics: ImapMetrics,
    log: Log,
    expected: Vec<Expected>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    db: tempfile::TempDir,
    _log_guard: tracing::subscriber::DefaultGuard,
}

impl ImapRig {
    async fn start() -> ImapRig {
        let (log, guard) = Log::capture();
        let dovecot = Dovecot::start(&[(USER, PASSWORD)]);
        let proxy = Proxy::start(([127, 0, 0, 1], dovecot.port).into()).await;
        let (db, _url) = crate::common::fresh_sqlite();
        ImapRig {
            dovecot,
            proxy,
            history: History::default(),
            batches: Default::default(),
            metrics: ImapMetrics::new(),
            log,
            expected: Vec::new(),
            stop: CancellationToken::new(),
            task: None,
            db,
            _log_guard: guard,
        }
    }

    /// Appends `raws` to the inbox; the checker expects each read once.
    fn append(&mut self, raws: &[Vec<u8>]) {
        self.dovecot.append_many(USER, PASSWORD, "INBOX", raws);
        for raw in raws {
            let id = message_id(raw);
            self.expected.push(Expected {
                key: id.clone(),
                identity: id,
                must: Must::Deliver,
            });
        }
    }

    /// Starts the poller (through the proxy).
    fn run(&mut self, timing: PollerTiming) {
        let url = format!("sqlite://{}/keepword.db", self.db.path().display());
        let service = crate::common::shipped_service(&url);
        let sink = RecordingSink {
            inner: EmailSink {
                service: service.intake.clone(),
                mailbox: MailboxContext {
                    name: MAILBOX.into(),
                    channel: "email".into(),
                    team: vec!["@example.com".into()],
                    own: vec![USER.into()],
                },
            },
            history: self.history.clone(),
            batches: self.batches.clone(),
        };
        let poller = MailboxPoller::new(
            settings(self.proxy.port),
            Arc::new(sink),
            self.metrics.clone(),
        )
        .with_timing(timing);
        self.task = Some(tokio::spawn(poller.run(self.stop.clone())));
    }

    fn errors(&self) -> u64 {
        self.metrics.errors.with_label_values(&[MAILBOX]).get()
    }

    fn idling(&self) -> bool {
        self.metrics
            .idling
            .with_label_values(&[MAILBOX, "INBOX"])
            .get()
            == 1
    }

    /// Every expected mail committed.
    fn all_read(&self) -> bool {
        self.history
            .all_accepted(self.expected.iter().map(|e| e.key.as_str()))
    }

    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the poller stops promptly")
                .unwrap();
        }
    }
}

/// The poller's tuning in these scenarios: production's, but reconnecting
/// after 0.1 s … 0.4 s.
fn timing() -> PollerTiming {
    PollerTiming {
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        ..PollerTiming::default()
    }
}

/// How soon after a fault was noticed every mail must be read: a
/// reconnect's back-off, a login, a SELECT and the FETCHes.
const READ_BOUND: Duration = Duration::from_secs(10);

/// The connection is reset in the middle of a large FETCH response (the
/// second batch of 100 KB mails, 10 a batch): the poller notices, counts
/// and logs it, connects again, and every mail is read once (the batch
/// before the cut committed with its checkpoint; the cut one never reached
/// the store).
pub async fn cut_mid_fetch() {
    let mut rig = ImapRig::start().await;
    let raws: Vec<Vec<u8>> = (0..30)
        .map(|i| mail(&format!("cut-{i}"), 100 * 1024))
        .collect();
    rig.append(&raws);
    // Past the greeting, login and the first batch, inside the second.
    rig.proxy.cut_after(1_500_000);
    rig.run(PollerTiming {
        batch_size: 10,
        ..timing()
    });
    assert!(
        support::eventually(Duration::from_secs(30), || rig.proxy.cuts() == 1).await,
        "the proxy never cut: {} bytes forwarded",
        rig.proxy.downstream()
    );
    let cut_at = Instant::now();
    assert!(
        support::eventually(Duration::from_secs(30), || rig.all_read()).await,
        "not every mail was read after the cut; the poller said:\n{}",
        rig.log.text()
    );
    // Mail after the fault arrives through IDLE on the new connection.
    assert!(support::eventually(Duration::from_secs(10), || rig.idling()).await);
    rig.append(&[mail("cut-after", 2048)]);
    assert!(
        support::eventually(READ_BOUND, || rig.all_read()).await,
        "mail after the cut not read"
    );
    let mut report = check(
        "IMAP connection cut mid-FETCH",
        "the proxy reset the connection (RST) 1.5 MB into the FETCH responses (30 mails of 100 KB, 10 a batch)",
        &rig.expected,
        &rig.history.all(),
        cut_at,
        READ_BOUND,
        0,
    );
    report.backend = "sqlite".into();
    report.assert_kept();
    assert!(rig.errors() >= 1, "the cut was not counted");
    assert!(
        rig.proxy.connections() >= 2,
        "the poller did not connect again"
    );
    let log = rig.log.text();
    assert!(
        log.contains("IMAP error") && log.contains("FETCH"),
        "the cut was not logged as a failed FETCH:\n{log}"
    );
    rig.stop().await;
}

/// The connection the poller idles on stops carrying anything either way
/// and stays open (what a NAT or firewall that forgot the connection does;
/// the proxy keeps the TCP peer alive, so TCP keepalive would see nothing).
/// Mail arrives meanwhile. With `timing` the drop must be noticed within
/// `notice_within` (logged and counted), and the mail read once each soon
/// after, on a new connection, without a restart.
pub async fn silent_drop_in_idle(timing: PollerTiming, notice_within: Duration, name: &str) {
    let mut rig = ImapRig::start().await;
    rig.append(&[mail("drop-0", 2048), mail("drop-1", 2048)]);
    rig.run(timing);
    assert!(
        support::eventually(Duration::from_secs(20), || rig.all_read() && rig.idling()).await,
        "never read the first mail and idled:\n{}",
        rig.log.text()
    );
    // Let the IDLE settle in before the drop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.proxy.drop_silently();
    let dropped = Instant::now();
    rig.append(&[mail("drop-2", 2048), mail("drop-3", 2048)]);
    let errors_before = rig.errors();
    assert!(
        support::eventually(notice_within + Duration::from_secs(5), || rig.errors()
            > errors_before)
        .await,
        "the silent drop was not noticed within {notice_within:?}; the poller said:\n{}",
        rig.log.text()
    );
    let noticed = dropped.elapsed();
    let noticed_at = Instant::now();
    assert!(
        noticed <= notice_within + Duration::from_secs(2),
        "noticed after {noticed:?}, later than the stated {notice_within:?}"
    );
    assert!(
        support::eventually(READ_BOUND, || rig.all_read()).await,
        "the mail of meanwhile was not read after the drop was noticed:\n{}",
        rig.log.text()
    );
    let mut report = check(
        name,
        &format!(
            "the idling connection stopped carrying anything, without RST or FIN; noticed after {:.1} s (stated bound {} s)",
            noticed.as_secs_f64(),
            notice_within.as_secs()
        ),
        &rig.expected,
        &rig.history.all(),
        noticed_at,
        READ_BOUND,
        0,
    );
    report.backend = "sqlite".into();
    report.assert_kept();
    let log = rig.log.text();
    assert!(
        log.contains("IMAP error") && log.contains("did not answer"),
        "the drop was not logged:\n{log}"
    );
    rig.stop().await;
}

/// Poison input in bulk: eight 2 MB mails, with batches bounded at 5 MiB.
/// Each FETCH and each transaction holds at most two of them (the batch's
/// bytes, not its count of 500, bound the memory a poll takes), and every
/// mail is read once.
pub async fn large_mails_in_bounded_batches() {
    const LIMIT: u64 = 5 << 20;
    let mut rig = ImapRig::start().await;
    let raws: Vec<Vec<u8>> = (0..8)
        .map(|i| mail(&format!("large-{i}"), 2 << 20))
        .collect();
    rig.append(&raws);
    let started = Instant::now();
    rig.run(PollerTiming {
        batch_bytes: LIMIT,
        ..timing()
    });
    assert!(
        support::eventually(Duration::from_secs(60), || rig.all_read()).await,
        "not every large mail was read:\n{}",
        rig.log.text()
    );
    let batches = rig.batches.lock().unwrap().clone();
    assert!(
        batches.iter().all(|&b| b as u64 <= LIMIT) && batches.len() >= 4,
        "batches of {batches:?} bytes, the limit {LIMIT}"
    );
    let mut report = check(
        "poison input: large mails in bounded batches",
        &format!(
            "eight 2 MB mails, batches bounded at 5 MiB: committed in {} batches of at most {} bytes",
            batches.len(),
            batches.iter().max().copied().unwrap_or(0)
        ),
        &rig.expected,
        &rig.history.all(),
        started,
        READ_BOUND,
        0,
    );
    report.backend = "sqlite".into();
    report.assert_kept();
    rig.stop().await;
}

/// The stated bound is what production's tuning gives.
#[test]
fn a_silent_drop_is_noticed_within_the_stated_bound() {
    let t = PollerTiming::default();
    assert!(t.idle_timeout + t.liveness_timeout <= SILENT_DROP_BOUND);
    assert!(t.command_timeout <= SILENT_DROP_BOUND);
}

/// How soon production's tuning notices a silent drop: docs/faults.md.
pub const SILENT_DROP_BOUND: Duration = Duration::from_secs(120);
