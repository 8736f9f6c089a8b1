//! `keepword backtest`: replays a mailbox's history against a contract —
//! the same parsing, threading, classification and SLA engine as the
//! service, with no database and no email sent — and reports how the team
//! would have fared: per request type and client, how many first responses
//! were within the window, response times in business time, breaches.
//!
//! Two passes keep memory bounded by the number of messages, not their
//! size: the first parses each message and keeps a compact record of what
//! threading and the engine need (a [`Light`]: its instant, the routing and
//! classification results, and its Message-IDs, addresses and subject as
//! interned numbers); the second replays those records in date order. Mail
//! comes in file order but must be replayed in date order, so the records
//! are the one thing held for the whole mailbox (they were the parsed
//! mail and its route, ~1.8 KB a message with their strings; now ~240
//! bytes with the interned strings, BENCHMARKS.md d.3).
//!
//! With `--baseline`, [`compare`] replays the same mail under a second
//! contract and sets the two reports side by side; the HTML report draws
//! each request type's response times against its window ([`chart`]).

mod chart;
pub mod compare;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::contract::{Contract, Timer, UNKNOWN_CLIENT};
use crate::ingest::email::{self, FolderKind, IndexKey, MemoryThreadIndex, ParsedEmail, Team};
use crate::sla::{self, Direction, Event, Policy, TimerStatus};

/// Where the history comes from.
pub enum Source {
    Mbox(PathBuf),
    Maildir(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
}

/// Calls `f` with each raw message of an mbox file (mboxo/mboxrd: a line
/// starting with `From ` separates messages; `>From ` is unquoted).
///
/// One buffer serves every message: a fresh one each time would leave the
/// heap strewn with freed message-sized holes between the small records
/// the first pass keeps, and the process would hold them all.
pub fn read_mbox(path: &Path, mut f: impl FnMut(&[u8])) -> Result<(), BacktestError> {
    let err = |e: std::io::Error| BacktestError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut reader = BufReader::with_capacity(1 << 16, std::fs::File::open(path).map_err(err)?);
    let mut started = false;
    let mut message = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(err)? == 0 {
            break;
        }
        if line.starts_with(b"From ") {
            if started {
                f(&message);
            }
            message.clear();
            started = true;
            continue;
        }
        if !started {
            continue;
        }
        let quoted_from = line.first() == Some(&b'>')
            && line
                .iter()
                .position(|&b| b != b'>')
                .is_some_and(|i| line[i..].starts_with(b"From "));
        message.extend_from_slice(if quoted_from { &line[1..] } else { &line });
    }
    if started {
        f(&message);
    }
    Ok(())
}

/// The message files of a Maildir (`cur/` and `new/`), or of a plain folder
/// of `.eml` files.
pub fn maildir_files(dir: &Path) -> Result<Vec<PathBuf>, BacktestError> {
    let err = |e: std::io::Error| BacktestError::Read {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    let subdirs: Vec<PathBuf> = ["cur", "new"]
        .iter()
        .map(|s| dir.join(s))
        .filter(|p| p.is_dir())
        .collect();
    let dirs = if subdirs.is_empty() {
        vec![dir.to_path_buf()]
    } else {
        subdirs
    };
    let mut files = Vec::new();
    for d in dirs {
        for entry in std::fs::read_dir(&d).map_err(err)? {
            let path = entry.map_err(err)?.path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A string kept once: Message-IDs, addresses and subject keys (in
/// [`Names`]), client and request-type ids (in the labels). Equal strings
/// get equal numbers, so threading on numbers is threading on the strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Sym(NonZeroU32);

impl IndexKey for Sym {
    type Ref = Sym;
}

#[derive(Default)]
struct Names {
    syms: HashMap<Box<str>, Sym>,
}

impl Names {
    fn intern(&mut self, s: &str) -> Sym {
        if let Some(&sym) = self.syms.get(s) {
            return sym;
        }
        let n = u32::try_from(self.syms.len() + 1).expect("fewer than 2^32 distinct names");
        let sym = Sym(NonZeroU32::new(n).expect("counted from 1"));
        self.syms.insert(s.into(), sym);
        sym
    }

    /// Every string by its number (index `n - 1`), to put results into words.
    fn by_sym(&self) -> Vec<&str> {
        let mut out = vec![""; self.syms.len()];
        for (s, sym) in &self.syms {
            out[sym.0.get() as usize - 1] = s;
        }
        out
    }
}

/// What the first pass keeps of all messages: their records, the interned
/// strings, and the Message-IDs and addresses the records point into (one
/// array for all, so a record holds no allocation of its own).
#[derive(Default)]
struct Lightened {
    messages: Vec<Light>,
    names: Names,
    labels: Names,
    syms: Vec<Sym>,
}

/// What the replay keeps of one message: the threading rule's inputs and
/// the routing and classification results, decided while reading with the
/// whole mail in hand as the service has it. `syms[ids..ids + headers]` are
/// In-Reply-To then References newest first (the order threading tries
/// them), `syms[ids + headers..ids + headers + openers]` the client-side
/// addresses ([`email::Route::client_addresses`]).
struct Light {
    at: DateTime<Utc>,
    message_id: Option<Sym>,
    ids: u32,
    headers: u32,
    openers: u32,
    /// The normalised subject, when it may be needed: the mail looks like
    /// a reply (threading by subject) or may open a conversation. `None`
    /// when it normalises to nothing, which never threads.
    subject: Option<Sym>,
    /// The client (a label), as [`email::Route::client`].
    client: Option<Sym>,
    /// `client` is a declared one, not `unknown`.
    known_client: bool,
    /// A reply prefix or a quoted body ([`email::looks_like_reply`]).
    reply: bool,
    direction: Direction,
    /// The request type (a label) an inbound mail of a client would open a
    /// conversation with.
    request_type: Option<Sym>,
}

impl Lightened {
    fn add(
        &mut self,
        contract: &Contract,
        team: &[String],
        channel: &str,
        at: DateTime<Utc>,
        mail: &ParsedEmail,
    ) {
        let route = email::route(
            mail,
            contract,
            Team {
                members: team,
                own: &[],
            },
            FolderKind::Inbox,
        );
        let class = (route.direction == Direction::Inbound && route.client.is_some())
            .then(|| sla::classify(contract, &route.classify_input(mail, channel)));
        let reply = email::looks_like_reply(mail);
        let names = &mut self.names;
        let ids = self.syms.len();
        let header_ids = mail.in_reply_to.iter().chain(mail.references.iter().rev());
        self.syms.extend(header_ids.map(|id| names.intern(id)));
        let headers = self.syms.len() - ids;
        let openers = route.client_addresses();
        self.syms.extend(openers.iter().map(|a| names.intern(a)));
        let subject = (reply || class.is_some())
            .then(|| email::normalize_subject(&mail.subject))
            .filter(|key| !key.is_empty())
            .map(|key| names.intern(&key));
        let count = |n: usize| u32::try_from(n).expect("fewer than 2^32 ids");
        self.messages.push(Light {
            at,
            message_id: mail.message_id.as_deref().map(|id| names.intern(id)),
            ids: count(ids),
            headers: count(headers),
            openers: count(openers.len()),
            subject,
            client: route.client.as_deref().map(|c| self.labels.intern(c)),
            known_client: route.known_client().is_some(),
            reply,
            direction: route.direction,
            request_type: class.map(|c| self.labels.intern(&c.request_type)),
        });
    }
}

struct Conversation {
    request_type: Sym,
    client: Sym,
    events: Vec<Event>,
}

/// What the replay did with one message, in replay (date) order: the same
/// facts the service stores, for comparing the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traced {
    pub message_id: Option<String>,
    pub direction: Direction,
    pub client: Option<String>,
    /// Index of the replayed conversation the message joined or opened.
    pub conversation: Option<usize>,
    /// The request type of that conversation.
    pub request_type: Option<String>,
}

/// One row of the report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Row {
    /// The request type's id (`total` in the totals row).
    pub request_type: String,
    /// The client's id (empty in the totals row).
    pub client: String,
    /// The request type's name in the contract.
    pub request_type_name: String,
    /// The client's name in the contract ("Unknown senders" for `unknown`).
    pub client_name: String,
    pub conversations: usize,
    /// First responses that happened (met or missed).
    pub first_responses: usize,
    pub within_window: usize,
    /// `within_window / first_responses`, in percent.
    pub within_window_pct: Option<f64>,
    pub p50_business_seconds: Option<i64>,
    pub p90_business_seconds: Option<i64>,
    /// Timers that breached (missed, or still running past their due).
    pub breaches: usize,
    /// First responses never given and not yet due at the end of the history.
    pub unanswered: usize,
    #[serde(skip)]
    response_times: Vec<i64>,
    /// Each first response: business seconds, and whether it was in the window.
    #[serde(skip)]
    pub(crate) samples: Vec<(i64, bool)>,
}

impl Row {
    fn finish(&mut self) {
        self.response_times.sort_unstable();
        self.p50_business_seconds = percentile(&self.response_times, 50.0);
        self.p90_business_seconds = percentile(&self.response_times, 90.0);
        self.within_window_pct = (self.first_responses > 0)
            .then(|| 100.0 * self.within_window as f64 / self.first_responses as f64);
    }

    fn add(&mut self, o: &Row) {
        self.conversations += o.conversations;
        self.first_responses += o.first_responses;
        self.within_window += o.within_window;
        self.breaches += o.breaches;
        self.unanswered += o.unanswered;
        self.response_times.extend(&o.response_times);
        self.samples.extend(&o.samples);
    }
}

/// The first-response window of a request type in business seconds, for
/// charts: exact for hour windows; a days window is measured from the
/// first response's start it applies to (business days differ in length).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TypeWindow {
    pub request_type: String,
    pub request_type_name: String,
    pub first_response_business_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub contract: String,
    pub contract_version: String,
    pub messages: usize,
    pub unparseable: usize,
    pub automatic: usize,
    pub conversations: usize,
    pub until: Option<DateTime<Utc>>,
    /// Most breaches first, then most conversations, then by name.
    pub rows: Vec<Row>,
    /// Every row added up (percentiles over all first responses).
    pub totals: Row,
    /// Each request type's first-response window, in contract order.
    pub windows: Vec<TypeWindow>,
}

/// Nearest-rank percentile of sorted values; the dashboard's compliance
/// report uses the same rule, so both give the same p50/p90 for the same mail.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Replays `sources` against `contract`. `team` entries are addresses or
/// `@domain`; their mail is the team's answers. `progress` is called with
/// (done, total-or-0) while reading.
pub fn run(
    contract: &Contract,
    sources: &[Source],
    team: &[String],
    mut progress: impl FnMut(usize, usize),
) -> Result<Report, BacktestError> {
    let mut report = Report {
        contract: contract.info().name.clone(),
        contract_version: contract.version().to_string(),
        ..Report::default()
    };
    let channel = email_channel(contract);
    let mut light = Lightened::default();
    let mut take = |raw: &[u8], report: &mut Report| {
        report.messages += 1;
        match email::parse_email(raw) {
            Ok(mail) => {
                if let Some(at) = mail.date {
                    light.add(contract, team, &channel, at, &mail);
                } else {
                    // Without a date there is no time to count from.
                    report.unparseable += 1;
                }
            }
            Err(_) => report.unparseable += 1,
        }
    };
    for source in sources {
        match source {
            Source::Mbox(path) => {
                let mut n = 0;
                read_mbox(path, |raw| {
                    take(raw, &mut report);
                    n += 1;
                    if n % 1000 == 0 {
                        progress(n, 0);
                    }
                })?;
            }
            Source::Maildir(dir) => {
                let files = maildir_files(dir)?;
                let mut raw = Vec::new();
                for (i, f) in files.iter().enumerate() {
                    raw.clear();
                    std::fs::File::open(f)
                        .and_then(|mut h| h.read_to_end(&mut raw))
                        .map_err(|e| BacktestError::Read {
                            path: f.display().to_string(),
                            reason: e.to_string(),
                        })?;
                    take(&raw, &mut report);
                    if i % 1000 == 0 {
                        progress(i, files.len());
                    }
                }
            }
        }
    }
    // The strings behind the numbers are only needed to name results:
    // the labels are few, the names (every Message-ID) go now.
    let Lightened {
        mut messages,
        names,
        labels,
        syms,
    } = light;
    drop(names);
    messages.sort_by_key(|m| m.at);
    report.until = messages.last().map(|m| m.at);
    report.automatic = messages
        .iter()
        .filter(|m| m.direction == Direction::Auto)
        .count();
    let conversations = replay(&messages, &syms, |_, _, _| {});
    drop((messages, syms));
    report.conversations = conversations.len();
    let labels = labels.by_sym();
    let label = |s: Sym| labels[s.0.get() as usize - 1];

    let until = report.until.unwrap_or_else(Utc::now);
    let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
    let mut windows: BTreeMap<String, i64> = BTreeMap::new();
    for conv in &conversations {
        let (request_type, conv_client) = (label(conv.request_type), label(conv.client));
        let client = (conv_client != UNKNOWN_CLIENT).then_some(conv_client);
        let Some(policy) = Policy::from_contract(contract, request_type, client) else {
            continue;
        };
        let state = sla::evaluate(&policy, &conv.events, until);
        let row = rows
            .entry((request_type.to_string(), conv_client.to_string()))
            .or_insert_with(|| Row {
                request_type: request_type.to_string(),
                client: conv_client.to_string(),
                request_type_name: contract
                    .request_type(request_type)
                    .map_or_else(|| request_type.to_string(), |t| t.name.clone()),
                client_name: contract.client_name(conv_client),
                ..Row::default()
            });
        row.conversations += 1;
        for t in &state.timers {
            match t.status {
                TimerStatus::Breached | TimerStatus::Missed => row.breaches += 1,
                _ => {}
            }
            if t.timer != Timer::FirstResponse {
                continue;
            }
            match t.status {
                TimerStatus::Met | TimerStatus::Missed => {
                    row.first_responses += 1;
                    row.within_window += usize::from(t.status == TimerStatus::Met);
                    row.response_times.push(t.elapsed.num_seconds());
                    row.samples
                        .push((t.elapsed.num_seconds(), t.status == TimerStatus::Met));
                    if !windows.contains_key(request_type) {
                        let w = type_window_seconds(contract, request_type, t.started_at);
                        windows.insert(request_type.to_string(), w);
                    }
                }
                _ => row.unanswered += 1,
            }
        }
    }
    let mut totals = Row {
        request_type: "total".into(),
        request_type_name: "Total".into(),
        ..Row::default()
    };
    for row in rows.values_mut() {
        row.finish();
        totals.add(row);
    }
    totals.finish();
    report.totals = totals;
    report.rows = rows.into_values().collect();
    report.rows.sort_by(row_order);
    report.windows = contract
        .request_types()
        .iter()
        .map(|t| TypeWindow {
            request_type: t.id.clone(),
            request_type_name: t.name.clone(),
            first_response_business_seconds: windows.get(&t.id).copied().or_else(|| {
                (t.first_response.days == 0).then_some(t.first_response.seconds as i64)
            }),
        })
        .collect();
    Ok(report)
}

/// The order a lead reads rows in: most breaches first, then the busiest,
/// then by name (not by id: `c10` before `c2` helps nobody).
pub(crate) fn row_order(a: &Row, b: &Row) -> std::cmp::Ordering {
    b.breaches
        .cmp(&a.breaches)
        .then(b.conversations.cmp(&a.conversations))
        .then_with(|| a.request_type_name.cmp(&b.request_type_name))
        .then_with(|| a.client_name.cmp(&b.client_name))
}

/// The business seconds of a request type's own first-response window
/// (no client's override) for a timer started at `start`.
fn type_window_seconds(contract: &Contract, type_id: &str, start: DateTime<Utc>) -> i64 {
    let (Some(t), Some(calendar)) = (
        contract.request_type(type_id),
        contract.calendar_for(type_id),
    ) else {
        return 0;
    };
    if t.first_response.days == 0 {
        return t.first_response.seconds as i64;
    }
    calendar
        .add(start, t.first_response)
        .and_then(|due| calendar.between(start, due))
        .map(|d| d.num_seconds())
        .unwrap_or(0)
}

/// The service's own threading rule over mail sorted by date: the
/// conversations with their engine events; `each` hears what happened to
/// every message (the conversation it joined or opened).
fn replay(
    messages: &[Light],
    syms: &[Sym],
    mut each: impl FnMut(&Light, Option<usize>, &[Conversation]),
) -> Vec<Conversation> {
    let mut index = MemoryThreadIndex::<usize, Sym>::default();
    let mut conversations: Vec<Conversation> = Vec::new();
    for m in messages {
        let ids = &syms[m.ids as usize..][..(m.headers + m.openers) as usize];
        let (header_ids, openers) = ids.split_at(m.headers as usize);
        let known_client = m.client.filter(|_| m.known_client);
        let found = email::thread_rule(
            &mut index,
            header_ids,
            || m.subject.filter(|_| m.reply),
            openers,
            known_client.as_ref(),
            m.at,
        );
        let conv = match (found, m.request_type, m.client) {
            (Some(c), _, _) => Some(c),
            (None, Some(request_type), Some(client)) => {
                conversations.push(Conversation {
                    request_type,
                    client,
                    events: Vec::new(),
                });
                let c = conversations.len() - 1;
                // Only inbound mail opens, and its one client-side address
                // is the sender.
                index.open_with_key(
                    c,
                    known_client.as_ref(),
                    openers.first(),
                    m.subject.as_ref(),
                    m.at,
                );
                Some(c)
            }
            _ => None,
        };
        if let Some(c) = conv {
            conversations[c]
                .events
                .push(Event::message(m.at, m.direction));
            if let Some(id) = &m.message_id {
                index.record_message_id(id, c);
            }
            index.touch(c, m.at);
        }
        each(m, conv, &conversations);
    }
    conversations
}

/// Replays raw messages and says what happened to each, in date order
/// (messages without a parseable date are left out, as in [`run`]).
pub fn trace(contract: &Contract, raws: &[Vec<u8>], team: &[String]) -> Vec<Traced> {
    let channel = email_channel(contract);
    let mut light = Lightened::default();
    for mail in raws.iter().filter_map(|raw| email::parse_email(raw).ok()) {
        if let Some(at) = mail.date {
            light.add(contract, team, &channel, at, &mail);
        }
    }
    light.messages.sort_by_key(|m| m.at);
    let (names, labels) = (light.names.by_sym(), light.labels.by_sym());
    let name = |s: Sym| names[s.0.get() as usize - 1].to_string();
    let label = |s: Sym| labels[s.0.get() as usize - 1].to_string();
    let mut traced = Vec::with_capacity(light.messages.len());
    replay(&light.messages, &light.syms, |m, conv, conversations| {
        traced.push(Traced {
            message_id: m.message_id.map(name),
            direction: m.direction,
            client: m.client.map(label),
            conversation: conv,
            request_type: conv.map(|c| label(conversations[c].request_type)),
        });
    });
    traced
}

/// The contract's email channel, which the backtest's mail came through.
fn email_channel(contract: &Contract) -> String {
    contract
        .channels()
        .iter()
        .find(|c| c.kind == crate::contract::ChannelKind::Email)
        .map(|c| c.id.clone())
        .unwrap_or_else(|| "email".into())
}

/// Business time for people, as pages and alerts say it; "—" for none.
pub fn business_words(secs: Option<i64>) -> String {
    secs.map_or("—".into(), crate::calendar::business_words)
}

fn pct(p: Option<f64>) -> String {
    p.map_or("—".into(), |p| format!("{p:.1}%"))
}

fn header(r: &Report) -> String {
    format!(
        "\"{}\" (version {}): {} messages ({} unparseable or undated, {} automatic), {} conversations{}",
        r.contract,
        &r.contract_version[..r.contract_version.len().min(12)],
        r.messages,
        r.unparseable,
        r.automatic,
        r.conversations,
        r.until
            .map(|u| format!(", history until {}", u.to_rfc3339()))
            .unwrap_or_default(),
    )
}

/// Cuts a name to `n` characters for a text column.
fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(n - 1).collect();
        cut.push('…');
        cut
    }
}

pub fn render_text(r: &Report) -> String {
    let mut out = format!("Backtest of {}\n\n", header(r));
    out.push_str(&format!(
        "{:<32} {:<20} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "request type", "client", "convs", "in window", "p50", "p90", "breaches", "no reply"
    ));
    for row in r.rows.iter().chain([&r.totals]) {
        out.push_str(&format!(
            "{:<32} {:<20} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            fit(&row.request_type_name, 32),
            fit(&row.client_name, 20),
            row.conversations,
            pct(row.within_window_pct),
            business_words(row.p50_business_seconds),
            business_words(row.p90_business_seconds),
            row.breaches,
            row.unanswered,
        ));
    }
    out
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) const HTML_STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#1d2330}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #c9ced6;padding:.3em .6em;text-align:right}td{white-space:nowrap}\
td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}tr.total td{font-weight:600;border-top:2px solid #1d2330}\
figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.3em}svg{max-width:100%;height:auto}";

pub fn render_html(r: &Report) -> String {
    let mut rows = String::new();
    for row in r.rows.iter().chain([&r.totals]) {
        let class = if row.request_type == "total" {
            " class=\"total\""
        } else {
            ""
        };
        rows.push_str(&format!(
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&row.request_type_name),
            escape(&row.client_name),
            row.conversations,
            pct(row.within_window_pct),
            business_words(row.p50_business_seconds),
            business_words(row.p90_business_seconds),
            row.breaches,
            row.unanswered
        ));
    }
    let mut charts = String::new();
    for w in &r.windows {
        let samples = samples_of(r, &w.request_type);
        if samples.is_empty() {
            continue;
        }
        charts.push_str(&chart::figure(
            &w.request_type_name,
            &[chart::Panel {
                label: "contract",
                window: w.first_response_business_seconds,
                samples: &samples,
            }],
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Backtest: {name}</title>\
         <style>{HTML_STYLE}</style></head>\
         <body><main><h1>Backtest: {name}</h1><p>{header}.</p>\
         <table><tr><th>request type</th><th>client</th><th>conversations</th><th>first response in window</th>\
         <th>p50</th><th>p90</th><th>breaches</th><th>no reply yet</th></tr>\n{rows}</table>\
         <h2>First responses against the window</h2>\n{charts}</main></body></html>\n",
        name = escape(&r.contract),
        header = escape(&header(r)),
    )
}

/// Every first response of a request type, over all clients.
pub(crate) fn samples_of(r: &Report, type_id: &str) -> Vec<(i64, bool)> {
    r.rows
        .iter()
        .filter(|row| row.request_type == type_id)
        .flat_map(|row| row.samples.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_splits_on_from_lines_and_unquotes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("box");
        std::fs::write(
            &p,
            "From a@b Mon Jan  1 00:00:00 2026\nSubject: one\n\n>From here\nbody\nFrom c@d Tue Jan  2 00:00:00 2026\nSubject: two\n\nx\n",
        )
        .unwrap();
        let mut got = Vec::new();
        read_mbox(&p, |m| got.push(String::from_utf8(m.to_vec()).unwrap())).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got[0].contains("\nFrom here\n"), "{:?}", got[0]);
        assert!(got[1].starts_with("Subject: two"));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
