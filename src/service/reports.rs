//! What the record sends, and who answered (README, "The client's record"):
//! the client's monthly report, the team's weekly digest, and the
//! compliance report grouped by the author of each reply.
//!
//! Reports are due at an instant of the contract's calendar; the scheduler
//! asks at every step ([`Deadlines::reports_due`]). Each goes into the outbox
//! under a dedupe key of its client and month (or its week), so however
//! many processes ask, however often they restart or are killed, one row
//! exists per key and the outbox sends it once.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike as _, Utc};
use serde::Serialize;

use super::dashboard::{Calendars, response_time};
use super::record::client_url;
use super::status::{new_token, token_hash};
use super::*;
use crate::backtest::percentile;
use crate::calendar::local_instant;
use crate::contract::Contract;
use crate::outbox::{self, EmailDraft};

/// Open conversations a digest names by name in each of its lists.
const DIGEST_LISTED: i64 = 20;
/// How far back a digest looks for the conversations whose promises broke
/// last week.
const BREACH_LOOKBACK_DAYS: i64 = 120;

/// The compliance report by author: who wrote the team's replies.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AuthorRow {
    /// As stored: the mail's sender, the ticket or Slack user.
    pub author: String,
    pub replies: usize,
    /// Replies that gave a conversation its first response.
    pub first_responses: usize,
    /// Median business seconds to those first responses.
    pub p50: Option<i64>,
}

/// The first instant of the first business day of the month `now` is in,
/// on the calendar of the contract's default request type (its zone).
pub fn first_business_day(contract: &Contract, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let calendar = contract.calendar_for(&contract.default_request_type().id)?;
    let local = now.with_timezone(&calendar.timezone()).date_naive();
    let first = NaiveDate::from_ymd_opt(local.year(), local.month(), 1)?;
    first
        .iter_days()
        .take_while(|d| d.month() == first.month())
        .find_map(|d| {
            calendar
                .open_intervals_on(d)
                .first()
                .map(|(start, _)| *start)
        })
}

/// This week's digest instant (the contract's zone) and its ISO week.
fn digest_instant(contract: &Contract, now: DateTime<Utc>) -> Option<(DateTime<Utc>, String)> {
    let w = contract.info().weekly_digest.as_ref()?;
    let zone = contract.info().timezone;
    let today = now.with_timezone(&zone).date_naive();
    let monday = today - TimeDelta::days(i64::from(today.weekday().num_days_from_monday()));
    let day = monday + TimeDelta::days(i64::from(w.day.num_days_from_monday()));
    let secs = w.at.num_seconds_from_midnight();
    let week = day.iso_week();
    Some((
        local_instant(zone, day, secs),
        format!("{}-W{:02}", week.year(), week.week()),
    ))
}

#[derive(Serialize)]
struct DigestLine {
    client: String,
    request_type: String,
    requests: usize,
    kept: usize,
    broken: usize,
}

#[derive(Serialize)]
struct DigestItem {
    client: String,
    subject: String,
    request_type: String,
    what: String,
    link: String,
}

impl Reads {
    /// The compliance report grouped by the author of each reply, over the
    /// conversations opened in `[from, to)`: replies, first responses given
    /// (the reply that stopped a first-response timer), and the median
    /// business time to them — counted as the compliance report counts.
    pub fn compliance_by_author(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<AuthorRow>, ServiceError> {
        let (convs, timers, replies) = self.store().snapshot(|conn| {
            let convs = store::opened_between(conn, from, to)?;
            let ids: Vec<i64> = convs.iter().map(|c| c.id).collect();
            let timers = store::timers_of_many(conn, &ids)?;
            let replies = store::replies_of_many(conn, &ids)?;
            Ok::<_, ServiceError>((convs, timers, replies))
        })?;
        let mut rows: BTreeMap<String, (AuthorRow, Vec<i64>)> = BTreeMap::new();
        let mut by_conv: HashMap<i64, Vec<&store::Reply>> = HashMap::new();
        for r in &replies {
            let row = &mut rows.entry(r.sender.clone()).or_default().0;
            row.author = r.sender.clone();
            row.replies += 1;
            by_conv.entry(r.conversation_id).or_default().push(r);
        }
        let mut calendars = Calendars::default();
        for c in &convs {
            let Some(first) = timers
                .get(&c.id)
                .and_then(|ts| ts.iter().find(|t| t.kind == Timer::FirstResponse))
            else {
                continue;
            };
            let (Some(stop), Some(replies)) = (first.stopped_at, by_conv.get(&c.id)) else {
                continue;
            };
            // The reply that stopped it: the last one by then (the engine
            // counts a reply at the second after it).
            let Some(reply) = replies.iter().rev().find(|r| r.sent_at <= stop) else {
                continue;
            };
            let cal = calendars.of(&self.core, c);
            let (row, times) = rows.entry(reply.sender.clone()).or_default();
            row.first_responses += 1;
            if let Some(d) = response_time(first, cal.as_ref()) {
                times.push(d);
            }
        }
        Ok(rows
            .into_values()
            .map(|(mut row, mut times)| {
                times.sort_unstable();
                row.p50 = percentile(&times, 50.0);
                row
            })
            .collect())
    }
}

impl Deadlines {
    /// The monthly reports and the weekly digest whose time has come and
    /// that are not in the outbox yet; `true` when this step enqueued one.
    pub(super) fn reports_due(&self, now: DateTime<Utc>) -> Result<bool, ServiceError> {
        let current = self.contract().current();
        let contract = current.contract.clone();
        let mut enqueued = false;
        let reporting = contract.clients().iter().any(|c| !c.report_to.is_empty());
        if reporting
            && let Some(due) = first_business_day(&contract, now)
            && now >= due
        {
            let zone = contract
                .calendar_for(&contract.default_request_type().id)
                .map_or(contract.info().timezone, |c| c.timezone());
            let month = due.with_timezone(&zone).date_naive();
            for client in contract
                .clients()
                .iter()
                .filter(|c| !c.report_to.is_empty())
            {
                let key = format!("client-report:{}:{}", client.id, month.format("%Y-%m"));
                if self.report_done(&key)? {
                    continue;
                }
                enqueued |= self.enqueue_report(&contract, client, month, &key, now)?;
                self.mark_report_done(key);
            }
        }
        if let Some((due, week)) = digest_instant(&contract, now)
            && now >= due
        {
            let key = format!("weekly-digest:{week}");
            if !self.report_done(&key)? {
                enqueued |= self.enqueue_digest(&contract, due, &week, &key, now)?;
                self.mark_report_done(key);
            }
        }
        if enqueued {
            self.after.outbox_wake.notify_one();
        }
        Ok(enqueued)
    }

    /// The next instant a report or digest falls due after `now` (for the
    /// scheduler's sleep).
    pub(super) fn next_report(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let current = self.contract().current();
        let contract = &current.contract;
        let monthly = contract
            .clients()
            .iter()
            .any(|c| !c.report_to.is_empty())
            .then(|| {
                first_business_day(contract, now)
                    .filter(|d| *d > now)
                    .or_else(|| {
                        first_business_day(
                            contract,
                            now + TimeDelta::days(32 - i64::from(now.day())),
                        )
                    })
            })
            .flatten();
        let weekly = digest_instant(contract, now)
            .map(|(d, _)| if d > now { d } else { d + TimeDelta::days(7) });
        match (monthly, weekly) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn report_done(&self, key: &str) -> Result<bool, ServiceError> {
        if self.reports_sent().contains(key) {
            return Ok(true);
        }
        let done = self.store().with(|conn| store::outbox_has_key(conn, key))?;
        if done {
            self.mark_report_done(key.to_string());
        }
        Ok(done)
    }

    fn mark_report_done(&self, key: String) {
        self.reports_sent().insert(key);
    }

    fn reports_sent(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.reports_sent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The outbox row of a report mail rendered from `config/templates/`
    /// (`{template}.subject.txt`, `.txt`, `.html`).
    fn report_mail(
        &self,
        template: &str,
        cx: &minijinja::Value,
        to: Vec<String>,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<store::NewOutbox, ServiceError> {
        let mail = self
            .core
            .templates()
            .render_named(template, cx)
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        outbox::new_email(
            EmailDraft {
                to,
                subject: mail.subject,
                text: mail.text,
                html: Some(mail.html),
                headers: vec![("Auto-Submitted".into(), "auto-generated".into())],
            },
            self.core.message_id_domain(),
            key,
            now,
        )
        .map_err(|e| ServiceError::Unavailable(e.to_string()))
    }

    /// One client's report of the month before `month`, with a fresh link
    /// to its page; the link is stored only if this process's row won.
    fn enqueue_report(
        &self,
        contract: &Contract,
        client: &crate::contract::Client,
        month: NaiveDate,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let this_month = NaiveDate::from_ymd_opt(month.year(), month.month(), 1).unwrap_or(month);
        let last_month = (this_month - TimeDelta::days(1))
            .with_day(1)
            .unwrap_or(this_month);
        let record = self
            .reads
            .client_record(&client.id, last_month, this_month, now)?;
        let token = new_token();
        let link = client_url(self.core.public_url(), &token);
        let cx = minijinja::context! {
            client_name => client.name.clone(),
            month => last_month.format("%B %Y").to_string(),
            record,
            link => link.clone(),
            contract_name => contract.info().name.clone(),
            team => contract.info().name.clone(),
        };
        let row = self.report_mail("client-report", &cx, client.report_to.clone(), key, now)?;
        let hash = token_hash(&token);
        let enqueued = self.store().transaction(|conn| {
            let enqueued = store::enqueue(conn, &row)?;
            if enqueued {
                store::add_client_link(conn, &client.id, &hash, now)?;
            }
            Ok::<_, ServiceError>(enqueued)
        })?;
        if enqueued {
            tracing::info!(client = %client.id, month = %last_month.format("%Y-%m"), "monthly report enqueued");
        }
        Ok(enqueued)
    }

    /// The team's digest of the week before `due`.
    fn enqueue_digest(
        &self,
        contract: &Contract,
        due: DateTime<Utc>,
        week: &str,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let Some(w) = &contract.info().weekly_digest else {
            return Ok(false);
        };
        let to: Vec<String> =
            w.to.iter()
                .filter_map(|id| contract.contact(id))
                .filter_map(|c| c.email.as_ref().and_then(|e| e.value()).map(str::to_string))
                .collect();
        if to.is_empty() {
            return Ok(false);
        }
        let zone = contract.info().timezone;
        let since = due - TimeDelta::days(7);
        let (week_convs, week_timers, recent, recent_timers, paused, (soon, soon_total)) =
            self.store().snapshot(|conn| {
                let week_convs = store::opened_between(conn, since, due)?;
                let ids: Vec<i64> = week_convs.iter().map(|c| c.id).collect();
                let week_timers = store::timers_of_many(conn, &ids)?;
                let recent =
                    store::opened_between(conn, due - TimeDelta::days(BREACH_LOOKBACK_DAYS), due)?;
                let ids: Vec<i64> = recent.iter().map(|c| c.id).collect();
                let recent_timers = store::timers_of_many(conn, &ids)?;
                let paused = store::longest_paused(conn, 5)?;
                let soon = store::due_between(conn, due, due + TimeDelta::days(7), DIGEST_LISTED)?;
                Ok::<_, ServiceError>((
                    week_convs,
                    week_timers,
                    recent,
                    recent_timers,
                    paused,
                    soon,
                ))
            })?;
        let mut calendars = Calendars::default();
        let rows = self.reads.tally(&week_convs, &week_timers, &mut calendars);
        let mut lines: BTreeMap<(String, String), DigestLine> = BTreeMap::new();
        for c in &week_convs {
            let line = lines
                .entry((c.client_id.clone(), c.request_type.clone()))
                .or_insert_with(|| DigestLine {
                    client: contract.client_name(&c.client_id),
                    request_type: contract
                        .request_type(&c.request_type)
                        .map_or(c.request_type.clone(), |t| t.name.clone()),
                    requests: 0,
                    kept: 0,
                    broken: 0,
                });
            line.requests += 1;
        }
        for r in &rows {
            if let Some(line) = lines.get_mut(&(r.client_id.clone(), r.request_type.clone())) {
                line.kept += r.met;
                line.broken += r.missed + r.breached;
            }
        }
        let link = |id: i64| format!("{}/conversations/{id}", self.core.public_url());
        let type_name = |id: &str| {
            contract
                .request_type(id)
                .map_or(id.to_string(), |t| t.name.clone())
        };
        let when = |t: DateTime<Utc>| t.with_timezone(&zone).format("%a %-d %b %H:%M").to_string();
        let mut breaches = Vec::new();
        for c in &recent {
            for t in recent_timers.get(&c.id).into_iter().flatten() {
                let broken = matches!(t.status, TimerStatus::Missed | TimerStatus::Breached);
                if let (true, Some(d)) = (broken, t.due_at)
                    && d >= since
                    && d < due
                {
                    breaches.push((
                        d,
                        DigestItem {
                            client: contract.client_name(&c.client_id),
                            subject: c.subject.clone(),
                            request_type: type_name(&c.request_type),
                            what: format!(
                                "{} due {}{}",
                                t.kind.words(),
                                when(d),
                                if t.status == TimerStatus::Breached {
                                    ", still open"
                                } else {
                                    ""
                                }
                            ),
                            link: link(c.id),
                        },
                    ));
                }
            }
        }
        breaches.sort_by_key(|(d, _)| *d);
        let breaches: Vec<DigestItem> = breaches.into_iter().map(|(_, i)| i).collect();
        let urgent = week_convs
            .iter()
            .filter(|c| {
                contract
                    .request_type(&c.request_type)
                    .is_some_and(|t| t.urgent)
            })
            .count();
        let urgent_share = (!week_convs.is_empty())
            .then(|| format!("{:.0}%", 100.0 * urgent as f64 / week_convs.len() as f64));
        let item = |c: &ConversationRow, what: String| DigestItem {
            client: contract.client_name(&c.client_id),
            subject: c.subject.clone(),
            request_type: type_name(&c.request_type),
            what,
            link: link(c.id),
        };
        let paused: Vec<DigestItem> = paused
            .iter()
            .map(|c| {
                item(
                    c,
                    format!(
                        "waiting on the client since {}",
                        c.paused_since.map(when).unwrap_or_default()
                    ),
                )
            })
            .collect();
        let soon: Vec<DigestItem> = soon
            .iter()
            .map(|c| {
                item(
                    c,
                    format!(
                        "{} due {}",
                        c.next_timer.map_or("a reply", |t| t.words()),
                        c.next_due_at.map(when).unwrap_or_default()
                    ),
                )
            })
            .collect();
        let cx = minijinja::context! {
            week,
            from => since.with_timezone(&zone).format("%a %-d %b %Y").to_string(),
            to => (due - TimeDelta::seconds(1)).with_timezone(&zone).format("%a %-d %b %Y").to_string(),
            lines => lines.into_values().collect::<Vec<_>>(),
            requests => week_convs.len(),
            urgent,
            urgent_share,
            breaches,
            paused,
            soon,
            soon_total,
            team => contract.info().name.clone(),
            compliance => format!("{}/compliance", self.core.public_url()),
        };
        let row = self.report_mail("weekly-digest", &cx, to, key, now)?;
        let enqueued = self
            .store()
            .transaction(|conn| Ok::<_, ServiceError>(store::enqueue(conn, &row)?))?;
        if enqueued {
            tracing::info!(week, "weekly digest enqueued");
        }
        Ok(enqueued)
    }
}
