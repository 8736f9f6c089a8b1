//! keepword's own health, told to the `ops_contact` through the outbox: an
//! account whose grant the provider refused (it needs a person to sign in
//! again) at once, a mailbox not read for [`MAILBOX_DOWN_AFTER`], and each
//! one's recovery. [`HealthWatch`] decides from the Connections snapshot
//! (pure, so every transition is tested without servers); the service
//! enqueues what it decided.
//!
//! One notice per episode: the outbox key names the problem, what it is
//! about and when it began, so a tick that sees the same episode again adds
//! nothing. A restart forgets open episodes and may tell of one again once.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::Deadlines;
use super::connections::{MailboxHealth, SmtpHealth};
use super::notifications::{slack_escape, target_value, teams_escape, teams_message};
use crate::contract::Contact;
use crate::outbox::{self, EmailDraft};
use crate::store::{self, NewOutbox, StoreError};

/// How long a mailbox may go unread before its contact hears of it; the
/// shipped alert rule `KeepwordMailboxDown` uses the same.
pub const MAILBOX_DOWN_AFTER: Duration = Duration::minutes(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// The provider answered `invalid_grant`, or nobody signed in yet.
    NeedsSignIn,
    /// No successful read for [`MAILBOX_DOWN_AFTER`].
    MailboxDown,
}

impl Problem {
    fn slug(self) -> &'static str {
        match self {
            Problem::NeedsSignIn => "needs-sign-in",
            Problem::MailboxDown => "mailbox-down",
        }
    }
}

/// A problem that began or ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    pub problem: Problem,
    /// The mailbox's name, or the account that must sign in.
    pub about: String,
    /// When the episode began: the last successful read, or when the
    /// refusal was first seen.
    pub since: DateTime<Utc>,
    /// `false` when it began, `true` when it ended.
    pub recovered: bool,
    /// The last error and its fix, in words.
    pub detail: String,
}

impl HealthEvent {
    /// The episode's identity: its trigger and its recovery share it (the
    /// PagerDuty dedup key, the Opsgenie alias).
    pub fn episode(&self) -> String {
        format!(
            "ops:{}:{}:{}",
            self.problem.slug(),
            self.about,
            self.since.timestamp()
        )
    }

    fn title(&self) -> String {
        match (self.problem, self.recovered) {
            (Problem::NeedsSignIn, false) => format!(
                "Mail for {} is not being read: the provider refused keepword's grant",
                self.about
            ),
            (Problem::NeedsSignIn, true) => format!("{} is signed in again", self.about),
            (Problem::MailboxDown, false) => format!(
                "Mailbox {} has not been read for {} minutes",
                self.about,
                MAILBOX_DOWN_AFTER.num_minutes()
            ),
            (Problem::MailboxDown, true) => format!("Mailbox {} is read again", self.about),
        }
    }
}

/// What the watch remembers between ticks.
#[derive(Debug, Clone)]
pub struct HealthWatch {
    /// When watching began: a mailbox never read counts as down from here.
    started: DateTime<Utc>,
    open: BTreeMap<(Problem, String), DateTime<Utc>>,
}

impl HealthWatch {
    pub fn new(started: DateTime<Utc>) -> HealthWatch {
        HealthWatch {
            started,
            open: BTreeMap::new(),
        }
    }

    /// What began and what ended since the last look.
    pub fn observe(
        &mut self,
        mailboxes: &[MailboxHealth],
        smtp: &SmtpHealth,
        now: DateTime<Utc>,
    ) -> Vec<HealthEvent> {
        let mut current: BTreeMap<(Problem, String), (DateTime<Utc>, String)> = BTreeMap::new();
        let last_error = |m: &MailboxHealth| -> String {
            let mut s = m.last_error.clone().unwrap_or_default();
            if let Some(fix) = &m.fix {
                s.push_str(&format!("\nFix: {fix}"));
            }
            s
        };
        for m in mailboxes {
            if m.grant.as_ref().is_some_and(|g| g.needs_sign_in) {
                let detail = m
                    .grant
                    .as_ref()
                    .and_then(|g| g.last_error.clone())
                    .unwrap_or_default();
                current.insert((Problem::NeedsSignIn, m.username.clone()), (now, detail));
            }
            // A connection waiting in IDLE is healthy however long no mail
            // comes: a quiet mailbox is read again only when mail arrives.
            let since = m.last_read.unwrap_or(self.started);
            if !m.idle && now - since >= MAILBOX_DOWN_AFTER {
                current.insert(
                    (Problem::MailboxDown, m.name.clone()),
                    (since, last_error(m)),
                );
            }
        }
        if smtp.grant.as_ref().is_some_and(|g| g.needs_sign_in) {
            let detail = smtp
                .grant
                .as_ref()
                .and_then(|g| g.last_error.clone())
                .unwrap_or_default();
            current
                .entry((Problem::NeedsSignIn, smtp.username.clone()))
                .or_insert((now, detail));
        }
        let mut events = Vec::new();
        let ended: Vec<_> = self
            .open
            .keys()
            .filter(|k| !current.contains_key(*k))
            .cloned()
            .collect();
        for key in ended {
            let since = self.open.remove(&key).expect("listed from the map");
            events.push(HealthEvent {
                problem: key.0,
                about: key.1,
                since,
                recovered: true,
                detail: String::new(),
            });
        }
        for (key, (since, detail)) in current {
            if self.open.contains_key(&key) {
                continue;
            }
            self.open.insert(key.clone(), since);
            events.push(HealthEvent {
                problem: key.0,
                about: key.1,
                since,
                recovered: false,
                detail,
            });
        }
        events
    }
}

impl HealthWatch {
    /// Takes back `events` that could not be told, so the next look finds
    /// them again.
    pub fn forget(&mut self, events: &[HealthEvent]) {
        for e in events {
            let key = (e.problem, e.about.clone());
            if e.recovered {
                self.open.insert(key, e.since);
            } else {
                self.open.remove(&key);
            }
        }
    }
}

impl Deadlines {
    /// Enqueues a notice of each event to `contact`'s targets: email,
    /// webhook and Teams in words, PagerDuty and Opsgenie as an incident
    /// opened and closed. Returns the new outbox rows.
    pub fn tell_ops(&self, contact: &str, events: &[HealthEvent]) -> Result<usize, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let loaded = self.contract().current();
        let Some(contact) = loaded.contract.contact(contact) else {
            tracing::warn!(
                ops_contact = contact,
                "ops_contact is not a contact of the contract in force; health notices not sent"
            );
            return Ok(0);
        };
        let now = self.now();
        let link = format!("{}/connections", self.core.public_url());
        let rows: Vec<NewOutbox> = events
            .iter()
            .flat_map(|e| ops_rows(contact, e, &link, self.core.message_id_domain(), now))
            .collect();
        let added = self.store().transaction(|conn| {
            let mut added = 0;
            for row in &rows {
                let routing = store::Routing {
                    conversation_id: None,
                    step: None,
                    contact: Some(contact.id.clone()),
                    not_before: None,
                    digest_key: None,
                };
                added += usize::from(store::enqueue_routed(conn, row, &routing)?);
            }
            Ok::<_, StoreError>(added)
        })?;
        if added > 0 {
            self.after.outbox_wake.notify_one();
        }
        for e in events {
            tracing::warn!(
                problem = e.problem.slug(),
                about = %e.about,
                recovered = e.recovered,
                "{}",
                e.title()
            );
        }
        Ok(added)
    }
}

/// The rows telling `contact` of one event, one per target it has.
fn ops_rows(
    contact: &Contact,
    e: &HealthEvent,
    link: &str,
    message_id_domain: &str,
    now: DateTime<Utc>,
) -> Vec<NewOutbox> {
    let episode = e.episode();
    let phase = if e.recovered { "ok" } else { "down" };
    let key = |target: &str| format!("{episode}:{phase}:{}:{target}", contact.id);
    let title = e.title();
    let since = e.since.format("%Y-%m-%d %H:%M UTC");
    let text = if e.recovered {
        format!("{title}.\n\nThe problem began at {since}.\n\n{link}\n")
    } else {
        format!(
            "{title}, since {since}. Client mail in it is not seen, so no timer starts and \
             nobody is acknowledged until it is read again.\n\n{}\n\n{link}\n",
            if e.detail.is_empty() {
                "The Connections page says what failed.".to_string()
            } else {
                e.detail.clone()
            }
        )
    };
    let mut rows = Vec::new();
    let mut push = |row: Result<NewOutbox, outbox::Invalid>| match row {
        Ok(r) => rows.push(r),
        Err(err) => {
            tracing::error!(contact = %contact.id, error = %err, "cannot build health notice")
        }
    };
    if let Some(to) = target_value(contact, contact.email.as_ref()) {
        push(outbox::new_email(
            EmailDraft {
                to: vec![to],
                subject: format!("[keepword] {title}"),
                text: text.clone(),
                html: None,
                headers: vec![("Auto-Submitted".into(), "auto-generated".into())],
            },
            message_id_domain,
            key("email"),
            now,
        ));
    }
    if let Some(url) = target_value(contact, contact.webhook.as_ref()) {
        push(outbox::new_webhook(
            &url,
            json!({
                "text": slack_escape(&format!("{title}\n{link}")),
                "event": if e.recovered { "health_recovered" } else { "health_problem" },
                "problem": e.problem.slug(),
                "about": e.about,
                "since": e.since.to_rfc3339(),
                "detail": e.detail,
                "url": link,
            }),
            key("webhook"),
            now,
        ));
    }
    if let Some(url) = target_value(contact, contact.teams.as_ref()) {
        let mut body = vec![
            json!({"type": "TextBlock", "size": "Medium", "weight": "Bolder",
                                   "wrap": true, "text": teams_escape(&title)}),
        ];
        if !e.detail.is_empty() {
            body.push(json!({"type": "TextBlock", "wrap": true, "text": teams_escape(&e.detail)}));
        }
        push(outbox::new_teams(
            &url,
            teams_message(
                body,
                vec![json!({"type": "Action.OpenUrl", "title": "Connections", "url": link})],
            ),
            key("teams"),
            now,
        ));
    }
    if let Some(routing_key) = target_value(contact, contact.pagerduty.as_ref()) {
        let event = if e.recovered {
            json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": episode})
        } else {
            json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": episode,
                "client": "keepword",
                "client_url": link,
                "payload": {
                    "summary": title.chars().take(1024).collect::<String>(),
                    "source": "keepword",
                    "severity": "error",
                    "timestamp": e.since.to_rfc3339(),
                    "component": "mail",
                    "class": e.problem.slug(),
                    "custom_details": {"about": e.about, "detail": e.detail},
                },
            })
        };
        rows.push(outbox::new_pagerduty(event, key("pagerduty"), now));
    }
    if let Some(api_key) = target_value(contact, contact.opsgenie.as_ref()) {
        rows.push(outbox::new_opsgenie(
            &api_key,
            &episode,
            e.recovered,
            json!({
                "message": title.chars().take(130).collect::<String>(),
                "alias": episode,
                "description": text,
                "priority": "P2",
                "source": "keepword",
                "entity": e.about,
                "tags": ["keepword", e.problem.slug()],
            }),
            key("opsgenie"),
            now,
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::GrantStatus;

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + Duration::minutes(min)
    }

    fn mailbox(last_read: Option<i64>, needs_sign_in: bool) -> MailboxHealth {
        MailboxHealth {
            name: "support".into(),
            username: "support@agency.test".into(),
            last_read: last_read.map(at),
            last_error: Some("AUTHENTICATIONFAILED".into()),
            fix: Some("sign in again".into()),
            grant: Some(GrantStatus {
                needs_sign_in,
                last_error: needs_sign_in.then(|| "invalid_grant".into()),
                ..GrantStatus::default()
            }),
            ..MailboxHealth::default()
        }
    }

    #[test]
    fn a_refused_grant_is_told_at_once_and_once() {
        let mut w = HealthWatch::new(at(0));
        let smtp = SmtpHealth::default();
        assert!(
            w.observe(&[mailbox(Some(0), false)], &smtp, at(1))
                .is_empty()
        );
        let e = w.observe(&[mailbox(Some(0), true)], &smtp, at(2));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].problem, Problem::NeedsSignIn);
        assert_eq!(e[0].about, "support@agency.test");
        assert!(!e[0].recovered);
        assert_eq!(e[0].detail, "invalid_grant");
        // The same episode on later ticks: nothing new.
        assert!(
            w.observe(&[mailbox(Some(0), true)], &smtp, at(3))
                .is_empty()
        );
        // Signed in again: its recovery, with the same episode key.
        let r = w.observe(&[mailbox(Some(4), false)], &smtp, at(4));
        assert_eq!(r.len(), 1);
        assert!(r[0].recovered);
        assert_eq!(r[0].episode(), e[0].episode());
    }

    #[test]
    fn a_mailbox_is_down_after_ten_minutes_unread_and_up_when_read() {
        let mut w = HealthWatch::new(at(0));
        let smtp = SmtpHealth::default();
        // Never read: counts from the start of watching.
        assert!(w.observe(&[mailbox(None, false)], &smtp, at(9)).is_empty());
        let e = w.observe(&[mailbox(None, false)], &smtp, at(10));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].problem, Problem::MailboxDown);
        assert_eq!(e[0].since, at(0));
        assert!(
            e[0].detail
                .contains("AUTHENTICATIONFAILED\nFix: sign in again")
        );
        assert!(w.observe(&[mailbox(None, false)], &smtp, at(30)).is_empty());
        // Waiting in IDLE after a read long ago: quiet, not down.
        let quiet = MailboxHealth {
            idle: true,
            ..mailbox(Some(0), false)
        };
        assert!(
            HealthWatch::new(at(0))
                .observe(&[quiet], &smtp, at(60))
                .is_empty()
        );
        let r = w.observe(&[mailbox(Some(31), false)], &smtp, at(31));
        assert_eq!(r.len(), 1);
        assert!(r[0].recovered && r[0].problem == Problem::MailboxDown);
        // Read at 31, silent again: a new episode from the last read.
        let again = w.observe(&[mailbox(Some(31), false)], &smtp, at(41));
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].since, at(31));
        assert_ne!(again[0].episode(), e[0].episode());
    }

    #[test]
    fn smtp_and_its_mailbox_on_one_account_are_one_episode() {
        let mut w = HealthWatch::new(at(0));
        let smtp = SmtpHealth {
            username: "support@agency.test".into(),
            grant: Some(GrantStatus {
                needs_sign_in: true,
                ..GrantStatus::default()
            }),
            ..SmtpHealth::default()
        };
        let e = w.observe(&[mailbox(Some(0), true)], &smtp, at(1));
        assert_eq!(e.len(), 1, "{e:?}");
    }

    fn literal(v: &str) -> crate::contract::Target {
        crate::contract::Target::new(
            crate::contract::SecretRef::Literal(v.into()),
            Some(v.into()),
        )
    }

    #[test]
    fn each_target_gets_its_shape_and_the_incident_closes_with_the_same_key() {
        let contact = Contact {
            id: "ops".into(),
            email: Some(literal("ops@agency.test")),
            webhook: None,
            teams: None,
            pagerduty: Some(literal("R0UTINGKEY")),
            opsgenie: None,
            calendar: None,
            digest: vec![],
        };
        let mut e = HealthEvent {
            problem: Problem::MailboxDown,
            about: "support".into(),
            since: at(0),
            recovered: false,
            detail: "connection refused".into(),
        };
        let down = ops_rows(&contact, &e, "http://k/connections", "k.test", at(10));
        e.recovered = true;
        let up = ops_rows(&contact, &e, "http://k/connections", "k.test", at(20));
        assert_eq!(down.len(), 2);
        assert_eq!(up.len(), 2);
        let keys: Vec<_> = down
            .iter()
            .chain(&up)
            .map(|r| r.dedupe_key.clone())
            .collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 4, "{keys:?}");
        let page = |rows: &[NewOutbox]| -> serde_json::Value {
            let r = rows.iter().find(|r| r.kind == "pagerduty").unwrap();
            serde_json::from_str::<serde_json::Value>(&r.payload).unwrap()["event"].clone()
        };
        assert_eq!(page(&down)["event_action"], "trigger");
        assert_eq!(page(&up)["event_action"], "resolve");
        assert_eq!(page(&down)["dedup_key"], page(&up)["dedup_key"]);
        let mail = down.iter().find(|r| r.kind == "email").unwrap();
        assert!(mail.payload.contains("has not been read for 10 minutes"));
        assert!(mail.payload.contains("connection refused"));
    }
}
