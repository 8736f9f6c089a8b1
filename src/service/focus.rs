//! Urgency and focus (README): digests of warnings, the urgent share of
//! each client, and the evidence behind urgency inflation.
//!
//! A warning for a contact with a digest is stored in the outbox as a
//! `digest` row held until the digest time ([`crate::contract::Delivery`]).
//! At that time one scheduler step claims the contact's waiting warnings
//! (`FOR UPDATE SKIP LOCKED` on PostgreSQL), enqueues one email and one
//! webhook listing them, and marks them delivered — all in one transaction,
//! so each warning is in exactly one digest, across restarts and processes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::notifications::{slack_escape, teams_escape, teams_message};
use super::*;
use crate::calendar::business_words;
use crate::contract::{ShareLimit, Urgency};
use crate::outbox::EmailDraft;
use crate::sla::DueAction;
use crate::store::{NewOutbox, OutboxRow, Routing, outbox};

/// `outbox.kind` of a warning waiting for its digest (never sent alone).
pub const KIND_DIGEST: &str = crate::outbox::Kind::Digest.as_str();

/// The trailing window of the urgent share.
pub const URGENT_SHARE_DAYS: i64 = 30;

/// How many waiting warnings one step turns into digests at most.
const DIGEST_BATCH: i64 = 500;

/// Whether an action pages at any hour (urgent type or `page = true` step)
/// and whether it is a warning (a step before the due).
pub(super) fn urgency_of(contract: &Contract, type_id: &str, action: &DueAction) -> Urgency {
    let request_type = contract.request_type(type_id);
    let urgent = request_type.is_some_and(|t| t.urgent);
    let step = match action.kind {
        ActionKind::Step { index, .. } => request_type.and_then(|t| t.escalation.get(index)),
        ActionKind::Breach => None,
    };
    Urgency {
        page: urgent || step.is_some_and(|s| s.page),
        warning: step.is_some_and(|s| s.is_warning()),
    }
}

/// One warning as its digest lists it; fixed when the warning fell due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestItem {
    pub conversation_id: i64,
    pub client: String,
    pub client_name: String,
    pub subject: String,
    pub request_type: String,
    pub contract_version: String,
    pub timer: String,
    pub seq: u32,
    pub step: String,
    /// "first response 75% of window used".
    pub what: String,
    pub due_at: Option<DateTime<Utc>>,
    pub fell_due_at: DateTime<Utc>,
    pub link: String,
    /// The contact's addresses when the warning fell due.
    pub email: Option<String>,
    pub webhook: Option<String>,
    #[serde(default)]
    pub teams: Option<String>,
}

/// Groups the warnings of one contact and digest time.
pub(super) fn digest_key(contact: &str, at: DateTime<Utc>) -> String {
    format!("{contact}@{}", at.to_rfc3339())
}

pub(super) fn digest_item_row(
    item: &DigestItem,
    contact: &str,
    key: &str,
    now: DateTime<Utc>,
) -> NewOutbox {
    NewOutbox {
        kind: KIND_DIGEST.into(),
        target: contact.to_string(),
        payload: serde_json::to_string(item).expect("a digest item serializes"),
        dedupe_key: format!("{key}:digest"),
        created_at: now,
        available_at: now,
    }
}

/// What a digest step did, counted after commit.
#[derive(Debug, Default)]
pub(super) struct DigestReport {
    pub digests: usize,
    pub warnings: usize,
}

/// A line of a digest, with what is known at the digest time.
struct Line {
    item: DigestItem,
    /// Business seconds left before the due (negative: past due).
    left: Option<i64>,
    /// The timer stopped since the warning.
    answered: bool,
}

impl Deadlines {
    /// Turns every warning whose digest time has come into its contact's
    /// digest; inside the caller's transaction.
    pub(super) fn assemble_digests(
        &self,
        conn: &mut AnyConnection,
        now: DateTime<Utc>,
    ) -> Result<DigestReport, ServiceError> {
        let items = outbox::claim_digest_items(conn, now, DIGEST_BATCH)?;
        let mut report = DigestReport::default();
        if items.is_empty() {
            return Ok(report);
        }
        // By contact, in the order the warnings fell due.
        let mut by_contact: BTreeMap<String, Vec<&OutboxRow>> = BTreeMap::new();
        for row in &items {
            by_contact.entry(row.target.clone()).or_default().push(row);
        }
        for (contact, rows) in by_contact {
            let mut lines = Vec::with_capacity(rows.len());
            for row in &rows {
                let Ok(item) = serde_json::from_str::<DigestItem>(&row.payload) else {
                    tracing::error!(outbox.id = row.id, "unreadable digest item; listed as is");
                    continue;
                };
                lines.push(self.digest_line(conn, item, now)?);
            }
            lines.sort_by_key(|l| (l.item.fell_due_at, l.item.conversation_id));
            let slot = rows
                .iter()
                .filter_map(|r| r.not_before)
                .min()
                .unwrap_or(now);
            let first_id = rows.iter().map(|r| r.id).min().unwrap_or_default();
            let key = format!("digest:{contact}:{}:{first_id}", slot.to_rfc3339());
            let routing = Routing {
                contact: Some(contact.clone()),
                ..Routing::default()
            };
            let (email, webhook, teams) = lines
                .iter()
                .rev()
                .map(|l| {
                    (
                        l.item.email.clone(),
                        l.item.webhook.clone(),
                        l.item.teams.clone(),
                    )
                })
                .next()
                .unwrap_or_default();
            let (subject, text) = self.digest_text(&contact, slot, &lines);
            if let Some(to) = email {
                match crate::outbox::new_email(
                    EmailDraft {
                        to: vec![to],
                        subject: subject.clone(),
                        text: text.clone(),
                        html: None,
                        headers: vec![("Auto-Submitted".into(), "auto-generated".into())],
                    },
                    self.core.message_id_domain(),
                    format!("{key}:email"),
                    now,
                ) {
                    Ok(row) => {
                        store::enqueue_routed(conn, &row, &routing)?;
                    }
                    Err(e) => {
                        tracing::error!(contact = %contact, error = %e, "cannot build digest email")
                    }
                }
            }
            if let Some(url) = webhook {
                let body = json!({
                    "text": slack_escape(&format!("{subject}\n{}", lines.iter().map(|l| format!("• {}", short_line(l))).collect::<Vec<_>>().join("\n"))),
                    "event": "digest",
                    "contact": contact,
                    "digest_at": slot.to_rfc3339(),
                    "items": lines.iter().map(|l| json!({
                        "conversation_id": l.item.conversation_id,
                        "conversation_url": l.item.link,
                        "client": l.item.client,
                        "client_name": l.item.client_name,
                        "subject": l.item.subject,
                        "request_type": l.item.request_type,
                        "timer": l.item.timer,
                        "step": l.item.step,
                        "due_at": l.item.due_at.map(|d| d.to_rfc3339()),
                        "fell_due_at": l.item.fell_due_at.to_rfc3339(),
                        "business_seconds_left": l.left,
                        "answered": l.answered,
                    })).collect::<Vec<_>>(),
                });
                match crate::outbox::new_webhook(&url, body, format!("{key}:webhook"), now) {
                    Ok(row) => {
                        store::enqueue_routed(conn, &row, &routing)?;
                    }
                    Err(e) => {
                        tracing::error!(contact = %contact, error = %e, "cannot build digest webhook")
                    }
                }
            }
            if let Some(url) = teams {
                let mut body = vec![json!({
                    "type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true,
                    "text": teams_escape(&subject),
                })];
                body.extend(lines.iter().map(|l| {
                    json!({
                        "type": "TextBlock", "wrap": true, "separator": true,
                        "text": format!("{} [Open]({})", teams_escape(&short_text(l)), l.item.link),
                    })
                }));
                match crate::outbox::new_teams(
                    &url,
                    teams_message(body, Vec::new()),
                    format!("{key}:teams"),
                    now,
                ) {
                    Ok(row) => {
                        store::enqueue_routed(conn, &row, &routing)?;
                    }
                    Err(e) => {
                        tracing::error!(contact = %contact, error = %e, "cannot build digest card")
                    }
                }
            }
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            outbox::mark_digested(conn, &ids, now)?;
            report.digests += 1;
            report.warnings += ids.len();
        }
        Ok(report)
    }

    fn digest_line(
        &self,
        conn: &mut AnyConnection,
        item: DigestItem,
        now: DateTime<Utc>,
    ) -> Result<Line, ServiceError> {
        let calendar = self
            .core
            .contract_version(conn, &item.contract_version)
            .ok()
            .and_then(|c| c.calendar_for(&item.request_type).cloned());
        let left = match (item.due_at, calendar) {
            (Some(due), Some(cal)) if due > now => {
                cal.between(now, due).ok().map(|d| d.num_seconds())
            }
            (Some(due), _) => Some(-(now - due).num_seconds().max(0)),
            (None, _) => None,
        };
        let answered = store::timers_of(conn, item.conversation_id)?
            .iter()
            .find(|t| t.kind.as_str() == item.timer && t.seq == item.seq)
            .is_some_and(|t| matches!(t.status, TimerStatus::Met | TimerStatus::Missed));
        Ok(Line {
            item,
            left,
            answered,
        })
    }

    fn digest_text(&self, contact: &str, slot: DateTime<Utc>, lines: &[Line]) -> (String, String) {
        let zone = self.contract().current().contract.info().timezone;
        let local = |t: DateTime<Utc>| {
            t.with_timezone(&zone)
                .format("%a %d %b %Y %H:%M %Z")
                .to_string()
        };
        let n = lines.len();
        let noun = if n == 1 { "warning" } else { "warnings" };
        let subject = format!(
            "[keepword] Digest for {contact}: {n} {noun} ({})",
            slot.with_timezone(&zone).format("%a %d %b %H:%M")
        );
        let mut text = format!(
            "{n} {noun} fell due outside your alert hours or since your last digest.\n\
             True urgencies were paged at once; these can wait for you.\n\n"
        );
        for l in lines {
            let i = &l.item;
            let _ = std::fmt::Write::write_fmt(
                &mut text,
                format_args!(
                    "#{} {} — {}\n    \"{}\" ({})\n    {}{}\n    {}\n\n",
                    i.conversation_id,
                    i.client_name,
                    i.what,
                    i.subject,
                    i.request_type,
                    left_words(l.left),
                    i.due_at
                        .map(|d| format!(" (due {})", local(d)))
                        .unwrap_or_default(),
                    i.link,
                ),
            );
        }
        (subject, text)
    }
}

/// "1 h 30 m left", "12 m past due", "answered since".
fn left_words(left: Option<i64>) -> String {
    match left {
        Some(s) if s > 0 => format!("{} business time left", business_words(s)),
        Some(s) => format!("{} past due", business_words(-s)),
        None => "no due".into(),
    }
}

fn short_line(l: &Line) -> String {
    format!("{} {}", short_text(l), l.item.link)
}

fn short_text(l: &Line) -> String {
    let answered = if l.answered { ", answered since" } else { "" };
    format!(
        "#{} {}: {} — {}{answered}",
        l.item.conversation_id,
        l.item.client_name,
        l.item.what,
        left_words(l.left),
    )
}

// ---- urgency inflation ------------------------------------------------------------

/// One client's urgent share over the trailing window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UrgentShare {
    pub client: String,
    pub client_name: String,
    /// Conversations opened in the window.
    pub conversations: i64,
    /// Of those, classified into an `urgent = true` request type.
    pub urgent: i64,
    /// `urgent / conversations`, 0 without conversations.
    pub share: f64,
}

/// An urgent request that counts towards a client's share, with the rule
/// that classified it ("urgent: keyword `outage` in subject").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UrgentRequest {
    pub conversation_id: i64,
    pub subject: String,
    pub request_type: String,
    pub classification: String,
    pub channel: String,
    pub opened_at: DateTime<Utc>,
}

/// A client above the limit, and the requests that put it there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InflatedClient {
    #[serde(flatten)]
    pub share: UrgentShare,
    pub requests: Vec<UrgentRequest>,
}

/// `GET /api/v1/urgency` and the dashboard's urgency panel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UrgencyReport {
    /// The contract's `urgent_share_limit` ("15%"), if any.
    pub limit: Option<String>,
    pub limit_share: Option<f64>,
    pub window_days: i64,
    pub since: DateTime<Utc>,
    /// Every client with conversations in the window, and every declared one.
    pub shares: Vec<UrgentShare>,
    /// Clients whose share is above the limit, highest first.
    pub above_limit: Vec<InflatedClient>,
}

impl Reads {
    /// Each client's urgent share over the trailing 30 days at `now`: one
    /// grouped query, each group's urgency read from the contract version
    /// its conversations opened under.
    pub fn urgent_shares(&self, now: DateTime<Utc>) -> Result<Vec<UrgentShare>, ServiceError> {
        let since = now - chrono::Duration::days(URGENT_SHARE_DAYS);
        let current = self.contract().current();
        let contract = current.contract.clone();
        self.store().with(|conn| {
            let groups = store::opened_since_by_type(conn, since)?;
            let mut totals: BTreeMap<String, (i64, i64)> = contract
                .clients()
                .iter()
                .map(|c| (c.id.clone(), (0, 0)))
                .collect();
            let mut urgent_types: HashMap<(String, String), bool> = HashMap::new();
            for (client, version, request_type, n) in groups {
                let key = (version.clone(), request_type.clone());
                let urgent = match urgent_types.get(&key) {
                    Some(u) => *u,
                    None => {
                        let u = self
                            .core
                            .contract_version(conn, &version)
                            .ok()
                            .and_then(|c| c.request_type(&request_type).map(|t| t.urgent))
                            .unwrap_or(false);
                        urgent_types.insert(key, u);
                        u
                    }
                };
                let entry = totals.entry(client).or_default();
                entry.0 += n;
                if urgent {
                    entry.1 += n;
                }
            }
            Ok(Ok::<_, ServiceError>(
                totals
                    .into_iter()
                    .map(|(client, (conversations, urgent))| UrgentShare {
                        client_name: contract
                            .client(&client)
                            .map(|c| c.name.clone())
                            .unwrap_or_else(|| client.clone()),
                        client,
                        conversations,
                        urgent,
                        share: if conversations > 0 {
                            urgent as f64 / conversations as f64
                        } else {
                            0.0
                        },
                    })
                    .collect(),
            ))
        })?
    }

    /// Sets `keepword_urgent_share{client}` and `keepword_urgent_share_limit`
    /// (at scrape time, like `keepword_conversations_open`).
    pub fn refresh_urgent_share_gauge(&self, now: DateTime<Utc>) -> Result<(), ServiceError> {
        let shares = self.urgent_shares(now)?;
        let m = self.metrics();
        m.urgent_share.reset();
        for s in shares {
            m.urgent_share.with_label_values(&[&s.client]).set(s.share);
        }
        m.urgent_share_limit.reset();
        if let Some(limit) = self.urgent_share_limit() {
            m.urgent_share_limit
                .with_label_values(&[] as &[&str])
                .set(limit.fraction());
        }
        Ok(())
    }

    fn urgent_share_limit(&self) -> Option<ShareLimit> {
        self.contract().current().contract.info().urgent_share_limit
    }

    /// Clients whose urgent share is above the contract's
    /// `urgent_share_limit` at `now`, with the urgent requests that made it
    /// so and the classification rule that matched each: the evidence for a
    /// conversation with the client.
    pub fn urgent_inflation(&self, now: DateTime<Utc>) -> Result<UrgencyReport, ServiceError> {
        let since = now - chrono::Duration::days(URGENT_SHARE_DAYS);
        let limit = self.urgent_share_limit();
        let shares = self.urgent_shares(now)?;
        let mut above_limit = Vec::new();
        if let Some(limit) = limit {
            for share in shares
                .iter()
                .filter(|s| s.urgent > 0 && s.share > limit.fraction())
            {
                let requests = self.store().with(|conn| {
                    let rows = store::opened_since_of_client(conn, &share.client, since)?;
                    let mut out = Vec::new();
                    for c in rows {
                        let urgent = self
                            .core
                            .contract_version(conn, &c.contract_version)
                            .ok()
                            .and_then(|k| k.request_type(&c.request_type).map(|t| t.urgent))
                            .unwrap_or(false);
                        if urgent {
                            out.push(UrgentRequest {
                                conversation_id: c.id,
                                subject: c.subject,
                                request_type: c.request_type,
                                classification: c.classification,
                                channel: c.channel,
                                opened_at: c.opened_at,
                            });
                        }
                    }
                    Ok(Ok::<_, ServiceError>(out))
                })??;
                above_limit.push(InflatedClient {
                    share: share.clone(),
                    requests,
                });
            }
        }
        above_limit.sort_by(|a, b| b.share.share.total_cmp(&a.share.share));
        Ok(UrgencyReport {
            limit: limit.map(|l| l.to_string()),
            limit_share: limit.map(ShareLimit::fraction),
            window_days: URGENT_SHARE_DAYS,
            since,
            shares,
            above_limit,
        })
    }
}
