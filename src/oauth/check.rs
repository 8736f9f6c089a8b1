//! `keepword oauth check NAME [--mailbox M] [--smtp]`: takes a token, logs
//! in to IMAP, selects the inbox and sent folder, authenticates to SMTP
//! without sending, and reports each step with the provider's answer and
//! the fix. What an admin runs after each step of the provider's setup.

use std::sync::Arc;

use super::{AuthMethod, OAuthError, OAuthMetrics, TokenSource};
use crate::config::Settings;
use crate::imap::{FolderKind, ImapMetrics, MailboxPoller};
use crate::service::{FetchedMail, FolderCheckpoint, MailSink};

/// The credentials of `settings` with the store of delegated grants the
/// service uses, so a command run beside it sees the same sign-ins.
pub fn token_source(settings: &Settings) -> Result<TokenSource, String> {
    let grants = super::store::GrantStore::for_settings(settings)
        .map_err(|e| format!("the store of OAuth grants (`secret_key_file`): {e}"))?;
    TokenSource::with_grants(&settings.oauth, OAuthMetrics::new(), grants)
        .map_err(|e| e.to_string())
}

/// One step and how it went.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub passed: bool,
    /// The answer: what was found, or what the server or provider said.
    pub detail: String,
    pub fix: Option<String>,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.passed { "passed" } else { "FAILED" };
        write!(f, "{mark}: {}: {}", self.name, self.detail)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n        fix: {fix}")?;
        }
        Ok(())
    }
}

/// The check reads no mail: the poller it borrows for the login gets a
/// sink that is never called.
struct NoMail;

impl MailSink for NoMail {
    fn checkpoint(&self, _: &str, _: &str) -> Result<Option<FolderCheckpoint>, String> {
        Ok(None)
    }
    fn ingest(
        &self,
        _: &str,
        _: &str,
        _: FolderKind,
        _: u32,
        _: Vec<FetchedMail>,
    ) -> Result<(), String> {
        Err("oauth check reads no mail".into())
    }
}

fn token_step(account: &str, got: &Result<super::AccessToken, OAuthError>) -> Step {
    match got {
        Ok(t) => Step {
            name: format!("token for {account}"),
            passed: true,
            detail: format!(
                "issued, valid until {}",
                chrono::DateTime::<chrono::Utc>::from(t.expires_at).format("%Y-%m-%d %H:%M:%S UTC")
            ),
            fix: None,
        },
        Err(e) => Step {
            name: format!("token for {account}"),
            passed: false,
            detail: e.to_string(),
            fix: e.fix().map(String::from),
        },
    }
}

/// Runs the checks of credential `name`: the mailboxes using it (or only
/// `mailbox`), and SMTP when `smtp` is set or `[smtp]` uses it. `Err` is a
/// request that makes no sense for this config.
pub async fn run(
    settings: &Settings,
    name: &str,
    mailbox: Option<&str>,
    smtp: bool,
) -> Result<Vec<Step>, String> {
    if !settings.oauth.contains_key(name) {
        let known: Vec<&str> = settings.oauth.keys().map(String::as_str).collect();
        return Err(format!(
            "no [oauth.{name}] in the config (configured: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ));
    }
    let uses = |auth: AuthMethod, oauth: &Option<String>| {
        auth == AuthMethod::Oauth2 && oauth.as_deref() == Some(name)
    };
    let mailboxes: Vec<_> = match mailbox {
        Some(m) => {
            let found = settings
                .mailboxes
                .iter()
                .find(|x| x.name == m)
                .ok_or_else(|| format!("no mailbox named `{m}` in the config"))?;
            if !uses(found.auth, &found.oauth) {
                return Err(format!(
                    "mailbox `{m}` does not log in with [oauth.{name}] (set auth = \"oauth2\" and oauth = \"{name}\")"
                ));
            }
            vec![found.clone()]
        }
        None => settings
            .mailboxes
            .iter()
            .filter(|x| uses(x.auth, &x.oauth))
            .cloned()
            .collect(),
    };
    let smtp_uses = uses(settings.smtp.auth, &settings.smtp.oauth);
    if smtp && !smtp_uses {
        return Err(format!(
            "[smtp] does not log in with [oauth.{name}] (set auth = \"oauth2\" and oauth = \"{name}\")"
        ));
    }
    let check_smtp = smtp || (mailbox.is_none() && smtp_uses);
    if mailboxes.is_empty() && !check_smtp {
        return Err(format!(
            "nothing uses [oauth.{name}]: no mailbox and not [smtp]"
        ));
    }
    let tokens = token_source(settings)?;
    let grant = tokens.grant_of(name);
    let mut steps = Vec::new();
    for m in mailboxes {
        let got = tokens.token(name, &m.username).await;
        steps.push(token_step(&m.username, &got));
        if got.is_err() {
            continue;
        }
        let mech = m.sasl.unwrap_or_default().as_str();
        let login = format!(
            "IMAP login to {}:{} as {} ({mech})",
            m.host, m.port, m.username
        );
        let folders: Vec<String> = std::iter::once(m.inbox.clone())
            .chain(m.sent.clone())
            .collect();
        let mut poller =
            MailboxPoller::new(m, Arc::new(NoMail), ImapMetrics::new()).with_tokens(tokens.clone());
        match poller.log_in().await {
            Ok(()) => steps.push(Step {
                name: login,
                passed: true,
                detail: "logged in".into(),
                fix: None,
            }),
            Err(e) => {
                steps.push(Step {
                    name: login,
                    passed: false,
                    detail: e.to_string(),
                    fix: e.fix(grant),
                });
                continue;
            }
        }
        for folder in folders {
            let name = format!("select {folder}");
            steps.push(match poller.select_only(&folder).await {
                Ok(n) => Step { name, passed: true, detail: format!("{n} messages"), fix: None },
                Err(e) => Step {
                    name,
                    passed: false,
                    detail: e.to_string(),
                    fix: Some("check the folder's name (`inbox`, `sent`): servers name the sent folder differently (\"Sent Items\" at Microsoft, \"[Gmail]/Sent Mail\" at Google)".into()),
                },
            });
        }
    }
    if check_smtp {
        let s = &settings.smtp;
        let transport = super::smtp::OAuthTransport::new(s, s.from.mailbox(), tokens.clone());
        let got = tokens.token(name, transport.user()).await;
        steps.push(token_step(transport.user(), &got));
        if got.is_ok() {
            let name = format!(
                "SMTP AUTH XOAUTH2 to {}:{} as {} (nothing sent)",
                s.host,
                s.port,
                transport.user()
            );
            steps.push(match transport.login().await {
                Ok(Ok(())) => Step { name, passed: true, detail: "authenticated".into(), fix: None },
                Ok(Err(e)) => {
                    let answer = e.to_string();
                    Step {
                        name,
                        passed: false,
                        fix: super::login_fix(&answer, grant)
                            .or_else(|| super::smtp::token_refused(&e).then_some(
                                "the server refused the token: check the credential's consent for SMTP (SMTP.SendAsApp, or the Gmail scope)",
                            ))
                            .map(String::from),
                        detail: answer,
                    }
                }
                Err(e) => Step { name, passed: false, detail: e.to_string(), fix: None },
            });
        }
    }
    Ok(steps)
}
