//! A private PostgreSQL cluster for one test, made with `initdb` under a
//! temp dir and listening on a free loopback port (its unix socket in its
//! data dir): a test may restart it, stop it or fill its disk without
//! touching the shared server other tests use at the same time. Stopped
//! (`-m immediate`) and removed when dropped.
//!
//! PostgreSQL refuses to run as root, so `initdb` and `pg_ctl` run as the
//! `postgres` user (`runuser`), which owns the data dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct PgCluster {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

/// The newest PostgreSQL's binaries under /usr/lib/postgresql.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.path().join("bin")))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "no initdb under /usr/lib/postgresql/*/bin: the private-cluster fault scenarios \
             need the PostgreSQL server binaries (./scripts/test installs postgresql)"
        )
    })
}

fn as_postgres(cmd: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(cmd);
    c
}

fn check(what: &str, out: std::io::Result<Output>) -> Output {
    let out = out.unwrap_or_else(|e| panic!("{what}: cannot run: {e} (needs runuser, as root)"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PgCluster {
    /// A new cluster, started, with trust authentication for `postgres`
    /// on loopback.
    pub fn start() -> PgCluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("keepword-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        check(
            "initdb",
            as_postgres(&bin.join("initdb"))
                .arg("-D")
                .arg(dir.path().join("data"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
                .output(),
        );
        let cluster = PgCluster {
            port: super::free_port(),
            bin,
            dir,
        };
        cluster.pg_ctl(&["start", "-w", "-t", "60"]);
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The folder the cluster owns (a place for tablespaces' mount points).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn pg_ctl(&self, args: &[&str]) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
            self.port,
            self.data().display()
        );
        check(
            &format!("pg_ctl {}", args.join(" ")),
            as_postgres(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-o", &options])
                .args(args)
                .output(),
        );
    }

    /// `pg_ctl restart -m MODE` (`fast`, `immediate`), waiting until it
    /// takes connections again.
    pub fn restart(&self, mode: &str) {
        self.pg_ctl(&["restart", "-m", mode, "-w", "-t", "60"]);
    }

    pub fn stop(&self, mode: &str) {
        self.pg_ctl(&["stop", "-m", mode, "-w", "-t", "60"]);
    }

    pub fn start_again(&self) {
        self.pg_ctl(&["start", "-w", "-t", "60"]);
    }

    /// The server's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Runs `sql` as `postgres` in database `db`, returning its output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = check(
            &format!("psql {sql}"),
            as_postgres(&self.bin.join("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-d", db])
                .args(["-c", sql])
                .output(),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new database: its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// Waits until the server answers a query (after a restart).
    pub fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the cluster did not come back");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["stop", "-m", "immediate", "-w"])
            .output();
    }
}

/// The `postgres` user's uid and primary gid.
pub fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = check("id", Command::new("id").args([flag, "postgres"]).output());
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}
