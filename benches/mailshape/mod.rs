//! A mailbox of the shape real support mailboxes have (issue 9): 40% new
//! requests and 60% replies, the replies heavy-tailed across threads so the
//! longest thread has about 1,000 messages, every reply with In-Reply-To and
//! References, about 12 KB a mail on average with one in twenty carrying a
//! 20–300 KB attachment (PDF, PNG or CSV, base64), senders from 20 client
//! domains (3 of them clients of the shipped contract), and subjects drawn
//! from fifteen common topics, so the same subject is asked by many people.
//!
//! [`Shape::Flat`] is the same mail with no replies at all: 1-message
//! threads, the baseline for "a message costs the same in a long thread".
//!
//! Deterministic (xorshift, fixed seed): every run sees the same mailbox.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 40% requests, 60% replies in a heavy tail (longest thread ~1,000).
    Real,
    /// Every mail a new request: 1-message threads.
    Flat,
}

impl Shape {
    pub fn parse(s: &str) -> Shape {
        match s {
            "real" => Shape::Real,
            "flat" => Shape::Flat,
            other => panic!("unknown shape `{other}` (expected real or flat)"),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Shape::Real => "real",
            Shape::Flat => "flat",
        }
    }
}

pub struct Mailbox {
    /// Raw mails in date order (the order they are appended).
    pub mails: Vec<Vec<u8>>,
    /// Threads, i.e. conversations the service must end up with.
    pub threads: usize,
    /// Messages of the longest thread.
    pub longest: usize,
    /// Mails carrying an attachment.
    pub with_attachment: usize,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub const TOPICS: [&str; 15] = [
    "Cannot log in to the portal",
    "Question about contract renewal",
    "Invoice 4711 shows wrong amount",
    "Invoice question",
    "Change the footer text",
    "New team member needs access",
    "Export to CSV is slow",
    "Update our logo",
    "Password reset mail never arrives",
    "Quote for the new landing page",
    "Translation of the pricing page",
    "Cookie banner wording",
    "Newsletter template",
    "Checkout page is down",
    "Report for November",
];

const WORDS: [&str; 32] = [
    "the",
    "report",
    "customer",
    "we",
    "noticed",
    "that",
    "after",
    "update",
    "page",
    "shows",
    "an",
    "error",
    "when",
    "clicking",
    "export",
    "please",
    "could",
    "you",
    "check",
    "again",
    "thanks",
    "regards",
    "yesterday",
    "invoice",
    "portal",
    "login",
    "team",
    "footer",
    "our",
    "still",
    "since",
    "Monday",
];

fn domains() -> Vec<String> {
    ["acme.com", "globex.example", "initech.example"]
        .iter()
        .map(|d| d.to_string())
        .chain((0..17).map(|i| format!("client{i}.example")))
        .collect()
}

fn words(rng: &mut Rng, target: usize, out: &mut String) {
    let mut line = String::new();
    while out.len() < target {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        if line.len() + w.len() > 72 {
            out.push_str(&line);
            out.push_str("\r\n");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    out.push_str(&line);
    out.push_str("\r\n");
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 54 * 2 + 4);
    for (i, c) in data.chunks(3).enumerate() {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
        if i % 19 == 18 {
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    out
}

/// An attachment part of about `size` encoded bytes.
fn attachment(rng: &mut Rng, size: usize, i: usize) -> String {
    let raw_len = size * 3 / 4;
    let (ctype, name, mut data): (&str, String, Vec<u8>) = match rng.below(3) {
        0 => (
            "application/pdf",
            format!("invoice-{i}.pdf"),
            b"%PDF-1.4\n".to_vec(),
        ),
        1 => (
            "image/png",
            format!("screenshot-{i}.png"),
            b"\x89PNG\r\n\x1a\n".to_vec(),
        ),
        _ => (
            "text/csv",
            format!("export-{i}.csv"),
            b"date,amount,client\n".to_vec(),
        ),
    };
    while data.len() < raw_len {
        data.extend_from_slice(&rng.next().to_le_bytes());
    }
    format!(
        "--b{i}\r\nContent-Type: {ctype}; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}",
        base64(&data)
    )
}

struct Planned {
    at: DateTime<Utc>,
    thread: usize,
    /// 0 opens the thread.
    index: usize,
}

/// `n` mails dated within the `span` before `end`, in date order.
pub fn generate(n: usize, shape: Shape, end: DateTime<Utc>, span: Duration, tag: &str) -> Mailbox {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let threads = match shape {
        Shape::Real => (n * 2 / 5).max(1),
        Shape::Flat => n,
    };
    let replies_total = n - threads;
    // Zipf-like tail (s = 1.1): thread 0 gets about a thousand replies of
    // 6,000; the remainder after rounding down goes to random threads.
    let weights: Vec<f64> = (0..threads)
        .map(|k| 1.0 / ((k + 1) as f64).powf(1.1))
        .collect();
    let sum: f64 = weights.iter().sum();
    let mut replies: Vec<usize> = weights
        .iter()
        .map(|w| (replies_total as f64 * w / sum).floor() as usize)
        .collect();
    let mut left = replies_total - replies.iter().sum::<usize>();
    while left > 0 {
        replies[rng.below(threads as u64) as usize] += 1;
        left -= 1;
    }
    let start = end - span;
    let span_ms = span.num_milliseconds().max(1) as u64;
    let mut plan = Vec::with_capacity(n);
    for (t, &r) in replies.iter().enumerate() {
        // Long threads start early, so they can span the mailbox.
        let opened = if r > 50 {
            rng.below(span_ms / 20)
        } else {
            rng.below(span_ms * 9 / 10)
        };
        plan.push(Planned {
            at: start + Duration::milliseconds(opened as i64),
            thread: t,
            index: 0,
        });
        let mut times: Vec<u64> = (0..r)
            .map(|_| opened + 1 + rng.below(span_ms - opened))
            .collect();
        times.sort_unstable();
        for (i, ms) in times.into_iter().enumerate() {
            plan.push(Planned {
                at: start + Duration::milliseconds(ms as i64),
                thread: t,
                index: i + 1,
            });
        }
    }
    plan.sort_by_key(|p| (p.at, p.thread, p.index));

    let domains = domains();
    let mut topic = Vec::with_capacity(threads);
    let mut opener = Vec::with_capacity(threads);
    for t in 0..threads {
        topic.push(TOPICS[rng.below(TOPICS.len() as u64) as usize]);
        let d = &domains[rng.below(domains.len() as u64) as usize];
        opener.push(format!("person{}@{d}", rng.below(12)));
        let _ = t;
    }
    // Per thread: every Message-ID so far (References keeps the first and
    // the last ten, as mail clients trim it).
    let mut ids: Vec<Vec<String>> = vec![Vec::new(); threads];
    let mut longest = vec![0usize; threads];
    let mut mails = Vec::with_capacity(n);
    let mut with_attachment = 0;
    for (i, p) in plan.iter().enumerate() {
        let t = p.thread;
        longest[t] += 1;
        let team = p.index % 2 == 1;
        let client = &opener[t];
        let client_domain = client.split('@').nth(1).unwrap_or("example.org");
        let (from, to, cc) = if team {
            let agent = rng.below(6);
            (
                format!("Agent {agent} <agent{agent}@example.com>"),
                client.clone(),
                "Cc: Support <support@example.com>\r\n",
            )
        } else {
            (
                format!("Person <{client}>"),
                "Support <support@example.com>".to_string(),
                "",
            )
        };
        let id = format!(
            "<{tag}.{i}.{t}@{}>",
            if team { "example.com" } else { client_domain }
        );
        let mut headers = String::new();
        let subject = if p.index == 0 {
            topic[t].to_string()
        } else {
            let seen = &ids[t];
            let last = seen.last().cloned().unwrap_or_default();
            let mut refs: Vec<&str> = seen.first().map(String::as_str).into_iter().collect();
            let tail = seen.len().saturating_sub(10).max(1);
            refs.extend(seen.iter().skip(tail).map(String::as_str));
            headers.push_str(&format!(
                "In-Reply-To: {last}\r\nReferences: {}\r\n",
                refs.join("\r\n ")
            ));
            format!("Re: {}", topic[t])
        };
        // Text 1.5–6.5 KB; a reply quotes some of what came before.
        let mut text = String::new();
        let target = 1_500 + rng.below(5_000) as usize;
        words(&mut rng, target * 2 / 3, &mut text);
        if p.index > 0 {
            text.push_str("\r\nOn Monday, someone wrote:\r\n");
            let mut quoted = String::new();
            words(&mut rng, target / 3, &mut quoted);
            for l in quoted.lines() {
                text.push_str("> ");
                text.push_str(l);
                text.push_str("\r\n");
            }
        }
        let attach = rng.below(20) == 0;
        let body = if attach {
            with_attachment += 1;
            let size = 20_000 + rng.below(280_000) as usize;
            headers.push_str(&format!(
                "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b{i}\"\r\n"
            ));
            format!(
                "--b{i}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}{}--b{i}--\r\n",
                attachment(&mut rng, size, i)
            )
        } else {
            headers.push_str(
                "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Transfer-Encoding: 8bit\r\n",
            );
            text
        };
        let raw = format!(
            "From: {from}\r\nTo: {to}\r\n{cc}Subject: {subject}\r\nMessage-ID: {id}\r\n\
             Date: {}\r\n{headers}\r\n{body}",
            p.at.to_rfc2822()
        );
        ids[t].push(id);
        mails.push(raw.into_bytes());
    }
    Mailbox {
        mails,
        threads,
        longest: longest.into_iter().max().unwrap_or(0),
        with_attachment,
    }
}
