//! The IMAP poller against a real Dovecot (one private instance per test),
//! with a recording sink that de-duplicates by Message-ID like the real one.

use crate::support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keepword::config::{MailboxSettings, Secret, Tls};
use keepword::imap::{
    FetchedMail, FolderCheckpoint, FolderKind, ImapError, ImapMetrics, MailSink, MailboxPoller,
    PollerTiming,
};
use support::dovecot::Dovecot;
use tokio_util::sync::CancellationToken;

const USER: &str = "support@test.local";
const PASSWORD: &str = "supportpw";
const MAILBOX: &str = "support";

/// One message as the sink received it (duplicates included).
#[derive(Debug, Clone)]
struct Delivery {
    folder: String,
    kind: FolderKind,
    uidvalidity: u32,
    uid: u32,
    message_id: String,
}

#[derive(Default)]
struct State {
    checkpoints: HashMap<(String, String), FolderCheckpoint>,
    deliveries: Vec<Delivery>,
    stored: HashSet<String>,
    batch_sizes: Vec<usize>,
}

/// Stores in memory; `fail_next` makes the next N `ingest` calls fail
/// without storing anything, as a rolled-back transaction would.
#[derive(Default)]
struct RecordingSink {
    state: Mutex<State>,
    fail_next: AtomicUsize,
}

impl RecordingSink {
    fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().deliveries.clone()
    }
    fn stored(&self) -> usize {
        self.state.lock().unwrap().stored.len()
    }
    fn batch_sizes(&self) -> Vec<usize> {
        self.state.lock().unwrap().batch_sizes.clone()
    }
    fn checkpoint_of(&self, folder: &str) -> Option<FolderCheckpoint> {
        self.checkpoint(MAILBOX, folder).unwrap()
    }
}

fn message_id(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("test mail has a Message-ID")
        .trim()
        .to_string()
}

impl MailSink for RecordingSink {
    fn checkpoint(&self, mailbox: &str, folder: &str) -> Result<Option<FolderCheckpoint>, String> {
        let state = self.state.lock().unwrap();
        Ok(state
            .checkpoints
            .get(&(mailbox.to_string(), folder.to_string()))
            .copied())
    }

    fn ingest(
        &self,
        mailbox: &str,
        folder: &str,
        kind: FolderKind,
        uidvalidity: u32,
        batch: Vec<FetchedMail>,
    ) -> Result<(), String> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err("database is locked (test)".into());
        }
        let mut state = self.state.lock().unwrap();
        state.batch_sizes.push(batch.len());
        let last_uid = batch.iter().map(|m| m.uid).max().expect("non-empty batch");
        for m in &batch {
            let id = message_id(&m.raw);
            state.stored.insert(id.clone());
            state.deliveries.push(Delivery {
                folder: folder.to_string(),
                kind,
                uidvalidity,
                uid: m.uid,
                message_id: id,
            });
        }
        state.checkpoints.insert(
            (mailbox.to_string(), folder.to_string()),
            FolderCheckpoint {
                uidvalidity,
                last_uid,
            },
        );
        Ok(())
    }
}

fn mail(tag: &str, i: usize) -> Vec<u8> {
    format!(
        "From: Client <client@example.com>\r\nTo: {USER}\r\nSubject: {tag} {i}\r\n\
         Message-ID: <{tag}-{i}@test.local>\r\nDate: Mon, 1 Dec 2025 10:00:00 +0000\r\n\r\n\
         Hello, message {i} of {tag}.\r\n"
    )
    .into_bytes()
}

fn mails(tag: &str, n: usize) -> Vec<Vec<u8>> {
    (1..=n).map(|i| mail(tag, i)).collect()
}

fn settings(port: u16, password: &str, sent: Option<&str>) -> MailboxSettings {
    MailboxSettings {
        name: MAILBOX.into(),
        channel: "email".into(),
        host: "127.0.0.1".into(),
        port,
        tls: Tls::None,
        username: USER.into(),
        password: Secret::new(password),
        password_file: None,
        inbox: "INBOX".into(),
        sent: sent.map(String::from),
        team_addresses: vec!["@test.local".into()],
        ca_file: None,
        auth: Default::default(),
        oauth: None,
        sasl: None,
    }
}

fn fast() -> PollerTiming {
    PollerTiming {
        // Long enough that a test passing within it proves IDLE woke the poller.
        poll_interval: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(29 * 60),
        command_timeout: Duration::from_secs(20),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        batch_size: 500,
        ..PollerTiming::default()
    }
}

fn poller(server: &Dovecot, sink: &Arc<RecordingSink>, sent: Option<&str>) -> MailboxPoller {
    MailboxPoller::new(
        settings(server.port, PASSWORD, sent),
        sink.clone(),
        ImapMetrics::new(),
    )
    .with_timing(fast())
}

fn start() -> (Dovecot, Arc<RecordingSink>) {
    (
        Dovecot::start(&[(USER, PASSWORD)]),
        Arc::new(RecordingSink::default()),
    )
}

#[tokio::test]
async fn backlog_is_ingested_once_in_batches_and_the_checkpoint_advances() {
    let (server, sink) = start();
    server.append_many(USER, PASSWORD, "INBOX", &mails("backlog", 1200));
    let metrics = ImapMetrics::new();
    let mut p = MailboxPoller::new(
        settings(server.port, PASSWORD, None),
        sink.clone(),
        metrics.clone(),
    )
    .with_timing(fast());

    let started = Instant::now();
    let report = p.poll_once().await.unwrap();
    eprintln!("1,200 messages ingested in {:?}", started.elapsed());
    assert_eq!(report.fetched(), 1200);
    assert_eq!(report.folders[0].batches, 3);
    assert_eq!(sink.batch_sizes(), [500, 500, 200]);
    assert_eq!(sink.stored(), 1200);
    let uids: Vec<u32> = sink.deliveries().iter().map(|d| d.uid).collect();
    assert_eq!(
        uids,
        (1..=1200).collect::<Vec<u32>>(),
        "in UID order, once each"
    );
    let cp = sink.checkpoint_of("INBOX").unwrap();
    assert_eq!(cp.last_uid, 1200);
    assert_eq!(cp.uidvalidity, report.folders[0].uidvalidity);
    assert!(metrics.last_success.with_label_values(&[MAILBOX]).get() > 1.7e9);

    // `UID n:*` answers the newest message even when nothing is new.
    let again = p.poll_once().await.unwrap();
    assert_eq!(again.fetched(), 0);
    assert_eq!(sink.deliveries().len(), 1200);

    server.append(USER, PASSWORD, "INBOX", &mail("backlog", 1201));
    let more = p.poll_once().await.unwrap();
    assert_eq!(more.fetched(), 1);
    assert_eq!(sink.checkpoint_of("INBOX").unwrap().last_uid, 1201);
    assert_eq!(metrics.errors.with_label_values(&[MAILBOX]).get(), 0);
}

#[tokio::test]
async fn new_mail_arrives_through_idle_within_two_seconds() {
    let (server, sink) = start();
    server.append(USER, PASSWORD, "INBOX", &mail("idle", 1));
    let shutdown = CancellationToken::new();
    let metrics = ImapMetrics::new();
    let p = MailboxPoller::new(
        settings(server.port, PASSWORD, None),
        sink.clone(),
        metrics.clone(),
    )
    .with_timing(fast());
    let task = tokio::spawn(p.run(shutdown.clone()));
    assert!(
        support::eventually(Duration::from_secs(10), || sink.stored() == 1).await,
        "the first poll did not ingest the existing message"
    );
    // The new mail must land while the poller waits in IDLE, or the test
    // would prove the poll, not IDLE.
    let idle = metrics.idling.with_label_values(&[MAILBOX, "INBOX"]);
    assert!(
        support::eventually(Duration::from_secs(5), || idle.get() == 1).await,
        "the poller never entered IDLE"
    );

    for i in 2..=3 {
        let appended = Instant::now();
        server.append(USER, PASSWORD, "INBOX", &mail("idle", i));
        assert!(
            support::eventually(Duration::from_secs(2), || sink.stored() == i).await,
            "message {i} did not arrive within 2 s (poll interval is 60 s, so IDLE failed)\n{}",
            server.log()
        );
        eprintln!("message {i} arrived {:?} after APPEND", appended.elapsed());
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("poller stops promptly")
        .unwrap();
}

fn count(sink: &RecordingSink, folder: &str) -> usize {
    sink.deliveries()
        .iter()
        .filter(|d| d.folder == folder)
        .count()
}

#[tokio::test]
async fn a_team_reply_in_sent_arrives_within_two_seconds_while_the_inbox_idles_too() {
    let (server, sink) = start();
    server.append(USER, PASSWORD, "INBOX", &mail("ask", 1));
    server.append(USER, PASSWORD, "Sent", &mail("answer", 1));
    let metrics = ImapMetrics::new();
    let p = MailboxPoller::new(
        settings(server.port, PASSWORD, Some("Sent")),
        sink.clone(),
        metrics.clone(),
    )
    .with_timing(fast());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(p.run(shutdown.clone()));
    assert!(
        support::eventually(Duration::from_secs(10), || sink.stored() == 2).await,
        "the first polls did not ingest the existing messages"
    );

    // The poll interval is 60 s: arriving within 2 s proves IDLE on each
    // folder. No pause before appending: mail that lands while a connection
    // is still between its poll and IDLE must not wait either.
    let within = Duration::from_secs(2);
    for i in 2..=3 {
        let appended = Instant::now();
        server.append(USER, PASSWORD, "Sent", &mail("answer", i));
        assert!(
            support::eventually(within, || count(&sink, "Sent") == i).await,
            "team reply {i} in Sent not ingested within 2 s\n{}",
            server.log()
        );
        eprintln!(
            "Sent: reply {i} ingested {:?} after APPEND",
            appended.elapsed()
        );

        let appended = Instant::now();
        server.append(USER, PASSWORD, "INBOX", &mail("ask", i));
        assert!(
            support::eventually(within, || count(&sink, "INBOX") == i).await,
            "inbound message {i} not ingested within 2 s\n{}",
            server.log()
        );
        eprintln!(
            "INBOX: message {i} ingested {:?} after APPEND",
            appended.elapsed()
        );
    }

    // Both folders at once: neither connection waits for the other.
    let appended = Instant::now();
    server.append(USER, PASSWORD, "INBOX", &mail("ask", 4));
    server.append(USER, PASSWORD, "Sent", &mail("answer", 4));
    assert!(
        support::eventually(within, || count(&sink, "INBOX") == 4
            && count(&sink, "Sent") == 4)
        .await,
        "simultaneous mail in both folders not ingested within 2 s"
    );
    eprintln!(
        "both folders ingested {:?} after APPEND",
        appended.elapsed()
    );

    let d = sink.deliveries();
    assert_eq!(d.len(), 8, "each message delivered once: {d:?}");
    assert!(
        d.iter()
            .all(|d| (d.folder == "Sent") == (d.kind == FolderKind::Sent))
    );
    assert!(
        d.iter()
            .filter(|d| d.kind == FolderKind::Sent)
            .all(|d| d.message_id.starts_with("<answer-"))
    );
    assert_eq!(sink.checkpoint_of("Sent").unwrap().last_uid, 4);
    assert_eq!(sink.checkpoint_of("INBOX").unwrap().last_uid, 4);
    assert_eq!(metrics.errors.with_label_values(&[MAILBOX]).get(), 0);
    assert!(metrics.last_success.with_label_values(&[MAILBOX]).get() > 1.7e9);

    let stopping = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("both connections stop promptly during IDLE")
        .unwrap();
    eprintln!("stopped {:?} after cancel", stopping.elapsed());
}

#[tokio::test]
async fn a_failing_sent_folder_does_not_hold_up_the_inbox() {
    // No Sent folder yet: its connection fails at SELECT and backs off.
    let (server, sink) = start();
    server.append(USER, PASSWORD, "INBOX", &mail("alone", 1));
    let metrics = ImapMetrics::new();
    let p = MailboxPoller::new(
        settings(server.port, PASSWORD, Some("Sent")),
        sink.clone(),
        metrics.clone(),
    )
    .with_timing(fast());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(p.run(shutdown.clone()));
    let errors = || metrics.errors.with_label_values(&[MAILBOX]).get();
    assert!(
        support::eventually(Duration::from_secs(10), || sink.stored() == 1
            && errors() >= 2)
        .await,
        "stored {}, errors {}",
        sink.stored(),
        errors()
    );

    let appended = Instant::now();
    server.append(USER, PASSWORD, "INBOX", &mail("alone", 2));
    assert!(
        support::eventually(Duration::from_secs(2), || count(&sink, "INBOX") == 2).await,
        "the inbox waited for the failing sent folder"
    );
    eprintln!("INBOX ingested {:?} after APPEND", appended.elapsed());
    assert_eq!(
        metrics.last_success.with_label_values(&[MAILBOX]).get(),
        0.0,
        "the mailbox is not fully read while Sent fails"
    );

    // Creating the folder heals its connection on the next retry (back-off
    // is at most 400 ms here).
    server.append(USER, PASSWORD, "Sent", &mail("late-answer", 1));
    assert!(
        support::eventually(Duration::from_secs(5), || count(&sink, "Sent") == 1).await,
        "the sent folder's connection did not recover\n{}",
        server.log()
    );
    assert!(
        support::eventually(Duration::from_secs(2), || {
            metrics.last_success.with_label_values(&[MAILBOX]).get() > 1.7e9
        })
        .await
    );
    let recovered_errors = errors();
    server.append(USER, PASSWORD, "Sent", &mail("late-answer", 2));
    assert!(
        support::eventually(Duration::from_secs(2), || count(&sink, "Sent") == 2).await,
        "the recovered sent connection does not IDLE"
    );
    assert_eq!(errors(), recovered_errors, "no errors once Sent exists");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("poller stops promptly")
        .unwrap();
}

/// The server is restarted while the poller waits in IDLE (every connection
/// cut): the poller notices, counts the error, logs in again without being
/// restarted itself, and the mail that arrived meanwhile and after is
/// ingested once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_restarted_during_idle_is_read_again() {
    let (server, sink) = start();
    server.append(USER, PASSWORD, "INBOX", &mail("cut", 1));
    let shutdown = CancellationToken::new();
    let metrics = ImapMetrics::new();
    let p = MailboxPoller::new(
        settings(server.port, PASSWORD, None),
        sink.clone(),
        metrics.clone(),
    )
    .with_timing(fast());
    let task = tokio::spawn(p.run(shutdown.clone()));
    let idle = metrics.idling.with_label_values(&[MAILBOX, "INBOX"]);
    assert!(
        support::eventually(Duration::from_secs(10), || sink.stored() == 1
            && idle.get() == 1)
        .await,
        "the poller never read the first mail and entered IDLE"
    );
    // Blocking (a few seconds): the poller's task runs on the other thread.
    tokio::task::block_in_place(|| server.restart());
    // Appended while the poller reconnects, and once it is back.
    server.append(USER, PASSWORD, "INBOX", &mail("cut", 2));
    assert!(
        support::eventually(Duration::from_secs(20), || sink.stored() == 2).await,
        "the mail after the restart was not read\n{}",
        server.log()
    );
    assert!(metrics.errors.with_label_values(&[MAILBOX]).get() >= 1);
    assert!(
        support::eventually(Duration::from_secs(10), || idle.get() == 1).await,
        "not back in IDLE"
    );
    server.append(USER, PASSWORD, "INBOX", &mail("cut", 3));
    assert!(
        support::eventually(Duration::from_secs(5), || sink.stored() == 3).await,
        "IDLE after the restart did not wake"
    );
    let uids: Vec<u32> = sink.deliveries().iter().map(|d| d.uid).collect();
    assert_eq!(uids, [1, 2, 3], "once each");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("poller stops promptly")
        .unwrap();
}

#[tokio::test]
async fn a_restarted_poller_fetches_nothing_twice() {
    let (server, sink) = start();
    server.append_many(USER, PASSWORD, "INBOX", &mails("restart", 5));
    let first = poller(&server, &sink, None).poll_once().await.unwrap();
    assert_eq!(first.fetched(), 5);

    server.append_many(USER, PASSWORD, "INBOX", &mails("restart-late", 2));
    let mut second = poller(&server, &sink, None);
    assert_eq!(second.poll_once().await.unwrap().fetched(), 2);
    assert_eq!(second.poll_once().await.unwrap().fetched(), 0);

    let d = sink.deliveries();
    assert_eq!(d.len(), 7, "every message delivered exactly once: {d:?}");
    let uids: HashSet<u32> = d.iter().map(|d| d.uid).collect();
    assert_eq!(uids.len(), 7);
}

#[tokio::test]
async fn the_sent_folder_is_read_as_sent() {
    let (server, sink) = start();
    server.append(USER, PASSWORD, "INBOX", &mail("question", 1));
    server.append_many(USER, PASSWORD, "Sent", &mails("reply", 2));
    let report = poller(&server, &sink, Some("Sent"))
        .poll_once()
        .await
        .unwrap();
    assert_eq!(report.folders.len(), 2);
    assert_eq!(report.folders[1].kind, FolderKind::Sent);
    assert_eq!(report.folders[1].fetched, 2);

    let d = sink.deliveries();
    let sent: Vec<&Delivery> = d.iter().filter(|d| d.folder == "Sent").collect();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|d| d.kind == FolderKind::Sent));
    assert!(sent.iter().all(|d| d.message_id.starts_with("<reply-")));
    let inbox: Vec<&Delivery> = d.iter().filter(|d| d.folder == "INBOX").collect();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].kind, FolderKind::Inbox);
    assert_eq!(sink.checkpoint_of("Sent").unwrap().last_uid, 2);
    assert_eq!(sink.checkpoint_of("INBOX").unwrap().last_uid, 1);
}

#[tokio::test]
async fn a_uidvalidity_change_rescans_the_folder_without_duplicates() {
    let (server, sink) = start();
    server.append_many(USER, PASSWORD, "INBOX", &mails("renumbered", 3));
    let mut p = poller(&server, &sink, None);
    let before = p.poll_once().await.unwrap();
    assert!(!before.folders[0].rescanned);
    let old = before.folders[0].uidvalidity;

    let new = server.bump_uidvalidity(USER, "INBOX");
    assert_ne!(old, new);
    // A fresh connection, as after the server rebuilt its index.
    let mut p = poller(&server, &sink, None);
    let after = p.poll_once().await.unwrap();
    assert!(after.folders[0].rescanned);
    assert_eq!(after.folders[0].uidvalidity, new);
    assert_eq!(after.fetched(), 3);

    let again: Vec<Delivery> = sink
        .deliveries()
        .into_iter()
        .filter(|d| d.uidvalidity == new)
        .collect();
    assert_eq!(
        again.iter().map(|d| d.uid).collect::<Vec<_>>(),
        [1, 2, 3],
        "the sink sees the UIDs again under the new UIDVALIDITY"
    );
    assert_eq!(
        sink.stored(),
        3,
        "Message-ID de-duplication stores nothing twice"
    );
    assert_eq!(
        sink.checkpoint_of("INBOX").unwrap(),
        FolderCheckpoint {
            uidvalidity: new,
            last_uid: 3
        }
    );
    assert_eq!(p.poll_once().await.unwrap().fetched(), 0);
}

#[tokio::test]
async fn a_sink_error_keeps_the_checkpoint_and_the_poller_retries() {
    let (server, sink) = start();
    server.append_many(USER, PASSWORD, "INBOX", &mails("flaky", 3));
    let metrics = ImapMetrics::new();
    let mut p = MailboxPoller::new(
        settings(server.port, PASSWORD, None),
        sink.clone(),
        metrics.clone(),
    )
    .with_timing(fast());

    sink.fail_next.store(1, Ordering::SeqCst);
    let err = p.poll_once().await.unwrap_err();
    assert!(matches!(err, ImapError::Sink(_)), "{err}");
    assert_eq!(sink.checkpoint_of("INBOX"), None);
    assert_eq!(metrics.errors.with_label_values(&[MAILBOX]).get(), 1);
    assert_eq!(p.poll_once().await.unwrap().fetched(), 3);
    assert_eq!(sink.checkpoint_of("INBOX").unwrap().last_uid, 3);

    // The run loop retries on its own after back-off.
    server.append_many(USER, PASSWORD, "INBOX", &mails("flaky-late", 2));
    sink.fail_next.store(2, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(p.run(shutdown.clone()));
    assert!(
        support::eventually(Duration::from_secs(5), || sink.stored() == 5).await,
        "the poller did not retry after sink errors"
    );
    assert_eq!(metrics.errors.with_label_values(&[MAILBOX]).get(), 3);
    assert_eq!(sink.deliveries().len(), 5);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_counts_errors_and_retries_with_back_off_until_shutdown() {
    let server = Dovecot::start(&[(USER, PASSWORD)]);
    let sink = Arc::new(RecordingSink::default());
    let metrics = ImapMetrics::new();
    let mut p = MailboxPoller::new(
        settings(server.port, "wrong", None),
        sink.clone(),
        metrics.clone(),
    )
    .with_timing(fast());
    let err = p.poll_once().await.unwrap_err();
    assert!(matches!(err, ImapError::Login { .. }), "{err}");
    assert!(!err.to_string().contains("wrong"), "no password in errors");

    let shutdown = CancellationToken::new();
    let task = tokio::spawn(p.run(shutdown.clone()));
    let errors = || metrics.errors.with_label_values(&[MAILBOX]).get();
    // Dovecot's auth penalty holds each further failed login from the same
    // IP for about 4 s, whatever the client's back-off (100 ms here).
    assert!(
        support::eventually(Duration::from_secs(20), || errors() >= 3).await,
        "only {} errors counted",
        errors()
    );
    shutdown.cancel();
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("poller stops promptly while retrying")
        .unwrap();
    eprintln!("stopped {:?} after cancel", stopping.elapsed());
    assert_eq!(sink.stored(), 0);
    assert_eq!(
        metrics.last_success.with_label_values(&[MAILBOX]).get(),
        0.0
    );
}

#[tokio::test]
async fn shutdown_during_idle_returns_promptly() {
    let (server, sink) = start();
    server.append(USER, PASSWORD, "INBOX", &mail("quiet", 1));
    let metrics = ImapMetrics::new();
    let p = MailboxPoller::new(
        settings(server.port, PASSWORD, None),
        sink.clone(),
        metrics.clone(),
    )
    .with_timing(fast());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(p.run(shutdown.clone()));
    assert!(support::eventually(Duration::from_secs(10), || sink.stored() == 1).await);
    let idle = metrics.idling.with_label_values(&[MAILBOX, "INBOX"]);
    assert!(
        support::eventually(Duration::from_secs(5), || idle.get() == 1).await,
        "the poller never entered IDLE"
    );

    let stopping = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("poller stops promptly during IDLE")
        .unwrap();
    let took = stopping.elapsed();
    eprintln!("stopped {took:?} after cancel");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(metrics.errors.with_label_values(&[MAILBOX]).get(), 0);
}
