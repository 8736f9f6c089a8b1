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
    /// A person signs in for this mailbox (the `delegated` grant).
    pub delegated: bool,
}

/// SMTP, as the page shows it.
#[derive(Debug, Clone, Default)]
pub struct SmtpHealth {
    pub server: String,
    pub username: String,
    pub login: String,
    pub credential: Option<String>,
    pub grant: Option<GrantStatus>,
    pub delegated: bool,
}

/// An account that needs a person to sign in again.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignInNeeded {
    /// What `POST /connections/sign-in` takes: a mailbox's name, or `smtp`.
    pub target: String,
    pub account: String,
    /// A person can sign in (grant `delegated`); otherwise an admin must
    /// restore the app's consent.
    pub delegated: bool,
}

/// A sign-in under way: what the callback needs, bound to the dashboard
/// session that started it.
struct PendingSignIn {
    session: String,
    credential: String,
    account: String,
    verifier: String,
    started: std::time::Instant,
}

/// How long a sign-in at the provider may take.
const SIGN_IN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

pub struct Connections {
    mailboxes: Mutex<BTreeMap<String, MailboxHealth>>,
    smtp: SmtpHealth,
    tokens: TokenSource,
    /// By `state`.
    pending: Mutex<std::collections::HashMap<String, PendingSignIn>>,
    redirect_uri: String,
}

/// A finished sign-in, or why it failed.
#[derive(Debug)]
pub enum SignInError {
    /// Unknown, used or expired `state`, or another session's.
    State,
    Refused(String),
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
                        delegated: credential.as_deref().and_then(|c| tokens.grant_of(c))
                            == Some(crate::oauth::Grant::Delegated),
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
            s.from.address()
        } else {
            s.username.clone()
        };
        Connections {
            mailboxes: Mutex::new(mailboxes),
            smtp: SmtpHealth {
                server: format!("{}:{}", s.host, s.port),
                username,
                login: login_words(s.auth, "XOAUTH2", credential.as_deref()),
                delegated: credential.as_deref().and_then(|c| tokens.grant_of(c))
                    == Some(crate::oauth::Grant::Delegated),
                credential,
                grant: None,
            },
            tokens,
            pending: Mutex::new(std::collections::HashMap::new()),
            redirect_uri: format!("{}/oauth/callback", settings.public_url),
        }
    }

    /// Starts a sign-in for `target` (a mailbox's name, or `smtp`) by
    /// `session`: the provider's page to send the browser to. PKCE: the
    /// verifier stays here, the provider sees only its hash.
    pub fn start_sign_in(&self, session: &str, target: &str) -> Result<String, String> {
        use base64::Engine;
        use rand::RngCore;
        use sha2::Digest;
        let (credential, account) = if target == "smtp" {
            (self.smtp.credential.clone(), self.smtp.username.clone())
        } else {
            let all = self.mailboxes.lock().unwrap_or_else(|e| e.into_inner());
            let m = all
                .get(target)
                .ok_or_else(|| format!("no mailbox `{target}`"))?;
            (m.credential.clone(), m.username.clone())
        };
        let credential =
            credential.ok_or_else(|| format!("`{target}` does not log in with OAuth"))?;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        rand::rng().fill_bytes(&mut bytes);
        let state = hex::encode(bytes);
        let url = self
            .tokens
            .authorize_url(
                &credential,
                &account,
                &state,
                &challenge,
                &self.redirect_uri,
            )
            .map_err(|e| e.to_string())?;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|_, p| p.started.elapsed() < SIGN_IN_TIMEOUT);
        pending.insert(
            state,
            PendingSignIn {
                session: session.to_string(),
                credential,
                account,
                verifier,
                started: std::time::Instant::now(),
            },
        );
        Ok(url)
    }

    /// Finishes the sign-in `state` names with the provider's `code`; only
    /// the session that started it may. Returns the account signed in.
    pub async fn finish_sign_in(
        &self,
        session: &str,
        state: &str,
        code: &str,
    ) -> Result<String, SignInError> {
        let p = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.get(state) {
                Some(p) if p.session == session && p.started.elapsed() < SIGN_IN_TIMEOUT => {
                    pending.remove(state).expect("just found")
                }
                _ => return Err(SignInError::State),
            }
        };
        self.tokens
            .redeem_code(
                &p.credential,
                &p.account,
                code,
                &p.verifier,
                &self.redirect_uri,
            )
            .await
            .map_err(|e| SignInError::Refused(e.to_string()))?;
        Ok(p.account)
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

    /// A successful read: the error before it is over, and no longer shown
    /// beside "Connected" as if it were current.
    pub fn read(&self, mailbox: &str, at: DateTime<Utc>) {
        self.update(mailbox, |m| {
            m.connected = true;
            m.last_read = Some(at);
            if m.last_error_at.is_some_and(|e| e <= at) {
                m.last_error = None;
                m.last_error_at = None;
                m.fix = None;
            }
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

    /// Accounts whose grant the provider refused (`invalid_grant`), or
    /// that nobody signed in yet: the banner on every dashboard page names
    /// them, with a Sign in button where a person can sign in (`delegated`).
    pub fn needing_sign_in(&self) -> Vec<SignInNeeded> {
        let (mailboxes, smtp) = self.snapshot();
        let mut out: Vec<SignInNeeded> = mailboxes
            .into_iter()
            .filter(|m| m.grant.as_ref().is_some_and(|g| g.needs_sign_in))
            .map(|m| SignInNeeded {
                target: m.name,
                account: m.username,
                delegated: m.delegated,
            })
            .collect();
        if smtp.grant.as_ref().is_some_and(|g| g.needs_sign_in)
            && !out.iter().any(|n| n.account == smtp.username)
        {
            out.push(SignInNeeded {
                target: "smtp".into(),
                account: smtp.username,
                delegated: smtp.delegated,
            });
        }
        out
    }
}
