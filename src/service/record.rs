//! The client's record (README, "The client's record"): the page a client
//! opens with its own link, and the figures its monthly report carries.
//!
//! What the page may show is decided here, as for the status page: the
//! client's own requests (subject, type, promise, state), the figures of its
//! record counted by the compliance report's rule ([`Reads::tally`]), its
//! broken promises, its agreement and the contract versions of the period.
//! Team members, contacts, internal notes, escalations and other clients
//! never enter the model, so no template edit can leak them.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::dashboard::{Calendars, outcome, response_time};
use super::status::{capitalise, describe, new_token, token_hash, well_formed};
use super::*;
use crate::backtest::percentile;
use crate::contract::{Timer, window_words};
use crate::store::TimerRow;

/// The periods a page may show, in days; the default is 90.
pub const RECORD_DAYS: [i64; 3] = [30, 90, 365];
pub const DEFAULT_RECORD_DAYS: i64 = 90;
/// Open requests a page lists (the most pressing first); the rest are counted.
pub const OPEN_LISTED: i64 = 50;

/// `{public_url}/clients/{token}`.
pub fn client_url(public_url: &str, token: &str) -> String {
    format!("{}/clients/{token}", public_url.trim_end_matches('/'))
}

/// A new link to the client's page, `{public_url}/clients/{token}`; every
/// older link of the client stops working in the same transaction. The
/// token is returned once and kept only as its hash (`keepword client link`).
pub fn new_client_link(
    db: &Store,
    contract: &Contract,
    public_url: &str,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<String, ServiceError> {
    if contract.client(client_id).is_none() {
        let known: Vec<&str> = contract.clients().iter().map(|c| c.id.as_str()).collect();
        return Err(ServiceError::NotFound(format!(
            "client `{client_id}` (the contract declares {})",
            if known.is_empty() {
                "no clients".to_string()
            } else {
                known.join(", ")
            }
        )));
    }
    let token = new_token();
    let hash = token_hash(&token);
    db.transaction(|conn| {
        store::replace_client_link(conn, client_id, &hash, now)?;
        Ok::<_, ServiceError>(())
    })?;
    Ok(client_url(public_url, &token))
}

/// `[from, to)` of the last `days` days as the compliance report reads its
/// dates (UTC midnights, `to` the midnight after today), so the page and
/// `/compliance?from=…&to=…` count the same conversations.
pub fn record_period(days: i64, now: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    let to = now.date_naive() + TimeDelta::days(1);
    (to - TimeDelta::days(days), to)
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// Kept and broken promises of one kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KindRecord {
    /// "first response", "next response", "resolution", "updates".
    pub promise: String,
    pub kept: usize,
    /// Kept late, or still overdue.
    pub broken: usize,
    /// Of `broken`, still overdue now.
    pub overdue: usize,
}

/// One week of the period for one request type.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WeekRecord {
    /// The week's first day, "2 Nov".
    pub starts: String,
    pub kept: usize,
    pub broken: usize,
    /// Median business seconds to the first response of the week's requests.
    pub median_first_response: Option<i64>,
    pub median_words: Option<String>,
}

/// The record of one request type.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TypeRecord {
    pub id: String,
    pub name: String,
    pub requests: usize,
    pub kinds: Vec<KindRecord>,
    /// Business seconds; `None` before any first response.
    pub median_first_response: Option<i64>,
    /// "1 h 10 m".
    pub median_words: Option<String>,
    /// The first-response window now promised to this client (business seconds;
    /// days counted at their open hours would vary, so `None` for a window in days).
    pub window: Option<i64>,
    pub window_words: String,
    pub weeks: Vec<WeekRecord>,
}

/// A promise that was broken, said plainly.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BrokenPromise {
    pub conversation_id: i64,
    pub subject: String,
    pub request_type: String,
    /// "first response".
    pub promise: String,
    /// The date it was broken (its due), "Tue 1 Dec".
    pub date: String,
    pub due: String,
    /// When it was kept after all; `None` while still overdue.
    pub kept: Option<String>,
    /// Business time late, "2 h 10 m" (until now while still overdue).
    pub late: String,
    #[serde(skip)]
    pub due_at: DateTime<Utc>,
}

/// A contract version in force in the period.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VersionInPeriod {
    pub effective: String,
    pub decision: Option<String>,
    pub changes: Vec<String>,
    pub in_force: bool,
}

/// An open request of the client.
#[derive(Debug, Clone, Serialize)]
pub struct OpenRequest {
    pub id: i64,
    pub subject: String,
    pub request_type: String,
    pub promise: String,
    pub headline: String,
    pub kind: super::StatusKind,
    pub late: bool,
}

/// The promises of one request type to this client.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TypePromises {
    pub name: String,
    pub definition: String,
    pub promises: Vec<String>,
}

/// The client's record over a period: the page's and the report's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ClientRecord {
    pub client_id: String,
    pub client_name: String,
    pub days: i64,
    /// The period in words, "8 September – 7 December 2026".
    pub period: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub types: Vec<TypeRecord>,
    pub requests: usize,
    pub kept: usize,
    pub broken: usize,
    pub broken_promises: Vec<BrokenPromise>,
    pub versions: Vec<VersionInPeriod>,
    pub zone: String,
    pub contract_name: String,
    pub contract_url: String,
}

/// Everything the client's page shows.
#[derive(Debug, Clone, Serialize)]
pub struct ClientPage {
    pub record: ClientRecord,
    pub open: Vec<OpenRequest>,
    /// How many are open in all (the page lists [`OPEN_LISTED`]).
    pub open_total: i64,
    pub promises: Vec<TypePromises>,
    pub urgent: Option<super::UrgentView>,
}

fn day_words(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone).format("%a %-d %b %Y").to_string()
}

fn when(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%a %-d %b %Y, %H:%M %Z")
        .to_string()
}

/// The promise as a client reads it in a list: the periodic update is
/// "updates".
fn promise_words(t: Timer) -> &'static str {
    match t {
        Timer::PeriodicUpdate => "updates",
        other => other.words(),
    }
}

impl Reads {
    /// The client a page token opens; `None` for a malformed or unknown one
    /// (answered alike, with a plain 404).
    pub fn client_of_token(&self, token: &str) -> Result<Option<String>, ServiceError> {
        if !well_formed(token) {
            return Ok(None);
        }
        let hash = token_hash(token);
        let client = self
            .store()
            .with(|conn| store::client_by_link_hash(conn, &hash))?;
        // A client the contract no longer declares has no page.
        let current = self.contract().current();
        Ok(client.filter(|id| current.contract.client(id).is_some()))
    }

    /// The client's record over `[from, to)` (UTC midnights), at `now`.
    pub fn client_record(
        &self,
        client_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<ClientRecord, ServiceError> {
        let (convs, timers) = self.store().snapshot(|conn| {
            let convs =
                store::client_opened_between(conn, client_id, midnight(from), midnight(to))?;
            let ids: Vec<i64> = convs.iter().map(|c| c.id).collect();
            let timers = store::timers_of_many(conn, &ids)?;
            Ok::<_, ServiceError>((convs, timers))
        })?;
        let versions = self.contract_changes()?;
        Ok(self.record_of(client_id, from, to, &convs, &timers, &versions, now))
    }

    #[allow(clippy::too_many_arguments)]
    fn record_of(
        &self,
        client_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        convs: &[store::RecordRow],
        timers: &HashMap<i64, Vec<TimerRow>>,
        versions: &[super::VersionChanges],
        now: DateTime<Utc>,
    ) -> ClientRecord {
        let current = self.contract().current();
        let contract = &current.contract;
        let zone = contract.info().timezone;
        let client_name = contract.client_name(client_id);
        let mut calendars = Calendars::default();
        let rows = self.tally(convs, timers, &mut calendars);

        let start = midnight(from);
        let weeks = ((to - from).num_days() + 6) / 7;
        let week_of = |t: DateTime<Utc>| -> usize {
            ((t - start).num_days().max(0) / 7).min(weeks - 1).max(0) as usize
        };
        let mut types: Vec<TypeRecord> = Vec::new();
        // Request types in contract order, then any the contract dropped.
        let mut order: Vec<String> = contract
            .request_types()
            .iter()
            .map(|t| t.id.clone())
            .collect();
        for c in convs {
            if !order.contains(&c.request_type) {
                order.push(c.request_type.clone());
            }
        }
        let mut broken_promises = Vec::new();
        let mut first_times: HashMap<String, Vec<Vec<i64>>> = HashMap::new();
        for type_id in &order {
            let of_type: Vec<&store::RecordRow> = convs
                .iter()
                .filter(|c| &c.request_type == type_id)
                .collect();
            if of_type.is_empty() {
                continue;
            }
            let name = contract
                .request_type(type_id)
                .map_or(type_id.clone(), |t| t.name.clone());
            let kinds = Timer::ALL
                .iter()
                .filter_map(|timer| {
                    let row = rows
                        .iter()
                        .find(|r| &r.request_type == type_id && r.timer == timer.words())?;
                    Some(KindRecord {
                        promise: promise_words(*timer).into(),
                        kept: row.met,
                        broken: row.missed + row.breached,
                        overdue: row.breached,
                    })
                })
                .collect();
            let median = rows
                .iter()
                .find(|r| &r.request_type == type_id && r.timer == Timer::FirstResponse.words())
                .and_then(|r| r.p50);
            let window = contract
                .window(type_id, Some(client_id), Timer::FirstResponse)
                .filter(|w| w.days == 0)
                .map(|w| w.seconds as i64);
            let window_words_ = contract
                .request_type(type_id)
                .and_then(|t| {
                    contract
                        .window(type_id, Some(client_id), Timer::FirstResponse)
                        .map(|w| window_words(contract, t, Timer::FirstResponse, w, false))
                })
                .unwrap_or_default();
            let mut week_rows: Vec<WeekRecord> = (0..weeks)
                .map(|i| WeekRecord {
                    starts: (from + TimeDelta::days(7 * i)).format("%-d %b").to_string(),
                    ..WeekRecord::default()
                })
                .collect();
            let times = first_times
                .entry(type_id.clone())
                .or_insert_with(|| vec![Vec::new(); weeks as usize]);
            for c in &of_type {
                let cal = calendars.of(&self.core, *c);
                for t in timers.get(&c.id).into_iter().flatten() {
                    let Some(result) = outcome(t.status) else {
                        continue;
                    };
                    // A kept promise counts in the week it was kept, a
                    // broken one in the week it fell due.
                    let settled = match result {
                        "met" => t.stopped_at.unwrap_or(t.started_at),
                        _ => t.due_at.unwrap_or(t.started_at),
                    };
                    let w = week_of(settled);
                    if result == "met" {
                        week_rows[w].kept += 1;
                    } else {
                        week_rows[w].broken += 1;
                    }
                    if t.kind == Timer::FirstResponse
                        && let Some(d) = response_time(t, cal.as_ref())
                    {
                        times[week_of(t.stopped_at.unwrap_or(settled))].push(d);
                    }
                    if result != "met"
                        && let Some(due) = t.due_at
                    {
                        let until = t.stopped_at.unwrap_or(now);
                        let late = cal
                            .as_ref()
                            .and_then(|cal| cal.between(due, until).ok())
                            .unwrap_or(until - due);
                        broken_promises.push(BrokenPromise {
                            conversation_id: c.id,
                            subject: c.subject.clone(),
                            request_type: name.clone(),
                            promise: promise_words(t.kind).into(),
                            date: day_words(due, zone),
                            due: when(due, zone),
                            kept: t.stopped_at.map(|s| when(s, zone)),
                            late: span_words(late),
                            due_at: due,
                        });
                    }
                }
            }
            for (w, week) in week_rows.iter_mut().enumerate() {
                let mut ts = times[w].clone();
                ts.sort_unstable();
                week.median_first_response = percentile(&ts, 50.0);
                week.median_words = week
                    .median_first_response
                    .map(|s| span_words(TimeDelta::seconds(s)));
            }
            types.push(TypeRecord {
                id: type_id.clone(),
                name,
                requests: of_type.len(),
                kinds,
                median_first_response: median,
                median_words: median.map(|s| span_words(TimeDelta::seconds(s))),
                window,
                window_words: window_words_,
                weeks: week_rows,
            });
        }
        broken_promises.sort_by_key(|b| (b.due_at, b.conversation_id));
        let kept = types.iter().flat_map(|t| &t.kinds).map(|k| k.kept).sum();
        let broken = types.iter().flat_map(|t| &t.kinds).map(|k| k.broken).sum();
        ClientRecord {
            client_id: client_id.to_string(),
            client_name: client_name.clone(),
            days: (to - from).num_days(),
            period: format!(
                "{} – {}",
                from.format("%-d %B %Y"),
                (to - TimeDelta::days(1)).format("%-d %B %Y")
            ),
            from,
            to,
            requests: convs.len(),
            kept,
            broken,
            types,
            broken_promises,
            versions: versions_in(versions, &client_name, from, to),
            zone: zone.name().to_string(),
            contract_name: contract.info().name.clone(),
            contract_url: self.core.contract_url(contract),
        }
    }

    /// The page a client's link opens; `None` for an unknown token.
    pub fn client_page(&self, token: &str, days: i64) -> Result<Option<ClientPage>, ServiceError> {
        match self.client_of_token(token)? {
            Some(client) => self.client_page_of(&client, days).map(Some),
            None => Ok(None),
        }
    }

    /// The page of `client_id` as the client sees it (the team's dashboard
    /// opens it signed in).
    pub fn client_page_of(&self, client_id: &str, days: i64) -> Result<ClientPage, ServiceError> {
        let now = self.now();
        let (from, to) = record_period(days, now);
        let record = self.client_record(client_id, from, to, now)?;
        let (open, open_total) = self.open_requests(client_id, now)?;
        let current = self.contract().current();
        let contract = &current.contract;
        let promises = contract
            .request_types()
            .iter()
            .map(|t| TypePromises {
                name: t.name.clone(),
                definition: t.definition.clone(),
                promises: Timer::ALL
                    .iter()
                    .filter_map(|timer| {
                        contract
                            .window(&t.id, Some(client_id), *timer)
                            .map(|w| capitalise(&window_words(contract, t, *timer, w, true)))
                    })
                    .collect(),
            })
            .collect();
        let urgent = contract.urgent_request_type().map(|u| super::UrgentView {
            name: u.name.clone(),
            definition: u.definition.clone(),
            channels: u
                .channels
                .iter()
                .filter_map(|id| contract.channel(id))
                .map(crate::contract::channel_words)
                .collect(),
            promise: crate::contract::promise(contract, &u.id, Some(client_id)),
        });
        Ok(ClientPage {
            record,
            open,
            open_total,
            promises,
            urgent,
        })
    }

    fn open_requests(
        &self,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<OpenRequest>, i64), ServiceError> {
        let (convs, total, events) = self.store().snapshot(|conn| {
            let (convs, total) = store::client_open(conn, client_id, OPEN_LISTED)?;
            let ids: Vec<i64> = convs.iter().map(|c| c.id).collect();
            let events = store::events_of_many(conn, &ids)?;
            Ok::<_, ServiceError>((convs, total, events))
        })?;
        let mut out = Vec::with_capacity(convs.len());
        for c in convs {
            let contract = self.store().with(|conn| {
                self.core
                    .contract_version(conn, &c.contract_version)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })?;
            let empty = Vec::new();
            let Some(page) = describe(
                &contract,
                &c.request_type,
                Some(client_id),
                &c.subject,
                c.opened_at,
                events.get(&c.id).unwrap_or(&empty),
                c.solved_at,
                "",
                now,
            ) else {
                continue;
            };
            // The window alone: the hours are under "Our promises to you".
            let promise = contract
                .request_type(&c.request_type)
                .zip(contract.window(&c.request_type, Some(client_id), Timer::FirstResponse))
                .map_or(page.promise, |(t, w)| {
                    window_words(&contract, t, Timer::FirstResponse, w, false)
                });
            out.push(OpenRequest {
                id: c.id,
                subject: page.subject,
                request_type: page.request_type,
                promise,
                // Overdue now, not merely late once.
                late: c.health == crate::sla::Health::Breached,
                headline: page.headline,
                kind: page.kind,
            });
        }
        Ok((out, total))
    }

    /// The status page of one of the client's requests, opened from its
    /// page: `None` unless the token is the client's and the request is its.
    pub fn client_request_page(
        &self,
        token: &str,
        id: i64,
    ) -> Result<Option<super::StatusPage>, ServiceError> {
        let Some(client) = self.client_of_token(token)? else {
            return Ok(None);
        };
        let now = self.now();
        let mut page = Ok(None);
        self.store().with(|conn| {
            page = (|| -> Result<Option<super::StatusPage>, ServiceError> {
                let Some(conv) = store::conversation(conn, id)? else {
                    return Ok(None);
                };
                if conv.client_id != client {
                    return Ok(None);
                }
                let contract = self.core.contract_version(conn, &conv.contract_version)?;
                let events = store::events_of(conn, id)?;
                Ok(describe(
                    &contract,
                    &conv.request_type,
                    Some(&client),
                    &conv.subject,
                    conv.opened_at,
                    &events,
                    conv.solved_at,
                    &self.core.contract_url(&contract),
                    now,
                ))
            })();
            Ok(())
        })?;
        page
    }
}

/// The versions in force at some time in `[from, to)`, oldest first, each
/// with its public changes and the changes of this client's own agreement.
fn versions_in(
    versions: &[super::VersionChanges],
    client_name: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<VersionInPeriod> {
    // `versions` is newest first; a version is in force from its effective
    // date until the next one's.
    let mut oldest_first: Vec<&super::VersionChanges> = versions.iter().rev().collect();
    oldest_first.dedup_by_key(|v| v.version.clone());
    let mut out = Vec::new();
    for (i, v) in oldest_first.iter().enumerate() {
        let until = oldest_first
            .get(i + 1)
            .map(|n| n.effective_date)
            .unwrap_or(NaiveDate::MAX);
        if v.effective_date >= to || until <= from {
            continue;
        }
        let mut changes = v.changes.clone();
        changes.extend(v.agreements.iter().filter_map(|c| c.of_client(client_name)));
        out.push(VersionInPeriod {
            effective: v.effective.clone(),
            decision: v.decision.clone(),
            changes: if v.first { Vec::new() } else { changes },
            in_force: v.in_force,
        });
    }
    out
}
