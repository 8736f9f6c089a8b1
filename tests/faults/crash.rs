//! The built binary stopped mid-send: `kill -9` in the narrow windows the
//! failpoints open (between claim and send, after a send before it is
//! recorded), a commit of the outcomes that fails, and SIGTERM while a send
//! is in flight. The notifications are enqueued straight into the database
//! the binary serves; the recording receivers and the checker judge.
//!
//! With `kill -9` on PostgreSQL the rows wait for their lease (two minutes)
//! before another run sends them; on SQLite a new run takes them at once
//! (one process owns the file). The PostgreSQL variants are in the full
//! matrix (scripts/faults), not the smoke subset.

// The windows need the failpoints: without the feature only SIGTERM runs.
#![cfg_attr(not(feature = "failpoints"), allow(dead_code))]

use std::path::Path;
use std::time::{Duration, Instant};

use keepword::store::{Store, outbox};

use crate::checker::{Expected, Must, check};
use crate::common::binary::{Served, serve_binary_as, sigterm, wait_exit};
use crate::rig;
use crate::support::recorders::{Act, History, HttpRecorder};

/// A lease, a send and the worker's first poll: how late a notification may
/// be after the process that held it was killed.
const KILL_BOUND_SQLITE: Duration = Duration::from_secs(15);

pub fn start(dir: &Path, url: &str, hook: &str, failpoints: Option<&str>) -> Served {
    let contract = crate::common::fast_contract(dir, hook);
    let mut env = vec![
        ("KEEPWORD_BIND", "127.0.0.1:0"),
        ("KEEPWORD_DATABASE_URL", url),
        ("KEEPWORD_CONTRACT", contract.to_str().unwrap()),
        ("KEEPWORD_API_TOKENS", "test-token"),
    ];
    if let Some(f) = failpoints {
        env.push(("FAILPOINTS", f));
    }
    // Its own process group, so that a SIGSTOP holds until the test's SIGCONT.
    serve_binary_as(dir, &env, true)
}

/// Every row recorded sent.
pub fn all_sent(store: &Store) -> bool {
    store
        .with(outbox::all)
        .unwrap()
        .iter()
        .all(|r| r.sent_at.is_some())
}

/// Attempts that followed one whose outcome was never recorded: each row's
/// attempts past its first.
fn unrecorded(store: &Store) -> u64 {
    store
        .with(outbox::all)
        .unwrap()
        .iter()
        .map(|r| (r.attempts.max(1) - 1) as u64)
        .sum()
}

fn enqueue(store: &Store, hook: &str, prefix: &str, n: usize) -> Vec<Expected> {
    (0..n)
        .map(|i| rig::webhook(store, &format!("{prefix}-{i}"), hook, Must::Deliver))
        .collect()
}

pub async fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    assert!(
        crate::support::eventually(within, &mut f).await,
        "timed out waiting for {what}"
    );
}

/// A scenario's receiver (taking everything) and `n` webhooks to it in the
/// database the binary will serve.
struct Setup {
    history: History,
    hook: HttpRecorder,
    store: Store,
    expected: Vec<Expected>,
}

impl Setup {
    async fn new(url: &str, prefix: &str, n: usize) -> Setup {
        let history = History::default();
        let hook = HttpRecorder::start("hook", &history, |_, _| Act::ok()).await;
        let store = Store::open(url).unwrap();
        let expected = enqueue(&store, &hook.url, prefix, n);
        Setup {
            history,
            hook,
            store,
            expected,
        }
    }
}

/// Reads the lines a binary wrote so far.
pub fn lines(served: &Served) -> String {
    served.stderr.try_iter().collect::<Vec<_>>().join("\n")
}

/// Killed after the receivers took the notifications and before the
/// process recorded it: the next run sends them again, with the same
/// identity.
pub async fn kill_nine_after_send(url: &str, bound: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let Setup {
        history,
        hook,
        store,
        expected,
    } = Setup::new(url, "after-send", 3).await;
    let mut first = start(
        dir.path(),
        url,
        &hook.url,
        Some("outbox-after-send=sleep(20000)"),
    );
    // The failpoint stalls a runtime thread per send it holds, so with two
    // threads not every send may get out: one in the window is the fault.
    wait_for("a send", Duration::from_secs(20), || {
        !history.all().is_empty()
    })
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed = Instant::now();
    let taken_before = history.all().len();
    assert!(
        !all_sent(&store),
        "recorded before the kill: the window was missed"
    );

    let mut second = start(dir.path(), url, &hook.url, None);
    wait_for(
        "the rows recorded sent",
        bound + Duration::from_secs(10),
        || all_sent(&store),
    )
    .await;
    let mut report = check(
        "kill -9 after send, before record",
        "failpoint outbox-after-send held each delivered row 20 s, then SIGKILL; a new process started",
        &expected,
        &history.all(),
        killed,
        bound,
        unrecorded(&store),
    );
    report.backend = crate::checker::backend_of(url).into();
    report.assert_kept();
    // Each one taken before the kill went again, under its identity.
    assert_eq!(
        report.duplicated_same_identity.len(),
        taken_before,
        "{report:#?}"
    );
    sigterm(&second.child);
    assert!(wait_exit(&mut second.child, Duration::from_secs(20)).success());
}

/// Killed between the claim's commit and the send: nothing went out, the
/// next run sends each once.
pub async fn kill_nine_between_claim_and_send(url: &str, bound: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let Setup {
        history,
        hook,
        store,
        expected,
    } = Setup::new(url, "after-claim", 3).await;
    let mut first = start(
        dir.path(),
        url,
        &hook.url,
        Some("outbox-after-claim=sleep(20000)"),
    );
    wait_for("the claim", Duration::from_secs(20), || {
        store
            .with(outbox::all)
            .unwrap()
            .iter()
            .all(|r| r.attempts == 1)
    })
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed = Instant::now();
    assert!(
        history.all().is_empty(),
        "sent before the kill; the process said:\n{}",
        lines(&first)
    );

    let mut second = start(dir.path(), url, &hook.url, None);
    wait_for(
        "the rows recorded sent",
        bound + Duration::from_secs(10),
        || all_sent(&store),
    )
    .await;
    let mut report = check(
        "kill -9 between claim and send",
        "failpoint outbox-after-claim held 20 s, then SIGKILL; a new process started",
        &expected,
        &history.all(),
        killed,
        bound,
        0,
    );
    report.backend = crate::checker::backend_of(url).into();
    report.assert_kept();
    assert_eq!(report.attempts, 3, "{report:#?}");
    sigterm(&second.child);
    assert!(wait_exit(&mut second.child, Duration::from_secs(20)).success());
}

/// The transaction that records the outcomes fails before its commit (every
/// time, while the fault lasts): the process says so, and the rows go out
/// again with the same identity once a run can record them.
pub async fn outcomes_not_committed(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Setup {
        history,
        hook,
        store,
        expected,
    } = Setup::new(url, "no-commit", 2).await;
    let mut first = start(
        dir.path(),
        url,
        &hook.url,
        Some("outbox-record-before-commit=return"),
    );
    wait_for("the two sends", Duration::from_secs(20), || {
        history.all().len() == 2
    })
    .await;
    let mut said = String::new();
    let logged = crate::support::eventually(Duration::from_secs(20), || {
        said.push_str(&lines(&first));
        said.push('\n');
        said.contains("outcomes not recorded")
    })
    .await;
    assert!(
        logged,
        "no \"outcomes not recorded\" line; the process said:\n{said}\nrows: {:?}",
        store.with(outbox::all).unwrap()
    );
    sigterm(&first.child);
    assert!(wait_exit(&mut first.child, Duration::from_secs(20)).success());
    let ended = Instant::now();
    assert!(!all_sent(&store));

    let mut second = start(dir.path(), url, &hook.url, None);
    wait_for("the rows recorded sent", Duration::from_secs(30), || {
        all_sent(&store)
    })
    .await;
    let mut report = check(
        "outcomes' commit fails",
        "failpoint outbox-record-before-commit: every recording transaction failed; SIGTERM, a new process",
        &expected,
        &history.all(),
        ended,
        KILL_BOUND_SQLITE,
        unrecorded(&store),
    );
    report.backend = crate::checker::backend_of(url).into();
    report.assert_kept();
    sigterm(&second.child);
    assert!(wait_exit(&mut second.child, Duration::from_secs(20)).success());
}

/// SIGTERM while sends are in flight (the receiver holds each answer 3 s):
/// the process finishes them, records them, and exits cleanly; nothing is
/// left to send twice.
pub async fn sigterm_mid_send(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let history = History::default();
    let hook =
        HttpRecorder::start("hook", &history, |_, _| Act::Slow(Duration::from_secs(3))).await;
    let store = Store::open(url).unwrap();
    let expected = enqueue(&store, &hook.url, "sigterm", 2);
    let mut served = start(dir.path(), url, &hook.url, None);
    wait_for("the sends in flight", Duration::from_secs(20), || {
        history.all().len() == 2
    })
    .await;
    let stopped = Instant::now();
    sigterm(&served.child);
    assert!(wait_exit(&mut served.child, Duration::from_secs(30)).success());
    assert!(
        all_sent(&store),
        "stopped without recording the sends in hand: {:?}",
        store.with(outbox::all).unwrap()
    );
    let mut report = check(
        "SIGTERM mid-send",
        "SIGTERM while two sends waited 3 s for their answers",
        &expected,
        &history.all(),
        stopped,
        rig::BOUND,
        0,
    );
    report.backend = crate::checker::backend_of(url).into();
    report.assert_kept();
}

fn signal(child: &std::process::Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig}");
}

/// The value of `name` in a process's `/metrics` (0 when absent).
pub fn metric_of(port: u16, name: &str) -> u64 {
    let (_, body, _) = crate::common::binary::get(port, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Two processes on one PostgreSQL; the first is stopped (SIGSTOP) right
/// after its sends went out, before it recorded them, and stays stopped past
/// its lease. The second takes the rows when the lease ends and delivers
/// them (again, with the same identity); when the first resumes, its late
/// outcomes are fenced off and counted, not recorded over the second's.
pub async fn stalled_past_its_lease(url: &str) {
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let Setup {
        history,
        hook,
        store,
        expected,
    } = Setup::new(url, "stalled", 3).await;
    let mut a = start(
        dir_a.path(),
        url,
        &hook.url,
        Some("outbox-after-send=sleep(3000)"),
    );
    wait_for("a send", Duration::from_secs(20), || {
        !history.all().is_empty()
    })
    .await;
    signal(&a.child, "-STOP");
    let stopped = Instant::now();
    // What the receiver took from the first process (a request on its way
    // when it stopped arrives or never does; give it a moment).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent_by_a = history.all().len() as u64;
    let mut b = start(dir_b.path(), url, &hook.url, None);
    wait_for(
        "the second process to deliver after the lease",
        Duration::from_secs(200),
        || all_sent(&store),
    )
    .await;
    let taken_over = Instant::now();
    signal(&a.child, "-CONT");
    let port = a.port;
    let fenced = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Each of its outcomes is fenced off as it comes in.
            let n = metric_of(port, "keepword_outbox_lease_lost_total ");
            if n >= sent_by_a || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .unwrap();
    assert!(
        fenced > 0,
        "the stalled process's late outcomes were not fenced; it said:\n{}\nthe other:\n{}\nreceived: {:?}",
        lines(&a),
        lines(&b),
        history.all()
    );
    let mut report = check(
        "one of two processes stalled past its lease (SIGSTOP)",
        "two processes on one PostgreSQL; the first SIGSTOPped after its sends, before recording, for longer than its 120 s lease",
        &expected,
        &history.all(),
        stopped,
        Duration::from_secs(150),
        fenced,
    );
    report.backend = crate::checker::backend_of(url).into();
    report.recovered_ms = (taken_over - stopped).as_millis() as u64;
    report.assert_kept();
    // The rows stay the second process's: sent once as far as it knows.
    assert!(all_sent(&store));
    for p in [&mut a, &mut b] {
        sigterm(&p.child);
        assert!(wait_exit(&mut p.child, Duration::from_secs(30)).success());
    }
}
