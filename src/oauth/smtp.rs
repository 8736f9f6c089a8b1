//! SMTP `XOAUTH2` through lettre: a transport per access token (lettre
//! fixes credentials when a transport is built), one retry with a fresh
//! token after a refusal.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::TokenSource;
use crate::config::SmtpSettings;
use crate::notify::NotifyError;

type Transport = AsyncSmtpTransport<Tokio1Executor>;

pub struct OAuthTransport {
    settings: SmtpSettings,
    credential: String,
    /// The XOAUTH2 user: `smtp.username`, else the `From:` address.
    user: String,
    tokens: TokenSource,
    /// The transport of the current token, and that token.
    current: tokio::sync::Mutex<Option<(String, Transport)>>,
}

/// A refused token reaches lettre as a challenge XOAUTH2 does not expect
/// (the server's JSON error, before its 535), or as the 535 itself.
pub fn token_refused(e: &lettre::transport::smtp::Error) -> bool {
    let text = e.to_string();
    text.contains("does not expect a challenge") || text.contains("535")
}

impl OAuthTransport {
    pub fn new(settings: &SmtpSettings, from: &Mailbox, tokens: TokenSource) -> OAuthTransport {
        let user = if settings.username.is_empty() {
            from.email.to_string()
        } else {
            settings.username.clone()
        };
        OAuthTransport {
            credential: settings.oauth.clone().unwrap_or_default(),
            settings: settings.clone(),
            user,
            tokens,
            current: tokio::sync::Mutex::new(None),
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The outer error is a token that could not be had; the inner one
    /// what the SMTP server said.
    pub async fn send(
        &self,
        message: Message,
    ) -> Result<Result<(), lettre::transport::smtp::Error>, NotifyError> {
        self.with_transport(|t| {
            let m = message.clone();
            async move { t.send(m).await.map(|_| ()) }
        })
        .await
    }

    /// Connects and authenticates without sending (`oauth check`).
    pub async fn login(&self) -> Result<Result<(), lettre::transport::smtp::Error>, NotifyError> {
        self.with_transport(|t| async move { t.test_connection().await.map(|_| ()) })
            .await
    }

    async fn with_transport<F, Fut>(
        &self,
        run: F,
    ) -> Result<Result<(), lettre::transport::smtp::Error>, NotifyError>
    where
        F: Fn(Transport) -> Fut,
        Fut: std::future::Future<Output = Result<(), lettre::transport::smtp::Error>>,
    {
        let mut outcome = Ok(());
        for attempt in 0..2 {
            let token = self
                .tokens
                .token(&self.credential, &self.user)
                .await
                .map_err(|e| NotifyError::Smtp(format!("no OAuth token for SMTP: {e}")))?;
            let transport = {
                let mut current = self.current.lock().await;
                match current.as_ref() {
                    Some((t, transport)) if t == token.secret.expose() => transport.clone(),
                    _ => {
                        let transport = crate::notify::smtp::transport(
                            &self.settings,
                            Some((self.user.clone(), token.secret.expose().to_string())),
                        )?;
                        *current = Some((token.secret.expose().to_string(), transport.clone()));
                        transport
                    }
                }
            };
            outcome = run(transport).await;
            match &outcome {
                Err(e) if token_refused(e) => {
                    tracing::warn!(
                        credential = %self.credential,
                        account = %self.user,
                        attempt,
                        error = %e,
                        "SMTP refused the OAuth token; taking a fresh one"
                    );
                    self.tokens
                        .refused(&self.credential, &self.user, &token)
                        .await;
                }
                _ => break,
            }
        }
        Ok(outcome)
    }
}
