//! A private Dovecot IMAP server for one test: its own config, base_dir,
//! state and mail under a temp dir, listening on a free loopback port with
//! plaintext login (and, with [`Dovecot::start_tls`], STARTTLS and an
//! implicit-TLS port). Stopped by its master PID when dropped.
//!
//! Runs as root (the test machine's user); the mail processes run as the
//! `dovecot` user because Dovecot refuses uid 0 for them, so the mail dir is
//! owned by `dovecot` and every parent is traversable.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Dovecot {
    /// The plain IMAP port (offers STARTTLS when started with TLS).
    pub port: u16,
    /// The submission (SMTP) port, when started with [`Dovecot::start_oauth`].
    pub submission_port: Option<u16>,
    /// The implicit-TLS (imaps) port, when started with [`Dovecot::start_tls`].
    pub imaps_port: Option<u16>,
    dir: tempfile::TempDir,
}

/// The server certificate (chain first) and its private key, both PEM.
pub struct ServerTls<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

static INSTANCES: AtomicUsize = AtomicUsize::new(0);

fn require_dovecot() {
    let found = Command::new("dovecot").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        panic!(
            "`dovecot` is not installed (or not on PATH). The IMAP tests need a real Dovecot: \
             run ./scripts/test (it installs dovecot-imapd), or \
             `apt-get install -y --no-install-recommends dovecot-imapd`."
        );
    }
}

impl Dovecot {
    /// Starts a server whose users log in with the given (name, password).
    pub fn start(users: &[(&str, &str)]) -> Dovecot {
        Self::start_with(users, None, None)
    }

    /// Like [`Dovecot::start`], and IMAP and submission (SMTP) also take
    /// `XOAUTH2` and `OAUTHBEARER` with JWTs of `oauth`'s issuer, validated
    /// locally against its public key (passdb oauth2). Submission relays
    /// what it accepts to 127.0.0.1:`relay_port`. The users keep their
    /// passwords (PLAIN/LOGIN) for the harness.
    pub fn start_oauth(users: &[(&str, &str)], oauth: &OAuthIssuer, relay_port: u16) -> Dovecot {
        Self::start_with(users, None, Some((oauth, relay_port)))
    }

    /// Like [`Dovecot::start`], with TLS on: STARTTLS on the plain port and
    /// an implicit-TLS listener on `imaps_port`, both presenting `tls`.
    /// Plaintext login stays allowed, so the harness can append without TLS.
    pub fn start_tls(users: &[(&str, &str)], tls: ServerTls<'_>) -> Dovecot {
        Self::start_with(users, Some(tls), None)
    }

    fn start_with(
        users: &[(&str, &str)],
        tls: Option<ServerTls<'_>>,
        oauth: Option<(&OAuthIssuer, u16)>,
    ) -> Dovecot {
        require_dovecot();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        // mkdtemp makes 0700 folders; the dovecot user must traverse them.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["base", "state", "mail"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        let chown = Command::new("chown")
            .args(["dovecot:dovecot"])
            .arg(root.join("mail"))
            .status()
            .unwrap();
        assert!(
            chown.success(),
            "chown dovecot:dovecot of the mail dir failed"
        );
        let passwd: String = users
            .iter()
            .map(|(u, p)| format!("{u}:{{PLAIN}}{p}::::::\n"))
            .collect();
        std::fs::write(root.join("passwd"), passwd).unwrap();

        let port = super::free_port();
        // The master reads the key as root before dropping privileges, so
        // owner-only permissions are enough.
        let (ssl, imaps_port) = match &tls {
            None => ("ssl = no".to_string(), None),
            Some(t) => {
                std::fs::write(root.join("server.crt"), t.cert_pem).unwrap();
                std::fs::write(root.join("server.key"), t.key_pem).unwrap();
                std::fs::set_permissions(
                    root.join("server.key"),
                    std::fs::Permissions::from_mode(0o600),
                )
                .unwrap();
                let r = root.display();
                (
                    format!("ssl = yes\nssl_cert = <{r}/server.crt\nssl_key = <{r}/server.key"),
                    Some(super::free_port()),
                )
            }
        };
        let imaps = match imaps_port {
            Some(p) => format!("address = 127.0.0.1\n    port = {p}\n    ssl = yes"),
            None => "port = 0".to_string(),
        };
        let instance = format!(
            "kw-test-{}-{}",
            std::process::id(),
            INSTANCES.fetch_add(1, Ordering::SeqCst)
        );
        let r = root.display();
        let (protocols, mechanisms, oauth_conf, submission_port) = match oauth {
            None => ("imap", "plain login", String::new(), None),
            Some((issuer, relay_port)) => {
                let submission_port = super::free_port();
                (
                    "imap submission",
                    "plain login xoauth2 oauthbearer",
                    oauth_config(&root, issuer, relay_port, submission_port),
                    Some(submission_port),
                )
            }
        };
        let conf = format!(
            "instance_name = {instance}
base_dir = {r}/base
state_dir = {r}/state
listen = 127.0.0.1
protocols = {protocols}
{ssl}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
{oauth_conf}
mail_uid = dovecot
mail_gid = dovecot
first_valid_uid = 1
mail_location = sdbox:{r}/mail/%u
mail_fsync = never
auth_failure_delay = 0
log_path = {r}/dovecot.log
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    {imaps}
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {r}/passwd
  mechanisms = plain login
}}
userdb {{
  driver = static
  args = allow_all_users=yes
}}
"
        );
        std::fs::write(root.join("dovecot.conf"), conf).unwrap();
        // The daemon keeps the std streams it inherits: pipes would never
        // reach EOF, so they go to a file.
        let startup = root.join("startup.log");
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(root.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&startup).unwrap())
            .stderr(std::fs::File::create(&startup).unwrap())
            .status()
            .unwrap();
        let server = Dovecot {
            port,
            submission_port,
            imaps_port,
            dir,
        };
        if !status.success() {
            panic!(
                "dovecot did not start: {}\n{}",
                std::fs::read_to_string(&startup).unwrap_or_default(),
                server.log()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for p in std::iter::once(port)
            .chain(imaps_port)
            .chain(submission_port)
        {
            while TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "dovecot did not listen on 127.0.0.1:{p}:\n{}",
                    server.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        server
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    /// The server's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// Appends one message to `folder` of `user` (creating the folder).
    pub fn append(&self, user: &str, password: &str, folder: &str, raw: &[u8]) {
        self.append_many(user, password, folder, &[raw.to_vec()]);
    }

    /// Appends messages in order over one IMAP connection, pipelined with
    /// LITERAL+ in groups so neither side's socket buffer fills up.
    pub fn append_many(&self, user: &str, password: &str, folder: &str, raws: &[Vec<u8>]) {
        let mut c = RawImap::login(self.port, user, password);
        // NO [ALREADYEXISTS] is fine; any real failure shows up at APPEND.
        c.command(&format!("CREATE {}", quote(folder)));
        for group in raws.chunks(100) {
            let mut out = Vec::new();
            let mut tags = Vec::new();
            for raw in group {
                let tag = c.next_tag();
                out.extend_from_slice(
                    format!("{tag} APPEND {} {{{}+}}\r\n", quote(folder), raw.len()).as_bytes(),
                );
                out.extend_from_slice(raw);
                out.extend_from_slice(b"\r\n");
                tags.push(tag);
            }
            c.writer.write_all(&out).unwrap();
            for tag in tags {
                let status = c.read_until_tagged(&tag);
                assert!(
                    status.starts_with("OK"),
                    "APPEND to {folder} failed: {status}"
                );
            }
        }
        c.command("LOGOUT");
    }

    /// Gives `folder` of `user` a new UIDVALIDITY (current + 1), as a server
    /// that rebuilt its index would; the UIDs themselves stay. Returns it.
    pub fn bump_uidvalidity(&self, user: &str, folder: &str) -> u32 {
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(self.conf())
            .args([
                "-f",
                "flow",
                "mailbox",
                "status",
                "-u",
                user,
                "uidvalidity",
                folder,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "doveadm mailbox status: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let current: u32 = text
            .split_whitespace()
            .find_map(|t| t.strip_prefix("uidvalidity="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unexpected doveadm output {text:?}"));
        let next = current + 1;
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(self.conf())
            .args(["mailbox", "update", "-u", user, "--uid-validity"])
            .arg(next.to_string())
            .arg(folder)
            .output()
            .unwrap();
        assert!(out.status.success(), "doveadm mailbox update: {out:?}");
        next
    }
}

impl Dovecot {
    fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("base/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the master (its children with it) and waits until it is gone.
    fn stop(&self) {
        let pid_file: &Path = &self.dir.path().join("base/master.pid");
        let Ok(pid) = std::fs::read_to_string(pid_file) else {
            return;
        };
        let pid = pid.trim().to_string();
        let _ = Command::new("kill").arg(&pid).status();
        // The master takes a few seconds to stop its children; waiting keeps
        // the temp dir (its base_dir) alive until it has.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server, cutting every connection (an IDLE in progress), and
    /// starts it again on the same port with the same mail.
    pub fn restart(&self) {
        // A stopped master leaves its imap processes serving their
        // connections: those are ended too (by PID, each a child of this
        // test's master), so the restart cuts what a real one cuts.
        let children = self.master_pid().map(children_of).unwrap_or_default();
        self.stop();
        for pid in children {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let startup = self.dir.path().join("startup.log");
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(self.conf())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&startup).unwrap())
            .stderr(std::fs::File::create(&startup).unwrap())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "dovecot did not start again: {}",
            std::fs::read_to_string(&startup).unwrap_or_default()
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "dovecot did not listen again");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The PIDs of the processes whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // pid (comm) state ppid …; comm may hold spaces.
                    let rest = &stat[stat.rfind(')')? + 2..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What Dovecot needs of an OAuth issuer to validate its JWTs locally.
pub struct OAuthIssuer {
    /// The `iss` claim, exactly.
    pub issuer: String,
    pub kid: String,
    /// The signing algorithm: `RS256`, or `ES256` (shorter tokens).
    pub alg: String,
    /// The public key, PEM.
    pub public_pem: String,
}

/// passdb oauth2 in local validation mode, and the submission service.
fn oauth_config(root: &Path, issuer: &OAuthIssuer, relay_port: u16, port: u16) -> String {
    // The key dict looks keys up by algorithm and kid; `%`, `.` and `/`
    // in the kid are escaped.
    let kid = issuer
        .kid
        .replace('%', "%25")
        .replace('.', "%2e")
        .replace('/', "%2f");
    let alg_dir = format!("keys/default/{}", issuer.alg);
    let keys = root.join(&alg_dir);
    std::fs::create_dir_all(&keys).unwrap();
    for dir in ["keys", "keys/default", alg_dir.as_str()] {
        std::fs::set_permissions(root.join(dir), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(keys.join(kid), &issuer.public_pem).unwrap();
    let r = root.display();
    std::fs::write(
        root.join("oauth2.conf"),
        format!(
            "introspection_mode = local
             local_validation_key_dict = fs:posix:prefix={r}/keys/
             username_attribute = email
             issuers = {}
",
            issuer.issuer
        ),
    )
    .unwrap();
    // No auth penalty (a delay of 2 s doubling per refused login from one
    // address): the tests refuse tokens on purpose, all from 127.0.0.1.
    // Mode 0 on anvil's penalty socket is Dovecot's documented way out.
    format!(
        "hostname = test.local
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
submission_relay_host = 127.0.0.1
submission_relay_port = {relay_port}
submission_relay_trusted = yes
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {port}
  }}
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {r}/oauth2.conf
}}"
    )
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Just enough IMAP to log in, create folders and append: the harness must
/// not depend on the client under test.
struct RawImap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: usize,
}

impl RawImap {
    fn login(port: u16, user: &str, password: &str) -> RawImap {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = RawImap {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            tag: 0,
        };
        let mut greeting = String::new();
        c.reader.read_line(&mut greeting).unwrap();
        let status = c.command(&format!("LOGIN {} {}", quote(user), quote(password)));
        assert!(status.starts_with("OK"), "LOGIN {user}: {status}");
        c
    }

    fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("h{}", self.tag)
    }

    fn command(&mut self, cmd: &str) -> String {
        let tag = self.next_tag();
        self.writer
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .unwrap();
        self.read_until_tagged(&tag)
    }

    /// Reads lines up to the tagged completion; returns its status text.
    fn read_until_tagged(&mut self, tag: &str) -> String {
        let prefix = format!("{tag} ");
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "dovecot closed the connection while waiting for {tag}"
            );
            if let Some(rest) = line.strip_prefix(&prefix) {
                return rest.trim_end().to_string();
            }
        }
    }
}
