//! The IMAP poller: one [`MailboxPoller`] per configured mailbox reads new
//! mail from the inbox and (when configured) the sent folder and hands it to
//! a [`MailSink`] in batches.
//!
//! Progress lives in the sink, not here: each folder's `(UIDVALIDITY, last
//! UID)` checkpoint is written in the same transaction as the messages it
//! covers, so the poller can be killed at any point and a new one (in this or
//! another process) resumes exactly where the last commit left off. A changed
//! UIDVALIDITY means the server renumbered the folder; the poller then reads
//! it again from UID 1 and relies on the sink's Message-ID de-duplication.
//!
//! [`MailboxPoller::poll_once`] is the one testable step; [`MailboxPoller::run`]
//! loops it, waits with IDLE (or sleeps a poll interval when the server has
//! no IDLE), and reconnects with exponential back-off after any error.
//!
//! IDLE watches only the selected folder, so `run` gives every folder its
//! own connection: one IDLEs on the inbox, one on the sent folder. A team
//! reply filed in Sent is then seen within about a second, as inbound mail
//! is, rather than at the next poll; a reply seen late would record a breach
//! the team did not commit. The connections fail, back off and reconnect
//! independently, so a broken sent folder never delays inbound mail.
//! (NOTIFY, RFC 5465, would watch both on one connection, but few servers
//! offer it and async-imap does not speak it.)
//!
//! Leasing (SPEC 9: one poller per mailbox across processes sharing one
//! PostgreSQL) is the service's job: it holds the mailbox lease (a session
//! advisory lock) for as long as it runs the poller. Even
//! without a lease two pollers would store nothing twice (checkpoint and
//! Message-ID de-duplication share the transaction); they would only waste
//! work.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_imap::extensions::idle::IdleResponse;
use async_imap::types::{Capability, UnsolicitedResponse};
use futures::TryStreamExt;
use prometheus::{GaugeVec, IntCounterVec, Opts};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::{MailboxSettings, Tls};

pub use crate::ingest::email::FolderKind;

// The port the poller feeds is the service's own: the poller depends on it,
// never the other way round.
pub use crate::service::{FetchedMail, FolderCheckpoint, MailSink};

/// Why a poll or a wait failed. Every variant ends the connection; `run`
/// reconnects after a back-off.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("login as {username} refused: {reason}")]
    Login { username: String, reason: String },
    #[error("the server did not answer {what} within {secs} s")]
    Timeout { what: &'static str, secs: u64 },
    #[error("IMAP {what} failed: {source}")]
    Protocol {
        what: &'static str,
        source: async_imap::error::Error,
    },
    #[error("folder {folder} has no UIDVALIDITY; cannot track progress without it")]
    NoUidValidity { folder: String },
    #[error("the mail sink failed: {0}")]
    Sink(String),
}

/// What one [`MailboxPoller::poll_once`] did, folder by folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    pub folders: Vec<FolderReport>,
}

impl PollReport {
    /// Messages handed to the sink, all folders together.
    pub fn fetched(&self) -> usize {
        self.folders.iter().map(|f| f.fetched).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderReport {
    pub folder: String,
    pub kind: FolderKind,
    pub uidvalidity: u32,
    /// Messages handed to the sink.
    pub fetched: usize,
    /// Sink calls (one transaction each).
    pub batches: usize,
    /// The checkpoint after this poll.
    pub last_uid: u32,
    /// UIDVALIDITY differed from the checkpoint: the folder was read from UID 1.
    pub rescanned: bool,
}

/// The poller's metrics. Names carry no `keepword_` prefix: the app's
/// registry adds it.
#[derive(Clone)]
pub struct ImapMetrics {
    pub last_success: GaugeVec,
    pub errors: IntCounterVec,
}

impl ImapMetrics {
    pub fn new() -> ImapMetrics {
        let last_success = GaugeVec::new(
            Opts::new(
                "imap_last_success_timestamp_seconds",
                "Unix time by which every folder of the mailbox had last been read successfully.",
            ),
            &["mailbox"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "imap_errors_total",
                "IMAP connections, logins, commands or sink calls that failed.",
            ),
            &["mailbox"],
        )
        .expect("valid metric");
        ImapMetrics {
            last_success,
            errors,
        }
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.last_success.clone()),
            Box::new(self.errors.clone()),
        ]
    }
}

impl Default for ImapMetrics {
    fn default() -> Self {
        ImapMetrics::new()
    }
}

/// Timing knobs. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct PollerTiming {
    /// Sleep between polls when the server has no IDLE, and the longest an
    /// IDLE lasts on a connection that reads several folders (only
    /// [`MailboxPoller::poll_once`] callers have one; `run` gives each folder
    /// its own connection).
    pub poll_interval: Duration,
    /// Longest single IDLE; RFC 2177 servers may drop a client idle for 30 min.
    pub idle_timeout: Duration,
    /// Limit on every IMAP command; async-imap has none of its own.
    pub command_timeout: Duration,
    /// First and longest wait before reconnecting after an error.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Messages per `UID FETCH` and per sink transaction.
    pub batch_size: usize,
}

impl Default for PollerTiming {
    fn default() -> Self {
        PollerTiming {
            poll_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(29 * 60),
            command_timeout: Duration::from_secs(120),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            batch_size: 500,
        }
    }
}

type Session = async_imap::Session<Conn>;

/// When each folder of a mailbox was last read, shared by the connections
/// of one mailbox so `imap_last_success_timestamp_seconds` stays the time
/// by which *every* folder was read: a sent folder that keeps failing must
/// not hide behind a healthy inbox.
struct Freshness {
    read_at: Mutex<Vec<(String, Option<f64>)>>,
}

impl Freshness {
    fn new(folders: &[(String, FolderKind)]) -> Freshness {
        Freshness {
            read_at: Mutex::new(folders.iter().map(|(f, _)| (f.clone(), None)).collect()),
        }
    }

    /// Records that `folders` were read at `now`; the oldest read of all
    /// folders, once each has been read.
    fn record(&self, folders: &[(String, FolderKind)], now: f64) -> Option<f64> {
        let mut read_at = self.read_at.lock().unwrap_or_else(|e| e.into_inner());
        for (folder, at) in read_at.iter_mut() {
            if folders.iter().any(|(f, _)| f == folder) {
                *at = Some(now);
            }
        }
        read_at
            .iter()
            .map(|(_, at)| *at)
            .try_fold(f64::INFINITY, |oldest, at| at.map(|t| oldest.min(t)))
    }
}

/// Polls one mailbox. See the module doc.
pub struct MailboxPoller {
    settings: MailboxSettings,
    sink: Arc<dyn MailSink>,
    metrics: ImapMetrics,
    timing: PollerTiming,
    session: Option<Session>,
    idle_supported: bool,
    /// The folder the open session has selected, to skip a redundant SELECT
    /// before IDLE.
    selected: Option<String>,
    /// The folders this connection reads, inbox first. IDLE watches the
    /// first.
    folders: Vec<(String, FolderKind)>,
    freshness: Arc<Freshness>,
}

impl MailboxPoller {
    pub fn new(settings: MailboxSettings, sink: Arc<dyn MailSink>, metrics: ImapMetrics) -> Self {
        let mut folders = vec![(settings.inbox.clone(), FolderKind::Inbox)];
        if let Some(sent) = &settings.sent {
            folders.push((sent.clone(), FolderKind::Sent));
        }
        MailboxPoller {
            freshness: Arc::new(Freshness::new(&folders)),
            folders,
            settings,
            sink,
            metrics,
            timing: PollerTiming::default(),
            session: None,
            idle_supported: false,
            selected: None,
        }
    }

    pub fn with_timing(mut self, timing: PollerTiming) -> Self {
        self.timing = timing;
        self
    }

    /// Connects if needed and reads every new message of the inbox and the
    /// sent folder into the sink. Any error drops the connection (the next
    /// call reconnects) and counts in `imap_errors_total`.
    pub async fn poll_once(&mut self) -> Result<PollReport, ImapError> {
        match self.poll_all().await {
            Ok(report) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64();
                if let Some(all_read) = self.freshness.record(&self.folders, now) {
                    self.metrics
                        .last_success
                        .with_label_values(&[self.settings.name.as_str()])
                        .set(all_read);
                }
                Ok(report)
            }
            Err(e) => {
                self.failed(&e);
                Err(e)
            }
        }
    }

    /// Watches every folder of the mailbox, each on its own connection (see
    /// the module doc), until `shutdown` is cancelled; returns once all have
    /// stopped, so a caller holding the mailbox lease holds it for all.
    /// Cancelling drops the connections at once, even mid-IDLE; a sink
    /// transaction already running in `spawn_blocking` still completes.
    pub async fn run(self, shutdown: CancellationToken) {
        let mailbox = self.settings.name.clone();
        let watchers = self.per_folder();
        futures::future::join_all(watchers.into_iter().map(|w| w.watch(shutdown.clone()))).await;
        tracing::info!(mailbox = %mailbox, "IMAP poller stopped");
    }

    /// One poller per folder, sharing sink, metrics and freshness. The
    /// first keeps this poller's connection (it reads the inbox).
    fn per_folder(mut self) -> Vec<MailboxPoller> {
        let mut rest = self.folders.split_off(1.min(self.folders.len()));
        let others: Vec<MailboxPoller> = rest
            .drain(..)
            .map(|folder| MailboxPoller {
                settings: self.settings.clone(),
                sink: self.sink.clone(),
                metrics: self.metrics.clone(),
                timing: self.timing.clone(),
                session: None,
                idle_supported: false,
                selected: None,
                folders: vec![folder],
                freshness: self.freshness.clone(),
            })
            .collect();
        let mut all = vec![self];
        all.extend(others);
        all
    }

    /// Polls this poller's folders, then waits for new mail, until
    /// `shutdown` is cancelled; reconnects with exponential back-off after
    /// errors.
    async fn watch(mut self, shutdown: CancellationToken) {
        let mailbox = self.settings.name.clone();
        let folder = self.folders[0].0.clone();
        let mut backoff = self.timing.backoff_min;
        loop {
            let polled = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.poll_once() => r,
            };
            let outcome = match polled {
                Ok(_) => {
                    backoff = self.timing.backoff_min;
                    let waited = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        r = self.wait_for_mail() => r,
                    };
                    waited.inspect_err(|e| self.failed(e))
                }
                Err(e) => Err(e),
            };
            if outcome.is_err() {
                tracing::info!(mailbox = %mailbox, folder = %folder, retry_in_ms = backoff.as_millis() as u64, "IMAP reconnect scheduled");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(self.timing.backoff_max);
            }
        }
        if let Some(mut session) = self.session.take() {
            // Courtesy only: the server cleans up a dropped connection too.
            let _ = tokio::time::timeout(Duration::from_secs(1), session.logout()).await;
        }
        tracing::debug!(mailbox = %mailbox, folder = %folder, "IMAP connection stopped");
    }

    fn failed(&mut self, e: &ImapError) {
        // A half-read response would desynchronise the next command: start over.
        self.session = None;
        self.selected = None;
        self.metrics
            .errors
            .with_label_values(&[self.settings.name.as_str()])
            .inc();
        tracing::warn!(mailbox = %self.settings.name, folder = %self.folders[0].0, error = %e, "IMAP error");
    }

    async fn poll_all(&mut self) -> Result<PollReport, ImapError> {
        if self.session.is_none() {
            self.connect().await?;
        }
        let mut report = PollReport::default();
        for (folder, kind) in self.folders.clone() {
            report.folders.push(self.poll_folder(&folder, kind).await?);
        }
        Ok(report)
    }

    async fn timed<F, T>(&self, what: &'static str, fut: F) -> Result<T, ImapError>
    where
        F: Future<Output = Result<T, async_imap::error::Error>>,
    {
        let limit = self.timing.command_timeout;
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r.map_err(|source| ImapError::Protocol { what, source }),
            Err(_) => Err(ImapError::Timeout {
                what,
                secs: limit.as_secs(),
            }),
        }
    }

    async fn connect(&mut self) -> Result<(), ImapError> {
        let started = Instant::now();
        let s = &self.settings;
        let limit = self.timing.command_timeout;
        let too_slow = |what| ImapError::Timeout {
            what,
            secs: limit.as_secs(),
        };
        let tcp = tokio::time::timeout(limit, TcpStream::connect((s.host.as_str(), s.port)))
            .await
            .map_err(|_| too_slow("connect"))?
            .map_err(|source| ImapError::Connect {
                host: s.host.clone(),
                port: s.port,
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let client = match s.tls {
            Tls::None => {
                let mut client = async_imap::Client::new(Conn::Plain(tcp));
                self.greeting(&mut client).await?;
                client
            }
            Tls::Tls => {
                let tls = tokio::time::timeout(limit, tls_handshake(s, tcp))
                    .await
                    .map_err(|_| too_slow("TLS handshake"))??;
                let mut client = async_imap::Client::new(Conn::Tls(Box::new(tls)));
                self.greeting(&mut client).await?;
                client
            }
            Tls::Starttls => {
                let mut plain = async_imap::Client::new(tcp);
                self.greeting(&mut plain).await?;
                self.timed("STARTTLS", plain.run_command_and_check_ok("STARTTLS", None))
                    .await?;
                // No greeting after STARTTLS: the next bytes are the handshake.
                let tcp = plain.into_inner();
                let tls = tokio::time::timeout(limit, tls_handshake(s, tcp))
                    .await
                    .map_err(|_| too_slow("TLS handshake"))??;
                async_imap::Client::new(Conn::Tls(Box::new(tls)))
            }
        };
        let s = &self.settings;
        let login = tokio::time::timeout(limit, client.login(&s.username, s.password.expose()))
            .await
            .map_err(|_| too_slow("LOGIN"))?;
        let mut session = login.map_err(|(e, _)| ImapError::Login {
            username: s.username.clone(),
            reason: e.to_string(),
        })?;
        let caps = self.timed("CAPABILITY", session.capabilities()).await?;
        self.idle_supported = caps.has(&Capability::Atom("IDLE".into()));
        self.session = Some(session);
        self.selected = None;
        tracing::info!(
            mailbox = %self.settings.name,
            idle = self.idle_supported,
            duration_ms = started.elapsed().as_millis() as u64,
            "IMAP connected"
        );
        Ok(())
    }

    async fn greeting<T>(&self, client: &mut async_imap::Client<T>) -> Result<(), ImapError>
    where
        T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
    {
        let greeting = tokio::time::timeout(self.timing.command_timeout, client.read_response())
            .await
            .map_err(|_| ImapError::Timeout {
                what: "greeting",
                secs: self.timing.command_timeout.as_secs(),
            })?;
        match greeting {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ImapError::Protocol {
                what: "greeting",
                source: async_imap::error::Error::ConnectionLost,
            }),
            Err(e) => Err(ImapError::Protocol {
                what: "greeting",
                source: e.into(),
            }),
        }
    }

    fn session(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("poll_all connects before using the session")
    }

    async fn poll_folder(
        &mut self,
        folder: &str,
        kind: FolderKind,
    ) -> Result<FolderReport, ImapError> {
        let started = Instant::now();
        let mailbox = self.settings.name.clone();
        let checkpoint = {
            let sink = self.sink.clone();
            let (m, f) = (mailbox.clone(), folder.to_string());
            tokio::task::spawn_blocking(move || sink.checkpoint(&m, &f))
                .await
                .map_err(|e| ImapError::Sink(e.to_string()))?
                .map_err(ImapError::Sink)?
        };
        // Announcements from before this SELECT are covered by it (and left
        // over from an IDLE's DONE); `wait_for_mail` heeds only later ones.
        while self.session().unsolicited_responses.try_recv().is_ok() {}
        let limit = self.timing.command_timeout;
        let selected = match tokio::time::timeout(limit, self.session().select(folder)).await {
            Ok(r) => r.map_err(|source| ImapError::Protocol {
                what: "SELECT",
                source,
            })?,
            Err(_) => {
                return Err(ImapError::Timeout {
                    what: "SELECT",
                    secs: limit.as_secs(),
                });
            }
        };
        self.selected = Some(folder.to_string());
        let uidvalidity = selected
            .uid_validity
            .ok_or_else(|| ImapError::NoUidValidity {
                folder: folder.to_string(),
            })?;
        let (last_uid, rescanned) = match checkpoint {
            Some(c) if c.uidvalidity == uidvalidity => (c.last_uid, false),
            Some(c) => {
                tracing::warn!(
                    mailbox = %mailbox,
                    folder,
                    old = c.uidvalidity,
                    new = uidvalidity,
                    "UIDVALIDITY changed: reading the folder again from UID 1"
                );
                (0, true)
            }
            None => (0, false),
        };
        let mut report = FolderReport {
            folder: folder.to_string(),
            kind,
            uidvalidity,
            fetched: 0,
            batches: 0,
            last_uid,
            rescanned,
        };
        if selected.exists == 0 || selected.uid_next.is_some_and(|next| next <= last_uid + 1) {
            // Nothing can be new: skip the SEARCH round trip.
            return Ok(report);
        }
        let uids = match tokio::time::timeout(
            limit,
            self.session()
                .uid_search(format!("UID {}:*", last_uid.saturating_add(1))),
        )
        .await
        {
            Ok(r) => r.map_err(|source| ImapError::Protocol {
                what: "UID SEARCH",
                source,
            })?,
            Err(_) => {
                return Err(ImapError::Timeout {
                    what: "UID SEARCH",
                    secs: limit.as_secs(),
                });
            }
        };
        for (first, last) in batches(uids, last_uid, self.timing.batch_size) {
            let batch = self.fetch_range(first, last).await?;
            if batch.is_empty() {
                // Expunged between SEARCH and FETCH: nothing to store, and
                // the next SEARCH will not list them again.
                continue;
            }
            let count = batch.len();
            let highest = batch.last().map_or(last, |m| m.uid);
            let sink = self.sink.clone();
            let (m, f) = (mailbox.clone(), folder.to_string());
            let stored = Instant::now();
            tokio::task::spawn_blocking(move || sink.ingest(&m, &f, kind, uidvalidity, batch))
                .await
                .map_err(|e| ImapError::Sink(e.to_string()))?
                .map_err(ImapError::Sink)?;
            tracing::debug!(
                mailbox = %mailbox,
                folder,
                count,
                last_uid = highest,
                duration_ms = stored.elapsed().as_millis() as u64,
                "IMAP batch stored"
            );
            report.fetched += count;
            report.batches += 1;
            report.last_uid = highest;
        }
        tracing::info!(
            mailbox = %mailbox,
            folder,
            fetched = report.fetched,
            batches = report.batches,
            last_uid = report.last_uid,
            duration_ms = started.elapsed().as_millis() as u64,
            "IMAP folder polled"
        );
        Ok(report)
    }

    /// `UID FETCH first:last (UID BODY.PEEK[])`, sorted by UID. PEEK keeps
    /// the team's \Seen flags untouched.
    async fn fetch_range(&mut self, first: u32, last: u32) -> Result<Vec<FetchedMail>, ImapError> {
        let limit = self.timing.command_timeout;
        let fetch = async {
            let stream = self
                .session()
                .uid_fetch(format!("{first}:{last}"), "(UID BODY.PEEK[])")
                .await?;
            stream.try_collect::<Vec<_>>().await
        };
        let fetched = match tokio::time::timeout(limit, fetch).await {
            Ok(r) => r.map_err(|source| ImapError::Protocol {
                what: "UID FETCH",
                source,
            })?,
            Err(_) => {
                return Err(ImapError::Timeout {
                    what: "UID FETCH",
                    secs: limit.as_secs(),
                });
            }
        };
        let mut mails: Vec<FetchedMail> = fetched
            .iter()
            .filter_map(|f| {
                let uid = f.uid?;
                // A range answers the newest message even below `first`
                // (`n:*` semantics) and servers may add unsolicited FETCHes
                // for flag changes, which carry no body.
                if uid < first || uid > last {
                    return None;
                }
                Some(FetchedMail {
                    uid,
                    raw: f.body()?.to_vec(),
                })
            })
            .collect();
        mails.sort_by_key(|m| m.uid);
        mails.dedup_by_key(|m| m.uid);
        Ok(mails)
    }

    /// Waits until the first folder may have new mail: IDLE when offered,
    /// else a poll interval of sleep.
    async fn wait_for_mail(&mut self) -> Result<(), ImapError> {
        if !self.idle_supported || self.session.is_none() {
            tokio::time::sleep(self.timing.poll_interval).await;
            return Ok(());
        }
        let watched = self.folders[0].0.clone();
        if self.selected.as_deref() != Some(watched.as_str()) {
            self.timed_select(&watched).await?;
        }
        let session = self.session.take().expect("checked above");
        self.selected = None;
        // EXISTS announced during the poll's SEARCH or FETCH, or while IDLE
        // starts, lands here rather than in the IDLE stream: such mail came
        // after the SEARCH and would otherwise wait for the next wake-up.
        let announced = session.unsolicited_responses.clone();
        let limit = self.timing.command_timeout;
        let secs = limit.as_secs();
        let mut handle = session.idle();
        match tokio::time::timeout(limit, handle.init()).await {
            Ok(r) => r.map_err(|source| ImapError::Protocol {
                what: "IDLE",
                source,
            })?,
            Err(_) => return Err(ImapError::Timeout { what: "IDLE", secs }),
        }
        let mut arrived = false;
        while let Ok(r) = announced.try_recv() {
            arrived |= matches!(
                r,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            );
        }
        let started = Instant::now();
        let woke = if arrived {
            IdleResponse::Timeout
        } else {
            let wait = if self.folders.len() > 1 {
                // IDLE sees only the first folder: poll the others at this pace.
                self.timing.idle_timeout.min(self.timing.poll_interval)
            } else {
                self.timing.idle_timeout
            };
            let (fut, _stop) = handle.wait_with_timeout(wait);
            // The inner timeout restarts on every keepalive; this one bounds
            // the whole wait should the stream stall mid-response.
            match tokio::time::timeout(wait + limit, fut).await {
                Ok(r) => r.map_err(|source| ImapError::Protocol {
                    what: "IDLE",
                    source,
                })?,
                Err(_) => IdleResponse::Timeout,
            }
        };
        let session = match tokio::time::timeout(limit, handle.done()).await {
            Ok(r) => r.map_err(|source| ImapError::Protocol {
                what: "DONE",
                source,
            })?,
            Err(_) => return Err(ImapError::Timeout { what: "DONE", secs }),
        };
        self.session = Some(session);
        self.selected = Some(watched.clone());
        tracing::debug!(
            mailbox = %self.settings.name,
            folder = %watched,
            new_data = arrived || matches!(woke, IdleResponse::NewData(_)),
            duration_ms = started.elapsed().as_millis() as u64,
            "IMAP IDLE ended"
        );
        Ok(())
    }

    async fn timed_select(&mut self, folder: &str) -> Result<(), ImapError> {
        let limit = self.timing.command_timeout;
        match tokio::time::timeout(limit, self.session().select(folder)).await {
            Ok(r) => {
                r.map_err(|source| ImapError::Protocol {
                    what: "SELECT",
                    source,
                })?;
            }
            Err(_) => {
                return Err(ImapError::Timeout {
                    what: "SELECT",
                    secs: limit.as_secs(),
                });
            }
        }
        self.selected = Some(folder.to_string());
        Ok(())
    }
}

/// Splits the UIDs above `after` into inclusive `(first, last)` ranges of at
/// most `size` existing messages. Ranges rather than UID lists keep each
/// command short; a range between two existing UIDs can only contain UIDs
/// SEARCH already listed, because new mail always gets higher UIDs.
fn batches(uids: impl IntoIterator<Item = u32>, after: u32, size: usize) -> Vec<(u32, u32)> {
    let mut uids: Vec<u32> = uids.into_iter().filter(|&u| u > after).collect();
    uids.sort_unstable();
    uids.dedup();
    uids.chunks(size.max(1))
        .map(|c| (c[0], c[c.len() - 1]))
        .collect()
}

/// Verifies the server against the public web roots plus the mailbox's
/// `ca_file`, for the name in `host` (a DNS name or an IP address, which the
/// certificate must then list as an IP SAN). The CA file is read on every
/// connection, so a renewed private CA is picked up without a restart.
async fn tls_handshake(
    s: &MailboxSettings,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ImapError> {
    use tokio_rustls::rustls;
    let host = s.host.as_str();
    let err = |reason: String| ImapError::Tls {
        host: host.to_string(),
        reason,
    };
    let roots = crate::tls::root_store(s.ca_file.as_deref())
        .map_err(|e| err(format!("mailbox `{}` ca_file: {e}", s.name)))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| err(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| err(format!("invalid server name: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            err(crate::tls::describe_error(&e, host, "mailboxes[].ca_file")
                .unwrap_or_else(|| e.to_string()))
        })
}

/// Plain TCP or TLS behind one type, because async-imap's session is
/// generic over its stream and the poller holds one session type.
#[derive(Debug)]
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_skip_the_newest_message_that_n_star_returns() {
        // `UID SEARCH UID 8:*` answers 7 when 7 is the newest: not new.
        assert_eq!(batches([7], 7, 500), vec![]);
    }

    #[test]
    fn batches_split_sparse_uids_by_count() {
        let uids = [3, 1, 9, 4, 12, 10, 4];
        assert_eq!(batches(uids, 1, 2), vec![(3, 4), (9, 10), (12, 12)]);
        assert_eq!(batches(uids, 0, 500), vec![(1, 12)]);
    }

    #[test]
    fn freshness_waits_for_every_folder_and_reports_the_oldest_read() {
        let inbox = ("INBOX".to_string(), FolderKind::Inbox);
        let sent = ("Sent".to_string(), FolderKind::Sent);
        let f = Freshness::new(&[inbox.clone(), sent.clone()]);
        assert_eq!(f.record(std::slice::from_ref(&inbox), 10.0), None);
        assert_eq!(f.record(std::slice::from_ref(&inbox), 20.0), None);
        assert_eq!(f.record(std::slice::from_ref(&sent), 25.0), Some(20.0));
        assert_eq!(f.record(std::slice::from_ref(&inbox), 30.0), Some(25.0));
        assert_eq!(f.record(&[inbox, sent], 40.0), Some(40.0));
    }

    #[test]
    fn metric_names_carry_no_prefix() {
        let m = ImapMetrics::new();
        m.errors.with_label_values(&["support"]).inc();
        m.last_success.with_label_values(&["support"]).set(1.0);
        let names: Vec<String> = m
            .collectors()
            .iter()
            .flat_map(|c| c.desc().into_iter().map(|d| d.fq_name.clone()))
            .collect();
        assert_eq!(
            names,
            ["imap_last_success_timestamp_seconds", "imap_errors_total"]
        );
    }
}
