//! The disk failing under the database: fsync failing under SQLite (libfiu,
//! the built binary run by `fiu-run -x`, the failure switched on and off
//! at run time with `fiu-ctrl`), and a PostgreSQL tablespace on a full
//! tmpfs (a private cluster). Input taken while the disk fails must be
//! refused, never answered 201 for a commit that did not make it to disk;
//! once the disk works again, input is taken again without a restart.

use std::process::Command;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::common::binary::{serve_binary_under, sigterm, wait_exit};
use crate::database::{Answer, drain, metric_sum, post_events};

/// Once the disk works again, input must be taken within this.
const DISK_BOUND: Duration = Duration::from_secs(10);

fn need(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "`{tool}` is not installed: this scenario needs it (Debian package {package}; \
         scripts/faults installs it)"
    );
}

fn fiu_ctrl(prefix: &str, pid: u32, command: &str) {
    let out = Command::new("fiu-ctrl")
        .args(["-f", prefix, "-c", command, &pid.to_string()])
        .output()
        .expect("run fiu-ctrl");
    assert!(out.status.success(), "fiu-ctrl -c {command}: {out:?}");
}

/// The built binary over `url` (run by `wrapper`), the fast contract in
/// `dir`: input only, its webhook goes nowhere.
fn serve(wrapper: &[&str], dir: &std::path::Path, url: &str) -> crate::common::binary::Served {
    let contract = crate::common::fast_contract(dir, "http://127.0.0.1:9/hook");
    serve_binary_under(
        wrapper,
        dir,
        &[
            ("KEEPWORD_BIND", "127.0.0.1:0"),
            ("KEEPWORD_DATABASE_URL", url),
            ("KEEPWORD_CONTRACT", contract.to_str().unwrap()),
            ("KEEPWORD_API_TOKENS", "test-token"),
        ],
        false,
    )
}

/// What the answers of one phase came to.
fn tally(answers: &[Answer]) -> (usize, usize, Vec<&Answer>) {
    let ok = answers.iter().filter(|a| a.status == 201).count();
    let refused = answers.iter().filter(|a| a.status == 503).count();
    let other = answers
        .iter()
        .filter(|a| a.status != 201 && a.status != 503)
        .collect();
    (ok, refused, other)
}

async fn post_for(port: u16, prefix: &str, how_long: Duration) -> Vec<Answer> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let posting = tokio::spawn(post_events(port, prefix.to_string(), stop_rx));
    tokio::time::sleep(how_long).await;
    stop_tx.send(true).unwrap();
    posting.await.unwrap()
}

fn stored_sqlite(db: &str, prefix: &str) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        external_id: String,
    }
    let mut c = diesel::sqlite::SqliteConnection::establish(db).unwrap();
    diesel::sql_query(format!(
        "SELECT external_id FROM messages WHERE external_id LIKE '{prefix}-%'"
    ))
    .load::<Row>(&mut c)
    .unwrap()
    .into_iter()
    .map(|r| r.external_id)
    .collect()
}

/// Input posted before, during and after a disk fault, and what it came to.
struct Phases {
    before: Vec<Answer>,
    during: Vec<Answer>,
    after: Vec<Answer>,
    /// When the fault ended.
    ended: Instant,
}

/// What [`Phases::judge`] counted.
struct Judged {
    /// Answered 201 before and after the fault.
    taken: usize,
    /// Answered 201 and 503 while it lasted.
    taken_during: usize,
    refused: usize,
    recovered: Duration,
}

impl Phases {
    /// Posts for 1 s, runs `fault` and posts for `fault_for`, runs `heal`
    /// and posts for [`DISK_BOUND`]; prefixes `PREFIX-{before,during,after}`.
    async fn run(
        port: u16,
        prefix: &str,
        fault_for: Duration,
        fault: impl FnOnce(),
        heal: impl FnOnce(),
    ) -> Phases {
        let before = post_for(port, &format!("{prefix}-before"), Duration::from_secs(1)).await;
        fault();
        let during = post_for(port, &format!("{prefix}-during"), fault_for).await;
        heal();
        let ended = Instant::now();
        let after = post_for(port, &format!("{prefix}-after"), DISK_BOUND).await;
        Phases {
            before,
            during,
            after,
            ended,
        }
    }

    /// Input taken before; refused while the fault lasted (503, the
    /// database named; anything else fails), logged with `cause` and
    /// counted; taken again within [`DISK_BOUND`] after, the process ready;
    /// every id answered 201 among `stored`.
    fn judge(&self, port: u16, said: &str, cause: &str, stored: &[String]) -> Judged {
        let (ok_before, _, other) = tally(&self.before);
        assert!(ok_before > 0 && other.is_empty(), "{:#?}", self.before);
        let (taken_during, refused, other) = tally(&self.during);
        assert!(other.is_empty(), "answers other than 201/503: {other:#?}");
        assert!(refused > 0, "nothing was refused during the fault");
        for a in self.during.iter().filter(|a| a.status == 503) {
            assert!(a.body.contains("database"), "{a:?}");
        }
        let first_ok = self
            .after
            .iter()
            .find(|a| a.status == 201)
            .unwrap_or_else(|| {
                panic!("no input taken within {DISK_BOUND:?} after the fault; it said:\n{said}")
            });
        assert!(
            said.contains("request failed") && said.contains(cause),
            "no log line naming {cause:?}:\n{said}"
        );
        assert!(
            metric_sum(port, "keepword_http_requests_total", "status=\"503\"") >= refused as u64
        );
        let (status, _, _) = crate::common::binary::get(port, "/readyz");
        assert_eq!(status, 200);
        let lost: Vec<&str> = [&self.before, &self.during, &self.after]
            .into_iter()
            .flatten()
            .filter(|a| a.status == 201)
            .map(|a| a.id.as_str())
            .filter(|id| !stored.iter().any(|s| s == id))
            .collect();
        assert!(lost.is_empty(), "answered 201 and not stored: {lost:?}");
        Judged {
            taken: ok_before + tally(&self.after).0,
            taken_during,
            refused,
            recovered: first_ok.at.saturating_duration_since(self.ended),
        }
    }
}

/// SQLite's fsync (and fdatasync) failing for 3 s under the built binary
/// while clients post events.
pub async fn sqlite_fsync_failing() {
    need("fiu-run", "fiu-utils");
    need("fiu-ctrl", "fiu-utils");
    let (dir, url) = crate::common::fresh_sqlite();
    let db = url.strip_prefix("sqlite://").unwrap().to_string();
    let prefix = dir.path().join("fiu").to_string_lossy().into_owned();
    let mut served = serve(&["fiu-run", "-x", "-f", &prefix], dir.path(), &url);
    let pid = served.child.id();
    let phases = Phases::run(
        served.port,
        "fsync",
        Duration::from_secs(3),
        || fiu_ctrl(&prefix, pid, "enable name=posix/io/sync/*"),
        || fiu_ctrl(&prefix, pid, "disable name=posix/io/sync/*"),
    )
    .await;
    let mut said = String::new();
    drain(&served, &mut said);
    let stored = stored_sqlite(&db, "fsync");
    let judged = phases.judge(served.port, &said, "disk I/O error", &stored);
    assert_eq!(
        judged.taken_during, 0,
        "answered 201 while fsync failed: a commit that was not on disk"
    );
    sigterm(&served.child);
    assert!(wait_exit(&mut served.child, Duration::from_secs(30)).success());
    let report = crate::checker::Report {
        scenario: "SQLite fsync failing".into(),
        backend: "sqlite".into(),
        injected: format!(
            "libfiu posix/io/sync/* (fsync, fdatasync) failing 3 s under the built binary while 4 clients posted events: {} refused 503, 0 answered 201; before and after: {} answered 201, all stored",
            judged.refused, judged.taken
        ),
        bound_ms: DISK_BOUND.as_millis() as u64,
        recovered_ms: judged.recovered.as_millis() as u64,
        ..Default::default()
    };
    report.assert_kept();
}

/// A private cluster whose keepword database lives in a tablespace on a
/// 32 MB tmpfs; the tmpfs is filled while the built binary takes events.
/// While it is full: refused (503, the database named), never 201 and
/// lost; the log says why. Space freed: taken again without a restart.
pub async fn postgres_tablespace_full() {
    use crate::outbox::Tmpfs;
    use crate::support::pg_cluster::{PgCluster, postgres_ids};
    let cluster = PgCluster::start();
    let fs = Tmpfs::mount_at(&cluster.dir().join("tablespace"), "32m");
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(&fs.path, Some(uid), Some(gid)).unwrap();
    let space = fs.path.join("pg");
    std::fs::create_dir(&space).unwrap();
    std::os::unix::fs::chown(&space, Some(uid), Some(gid)).unwrap();
    cluster.psql(
        "postgres",
        &format!("CREATE TABLESPACE small LOCATION '{}'", space.display()),
    );
    cluster.psql("postgres", "CREATE DATABASE keepword TABLESPACE small");
    let url = cluster.url("keepword");
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve(&[], dir.path(), &url);
    let filler = std::cell::RefCell::new(None);
    let phases = Phases::run(
        served.port,
        "ts",
        Duration::from_secs(4),
        || *filler.borrow_mut() = Some(fs.fill()),
        || std::fs::remove_file(filler.borrow().as_ref().unwrap()).unwrap(),
    )
    .await;
    let mut said = String::new();
    drain(&served, &mut said);
    let stored = crate::database::stored_events(&cluster, "keepword", "ts");
    let judged = phases.judge(served.port, &said, "No space left on device", &stored);
    sigterm(&served.child);
    assert!(wait_exit(&mut served.child, Duration::from_secs(30)).success());
    let report = crate::checker::Report {
        scenario: "PostgreSQL tablespace full".into(),
        backend: "postgres".into(),
        injected: format!(
            "the keepword database's tablespace on a 32 MB tmpfs filled for 4 s under the built binary while 4 clients posted events: {} refused 503, {} answered 201 (all stored); before and after: {} answered 201, all stored",
            judged.refused, judged.taken_during, judged.taken
        ),
        bound_ms: DISK_BOUND.as_millis() as u64,
        recovered_ms: judged.recovered.as_millis() as u64,
        ..Default::default()
    };
    report.assert_kept();
    // The cluster stops before its tablespace is unmounted.
    drop(cluster);
    drop(fs);
}
