//! Escalation and breach alerts: what they say, and their outbox rows, one
//! per contact and target (email, webhook, Teams, PagerDuty, Opsgenie).
//!
//! Each alert names what is due, for which client and conversation, how late
//! it is, and links to the conversation. Rows are de-duplicated by
//! (conversation, step key, contact, target) so a retried transaction cannot
//! enqueue an alert twice. PagerDuty and Opsgenie get one incident per timer
//! instance (`keepword-{conversation}-{timer}-{seq}`): later steps of the
//! same timer update it, and [`enqueue_resolves`] closes it once the timer
//! stops. Outside text (a subject, a thread key) is escaped for each
//! target's markup, so a client cannot ping a channel or disguise a link.

use crate::calendar::business_words;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::contract::{Contact, Contract, Delivery, Timer, Urgency};
use crate::outbox::{self, EmailDraft};
use crate::sla::{ActionKind, ActionStep, ConversationState, DueAction};
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

/// What an alert says happened: "first response 50% of window used". A
/// repeated trigger reads like its first.
pub(super) fn step_words(timer: Timer, step: ActionStep) -> String {
    let timer = timer.words();
    match step {
        ActionStep::Breach => format!("{timer} BREACHED"),
        ActionStep::At { percent: 100, .. } => format!("{timer} window has run out"),
        ActionStep::At { percent, .. } => format!("{timer} {percent}% of window used"),
        ActionStep::AfterDue { after, .. } => format!("{timer} overdue by {after}"),
    }
}

/// When a step fires, for the timeline: "at 50%", "30m after the due",
/// "breach". A repeated trigger reads like its first.
pub(super) fn step_phrase(step: ActionStep) -> String {
    match step {
        ActionStep::At { percent, .. } => format!("at {percent}%"),
        ActionStep::AfterDue { after, .. } => format!("{after} after the due"),
        ActionStep::Breach => "breach".into(),
    }
}

/// Slack mrkdwn (and the many receivers that copy it): `&`, `<` and `>` are
/// its control characters; escaped, `<!channel>` is text, not a ping.
pub(super) fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Adaptive Card `TextBlock` text is Markdown: outside text gets every
/// Markdown punctuation escaped, so `[x](https://evil)` shows as written.
pub(super) fn teams_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            // A line break could start a list or a heading.
            '\n' | '\r' => {
                out.push(' ');
                continue;
            }
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '<' | '>' | '~' => {
                out.push('\\')
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The PagerDuty `dedup_key` and Opsgenie `alias` of a timer instance: every
/// step of it updates one incident, and its stop resolves that one.
pub(super) fn incident_key(conversation: i64, timer: Timer, seq: u32) -> String {
    format!("keepword-{conversation}-{}-{seq}", timer.as_str())
}

/// One alert, rendered once and shaped per target.
struct Alert<'a> {
    conv: &'a ConversationRow,
    action: &'a DueAction,
    client_name: String,
    type_name: String,
    what: String,
    due: Option<DateTime<Utc>>,
    due_local: String,
    lateness: String,
    overdue_secs: i64,
    link: String,
    /// Plain text: email, and the base of the chat texts.
    subject: String,
    text: String,
    late: bool,
    urgency: Urgency,
}

impl Alert<'_> {
    fn webhook_body(&self, deferred_until: Option<DateTime<Utc>>) -> Value {
        let (conv, action) = (self.conv, self.action);
        json!({
            "text": slack_escape(&format!("{}\n{}", self.subject, self.link)),
            "event": if matches!(action.kind, ActionKind::Breach) { "breach" } else { "escalation" },
            "step": action.step.to_string(),
            "timer": action.timer.as_str(),
            "conversation_id": conv.id,
            "conversation_url": self.link,
            "client": conv.client_id,
            "client_name": self.client_name,
            "request_type": conv.request_type,
            "subject": conv.subject,
            "due_at": self.due.map(|d| d.to_rfc3339()),
            "fell_due_at": action.at.to_rfc3339(),
            "seconds_past_due": self.overdue_secs,
            "late": self.late,
            "deferred_until": deferred_until.map(|d| d.to_rfc3339()),
        })
    }

    /// A Teams Workflows message: one Adaptive Card 1.4 with the facts and
    /// an "Open" action.
    fn teams_body(&self) -> Value {
        let conv = self.conv;
        let facts = [
            ("Client", self.client_name.clone()),
            ("Request type", self.type_name.clone()),
            ("Timer", self.action.timer.words().to_string()),
            ("Due", self.due_local.clone()),
            ("How late", self.lateness.clone()),
        ];
        teams_message(
            vec![
                json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true,
                       "text": teams_escape(&format!("{}: {}", self.client_name, self.what))}),
                json!({"type": "TextBlock", "wrap": true,
                       "text": teams_escape(&format!("#{} {}", conv.id, conv.subject))}),
                json!({"type": "FactSet", "facts": facts.iter().map(|(title, value)| json!({
                    "title": title, "value": teams_escape(value),
                })).collect::<Vec<_>>()}),
            ],
            vec![json!({"type": "Action.OpenUrl", "title": "Open", "url": self.link})],
        )
    }

    fn pagerduty_trigger(&self, routing_key: &str) -> Value {
        let (conv, action) = (self.conv, self.action);
        let summary: String = format!(
            "{}: {} — #{} {}",
            self.client_name, self.what, conv.id, conv.subject
        )
        .chars()
        .take(1024)
        .collect();
        json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": incident_key(conv.id, action.timer, action.seq),
            "client": "keepword",
            "client_url": self.link,
            "links": [{"href": self.link, "text": format!("Conversation #{}", conv.id)}],
            "payload": {
                "summary": summary,
                "source": "keepword",
                "severity": if self.urgency.page { "critical" } else { "warning" },
                "timestamp": action.at.to_rfc3339(),
                "component": conv.request_type,
                "group": conv.client_id,
                "class": action.step.to_string(),
                "custom_details": self.details(),
            },
        })
    }

    fn opsgenie_create(&self) -> Value {
        let (conv, action) = (self.conv, self.action);
        let message: String = format!("{}: {}", self.client_name, self.what)
            .chars()
            .take(130)
            .collect();
        let details: serde_json::Map<String, Value> = self
            .details()
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), Value::String(text))
            })
            .collect();
        json!({
            "message": message,
            "alias": incident_key(conv.id, action.timer, action.seq),
            "description": self.text.chars().take(15_000).collect::<String>(),
            "priority": if self.urgency.page { "P1" } else { "P3" },
            "source": "keepword",
            "entity": format!("conversation #{}", conv.id),
            "tags": ["keepword", conv.request_type.as_str()],
            "details": details,
        })
    }

    fn details(&self) -> Value {
        let (conv, action) = (self.conv, self.action);
        json!({
            "client": conv.client_id,
            "client_name": self.client_name,
            "request_type": conv.request_type,
            "timer": action.timer.as_str(),
            "seq": action.seq,
            "step": action.step.to_string(),
            "conversation_id": conv.id,
            "conversation_url": self.link,
            "subject": conv.subject,
            "due_at": self.due.map(|d| d.to_rfc3339()),
            "seconds_past_due": self.overdue_secs,
        })
    }
}

/// A Teams Workflows message carrying one Adaptive Card 1.4.
pub(super) fn teams_message(body: Vec<Value>, actions: Vec<Value>) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": actions,
            },
        }],
    })
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

/// Enqueues the alert for each contact and each of its targets, at once or
/// held for the contact's working hours or digest (README, "Urgency and
/// focus"): the same rule for every target.
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
    let what = step_words(action.timer, action.step);
    let overdue_secs = due.map(|d| (cx.now - d).num_seconds()).unwrap_or(0);
    let lateness = if overdue_secs > 0 {
        format!("{} past due", business_words(overdue_secs))
    } else {
        format!("{} left", business_words(-overdue_secs))
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
         Step:          {}{}\n\n\
         {link}\n",
        conv.id,
        conv.subject,
        conv.channel,
        conv.thread_key,
        action.step,
        if cx.late {
            " — fired late (the service was down or behind when it fell due)"
        } else {
            ""
        },
    );
    let alert = Alert {
        conv,
        action,
        client_name,
        type_name,
        what,
        due,
        due_local,
        lateness,
        overdue_secs,
        link,
        subject,
        text,
        late: cx.late,
        urgency: super::focus::urgency_of(cx.contract, &conv.request_type, action),
    };
    let mut done = Enqueued::default();
    for contact_id in contacts {
        let Some(contact) = cx.contract.contact(contact_id) else {
            continue;
        };
        let key = format!("esc:{}:{}:{}", conv.id, action.key, contact_id);
        let delivery = cx.contract.delivery(contact, alert.urgency, cx.now);
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
                client_name: alert.client_name.clone(),
                subject: conv.subject.clone(),
                request_type: conv.request_type.clone(),
                contract_version: conv.contract_version.clone(),
                timer: action.timer.as_str().into(),
                seq: action.seq,
                step: action.step.to_string(),
                what: alert.what.clone(),
                due_at: due,
                fell_due_at: action.at,
                link: alert.link.clone(),
                email: target_value(contact, contact.email.as_ref()),
                webhook: target_value(contact, contact.webhook.as_ref()),
                teams: target_value(contact, contact.teams.as_ref()),
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
        let mut rows = Vec::new();
        if let Some(email) = target_value(contact, contact.email.as_ref()) {
            rows.push(outbox::new_email(
                EmailDraft {
                    to: vec![email],
                    subject: alert.subject.clone(),
                    text: match delivery.not_before() {
                        // Says why it arrives now and not when it fell due.
                        Some(held) => format!(
                            "{}\nHeld for your working hours until {}; it fell due at {}.\n",
                            alert.text,
                            held.with_timezone(&zone).format("%a %d %b %H:%M %Z"),
                            action.at.with_timezone(&zone).format("%a %d %b %H:%M %Z"),
                        ),
                        None => alert.text.clone(),
                    },
                    html: None,
                    headers: vec![("Auto-Submitted".into(), "auto-generated".into())],
                },
                cx.message_id_domain,
                format!("{key}:email"),
                cx.now,
            ));
        }
        if let Some(url) = target_value(contact, contact.webhook.as_ref()) {
            rows.push(outbox::new_webhook(
                &url,
                alert.webhook_body(delivery.not_before()),
                format!("{key}:webhook"),
                cx.now,
            ));
        }
        if let Some(url) = target_value(contact, contact.teams.as_ref()) {
            rows.push(outbox::new_teams(
                &url,
                alert.teams_body(),
                format!("{key}:teams"),
                cx.now,
            ));
        }
        if let Some(routing_key) = target_value(contact, contact.pagerduty.as_ref()) {
            rows.push(Ok(outbox::new_pagerduty(
                alert.pagerduty_trigger(&routing_key),
                format!("{key}:pagerduty"),
                cx.now,
            )));
        }
        if let Some(api_key) = target_value(contact, contact.opsgenie.as_ref()) {
            rows.push(Ok(outbox::new_opsgenie(
                &api_key,
                &incident_key(conv.id, action.timer, action.seq),
                false,
                alert.opsgenie_create(),
                format!("{key}:opsgenie"),
                cx.now,
            )));
        }
        let rows_before = done.rows;
        for row in rows {
            match row {
                Ok(row) => done.rows += usize::from(store::enqueue_routed(conn, &row, &routing)?),
                Err(e) => {
                    tracing::error!(contact = %contact_id, error = %e, "cannot build alert")
                }
            }
        }
        if done.rows > rows_before && delivery.not_before().is_some() {
            done.deferred.push("hours");
        }
    }
    Ok(done)
}

/// A target's value to deliver to; one written as a reference that did not
/// resolve (an old contract version whose variable is gone) is logged and
/// skipped.
pub(super) fn target_value(
    contact: &Contact,
    target: Option<&crate::contract::Target>,
) -> Option<String> {
    let target = target?;
    match target.value() {
        Some(v) => Some(v.to_string()),
        None => {
            tracing::warn!(
                contact = %contact.id,
                reference = %target.written.written(),
                "alert target not resolved; nothing sent to it"
            );
            None
        }
    }
}

/// Closes the PagerDuty incidents and Opsgenie alerts of a timer instance
/// that stopped (met, missed, or the conversation solved): one `resolve` /
/// close per contact its steps reached, with the key the triggers used.
/// Held like the contact's other alerts, and never before a trigger of the
/// incident still waiting in the outbox (held for hours, backing off after
/// a failure, or in flight until its lease ends) is due: a resolve that
/// arrived first would leave the late trigger's incident open.
pub(super) fn enqueue_resolves(
    conn: &mut AnyConnection,
    contract: &Contract,
    conv: &ConversationRow,
    state: &ConversationState,
    timer: Timer,
    seq: u32,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let mut contacts: Vec<&String> = state
        .actions
        .iter()
        .filter(|a| a.timer == timer && a.seq == seq)
        .flat_map(|a| &a.notify)
        .collect();
    contacts.sort();
    contacts.dedup();
    let incident = incident_key(conv.id, timer, seq);
    let paged: Vec<&Contact> = contacts
        .into_iter()
        .filter_map(|id| contract.contact(id))
        .filter(|c| c.pagerduty.is_some() || c.opsgenie.is_some())
        .collect();
    if paged.is_empty() {
        return Ok(0);
    }
    let prefix = format!("{timer}/{seq}/");
    let waiting = store::outbox::of_conversation(conn, conv.id)?;
    let mut rows = 0;
    for contact in paged {
        let contact_id = &contact.id;
        let held = contract
            .delivery(
                contact,
                Urgency {
                    page: false,
                    warning: false,
                },
                now,
            )
            .not_before();
        let not_before = |kind: &str| {
            waiting
                .iter()
                .filter(|r| {
                    r.sent_at.is_none()
                        && r.kind == kind
                        && r.contact.as_ref() == Some(contact_id)
                        && r.step.as_deref().is_some_and(|s| s.starts_with(&prefix))
                })
                // A margin for the trigger's send to finish first.
                .map(|r| {
                    r.available_at.max(r.not_before.unwrap_or(r.available_at))
                        + chrono::Duration::seconds(5)
                })
                .chain(held)
                .max()
        };
        let routing = |kind: &str| store::Routing {
            conversation_id: Some(conv.id),
            step: None,
            contact: Some(contact_id.clone()),
            not_before: not_before(kind),
            digest_key: None,
        };
        let key = format!("resolve:{}:{incident}:{contact_id}", conv.id);
        if let Some(routing_key) = target_value(contact, contact.pagerduty.as_ref()) {
            let event = json!({
                "routing_key": routing_key,
                "event_action": "resolve",
                "dedup_key": incident,
            });
            let row = outbox::new_pagerduty(event, format!("{key}:pagerduty"), now);
            rows += usize::from(store::enqueue_routed(
                conn,
                &row,
                &routing(outbox::KIND_PAGERDUTY),
            )?);
        }
        if let Some(api_key) = target_value(contact, contact.opsgenie.as_ref()) {
            let body = json!({
                "source": "keepword",
                "note": format!("The {} timer of conversation #{} stopped.", timer.words(), conv.id),
            });
            let row = outbox::new_opsgenie(
                &api_key,
                &incident,
                true,
                body,
                format!("{key}:opsgenie"),
                now,
            );
            rows += usize::from(store::enqueue_routed(
                conn,
                &row,
                &routing(outbox::KIND_OPSGENIE),
            )?);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_reads_naturally() {
        // The pages' words: business hours run on past a day.
        assert_eq!(business_words(42), "under 1 m");
        assert_eq!(business_words(3_900), "1 h 05 m");
        assert_eq!(business_words(90_000), "25 h");
    }

    #[test]
    fn a_repeated_trigger_reads_like_its_first() {
        let repeated = ActionStep::At {
            percent: 50,
            repeat: Some(1),
        };
        assert_eq!(repeated.to_string(), "at:50%#1");
        assert_eq!(step_phrase(repeated), "at 50%");
        assert_eq!(
            step_words(Timer::FirstResponse, repeated),
            "first response 50% of window used"
        );
        let after = ActionStep::AfterDue {
            after: "30m".parse().unwrap(),
            repeat: Some(2),
        };
        assert_eq!(
            step_words(Timer::Resolution, after),
            "resolution overdue by 30m"
        );
        assert_eq!(
            step_words(
                Timer::NextResponse,
                ActionStep::At {
                    percent: 100,
                    repeat: None
                }
            ),
            "next response window has run out"
        );
    }

    #[test]
    fn chat_markup_in_outside_text_is_escaped() {
        let subject = "<!channel> <https://evil.example|your invoice> & [x](https://evil.example)";
        let slack = slack_escape(subject);
        assert!(!slack.contains('<') && !slack.contains('>'), "{slack}");
        assert_eq!(
            slack,
            "&lt;!channel&gt; &lt;https://evil.example|your invoice&gt; &amp; [x](https://evil.example)"
        );
        let teams = teams_escape(subject);
        assert!(teams.contains(r"\[x\]\(https://evil.example\)"), "{teams}");
        assert!(teams.starts_with(r"\<!channel\>"), "{teams}");
        assert!(!teams.contains("[x]("));
    }
}
