//! Recording receivers for the fault tests: an SMTP server and an HTTP
//! server on loopback that write every delivery attempt into a shared
//! [`History`] *before* acting out their fault (a 421, a reply held past the
//! sender's patience, a reset connection…). The history is then what the
//! receiver got, whatever keepword concluded; the offline checker
//! (tests/faults/checker.rs) reads it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What a receiver did with an attempt it received whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx / 250: taken.
    Accepted,
    /// 4xx SMTP, 5xx/408/429 HTTP: "later"; the sender retries.
    Transient(String),
    /// 5xx SMTP, other 4xx HTTP: "never"; the sender must not retry.
    Refused(String),
    /// The body arrived and no answer came (held, reset, closed): the
    /// receiver may have acted on it, the sender cannot know.
    None(String),
}

impl Answer {
    /// The receiver may have acted on it.
    pub fn taken(&self) -> bool {
        matches!(self, Answer::Accepted | Answer::None(_))
    }
}

/// One attempt, as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `smtp`, or the HTTP recorder's name.
    pub receiver: String,
    /// Which notification: the email's Subject, the webhook body's `key`
    /// (or, for a recipient refused at RCPT, `rcpt:ADDRESS`).
    pub key: String,
    /// The identity the sender gave it: Message-ID, `webhook-id`.
    pub identity: String,
    pub answer: Answer,
    /// When it arrived (before the fault was acted out).
    pub at: Instant,
}

/// Every attempt at every recorder of one scenario, in arrival order.
#[derive(Clone, Default)]
pub struct History(Arc<Mutex<Vec<Delivery>>>);

impl History {
    pub fn record(&self, d: Delivery) {
        self.0.lock().unwrap().push(d);
    }

    pub fn all(&self) -> Vec<Delivery> {
        self.0.lock().unwrap().clone()
    }

    /// Attempts at notification `key`, whatever the answer.
    pub fn attempts(&self, key: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.key == key)
            .count()
    }

    /// Whether every key in `keys` was accepted at least once.
    pub fn all_accepted<'a>(&self, mut keys: impl Iterator<Item = &'a str>) -> bool {
        let h = self.0.lock().unwrap();
        keys.all(|k| h.iter().any(|d| d.key == k && d.answer == Answer::Accepted))
    }
}

// ---------------------------------------------------------------- HTTP

/// What the HTTP recorder does after recording a request.
#[derive(Debug, Clone)]
pub enum Act {
    /// Answers `status` (`200 OK`, `410 Gone`) with extra header lines,
    /// each ending in `\r\n` (`Retry-After: 2\r\n`).
    Answer(&'static str, String),
    /// Answers `200 OK` after holding the request this long.
    Slow(Duration),
    /// Never answers (holds the connection open until the test ends).
    Never,
    /// Resets the connection (RST, SO_LINGER 0) without an answer.
    Reset,
}

impl Act {
    pub fn ok() -> Act {
        Act::Answer("200 OK", String::new())
    }
    fn answer(&self) -> Answer {
        match self {
            Act::Answer(status, _) => {
                let code: u16 = status[..3].parse().unwrap_or(0);
                match code {
                    200..=299 => Answer::Accepted,
                    408 | 429 | 500..=599 => Answer::Transient(status.to_string()),
                    _ => Answer::Refused(status.to_string()),
                }
            }
            Act::Slow(_) => Answer::Accepted,
            Act::Never => Answer::None("never answered".into()),
            Act::Reset => Answer::None("connection reset".into()),
        }
    }
}

/// Decides the act for the `n`-th request (from 0) to `path`.
pub type HttpPlan = Arc<dyn Fn(usize, &str) -> Act + Send + Sync>;

/// A webhook receiver on 127.0.0.1 that records each request into the
/// history before acting out its plan.
pub struct HttpRecorder {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl HttpRecorder {
    pub async fn start(
        name: &str,
        history: &History,
        plan: impl Fn(usize, &str) -> Act + Send + Sync + 'static,
    ) -> HttpRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, name, history, Arc::new(plan))
    }

    /// On `port` (a port that refused connections until now).
    pub async fn start_on(
        port: u16,
        name: &str,
        history: &History,
        plan: impl Fn(usize, &str) -> Act + Send + Sync + 'static,
    ) -> HttpRecorder {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        Self::serve(listener, name, history, Arc::new(plan))
    }

    fn serve(listener: TcpListener, name: &str, history: &History, plan: HttpPlan) -> HttpRecorder {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (name, history) = (name.to_string(), history.clone());
        let count = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (name, history, plan, count) =
                    (name.clone(), history.clone(), plan.clone(), count.clone());
                tokio::spawn(async move {
                    http_request(sock, &name, &history, &plan, &count).await;
                });
            }
        });
        HttpRecorder {
            url: format!("{base}/hook"),
            base,
            task,
        }
    }
}

impl Drop for HttpRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn http_request(
    mut sock: TcpStream,
    name: &str,
    history: &History,
    plan: &HttpPlan,
    count: &AtomicUsize,
) {
    let Some((buf, head_end, length)) = super::read_request(&mut sock).await else {
        return;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let body: serde_json::Value =
        serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or_default();
    let key = body["key"]
        .as_str()
        .or_else(|| body["dedup_key"].as_str())
        .unwrap_or_default()
        .to_string();
    let n = count.fetch_add(1, Ordering::SeqCst);
    let act = plan(n, &path);
    history.record(Delivery {
        receiver: name.to_string(),
        key,
        identity: header("webhook-id").unwrap_or_default(),
        answer: act.answer(),
        at: Instant::now(),
    });
    let (status, extra) = match act {
        Act::Answer(status, extra) => (status, extra),
        Act::Slow(d) => {
            tokio::time::sleep(d).await;
            ("200 OK", String::new())
        }
        Act::Never => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Act::Reset => {
            let _ = sock.set_zero_linger();
            return;
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{extra}Content-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    let _ = sock.write_all(response.as_bytes()).await;
    let _ = sock.shutdown().await;
}

// ---------------------------------------------------------------- SMTP

/// What the SMTP recorder answers at the end of DATA, after recording.
#[derive(Debug, Clone)]
pub enum SmtpAct {
    Accept,
    /// A reply line such as `451 4.3.0 try again later`; a `421` also
    /// closes the connection, as a server shutting down does.
    Reply(&'static str),
    /// `250` after this long: the RFC 1047 window, where the message is
    /// with the server and the client is still waiting for its answer.
    Slow(Duration),
}

impl SmtpAct {
    fn answer(&self) -> Answer {
        match self {
            SmtpAct::Accept | SmtpAct::Slow(_) => Answer::Accepted,
            SmtpAct::Reply(r) if r.starts_with('4') => Answer::Transient(r.to_string()),
            SmtpAct::Reply(r) => Answer::Refused(r.to_string()),
        }
    }
}

/// Refuses a recipient at RCPT (a reply line such as `550 5.1.1 no such
/// user`), or `None` to take it.
pub type RcptPlan = Arc<dyn Fn(&str) -> Option<&'static str> + Send + Sync>;
/// Decides the act for the `n`-th message (from 0) that reaches DATA's end.
pub type DataPlan = Arc<dyn Fn(usize) -> SmtpAct + Send + Sync>;

/// A plain SMTP server on 127.0.0.1 (EHLO, MAIL, RCPT, DATA, RSET, NOOP,
/// QUIT) recording each message into the history before answering it.
pub struct SmtpRecorder {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpRecorder {
    pub async fn start(
        history: &History,
        rcpt: impl Fn(&str) -> Option<&'static str> + Send + Sync + 'static,
        data: impl Fn(usize) -> SmtpAct + Send + Sync + 'static,
    ) -> SmtpRecorder {
        Self::start_on(0, history, rcpt, data).await
    }

    pub async fn start_on(
        port: u16,
        history: &History,
        rcpt: impl Fn(&str) -> Option<&'static str> + Send + Sync + 'static,
        data: impl Fn(usize) -> SmtpAct + Send + Sync + 'static,
    ) -> SmtpRecorder {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (rcpt, data): (RcptPlan, DataPlan) = (Arc::new(rcpt), Arc::new(data));
        let history = history.clone();
        let count = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (history, rcpt, data, count) =
                    (history.clone(), rcpt.clone(), data.clone(), count.clone());
                tokio::spawn(async move {
                    let _ = smtp_session(sock, &history, &rcpt, &data, &count).await;
                });
            }
        });
        SmtpRecorder { port, task }
    }
}

impl Drop for SmtpRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn smtp_session(
    sock: TcpStream,
    history: &History,
    rcpt_plan: &RcptPlan,
    data_plan: &DataPlan,
    count: &AtomicUsize,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 recorder.test ESMTP\r\n").await?;
    let mut rcpts: Vec<String> = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                w.write_all(b"250-recorder.test\r\n250 8BITMIME\r\n")
                    .await?
            }
            "HELO" | "NOOP" => w.write_all(b"250 OK\r\n").await?,
            "MAIL" | "RSET" => {
                rcpts.clear();
                w.write_all(b"250 OK\r\n").await?;
            }
            "RCPT" => {
                let addr = line
                    .split(['<', '>'])
                    .nth(1)
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                match rcpt_plan(&addr) {
                    Some(reply) => {
                        history.record(Delivery {
                            receiver: "smtp".into(),
                            key: format!("rcpt:{addr}"),
                            identity: String::new(),
                            answer: Answer::Refused(reply.to_string()),
                            at: Instant::now(),
                        });
                        w.write_all(format!("{reply}\r\n").as_bytes()).await?;
                    }
                    None => {
                        rcpts.push(addr);
                        w.write_all(b"250 OK\r\n").await?;
                    }
                }
            }
            "DATA" if rcpts.is_empty() => w.write_all(b"503 5.5.1 no recipients\r\n").await?,
            "DATA" => {
                w.write_all(b"354 go ahead\r\n").await?;
                let mut message = String::new();
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    message.push_str(&l);
                }
                let header = |name: &str| {
                    let head = message.split("\r\n\r\n").next().unwrap_or_default();
                    head.replace("\r\n ", " ").lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case(name)
                            .then(|| v.trim().to_string())
                    })
                };
                let act = data_plan(count.fetch_add(1, Ordering::SeqCst));
                history.record(Delivery {
                    receiver: "smtp".into(),
                    key: header("subject").unwrap_or_default(),
                    identity: header("message-id").unwrap_or_default(),
                    answer: act.answer(),
                    at: Instant::now(),
                });
                rcpts.clear();
                match act {
                    SmtpAct::Accept => w.write_all(b"250 2.0.0 queued\r\n").await?,
                    SmtpAct::Slow(d) => {
                        tokio::time::sleep(d).await;
                        w.write_all(b"250 2.0.0 queued\r\n").await?;
                    }
                    SmtpAct::Reply(reply) => {
                        w.write_all(format!("{reply}\r\n").as_bytes()).await?;
                        if reply.starts_with("421") {
                            return Ok(());
                        }
                    }
                }
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => w.write_all(b"502 5.5.2 not implemented\r\n").await?,
        }
    }
}
