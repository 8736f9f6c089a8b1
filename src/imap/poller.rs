//! The poller's loop: one task per watched folder, poll, hand batches to
//! the sink, IDLE or sleep, reconnect with back-off.

use crate::config::MailboxSettings;
use async_imap::extensions::idle::IdleResponse;
use async_imap::types::UnsolicitedResponse;
use futures::TryStreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::connection::timed;
use super::*;
use crate::service::connections::Connections;

/// Polls one mailbox. See the module doc.
pub struct MailboxPoller {
    pub(super) settings: MailboxSettings,
    pub(super) sink: Arc<dyn MailSink>,
    pub(super) metrics: ImapMetrics,
    pub(super) timing: PollerTiming,
    pub(super) session: Option<Session>,
    pub(super) idle_supported: bool,
    /// The folder the open session has selected, to skip a redundant SELECT
    /// before IDLE.
    pub(super) selected: Option<String>,
    /// The folders this connection reads, inbox first. IDLE watches the
    /// first.
    pub(super) folders: Vec<(String, FolderKind)>,
    pub(super) freshness: Arc<Freshness>,
    /// Access tokens, for `auth = "oauth2"`.
    pub(super) tokens: Option<crate::oauth::TokenSource>,
    /// When the token the session logged in with runs out: providers end
    /// such sessions then, so the poller reconnects with a fresh one first.
    pub(super) session_until: Option<std::time::SystemTime>,
    /// What the Connections page shows of this mailbox.
    pub(super) health: Option<Arc<crate::service::connections::Connections>>,
    /// The mailbox's OAuth grant, for the fix a refused login suggests.
    pub(super) grant: Option<crate::oauth::Grant>,
    /// When a read succeeded or failed, as the service tells time.
    pub(super) clock: crate::clock::Clock,
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
            tokens: None,
            session_until: None,
            health: None,
            grant: None,
            clock: crate::clock::Clock::system(),
        }
    }

    /// Tells the time of reads and failures by `clock` (the service's).
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Connects and logs in, reading nothing (`keepword oauth check`).
    pub async fn log_in(&mut self) -> Result<(), ImapError> {
        self.session = None;
        self.connect().await
    }

    /// SELECTs `folder` on the logged-in session: its message count.
    pub async fn select_only(&mut self, folder: &str) -> Result<u32, ImapError> {
        if self.session.is_none() {
            self.connect().await?;
        }
        let limit = self.timing.command_timeout;
        let selected = timed(limit, "SELECT", self.session().select(folder)).await?;
        self.selected = Some(folder.to_string());
        Ok(selected.exists)
    }

    /// Reports connections, reads and failures to the Connections page.
    pub fn with_health(mut self, health: Arc<crate::service::connections::Connections>) -> Self {
        self.health = Some(health);
        self
    }

    /// The token source for a mailbox with `auth = "oauth2"`.
    pub fn with_tokens(mut self, tokens: crate::oauth::TokenSource) -> Self {
        self.grant = self
            .settings
            .oauth
            .as_deref()
            .and_then(|c| tokens.grant_of(c));
        self.tokens = Some(tokens);
        self
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
                let read_at = self.clock.now();
                let now = read_at.timestamp_micros() as f64 / 1e6;
                self.metrics
                    .up
                    .with_label_values(&[self.settings.name.as_str()])
                    .set(1);
                if let Some(h) = &self.health {
                    h.read(&self.settings.name, read_at);
                }
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
                tokens: self.tokens.clone(),
                session_until: None,
                health: self.health.clone(),
                grant: self.grant,
                clock: self.clock.clone(),
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
            if let Err(e) = outcome {
                let wait = if e.needs_sign_in() {
                    self.timing.needs_sign_in_retry
                } else {
                    backoff
                };
                tracing::info!(mailbox = %mailbox, folder = %folder, retry_in_ms = wait.as_millis() as u64, "IMAP reconnect scheduled");
                let signed_in = async {
                    match (&self.tokens, e.needs_sign_in()) {
                        (Some(t), true) => t.signed_in().await,
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                    _ = signed_in => {}
                }
                if !e.needs_sign_in() {
                    backoff = (backoff * 2).min(self.timing.backoff_max);
                }
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
        self.metrics
            .up
            .with_label_values(&[self.settings.name.as_str()])
            .set(0);
        if let Some(h) = &self.health {
            h.failed(
                &self.settings.name,
                self.clock.now(),
                e.to_string(),
                e.fix(self.grant),
            );
        }
        tracing::warn!(mailbox = %self.settings.name, folder = %self.folders[0].0, error = %e, "IMAP error");
    }

    async fn poll_all(&mut self) -> Result<PollReport, ImapError> {
        if self.session.is_some() && self.token_ran_out() {
            tracing::info!(mailbox = %self.settings.name, "the login's OAuth token ran out: reconnecting with a fresh one");
            if let Some(mut session) = self.session.take() {
                let _ = tokio::time::timeout(Duration::from_secs(1), session.logout()).await;
            }
            self.selected = None;
        }
        if self.session.is_none() {
            self.connect().await?;
        }
        let mut report = PollReport::default();
        for (folder, kind) in self.folders.clone() {
            report.folders.push(self.poll_folder(&folder, kind).await?);
        }
        Ok(report)
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
        let selected = timed(limit, "SELECT", self.session().select(folder)).await?;
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
        let search = format!("UID {}:*", last_uid.saturating_add(1));
        let uids = timed(limit, "UID SEARCH", self.session().uid_search(search)).await?;
        // The next batch is fetched while the previous one is stored, so the
        // IMAP round trips and the transaction overlap; one store is in
        // flight at a time, so batches (and their checkpoints) still commit
        // in UID order.
        let mut in_flight: Option<Storing> = None;
        let sized = self.sizes(uids, last_uid).await?;
        for (first, last) in batches(
            sized,
            last_uid,
            self.timing.batch_size,
            self.timing.batch_bytes,
        ) {
            let fetched = self.fetch_range(first, last).await;
            if let Some(storing) = in_flight.take() {
                storing.finish(&mailbox, folder, &mut report).await?;
            }
            let batch = fetched?;
            if batch.is_empty() {
                // Expunged between SEARCH and FETCH: nothing to store, and
                // the next SEARCH will not list them again.
                continue;
            }
            let count = batch.len();
            let highest = batch.last().map_or(last, |m| m.uid);
            let sink = self.sink.clone();
            let (m, f) = (mailbox.clone(), folder.to_string());
            in_flight = Some(Storing {
                task: tokio::task::spawn_blocking(move || {
                    sink.ingest(&m, &f, kind, uidvalidity, batch)
                }),
                count,
                highest,
                started: Instant::now(),
            });
        }
        if let Some(storing) = in_flight.take() {
            storing.finish(&mailbox, folder, &mut report).await?;
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

    /// The server's size of each of `uids` above `after`
    /// (`UID FETCH first:last (UID RFC822.SIZE)`: a line per message, no
    /// bodies), so batches can be bounded in bytes; a size the server did
    /// not give counts as 0.
    async fn sizes(
        &mut self,
        uids: impl IntoIterator<Item = u32>,
        after: u32,
    ) -> Result<Vec<(u32, u32)>, ImapError> {
        let uids: Vec<u32> = uids.into_iter().filter(|&u| u > after).collect();
        let (Some(&first), Some(&last)) = (uids.iter().min(), uids.iter().max()) else {
            return Ok(Vec::new());
        };
        let limit = self.timing.command_timeout;
        let fetch = async {
            let stream = self
                .session()
                .uid_fetch(format!("{first}:{last}"), "(UID RFC822.SIZE)")
                .await?;
            stream.try_collect::<Vec<_>>().await
        };
        let fetched = timed(limit, "UID FETCH RFC822.SIZE", fetch).await?;
        let sizes: std::collections::HashMap<u32, u32> = fetched
            .iter()
            .filter_map(|f| Some((f.uid?, f.size?)))
            .collect();
        Ok(uids
            .into_iter()
            .map(|u| (u, sizes.get(&u).copied().unwrap_or(0)))
            .collect())
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
        let fetched = timed(limit, "UID FETCH", fetch).await?;
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
        let token_left = self.token_left();
        if !self.idle_supported || self.session.is_none() {
            tokio::time::sleep(self.timing.poll_interval.min(token_left)).await;
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
        let alive = self.timing.liveness_timeout;
        let mut handle = session.idle();
        timed(alive, "IDLE", handle.init()).await?;
        let idling = self
            .metrics
            .idling
            .with_label_values(&[self.settings.name.as_str(), watched.as_str()]);
        idling.set(1);
        if let Some(h) = &self.health {
            h.idle(&self.settings.name, true);
        }
        // Back to 0 however the wait ends, errors included.
        struct Idle<'a>(prometheus::IntGauge, Option<(&'a Connections, &'a str)>);
        impl Drop for Idle<'_> {
            fn drop(&mut self) {
                self.0.set(0);
                if let Some((h, mailbox)) = self.1 {
                    h.idle(mailbox, false);
                }
            }
        }
        let health = self.health.clone();
        let _idle = Idle(
            idling,
            health.as_deref().map(|h| (h, self.settings.name.as_str())),
        );
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
            }
            .min(token_left);
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
        let session = timed(alive, "DONE", handle.done()).await?;
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

    /// How long the session's OAuth token has left (a password login: no
    /// limit).
    fn token_left(&self) -> Duration {
        match self.session_until {
            Some(until) => until
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default(),
            None => Duration::MAX,
        }
    }

    fn token_ran_out(&self) -> bool {
        self.session_until.is_some() && self.token_left().is_zero()
    }

    async fn timed_select(&mut self, folder: &str) -> Result<(), ImapError> {
        let limit = self.timing.command_timeout;
        timed(limit, "SELECT", self.session().select(folder)).await?;
        self.selected = Some(folder.to_string());
        Ok(())
    }
}

/// Splits the `(UID, size)`s above `after` into inclusive `(first, last)`
/// ranges of at most `count` existing messages and `bytes` bytes (a larger
/// message alone). Ranges rather than UID lists keep each command short; a
/// range between two existing UIDs can only contain UIDs SEARCH already
/// listed, because new mail always gets higher UIDs.
pub(super) fn batches(
    sized: impl IntoIterator<Item = (u32, u32)>,
    after: u32,
    count: usize,
    bytes: u64,
) -> Vec<(u32, u32)> {
    let mut sized: Vec<(u32, u32)> = sized.into_iter().filter(|&(u, _)| u > after).collect();
    sized.sort_unstable();
    sized.dedup_by_key(|(u, _)| *u);
    let mut out = Vec::new();
    let mut current: Option<(u32, u32, usize, u64)> = None;
    for (uid, size) in sized {
        let size = u64::from(size);
        current = match current {
            Some((first, _, n, total)) if n < count.max(1) && total + size <= bytes => {
                Some((first, uid, n + 1, total + size))
            }
            Some((first, last, ..)) => {
                out.push((first, last));
                Some((uid, uid, 1, size))
            }
            None => Some((uid, uid, 1, size)),
        };
    }
    out.extend(current.map(|(first, last, ..)| (first, last)));
    out
}

/// A fetched batch being stored by the sink on a blocking thread.
struct Storing {
    task: tokio::task::JoinHandle<Result<(), String>>,
    count: usize,
    highest: u32,
    started: Instant,
}

impl Storing {
    /// Waits for the store to commit and counts the batch in `report`.
    async fn finish(
        self,
        mailbox: &str,
        folder: &str,
        report: &mut FolderReport,
    ) -> Result<(), ImapError> {
        self.task
            .await
            .map_err(|e| ImapError::Sink(e.to_string()))?
            .map_err(ImapError::Sink)?;
        tracing::debug!(
            mailbox = %mailbox,
            folder,
            count = self.count,
            last_uid = self.highest,
            duration_ms = self.started.elapsed().as_millis() as u64,
            "IMAP batch stored"
        );
        report.fetched += self.count;
        report.batches += 1;
        report.last_uid = self.highest;
        Ok(())
    }
}
