//! Real receivers for the notification tests: an aiosmtpd SMTP server run as
//! a child process, and a small HTTP server that records webhook bodies.
// Shared by several test crates, each using a different part (see
// tests/common/mod.rs).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The Python that runs tests/support/smtp_server.py.
pub fn python() -> PathBuf {
    let path = std::env::var_os("KEEPWORD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        path.exists(),
        "no Python at {} for the SMTP test server. Run ./scripts/test (it creates .venv \
         and installs tests/support/requirements.txt), or set KEEPWORD_PYTHON to a Python \
         with aiosmtpd installed.",
        path.display()
    );
    path
}

/// A free loopback port, for a server that starts later than its client.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A received SMTP message.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub data: String,
    /// The TLS version the message arrived over (`TLSv1.3`), if any.
    pub tls: Option<String>,
}

impl Received {
    /// Unfolded header lines of the top-level header block.
    pub fn headers(&self) -> Vec<(String, String)> {
        let head = self
            .data
            .split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .replace("\r\n ", " ")
            .replace("\r\n\t", " ");
        head.split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers()
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }
}

/// aiosmtpd on 127.0.0.1, writing each message as a JSON file in a temp dir.
/// Killed (by its PID) when dropped.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        Self::start_on(0)
    }

    pub fn start_on(port: u16) -> SmtpServer {
        Self::spawn(port, tempfile::tempdir().unwrap(), &[])
    }

    /// A server presenting `cert_pem` (chain) with `key_pem`: `mode` is
    /// `starttls` (STARTTLS required before MAIL) or `tls` (implicit TLS).
    pub fn start_tls(mode: &str, cert_pem: &str, key_pem: &str) -> SmtpServer {
        // Messages land in the temp dir as *.json; the PEM files beside them
        // are not read back as messages.
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let args = [mode.into(), cert.into_os_string(), key.into_os_string()];
        Self::spawn(0, dir, &args)
    }

    fn spawn(port: u16, dir: tempfile::TempDir, extra: &[std::ffi::OsString]) -> SmtpServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the SMTP test server");
        // The server prints its port once it accepts connections.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = match line.trim().parse() {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let mut err = String::new();
                child.stderr.take().unwrap().read_to_string(&mut err).ok();
                panic!(
                    "the SMTP test server did not start (is aiosmtpd installed? run \
                     ./scripts/test):\n{err}"
                );
            }
        };
        SmtpServer { child, port, dir }
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Received> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                out.push(Received {
                    mail_from: v["mail_from"].as_str().unwrap().to_string(),
                    rcpt_tos: v["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_string())
                        .collect(),
                    data: v["data"].as_str().unwrap().to_string(),
                    tls: v["tls"].as_str().map(String::from),
                });
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP receiver for webhooks on 127.0.0.1:0. Answers 500 to the first
/// `fail_first` requests, then 200 (or the status given to
/// [`HookReceiver::answering`]), and records every body it was sent.
pub struct HookReceiver {
    pub url: String,
    /// `http://127.0.0.1:PORT`, for services whose paths the sender builds.
    pub base: String,
    state: Arc<HookState>,
    task: tokio::task::JoinHandle<()>,
}

/// Requests in flight: now and the most at any one time.
#[derive(Default)]
pub struct Flight {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Flight {
    fn enter(&self) {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
    /// The most requests that were in flight at once.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct HookState {
    fail_first: usize,
    /// The answer to the first `fail_first` requests; empty: `500`.
    fail_status: &'static str,
    /// Extra header lines (each ending `\r\n`) sent with those answers.
    fail_headers: &'static str,
    /// The body of those answers; empty: `try later` or `refused`.
    fail_body: &'static str,
    /// How long each request is held before its answer.
    delay: Duration,
    /// Only the first this many requests are held (0: every one).
    slow_first: usize,
    /// Requests that arrived, counted before any delay.
    arrived: AtomicUsize,
    requests: AtomicUsize,
    accepted: Mutex<Vec<serde_json::Value>>,
    flight: Flight,
    /// Counts in flight across several receivers too.
    group: Option<Arc<Flight>>,
    /// The success answer; empty: `200 OK`.
    ok_status: &'static str,
    recorded: Mutex<Vec<HookRequest>>,
}

/// One request as it arrived, whatever the answer.
#[derive(Debug, Clone)]
pub struct HookRequest {
    /// Path and query.
    pub target: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Exactly as received.
    pub body: String,
    /// The status code answered.
    pub status: u16,
}

impl HookRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

impl HookReceiver {
    pub async fn start(fail_first: usize) -> HookReceiver {
        Self::with_state(HookState {
            fail_first,
            ..HookState::default()
        })
        .await
    }

    /// A receiver that holds every request for `delay` before answering 200,
    /// so concurrent senders overlap; `group` also counts its requests in
    /// flight together with other receivers'.
    pub async fn slow(delay: Duration, group: Option<Arc<Flight>>) -> HookReceiver {
        Self::with_state(HookState {
            delay,
            group,
            ..HookState::default()
        })
        .await
    }

    /// A receiver that holds only its first `n` requests for `delay`, then
    /// answers at once: a sender that gave up on the first attempt retries
    /// into a fast receiver.
    pub async fn slow_first(n: usize, delay: Duration) -> HookReceiver {
        Self::with_state(HookState {
            delay,
            slow_first: n,
            ..HookState::default()
        })
        .await
    }

    /// A receiver answering its first `n` requests `status` (e.g. `410 Gone`,
    /// or `429 Too Many Requests` with `headers` `Retry-After: 7\r\n`),
    /// then `ok_status` (empty: `200 OK`).
    pub async fn refusing(
        status: &'static str,
        headers: &'static str,
        n: usize,
        ok_status: &'static str,
    ) -> HookReceiver {
        Self::with_state(HookState {
            fail_first: n,
            fail_status: status,
            fail_headers: headers,
            ok_status,
            ..HookState::default()
        })
        .await
    }

    /// A receiver answering its first `n` requests `status` with `body`,
    /// then `200 OK`: a refusal whose words the sender passes on.
    pub async fn refusing_saying(
        status: &'static str,
        body: &'static str,
        n: usize,
    ) -> HookReceiver {
        Self::with_state(HookState {
            fail_first: n,
            fail_status: status,
            fail_body: body,
            ..HookState::default()
        })
        .await
    }

    /// A receiver answering `ok_status` (e.g. `202 Accepted`, as PagerDuty,
    /// Opsgenie and Teams do) after `fail_first` answers of 500.
    pub async fn answering(ok_status: &'static str, fail_first: usize) -> HookReceiver {
        Self::with_state(HookState {
            fail_first,
            ok_status,
            ..HookState::default()
        })
        .await
    }

    async fn with_state(state: HookState) -> HookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let url = format!("{base}/hook");
        let state = Arc::new(state);
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(sock, s.clone()));
            }
        });
        HookReceiver {
            url,
            base,
            state,
            task,
        }
    }

    /// Every request received so far, in order of arrival.
    pub fn recorded(&self) -> Vec<HookRequest> {
        self.state.recorded.lock().unwrap().clone()
    }

    /// Requests received, whatever the answer.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Bodies answered with 200.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.state.accepted.lock().unwrap().clone()
    }

    /// The most requests this receiver had in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.flight.max()
    }
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and a Content-Length body) from `sock`: the bytes
/// and where the head ends; `None` if the peer went away first.
pub async fn read_request(sock: &mut TcpStream) -> Option<(Vec<u8>, usize, usize)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((buf, head_end, length))
}

/// One request per connection (`Connection: close`): enough for a client
/// that posts JSON with a Content-Length.
async fn serve(mut sock: TcpStream, state: Arc<HookState>) {
    let Some((buf, head_end, length)) = read_request(&mut sock).await else {
        return;
    };
    state.flight.enter();
    if let Some(g) = &state.group {
        g.enter();
    }
    let arrival = state.arrived.fetch_add(1, Ordering::SeqCst);
    if !state.delay.is_zero() && (state.slow_first == 0 || arrival < state.slow_first) {
        tokio::time::sleep(state.delay).await;
    }
    let body = &buf[head_end..head_end + length];
    let n = state.requests.fetch_add(1, Ordering::SeqCst);
    let (status, reply) = if n < state.fail_first {
        match (state.fail_status, state.fail_body) {
            ("", "") => ("500 Internal Server Error", "try later"),
            ("", body) => ("500 Internal Server Error", body),
            (refused, "") => (refused, "refused"),
            (refused, body) => (refused, body),
        }
    } else {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        state.accepted.lock().unwrap().push(value);
        let ok = if state.ok_status.is_empty() {
            "200 OK"
        } else {
            state.ok_status
        };
        (ok, "ok")
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let target = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    state.recorded.lock().unwrap().push(HookRequest {
        target,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
        status: status[..3].parse().unwrap_or_default(),
    });
    let extra = if n < state.fail_first {
        state.fail_headers
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    // Out of flight before the answer: once the sender has it, it may start
    // its next request, which must not find this one still counted.
    state.flight.leave();
    if let Some(g) = &state.group {
        g.leave();
    }
    let _ = sock.write_all(response.as_bytes()).await;
    let _ = sock.shutdown().await;
}

/// Runs `program script` (a path under the repository) with `input` on
/// stdin and waits for it: its whole output.
pub fn run_with_input(
    program: &std::ffi::OsStr,
    script: &str,
    input: &[u8],
) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program:?} {script}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Polls `f` until it is true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}
/// [`eventually`] for a condition that must await (an HTTP call).
pub async fn eventually_async<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f().await
}

pub mod dovecot;
pub mod oauth_server;
pub mod pg_cluster;
pub mod proxy;
pub mod recorders;
