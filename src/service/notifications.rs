//! Escalation and breach alerts: what they say, and their outbox rows.
//!
//! Each alert names what is due, for which client and conversation, how late
//! it is, and links to the conversation. One email and one webhook per
//! contact, de-duplicated by (conversation, step key, contact, kind) so a
//! retried transaction cannot enqueue an alert twice.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::contract::{Contract, Timer};
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

fn timer_words(t: Timer) -> &'static str {
    match t {
        Timer::FirstResponse => "first response",
        Timer::NextResponse => "next response",
        Timer::Resolution => "resolution",
        Timer::PeriodicUpdate => "periodic update",
    }
}

/// "1h 5m", "42s": how late, for people.
fn late_words(secs: i64) -> String {
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

/// Enqueues the alert for each contact; returns how many rows were new.
pub(super) fn enqueue_alerts(
    conn: &mut AnyConnection,
    cx: &AlertContext<'_>,
    contacts: &[String],
) -> Result<usize, StoreError> {
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
    let mut new_rows = 0;
    for contact_id in contacts {
        let Some(contact) = cx.contract.contact(contact_id) else {
            continue;
        };
        let key = format!("esc:{}:{}:{}", conv.id, action.key, contact_id);
        if let Some(email) = &contact.email {
            match notify::new_email(
                EmailDraft {
                    to: vec![email.clone()],
                    subject: subject.clone(),
                    text: text.clone(),
                    html: None,
                    headers: vec![("Auto-Submitted".into(), "auto-generated".into())],
                },
                cx.message_id_domain,
                format!("{key}:email"),
                cx.now,
            ) {
                Ok(row) => new_rows += usize::from(store::enqueue(conn, &row)?),
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
            });
            match notify::new_webhook(url, body, format!("{key}:webhook"), cx.now) {
                Ok(row) => new_rows += usize::from(store::enqueue(conn, &row)?),
                Err(e) => {
                    tracing::error!(contact = %contact_id, error = %e, "cannot build alert webhook")
                }
            }
        }
    }
    Ok(new_rows)
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
