//! Escalation and breach alerts: what they say, and their outbox rows.
//!
//! Each alert names what is due, for which client and conversation, how late
//! it is, and links to the conversation. One email and one webhook per
//! contact, de-duplicated by (conversation, step key, contact, kind) so a
//! retried transaction cannot enqueue an alert twice.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::contract::{Contract, Delivery, Timer};
use crate::notify::{self, EmailDraft};
use crate::sla::{ActionKind, ConversationState, DueAction};
use crate::store::{self, AnyConnection, ConversationRow, StoreError};

pub(super) struct AlertContext<'a> {
    pub contract: &'a Contract,
    pub conversation: &'a ConversationRow,
    pub state: &'a ConversationState,
    pub action: &'a DueAction,
    pub late: bool,
    pub now: DateTime<Utc>,
    pub public_url: &'a str,
    pub message_id_domain: &'a str,
}

pub(super) fn timer_words(t: Timer) -> &'static str {
    match t {
        Timer::FirstResponse => "first response",
        Timer::NextResponse => "next response",
        Timer::Resolution => "resolution",
        Timer::PeriodicUpdate => "periodic update",
    }
}

/// "1h 5m", "42s": how late, for people.
pub(super) fn late_words(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// What [`enqueue_alerts`] did.
#[derive(Debug, Default)]
pub(super) struct Enqueued {
    /// New outbox rows.
    pub rows: usize,
    /// Per contact held or batched: `hours` or `digest`.
    pub deferred: Vec<&'static str>,
    /// The earliest digest time a warning now waits for.
    pub digest_at: Option<DateTime<Utc>>,
}

/// Enqueues the alert for each contact, at once or held for the contact's
/// working hours or digest (SPEC 14).
pub(super) fn enqueue_alerts(
    conn: &mut AnyConnection,
    cx: &AlertContext<'_>,
    contacts: &[String],
) -> Result<Enqueued, StoreError> {
    let conv = cx.conversation;
    let action = cx.action;
    let zone = cx.contract.info().timezone;
    let client_name = cx
        .contract
        .client(&conv.client_id)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| conv.client_id.clone());
    let type_name = cx
        .contract
        .request_type(&conv.request_type)
        .map(|t| t.name.clone())
        .unwrap_or_else(|| conv.request_type.clone());
    let timer = cx
        .state
        .timers
        .iter()
        .find(|t| t.timer == action.timer && t.seq == action.seq);
    let due = timer.and_then(|t| t.due_at);
    let due_local = due
        .map(|d| {
            d.with_timezone(&zone)
                .format("%a %d %b %Y %H:%M %Z")
                .to_string()
        })
        .unwrap_or_else(|| "—".into());
    let step = action.step.as_str();
    let what = match (&action.kind, step) {
        (ActionKind::Breach, _) => format!("{} BREACHED", timer_words(action.timer)),
        (_, "at:100%") => format!("{} window has run out", timer_words(action.timer)),
        (_, s) if s.starts_with("after_due:") => format!(
            "{} overdue by {}",
            timer_words(action.timer),
            s.trim_start_matches("after_due:")
        ),
        (_, s) => format!(
            "{} {} of window used",
            timer_words(action.timer),
            s.trim_start_matches("at:")
        ),
    };
    let overdue_secs = due.map(|d| (cx.now - d).num_seconds()).unwrap_or(0);
    let lateness = if overdue_secs > 0 {
        format!("{} past due", late_words(overdue_secs))
    } else {
        format!("{} left", late_words(-overdue_secs))
    };
    let link = format!("{}/conversations/{}", cx.public_url, conv.id);
    let subject = format!(
        "[keepword] {client_name}: {what} — #{} {}",
        conv.id, conv.subject
    );
    let text = format!(
        "{what}\n\n\
         Client:        {client_name}\n\
         Request type:  {type_name}\n\
         Conversation:  #{} \"{}\" ({} / {})\n\
         Due:           {due_local} ({lateness})\n\
         Step:          {step}{}\n\n\
         {link}\n",
        conv.id,
        conv.subject,
        conv.channel,
        conv.thread_key,
        if cx.late {
            " — fired late (the service was down or behind when it fell due)"
        } else {
            ""
        },
    );
    let urgency = super::focus::urgency_of(cx.contract, &conv.request_type, action);
    let mut done = Enqueued::default();
    for contact_id in contacts {
        let Some(contact) = cx.contract.contact(contact_id) else {
            continue;
        };
        let key = format!("esc:{}:{}:{}", conv.id, action.key, contact_id);
        let delivery = cx.contract.delivery(contact, urgency, cx.now);
        let routing = store::Routing {
            conversation_id: Some(conv.id),
            step: Some(action.key.clone()),
            contact: Some(contact_id.clone()),
            not_before: delivery.not_before(),
            digest_key: None,
        };
        if let Delivery::Digest(at) = delivery {
            let item = super::focus::DigestItem {
                conversation_id: conv.id,
                client: conv.client_id.clone(),
                client_name: client_name.clone(),
                subject: conv.subject.clone(),
                request_type: conv.request_type.clone(),
                contract_version: conv.contract_version.clone(),
                timer: action.timer.as_str().into(),
                seq: action.seq,
                step: step.to_string(),
                what: what.clone(),
                due_at: due,
                fell_due_at: action.at,
                link: link.clone(),
                email: contact.email.clone(),
                webhook: contact.webhook.clone(),
            };
            let row = super::focus::digest_item_row(&item, contact_id, &key, cx.now);
            let routing = store::Routing {
                digest_key: Some(super::focus::digest_key(contact_id, at)),
                ..routing
            };
            if store::enqueue_routed(conn, &row, &routing)? {
                done.rows += 1;
                done.deferred.push("digest");
                done.digest_at = Some(done.digest_at.map_or(at, |d: DateTime<Utc>| d.min(at)));
            }
            continue;
        }
        let rows_before = done.rows;
        if let Some(email) = &contact.email {
            match notify::new_email(
                EmailDraft {
                    to: vec![email.clone()],
                    subject: subject.clone(),
                    text: match delivery.not_before() {
                        // Says why it arrives now and not when it fell due.
                        Some(held) => format!(
                            "{text}\nHeld for your working hours until {}; it fell due at {}.\n",
                            held.with_timezone(&zone).format("%a %d %b %H:%M %Z"),
                            action.at.with_timezone(&zone).format("%a %d %b %H:%M %Z"),
                        ),
                        None => text.clone(),
                    },
                    html: None,
                    headers: vec![("Auto-Submitted".into(), "auto-generated".into())],
                },
                cx.message_id_domain,
                format!("{key}:email"),
                cx.now,
            ) {
                Ok(row) => done.rows += usize::from(store::enqueue_routed(conn, &row, &routing)?),
                Err(e) => {
                    tracing::error!(contact = %contact_id, error = %e, "cannot build alert email")
                }
            }
        }
        if let Some(url) = &contact.webhook {
            let body = json!({
                "text": format!("{subject}\n{link}"),
                "event": if matches!(action.kind, ActionKind::Breach) { "breach" } else { "escalation" },
                "step": step,
                "timer": action.timer.as_str(),
                "conversation_id": conv.id,
                "conversation_url": link,
                "client": conv.client_id,
                "client_name": client_name,
                "request_type": conv.request_type,
                "subject": conv.subject,
                "due_at": due.map(|d| d.to_rfc3339()),
                "fell_due_at": action.at.to_rfc3339(),
                "seconds_past_due": overdue_secs,
                "late": cx.late,
                "deferred_until": delivery.not_before().map(|d| d.to_rfc3339()),
            });
            match notify::new_webhook(url, body, format!("{key}:webhook"), cx.now) {
                Ok(row) => done.rows += usize::from(store::enqueue_routed(conn, &row, &routing)?),
                Err(e) => {
                    tracing::error!(contact = %contact_id, error = %e, "cannot build alert webhook")
                }
            }
        }
        if done.rows > rows_before && delivery.not_before().is_some() {
            done.deferred.push("hours");
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::late_words;

    #[test]
    fn lateness_reads_naturally() {
        assert_eq!(late_words(42), "42s");
        assert_eq!(late_words(65), "1m 5s");
        assert_eq!(late_words(3_900), "1h 5m");
        assert_eq!(late_words(90_000), "1d 1h");
    }
}
