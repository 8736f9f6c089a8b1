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
//! Leasing (docs/ARCHITECTURE.md: one poller per mailbox across processes sharing one
//! PostgreSQL) is the service's job: it holds the mailbox lease (a session
//! advisory lock) for as long as it runs the poller. Even
//! without a lease two pollers would store nothing twice (checkpoint and
//! Message-ID de-duplication share the transaction); they would only waste
//! work.

use std::sync::Mutex;
use std::time::Duration;

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts};

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
    #[error("no OAuth token: {0}")]
    OAuth(#[from] crate::oauth::OAuthError),
}

impl ImapError {
    /// The provider answered `invalid_grant`: retrying soon cannot help.
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, ImapError::OAuth(e) if e.is_invalid_grant())
    }

    /// What to do about it, where that is known; `grant` is the mailbox's
    /// OAuth grant, if it logs in with one.
    pub fn fix(&self, grant: Option<crate::oauth::Grant>) -> Option<String> {
        match self {
            ImapError::OAuth(e) => e.fix().map(String::from),
            ImapError::Login { reason, .. } => {
                crate::oauth::login_fix(reason, grant).map(String::from)
            }
            ImapError::Connect { .. } => {
                Some("check `host` and `port`, and that this machine may reach the server".into())
            }
            ImapError::Tls { .. } => Some(
                "check `tls` (993 is implicit TLS, 143 STARTTLS) and `ca_file` for a private CA"
                    .into(),
            ),
            _ => None,
        }
    }
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
    /// 1 while a connection waits in IDLE on the folder: ops (and tests)
    /// see whether new mail is pushed or only polled.
    pub idling: IntGaugeVec,
    /// 1 while the mailbox's last connection attempt or poll succeeded.
    pub up: IntGaugeVec,
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
        let idling = IntGaugeVec::new(
            Opts::new(
                "imap_idle",
                "1 while a connection of the mailbox waits in IDLE on the folder.",
            ),
            &["mailbox", "folder"],
        )
        .expect("valid metric");
        let up = IntGaugeVec::new(
            Opts::new(
                "imap_up",
                "1 while the last connection attempt or poll of the mailbox succeeded.",
            ),
            &["mailbox"],
        )
        .expect("valid metric");
        ImapMetrics {
            last_success,
            errors,
            idling,
            up,
        }
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.last_success.clone()),
            Box::new(self.errors.clone()),
            Box::new(self.idling.clone()),
            Box::new(self.up.clone()),
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
    /// Longest single IDLE. It then ends (DONE) and the folder is polled
    /// again: the server's answer to DONE is what shows the connection is
    /// still alive. A connection dropped without a word (a NAT or firewall
    /// that forgot it: no RST, no FIN, and the kernel's keepalive cannot
    /// tell when a middlebox answers for the peer) is noticed within this
    /// plus [`PollerTiming::liveness_timeout`]. RFC 2177 allows up to 29
    /// minutes; a help desk cannot leave mail unread that long unnoticed.
    pub idle_timeout: Duration,
    /// Limit on every IMAP command; async-imap has none of its own. A
    /// command may carry a large mail, so this is generous.
    pub command_timeout: Duration,
    /// Limit on the answers that carry no data and only show the server is
    /// there: the continuation that starts IDLE and the OK that ends it.
    pub liveness_timeout: Duration,
    /// First and longest wait before reconnecting after an error.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Messages per `UID FETCH` and per sink transaction.
    pub batch_size: usize,
    /// Bytes per `UID FETCH` and per sink transaction (by the server's
    /// RFC822.SIZE), so memory stays bounded whatever the mailbox holds:
    /// a batch counted in messages alone would hold 500 large attachments
    /// at once. A message larger than this is a batch of its own.
    pub batch_bytes: u64,
    /// The wait between tries once the provider answered `invalid_grant`:
    /// only a person can fix it, and hammering the provider would not.
    pub needs_sign_in_retry: Duration,
}

impl Default for PollerTiming {
    fn default() -> Self {
        PollerTiming {
            poll_interval: Duration::from_secs(30),
            // A silent drop is noticed within 75 s in IDLE, within 120 s
            // mid-command: docs/faults.md, the stated bound.
            idle_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(120),
            liveness_timeout: Duration::from_secs(15),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            batch_size: 500,
            batch_bytes: 32 << 20,
            needs_sign_in_retry: Duration::from_secs(15 * 60),
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

mod connection;
mod mailboxes;
mod poller;

use connection::Conn;
pub use mailboxes::{mailbox_contexts, poll_mailbox};
pub use poller::MailboxPoller;

#[cfg(test)]
mod tests {
    use super::poller::batches;
    use super::*;

    #[test]
    fn batches_skip_the_newest_message_that_n_star_returns() {
        // `UID SEARCH UID 8:*` answers 7 when 7 is the newest: not new.
        assert_eq!(batches([(7, 1)], 7, 500, u64::MAX), vec![]);
    }

    #[test]
    fn batches_split_sparse_uids_by_count() {
        let uids = [3, 1, 9, 4, 12, 10, 4].map(|u| (u, 1));
        assert_eq!(
            batches(uids, 1, 2, u64::MAX),
            vec![(3, 4), (9, 10), (12, 12)]
        );
        assert_eq!(batches(uids, 0, 500, u64::MAX), vec![(1, 12)]);
    }

    #[test]
    fn batches_split_by_bytes_and_a_large_message_goes_alone() {
        let sized = [(1, 10), (2, 10), (3, 100), (4, 10), (5, 10), (6, 10)];
        assert_eq!(
            batches(sized, 0, 500, 25),
            vec![(1, 2), (3, 3), (4, 5), (6, 6)]
        );
        // Unknown sizes (0) count by number only.
        assert_eq!(batches([(1, 0), (2, 0)], 0, 500, 25), vec![(1, 2)]);
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
            [
                "imap_last_success_timestamp_seconds",
                "imap_errors_total",
                "imap_idle",
                "imap_up"
            ]
        );
    }
}
