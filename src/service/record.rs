//! The client's record (README, "The client's record"): the page a client
//! opens with its own link, and the figures its monthly report carries.
//!
//! What the page may show is decided here, as for the status page: the
//! client's own requests (subject, type, promise, state), the figures of its
//! record counted by the compliance report's rule ([`Reads::tally`]), its
//! broken promises, its agreement and the contract versions of the period.
//! Team members, contacts, internal notes, escalations and other clients
//! never enter the model, so no template edit can leak them.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::dashboard::{Calendars, outcome, response_time};
use super::status::{capitalise, describe, new_token, token_hash, well_formed};
use super::*;
use crate::backtest::percentile;
use crate::contract::{Timer, window_words};
use crate::service::ComplianceRow;
use crate::store::record_days as days;
use crate::store::{AnyConnection, TimerRow};

/// The periods a page may show, in days; the default is 90.
pub const RECORD_DAYS: [i64; 3] = [30, 90, 365];
pub const DEFAULT_RECORD_DAYS: i64 = 90;
/// Open requests a page lists (the most pressing first); the rest are counted.
pub const OPEN_LISTED: i64 = 50;
/// Broken promises a page lists (the newest due first); older ones are on
/// the next pages (`?broken=2`, …).
pub const BROKEN_LISTED: usize = 50;

/// What the record counts of one client's conversations of one request
/// type: a period's, or one opened day's (`record_days`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TypeCounts {
    /// Conversations, with or without timers.
    pub requests: usize,
    /// By the UTC day the promises settled.
    pub days: BTreeMap<NaiveDate, Settled>,
}

/// The promises settled on one day.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Settled {
    /// Kept: counted on the day of their stop.
    pub kept: usize,
    /// Kept late or still overdue: counted on the day of their due.
    pub broken: usize,
    /// The business seconds of the first responses given that day.
    pub times: Vec<i64>,
}

/// The one rule of the record's requests and weeks, for one conversation
/// and its timers: a kept promise settles the day it was kept, a broken
/// one the day it fell due, a first-response time the day of the reply.
fn count_conversation(
    timers: &[TimerRow],
    cal: Option<&crate::calendar::Calendar>,
    into: &mut TypeCounts,
) {
    into.requests += 1;
    for t in timers {
        let Some(result) = outcome(t.status) else {
            continue;
        };
        let settled = match result {
            "met" => t.stopped_at.unwrap_or(t.started_at),
            _ => t.due_at.unwrap_or(t.started_at),
        };
        let day = into.days.entry(settled.date_naive()).or_default();
        if result == "met" {
            day.kept += 1;
        } else {
            day.broken += 1;
        }
        if t.kind == Timer::FirstResponse
            && let Some(d) = response_time(t, cal)
        {
            into.days
                .entry(t.stopped_at.unwrap_or(settled).date_naive())
                .or_default()
                .times
                .push(d);
        }
    }
}

/// One client's counts by request type.
fn by_type(counts: BTreeMap<(&str, &str), TypeCounts>) -> BTreeMap<String, TypeCounts> {
    counts
        .into_iter()
        .map(|((_, request_type), c)| (request_type.to_string(), c))
        .collect()
}

fn size(n: i64) -> Result<usize, ServiceError> {
    usize::try_from(n).map_err(|_| corrupt(format!("record_days: count {n}")))
}

fn corrupt(what: String) -> ServiceError {
    ServiceError::Store(StoreError::Corrupt(what))
}

/// `day`'s rows of `record_days` from its conversations (all clients') and
/// their timers: called by the day's rebuild (`Deadlines::rebuild_tally_day`)
/// in its transaction, beside `tally_days`.
pub(crate) fn rebuild_record_day(
    reads: &Reads,
    conn: &mut AnyConnection,
    day: NaiveDate,
    convs: &[store::RecordRow],
    timers: &HashMap<i64, Vec<TimerRow>>,
    calendars: &mut Calendars,
) -> Result<(), ServiceError> {
    let mut rows = Vec::new();
    for ((client_id, request_type), mut counts) in reads.record_counts(convs, timers, calendars) {
        let requests = counts.requests as i64;
        counts.days.entry(day).or_default();
        for (settled, mut s) in counts.days {
            s.times.sort_unstable();
            rows.push(days::RecordDay {
                day,
                client_id: client_id.to_string(),
                request_type: request_type.to_string(),
                settled,
                requests: if settled == day { requests } else { 0 },
                kept: s.kept as i64,
                broken: s.broken as i64,
                times: store::tally::encode_times(&s.times),
            });
        }
    }
    days::replace_day(conn, day, &rows)?;
    Ok(())
}

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
    /// The broken promises listed: all of them (the monthly report), or
    /// one page of them (the client's page).
    pub broken_promises: Vec<BrokenPromise>,
    /// How many there are to list in all.
    pub broken_listed: usize,
    /// Which page of them `broken_promises` is (from 1), of how many.
    pub broken_page: usize,
    pub broken_pages: usize,
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

    /// The client's record over `[from, to)` (UTC midnights), at `now`,
    /// counted from its rows, with every broken promise, oldest due first:
    /// the monthly report's (a month of one client). The page reads the
    /// same figures from the summaries ([`Self::client_record_page`]).
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
        let mut calendars = Calendars::default();
        let rows = self.tally(&convs, &timers, &mut calendars);
        let counts = by_type(self.record_counts(&convs, &timers, &mut calendars));
        let zone = self.contract().current().contract.info().timezone;
        let mut broken = Vec::new();
        for c in &convs {
            let cal = calendars.of(&self.core, c);
            for t in timers.get(&c.id).into_iter().flatten() {
                if let Some(b) = self.broken_promise(c, t, cal.as_ref(), zone, now) {
                    broken.push(b);
                }
            }
        }
        broken.sort_by_key(|b| (b.due_at, b.conversation_id));
        let listed = broken.len();
        let mut record = self.record_of(client_id, from, to, &rows, &counts, &versions);
        record.broken_promises = broken;
        record.broken_listed = listed;
        Ok(record)
    }

    /// The client's record over `[from, to)` as its page shows it: the
    /// figures from the per-day summaries (`tally_days`, `record_days`),
    /// the stale days counted from their rows, all in one snapshot — the
    /// same figures as [`Self::client_record`] — and one page of the broken
    /// promises, the newest due first ([`BROKEN_LISTED`] a page; `page`
    /// from 1).
    pub fn client_record_page(
        &self,
        client_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        page: usize,
        now: DateTime<Utc>,
    ) -> Result<ClientRecord, ServiceError> {
        self.client_record_pages(client_id, from, to, page, BROKEN_LISTED, now)
    }

    /// [`Self::client_record_page`] with `per_page` broken promises a page
    /// (at least one; the tests page a short history with small pages).
    pub fn client_record_pages(
        &self,
        client_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        page: usize,
        per_page: usize,
        now: DateTime<Utc>,
    ) -> Result<ClientRecord, ServiceError> {
        let (page, per_page) = (page.max(1), per_page.max(1));
        let offset = i64::try_from((page - 1).saturating_mul(per_page)).unwrap_or(i64::MAX);
        let (convs, timers, tally, record_rows, broken) = self.store().snapshot(|conn| {
            let stale = store::tally::stale_days_between(conn, from, to)?;
            // Neighbouring stale days read as one span.
            let mut spans: Vec<(NaiveDate, NaiveDate)> = Vec::new();
            for day in &stale {
                match spans.last_mut() {
                    Some((_, until)) if until == day => *until = *day + TimeDelta::days(1),
                    _ => spans.push((*day, *day + TimeDelta::days(1))),
                }
            }
            let (mut convs, mut timers) = (Vec::new(), HashMap::new());
            for (a, b) in spans {
                let some = store::client_opened_between(conn, client_id, midnight(a), midnight(b))?;
                let ids: Vec<i64> = some.iter().map(|c| c.id).collect();
                timers.extend(store::timers_of_many(conn, &ids)?);
                convs.extend(some);
            }
            let stale: HashSet<NaiveDate> = stale.into_iter().collect();
            let mut tally = store::tally::summaries_between(conn, Some(client_id), from, to)?;
            tally.retain(|s| !stale.contains(&s.day));
            let mut record_rows = days::of_client_between(conn, client_id, from, to)?;
            record_rows.retain(|r| !stale.contains(&r.day));
            let broken = days::broken_page(
                conn,
                client_id,
                midnight(from),
                midnight(to),
                i64::try_from(per_page).unwrap_or(i64::MAX),
                offset,
            )?;
            Ok::<_, ServiceError>((convs, timers, tally, record_rows, broken))
        })?;
        let versions = self.contract_changes()?;
        let mut calendars = Calendars::default();

        // The compliance rows of the client: the stale days' counted, the
        // summaries added.
        let counted = self.count(&convs, &timers, &mut calendars, false);
        let rows = self.with_summaries(counted, tally)?;
        let current = self.contract().current();

        let mut counts = by_type(self.record_counts(&convs, &timers, &mut calendars));
        for r in record_rows {
            let of_type = counts.entry(r.request_type).or_default();
            of_type.requests += size(r.requests)?;
            let day = of_type.days.entry(r.settled).or_default();
            day.kept += size(r.kept)?;
            day.broken += size(r.broken)?;
            store::tally::decode_times(&r.times, &mut day.times)?;
        }

        let zone = current.contract.info().timezone;
        let mut listed = Vec::with_capacity(broken.len());
        for (c, t) in &broken {
            let cal = calendars.of(&self.core, c);
            listed.extend(self.broken_promise(c, t, cal.as_ref(), zone, now));
        }
        let mut record = self.record_of(client_id, from, to, &rows, &counts, &versions);
        record.broken_listed = record.broken;
        record.broken_page = page;
        record.broken_pages = record.broken.div_ceil(per_page).max(1);
        record.broken_promises = listed;
        Ok(record)
    }

    /// The record's counts of `convs` by client and request type: the one
    /// rule of its requests and weeks ([`count_conversation`]), for the
    /// rows of a period and for a day's summary alike.
    pub(crate) fn record_counts<'c>(
        &self,
        convs: &'c [store::RecordRow],
        timers: &HashMap<i64, Vec<TimerRow>>,
        calendars: &mut Calendars,
    ) -> BTreeMap<(&'c str, &'c str), TypeCounts> {
        let mut out: BTreeMap<(&'c str, &'c str), TypeCounts> = BTreeMap::new();
        let empty = Vec::new();
        for c in convs {
            let cal = calendars.of(&self.core, c);
            count_conversation(
                timers.get(&c.id).unwrap_or(&empty),
                cal.as_ref(),
                out.entry((c.client_id.as_str(), c.request_type.as_str()))
                    .or_default(),
            );
        }
        out
    }

    /// `t` as a broken promise of `c`, if it is one (missed or still
    /// overdue, with a due); `late` until `now` while still overdue.
    fn broken_promise(
        &self,
        c: &store::RecordRow,
        t: &TimerRow,
        cal: Option<&crate::calendar::Calendar>,
        zone: Tz,
        now: DateTime<Utc>,
    ) -> Option<BrokenPromise> {
        let result = outcome(t.status)?;
        let due = t.due_at.filter(|_| result != "met")?;
        let contract = &self.contract().current().contract;
        let until = t.stopped_at.unwrap_or(now);
        let late = cal
            .and_then(|cal| cal.between(due, until).ok())
            .unwrap_or(until - due);
        Some(BrokenPromise {
            conversation_id: c.id,
            subject: c.subject.clone(),
            request_type: contract
                .request_type(&c.request_type)
                .map_or(c.request_type.clone(), |t| t.name.clone()),
            promise: promise_words(t.kind).into(),
            date: day_words(due, zone),
            due: when(due, zone),
            kept: t.stopped_at.map(|s| when(s, zone)),
            late: span_words(late),
            due_at: due,
        })
    }

    /// The record's figures from the client's compliance rows (`rows`, the
    /// tally's) and its counts by request type; no broken promise listed
    /// yet (the callers add theirs).
    fn record_of(
        &self,
        client_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        rows: &[ComplianceRow],
        counts: &BTreeMap<String, TypeCounts>,
        versions: &[super::VersionChanges],
    ) -> ClientRecord {
        let current = self.contract().current();
        let contract = &current.contract;
        let zone = contract.info().timezone;
        let client_name = contract.client_name(client_id);

        let weeks = ((to - from).num_days() + 6) / 7;
        // A day's week: the days before the period count in its first,
        // those after in its last.
        let week_of = |d: NaiveDate| -> usize {
            ((d - from).num_days().max(0) / 7).min(weeks - 1).max(0) as usize
        };
        let mut types: Vec<TypeRecord> = Vec::new();
        // Request types in contract order, then any the contract dropped
        // (by id).
        let mut order: Vec<&String> = Vec::new();
        for t in contract.request_types() {
            order.extend(counts.get_key_value(&t.id).map(|(k, _)| k));
        }
        for k in counts.keys() {
            if !order.contains(&k) {
                order.push(k);
            }
        }
        for type_id in order {
            let Some(of_type) = counts.get(type_id).filter(|c| c.requests > 0) else {
                continue;
            };
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
            let mut times = vec![Vec::new(); weeks as usize];
            for (day, settled) in &of_type.days {
                let w = week_of(*day);
                week_rows[w].kept += settled.kept;
                week_rows[w].broken += settled.broken;
                times[w].extend_from_slice(&settled.times);
            }
            for (week, mut ts) in week_rows.iter_mut().zip(times) {
                ts.sort_unstable();
                week.median_first_response = percentile(&ts, 50.0);
                week.median_words = week
                    .median_first_response
                    .map(|s| span_words(TimeDelta::seconds(s)));
            }
            types.push(TypeRecord {
                id: type_id.clone(),
                name,
                requests: of_type.requests,
                kinds,
                median_first_response: median,
                median_words: median.map(|s| span_words(TimeDelta::seconds(s))),
                window,
                window_words: window_words_,
                weeks: week_rows,
            });
        }
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
            requests: types.iter().map(|t| t.requests).sum(),
            kept,
            broken,
            types,
            broken_promises: Vec::new(),
            broken_listed: 0,
            broken_page: 1,
            broken_pages: 1,
            versions: versions_in(versions, &client_name, from, to),
            zone: zone.name().to_string(),
            contract_name: contract.info().name.clone(),
            contract_url: self.core.contract_url(contract),
        }
    }

    /// The page a client's link opens; `None` for an unknown token.
    /// `broken_page`: which page of its broken promises (from 1).
    pub fn client_page(
        &self,
        token: &str,
        days: i64,
        broken_page: usize,
    ) -> Result<Option<ClientPage>, ServiceError> {
        match self.client_of_token(token)? {
            Some(client) => self.client_page_of(&client, days, broken_page).map(Some),
            None => Ok(None),
        }
    }

    /// The page of `client_id` as the client sees it (the team's dashboard
    /// opens it signed in).
    pub fn client_page_of(
        &self,
        client_id: &str,
        days: i64,
        broken_page: usize,
    ) -> Result<ClientPage, ServiceError> {
        let now = self.now();
        let (from, to) = record_period(days, now);
        let record = self.client_record_page(client_id, from, to, broken_page, now)?;
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
