//! The client's status page (README, "HTTP API"): the token that opens it, and what it
//! says — in the client's words, in the contract's zone, from the contract
//! version the conversation opened under.
//!
//! What the page may show is decided here, not in the template: the read
//! model carries the subject, the request type and its definition, the
//! promises, the state now and the broken promises, the urgent channel and
//! the contract link — and nothing else. Internal notes, team members'
//! names, contacts, escalation steps and other conversations never enter
//! it, so no template edit can leak them.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Core, Reads, ServiceError, refresh};
use crate::contract::{Contract, Timer, UNKNOWN_CLIENT, channel_words, promise, window_words};
use crate::sla::{self, Direction, Policy, TicketStatus, TimerState, TimerStatus};
use crate::store::{self, AnyConnection, EventRow};

/// Random bytes in a token: 160 bits, above the 128 the status link needs.
const TOKEN_BYTES: usize = 20;

/// A new random token (lower-case hex).
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored for a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` has the shape of one we issue; anything else is not
/// looked up at all.
pub fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_BYTES * 2
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Gives new conversations their status links, in one statement: the
/// token of each that got one (a token is never stored, only its hash).
pub(crate) fn issue_links(
    conn: &mut AnyConnection,
    conversations: &[i64],
    now: DateTime<Utc>,
) -> Result<std::collections::HashMap<i64, String>, ServiceError> {
    let tokens: Vec<(i64, String)> = conversations.iter().map(|id| (*id, new_token())).collect();
    let hashes: Vec<(i64, String)> = tokens.iter().map(|(id, t)| (*id, token_hash(t))).collect();
    let linked = store::insert_status_links(conn, &hashes, now)?;
    Ok(tokens
        .into_iter()
        .filter(|(id, _)| linked.contains(id))
        .collect())
}

/// `{public_url}/status/{token}`.
pub fn status_url(public_url: &str, token: &str) -> String {
    format!("{}/status/{token}", public_url.trim_end_matches('/'))
}

/// The urgent channel, as the status page names it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UrgentView {
    pub name: String,
    pub definition: String,
    pub channels: Vec<String>,
    pub promise: String,
}

/// Where the conversation stands, for the page's styling and for tests.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StatusKind {
    /// We owe the first reply.
    AwaitingReply,
    /// The client wrote again; we owe the next reply.
    AwaitingNextReply,
    /// Answered; we are working towards the resolution.
    Answered,
    /// Waiting for the client.
    Paused,
    Resolved,
}

/// Everything the status page shows, already in words.
#[derive(Debug, Clone, Serialize)]
pub struct StatusPage {
    pub subject: String,
    pub request_type: String,
    pub definition: String,
    /// The first-response promise ("we reply within 4 business hours (…)").
    pub promise: String,
    /// Every promise of the request type, one sentence each.
    pub promises: Vec<String>,
    pub kind: StatusKind,
    /// The state now: "We will reply by Tue 1 Dec, 10:00 CET."
    pub headline: String,
    /// "Next update by …" when the type promises periodic updates.
    pub next_update: Option<String>,
    /// Each promise that was broken, said plainly.
    pub broken: Vec<String>,
    pub opened: String,
    pub urgent: Option<UrgentView>,
    pub contract_name: String,
    pub contract_url: String,
    /// The zone every time on the page is in.
    pub zone: String,
}

/// "Tue 1 Dec, 10:00 CET": day and month named, so a date a week out is not
/// mistaken for this week's.
fn when(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%a %-d %b, %H:%M %Z")
        .to_string()
}

fn what_was_promised(timer: Timer) -> &'static str {
    match timer {
        Timer::FirstResponse => "to reply",
        Timer::NextResponse => "to answer your message",
        Timer::Resolution => "to resolve your request",
        Timer::PeriodicUpdate => "to send you an update",
    }
}

/// One sentence per broken promise: a timer that ran past its due
/// (breached, still open) or stopped after it (missed).
fn broken_promises(timers: &[TimerState], zone: Tz) -> Vec<String> {
    let mut out = Vec::new();
    for t in timers {
        let Some(due) = t.due_at else { continue };
        let what = what_was_promised(t.timer);
        let what = if t.timer == Timer::NextResponse {
            format!("{what} of {}", when(t.started_at, zone))
        } else {
            what.to_string()
        };
        match (t.status, t.stopped_at) {
            (TimerStatus::Breached, _) => out.push(format!(
                "We broke our promise: we were to {} by {}, and we have not yet. We are sorry.",
                what.trim_start_matches("to "),
                when(due, zone)
            )),
            (TimerStatus::Missed, Some(stopped)) => out.push(format!(
                "We broke our promise: we were to {} by {}; we did so only on {}.",
                what.trim_start_matches("to "),
                when(due, zone),
                when(stopped, zone)
            )),
            _ => {}
        }
    }
    out
}

/// Since when the conversation has waited on the client: the last event
/// that put it there with nothing from the client or a reopen since.
fn waiting_since(events: &[EventRow], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut since = None;
    for e in events.iter().filter(|e| e.sent_at <= now) {
        let asks = e.direction == Some(Direction::Outbound) && e.awaiting_client;
        match (e.direction, e.status) {
            _ if asks || e.status == Some(TicketStatus::Pending) => {
                since = since.or(Some(e.sent_at));
            }
            (Some(Direction::Inbound), _)
            | (_, Some(TicketStatus::Open))
            | (_, Some(TicketStatus::Solved)) => since = None,
            _ => {}
        }
    }
    since
}

/// The page's words for a conversation's state at `now`, from the engine
/// (not the stored timers, which change only when the scheduler or an event
/// touches them: the page must be right at any moment in between).
#[allow(clippy::too_many_arguments)]
pub fn describe(
    contract: &Contract,
    type_id: &str,
    client_id: Option<&str>,
    subject: &str,
    opened_at: DateTime<Utc>,
    events: &[EventRow],
    solved_at: Option<DateTime<Utc>>,
    contract_url: &str,
    now: DateTime<Utc>,
) -> Option<StatusPage> {
    let request_type = contract.request_type(type_id)?;
    let policy = Policy::from_contract(contract, type_id, client_id)?;
    let state = sla::evaluate(&policy, &refresh::engine_events(events), now);
    let zone = contract.info().timezone;
    let last = |timer: Timer| state.timers.iter().rev().find(|t| t.timer == timer);
    let live = |t: &&TimerState| matches!(t.status, TimerStatus::Running | TimerStatus::Breached);
    let last_reply = events
        .iter()
        .filter(|e| e.sent_at <= now && e.direction == Some(Direction::Outbound))
        .map(|e| e.sent_at)
        .max();
    let resolve_by = |prefix: String| match last(Timer::Resolution) {
        Some(r) if r.status == TimerStatus::Running => match r.due_at {
            Some(due) => format!("{prefix}; we resolve it by {}.", when(due, zone)),
            None => format!("{prefix}."),
        },
        Some(r) if r.status == TimerStatus::Breached => format!(
            "{prefix}; we were to resolve it by {} and are working on it.",
            r.due_at.map(|d| when(d, zone)).unwrap_or_default()
        ),
        _ => format!("{prefix}."),
    };
    let first = last(Timer::FirstResponse).filter(live);
    // While a reply is owed sooner, "next update by" a later time would
    // only blur the headline.
    let reply_due = first
        .or(last(Timer::NextResponse).filter(live))
        .and_then(|t| t.due_at);
    let next_update = last(Timer::PeriodicUpdate)
        .filter(|t| t.status == TimerStatus::Running)
        .and_then(|t| t.due_at)
        .filter(|due| state.status == TicketStatus::Open && reply_due.is_none_or(|r| *due < r))
        .map(|due| format!("Next update by {}.", when(due, zone)));
    let next = last(Timer::NextResponse).filter(live);
    let (kind, headline) = if state.status == TicketStatus::Solved {
        let at = solved_at.unwrap_or(now);
        (
            StatusKind::Resolved,
            format!("Resolved on {}.", when(at, zone)),
        )
    } else if state.status == TicketStatus::Pending {
        let since = waiting_since(events, now).unwrap_or(now);
        (
            StatusKind::Paused,
            format!(
                "Paused: waiting for your reply since {}. The clock starts again when you answer.",
                when(since, zone)
            ),
        )
    } else if let Some(t) = first {
        let due = t.due_at.map(|d| when(d, zone)).unwrap_or_default();
        let headline = if t.status == TimerStatus::Breached {
            format!("We were to reply by {due}. We are late, and we are on it.")
        } else {
            format!("We will reply by {due}.")
        };
        (StatusKind::AwaitingReply, headline)
    } else if let Some(t) = next {
        let due = t.due_at.map(|d| when(d, zone)).unwrap_or_default();
        let wrote = when(t.started_at, zone);
        let headline = if t.status == TimerStatus::Breached {
            format!(
                "You wrote again on {wrote}. We were to answer by {due}; we are late, and we are on it."
            )
        } else {
            format!("You wrote again on {wrote}. We will answer by {due}.")
        };
        (StatusKind::AwaitingNextReply, headline)
    } else {
        let prefix = match last_reply {
            Some(at) => format!("Answered {}", when(at, zone)),
            None => "Answered".to_string(),
        };
        (StatusKind::Answered, resolve_by(prefix))
    };

    let mut promises = Vec::new();
    for timer in Timer::ALL {
        if let Some(window) = contract.window(type_id, client_id, timer) {
            promises.push(capitalise(&window_words(
                contract,
                request_type,
                timer,
                window,
                timer == Timer::FirstResponse,
            )));
        }
    }
    let urgent = contract
        .urgent_request_type()
        .filter(|u| u.id != request_type.id)
        .map(|u| UrgentView {
            name: u.name.clone(),
            definition: u.definition.clone(),
            channels: u
                .channels
                .iter()
                .filter_map(|id| contract.channel(id))
                .map(channel_words)
                .collect(),
            promise: promise(contract, &u.id, client_id),
        });
    Some(StatusPage {
        subject: subject.to_string(),
        request_type: request_type.name.clone(),
        definition: request_type.definition.clone(),
        promise: promise(contract, type_id, client_id),
        promises,
        kind,
        headline,
        next_update,
        broken: broken_promises(&state.timers, zone),
        opened: when(opened_at, zone),
        urgent,
        contract_name: contract.info().name.clone(),
        contract_url: contract_url.to_string(),
        zone: zone.name().to_string(),
    })
}

pub(super) fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Reads {
    /// The status page a token opens; `None` for a malformed or unknown
    /// token (the caller answers both with the same plain 404).
    pub fn status_page(&self, token: &str) -> Result<Option<StatusPage>, ServiceError> {
        if !well_formed(token) {
            return Ok(None);
        }
        let hash = token_hash(token);
        let now = self.now();
        // The store's closure speaks StoreError; the contract lookup is the
        // service's, so its outcome is carried out of the closure.
        let mut page = Ok(None);
        self.store().with(|conn| {
            page = self.status_page_in(conn, &hash, now);
            Ok(())
        })?;
        page
    }

    fn status_page_in(
        &self,
        conn: &mut AnyConnection,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StatusPage>, ServiceError> {
        {
            let Some((id, stored)) = store::conversation_by_status_hash(conn, hash)? else {
                return Ok(None);
            };
            if !constant_time_eq(stored.as_bytes(), hash.as_bytes()) {
                return Ok(None);
            }
            let Some(conv) = store::conversation(conn, id)? else {
                return Ok(None);
            };
            let contract = self.core.contract_version(conn, &conv.contract_version)?;
            let events = store::events_of(conn, id)?;
            let client = (conv.client_id != UNKNOWN_CLIENT).then_some(conv.client_id.as_str());
            let page = describe(
                &contract,
                &conv.request_type,
                client,
                &conv.subject,
                conv.opened_at,
                &events,
                conv.solved_at,
                &self.core.contract_url(&contract),
                now,
            );
            Ok(page)
        }
    }
}

impl Core {
    /// The link to the contract clients are given: the contract's own
    /// `public_url`, else this service's `/contract`.
    pub(crate) fn contract_url(&self, contract: &Contract) -> String {
        contract
            .info()
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{}/contract", self.public_url()))
    }

    /// `{public_url}/status/{token}` for this service.
    pub fn status_url(&self, token: &str) -> String {
        status_url(self.public_url(), token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_hex_and_only_their_hash_is_kept() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 40, "160 bits in hex");
        assert!(well_formed(&a));
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
        for bad in [
            "",
            "abc",
            &a.to_uppercase(),
            &format!("{a}0"),
            &a[..39],
            "../../etc/passwd",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
