//! Mailbox health: what the Connections page shows of every mailbox and of
//! SMTP, whatever their login. The IMAP pollers write it as they connect,
//! read, wait in IDLE and fail; the dashboard reads it. In memory: it says
//! how this process's connections are doing right now.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::config::{MailboxSettings, Settings};
use crate::oauth::{AuthMethod, GrantStatus, TokenSource};

/// One mailbox, as the page shows it.
#[derive(Debug, Clone, Default)]
pub struct MailboxHealth {
    pub name: String,
    pub server: String,
    pub username: String,
    /// "password", or "OAuth 2.0 (XOAUTH2, credential m365)".
    pub login: String,
    pub credential: Option<String>,
    pub connected: bool,
    pub idle: bool,
    pub last_read: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// What to do about `last_error`, where it is known.
    pub fix: Option<String>,
    pub grant: Option<GrantStatus>,
}

/// SMTP, as the page shows it.
#[derive(Debug, Clone, Default)]
pub struct SmtpHealth {
    pub server: String,
    pub username: String,
    pub login: String,
    pub credential: Option<String>,
    pub grant: Option<GrantStatus>,
}

pub struct Connections {
    mailboxes: Mutex<BTreeMap<String, MailboxHealth>>,
    smtp: SmtpHealth,
    tokens: TokenSource,
}

fn login_words(auth: AuthMethod, sasl: &str, credential: Option<&str>) -> String {
    match auth {
        AuthMethod::Password => "password".into(),
        AuthMethod::Oauth2 => format!(
            "OAuth 2.0 ({sasl}, credential {})",
            credential.unwrap_or("?")
        ),
    }
}

impl Connections {
    pub fn new(settings: &Settings, tokens: TokenSource) -> Connections {
        let mailboxes = settings
            .mailboxes
            .iter()
            .map(|m: &MailboxSettings| {
                let credential = (m.auth == AuthMethod::Oauth2)
                    .then(|| m.oauth.clone())
                    .flatten();
                (
                    m.name.clone(),
                    MailboxHealth {
                        name: m.name.clone(),
                        server: format!("{}:{}", m.host, m.port),
                        username: m.username.clone(),
                        login: login_words(
                            m.auth,
                            m.sasl.unwrap_or_default().as_str(),
                            credential.as_deref(),
                        ),
                        credential,
                        ..MailboxHealth::default()
                    },
                )
            })
            .collect();
        let s = &settings.smtp;
        let credential = (s.auth == AuthMethod::Oauth2)
            .then(|| s.oauth.clone())
            .flatten();
        let username = if s.auth == AuthMethod::Oauth2 && s.username.is_empty() {
            crate::notify::address_of(&s.from)
        } else {
            s.username.clone()
        };
        Connections {
            mailboxes: Mutex::new(mailboxes),
            smtp: SmtpHealth {
                server: format!("{}:{}", s.host, s.port),
                username,
                login: login_words(s.auth, "XOAUTH2", credential.as_deref()),
                credential,
                grant: None,
            },
            tokens,
        }
    }

    fn update(&self, mailbox: &str, f: impl FnOnce(&mut MailboxHealth)) {
        let mut all = self.mailboxes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = all.get_mut(mailbox) {
            f(m);
        }
    }

    pub fn connected(&self, mailbox: &str) {
        self.update(mailbox, |m| m.connected = true);
    }

    pub fn read(&self, mailbox: &str, at: DateTime<Utc>) {
        self.update(mailbox, |m| {
            m.connected = true;
            m.last_read = Some(at);
        });
    }

    pub fn idle(&self, mailbox: &str, idle: bool) {
        self.update(mailbox, |m| m.idle = idle);
    }

    pub fn failed(&self, mailbox: &str, at: DateTime<Utc>, error: String, fix: Option<String>) {
        self.update(mailbox, |m| {
            m.connected = false;
            m.idle = false;
            m.last_error = Some(error);
            m.last_error_at = Some(at);
            m.fix = fix;
        });
    }

    /// Every mailbox, by name, with its grant's state; then SMTP.
    pub fn snapshot(&self) -> (Vec<MailboxHealth>, SmtpHealth) {
        let mailboxes = self
            .mailboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .map(|mut m| {
                m.grant = m
                    .credential
                    .as_deref()
                    .map(|c| self.tokens.status(c, &m.username));
                m
            })
            .collect();
        let mut smtp = self.smtp.clone();
        smtp.grant = smtp
            .credential
            .as_deref()
            .map(|c| self.tokens.status(c, &smtp.username));
        (mailboxes, smtp)
    }

    /// Accounts whose grant the provider refused (`invalid_grant`): the
    /// banner on every dashboard page names them.
    pub fn needing_sign_in(&self) -> Vec<String> {
        let (mailboxes, smtp) = self.snapshot();
        let mut out: Vec<String> = mailboxes
            .into_iter()
            .filter(|m| m.grant.as_ref().is_some_and(|g| g.needs_sign_in))
            .map(|m| m.username)
            .collect();
        if smtp.grant.as_ref().is_some_and(|g| g.needs_sign_in) && !out.contains(&smtp.username) {
            out.push(smtp.username);
        }
        out
    }
}
