//! Email over SMTP: lettre's pooled async transport over rustls (no OpenSSL),
//! verifying the server against the public roots plus `smtp.ca_file`.
//!
//! The message is rebuilt from the stored payload on every attempt; what
//! identifies it to the receiver (`Message-ID`, threading headers) comes from
//! the payload, so a retry is the same message to every mail client.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::NotifyError;
use crate::config::{SmtpSettings, Tls};
use crate::oauth::{AuthMethod, TokenSource};

/// How long one SMTP conversation (connect, each command) may hang before
/// the attempt counts as failed. Well under the worker's lease.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The name the server's certificate is checked against, for errors.
    host: String,
    /// `auth = "oauth2"`: lettre fixes credentials when a transport is
    /// built, so each new token gets its own transport.
    oauth: Option<std::sync::Arc<crate::oauth::smtp::OAuthTransport>>,
    /// `auth = "oauth2"` built without a token source ([`SmtpSender::new`]):
    /// sends fail, saying so, rather than go out unauthenticated.
    needs_tokens: bool,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the credentials: show only the sender address.
        f.debug_struct("SmtpSender")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// Builds the transport from `[smtp]`. Connects lazily: a server that is
    /// down at start only delays delivery, it does not stop the service.
    pub fn new(settings: &SmtpSettings) -> Result<SmtpSender, NotifyError> {
        Self::with_tokens(settings, None)
    }

    /// Like [`SmtpSender::new`]; `tokens` serves `auth = "oauth2"`.
    pub fn with_tokens(
        settings: &SmtpSettings,
        tokens: Option<TokenSource>,
    ) -> Result<SmtpSender, NotifyError> {
        let from: Mailbox = settings.from.mailbox().clone();
        let oauth = match (settings.auth, tokens) {
            (AuthMethod::Password, _) => None,
            (AuthMethod::Oauth2, Some(tokens)) => Some(std::sync::Arc::new(
                crate::oauth::smtp::OAuthTransport::new(settings, &from, tokens),
            )),
            (AuthMethod::Oauth2, None) => None,
        };
        Ok(SmtpSender {
            needs_tokens: settings.auth == AuthMethod::Oauth2 && oauth.is_none(),
            transport: transport(settings, None)?,
            from,
            host: settings.host.clone(),
            oauth,
        })
    }

    /// The `From:` mailbox every message is sent as.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Sends one email; `Ok` means the server accepted it (250 to DATA).
    pub async fn send(&self, email: EmailParts<'_>) -> Result<(), NotifyError> {
        if self.needs_tokens {
            return Err(NotifyError::Invalid(
                "smtp.auth is `oauth2` but this sender has no OAuth token source".into(),
            ));
        }
        let message = build_message(&self.from, email)?;
        // The SMTP conversation runs in its own task, so a caller that gives
        // up (the worker's send timeout) stops waiting without stopping it.
        // lettre returns a connection to its pool when the send is dropped,
        // whatever the conversation's state: the next mail on it would read
        // the replies meant for this one (a 451 taken for the 250 of an
        // earlier command: a refused mail recorded as sent). Left to finish,
        // the send ends under lettre's own timeouts, which close a
        // connection that failed instead of pooling it.
        let sent = match &self.oauth {
            None => {
                let transport = self.transport.clone();
                finish_detached(async move { transport.send(message).await.map(|_| ()) }).await?
            }
            Some(oauth) => {
                let oauth = oauth.clone();
                finish_detached(async move { oauth.send(message).await }).await??
            }
        };
        sent.map_err(|e| self.describe(e))
    }

    fn describe(&self, e: lettre::transport::smtp::Error) -> NotifyError {
        // lettre's Display names the stage (connection, response) and
        // the server's reply; the credentials never appear in it.
        if e.is_permanent() {
            NotifyError::Rejected(format!("the SMTP server: {e}"))
        } else if let Some(why) = crate::tls::describe_error(&e, &self.host, "smtp.ca_file") {
            // Transient on purpose: fixing `ca_file` or the server's
            // certificate lets the retries through without a replay.
            NotifyError::Smtp(format!("TLS with {}: {why}", self.host))
        } else if e.is_timeout() {
            // Possibly the RFC 1047 window: the message was sent and the
            // server's final reply never came.
            NotifyError::Uncertain(format!("smtp: {e}"))
        } else {
            NotifyError::Smtp(e.to_string())
        }
    }
}

/// Runs `send` to its end in a task of its own; the result if the caller
/// still waits for it.
async fn finish_detached<T: Send + 'static>(
    send: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, NotifyError> {
    tokio::spawn(send)
        .await
        .map_err(|e| NotifyError::Task(format!("smtp send: {e}")))
}

/// A transport for `[smtp]`; `oauth` replaces the password login with
/// XOAUTH2 for (user, access token).
pub(crate) fn transport(
    settings: &SmtpSettings,
    oauth: Option<(String, String)>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
    {
        let host = settings.host.as_str();
        // `builder_dangerous` only means "no TLS yet": the `tls(..)` below
        // is what `relay`/`starttls_relay` would set, plus the extra CA.
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host);
        let builder = match settings.tls {
            Tls::None => builder,
            Tls::Starttls => builder.tls(SmtpTls::Required(tls_parameters(settings)?)),
            Tls::Tls => builder.tls(SmtpTls::Wrapper(tls_parameters(settings)?)),
        };
        let mut builder = builder.port(settings.port).timeout(Some(SMTP_TIMEOUT));
        if let Some((user, token)) = oauth {
            // lettre offers PLAIN and LOGIN unless told otherwise.
            builder = builder
                .credentials(Credentials::new(user, token))
                .authentication(vec![Mechanism::Xoauth2]);
        } else if !settings.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                settings.username.clone(),
                settings.password.expose().to_string(),
            ));
        }
        Ok(builder.build())
    }
}

/// The server's name to verify, trusting the public web roots plus
/// `smtp.ca_file`. The file was checked at config load; it is read again
/// here so that a sender built from edited settings sees the current file.
fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, NotifyError> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(path) = &settings.ca_file {
        let certs = crate::tls::read_ca_file(path)
            .map_err(|e| NotifyError::Invalid(format!("smtp.ca_file: {e}")))?;
        for cert in certs {
            let cert = Certificate::from_der(cert.to_vec()).map_err(|e| {
                NotifyError::Invalid(format!("smtp.ca_file {}: {e}", path.display()))
            })?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build_rustls()
        .map_err(|e| NotifyError::Invalid(format!("smtp TLS settings: {e}")))
}

/// The email fields of an [`super::OutboxMessage::Email`], borrowed.
#[derive(Debug, Clone, Copy)]
pub struct EmailParts<'a> {
    pub to: &'a [String],
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub headers: &'a [(String, String)],
    pub message_id: &'a str,
}

/// Builds the MIME message: `multipart/alternative` (text, then HTML, so
/// clients prefer the HTML) when there is HTML, else a plain text part.
pub fn build_message(from: &Mailbox, email: EmailParts<'_>) -> Result<Message, NotifyError> {
    let mut b = Message::builder()
        .from(from.clone())
        .subject(email.subject)
        .message_id(Some(email.message_id.to_string()));
    for to in email.to {
        let mbox: Mailbox = to
            .parse()
            .map_err(|e| NotifyError::Invalid(format!("recipient `{to}`: {e}")))?;
        b = b.to(mbox);
    }
    for (name, value) in email.headers {
        check_header(name, value)?;
        // lettre's typed threading headers keep the message-id syntax intact;
        // everything else goes in as a raw (RFC 2047-encoded, folded) header.
        b = match name.to_ascii_lowercase().as_str() {
            "in-reply-to" => b.in_reply_to(value.clone()),
            "references" => b.references(value.clone()),
            _ => b.raw_header(HeaderValue::new(header_name(name)?, value.clone())),
        };
    }
    let built = match email.html {
        Some(html) => b.multipart(MultiPart::alternative_plain_html(
            email.text.to_string(),
            html.to_string(),
        )),
        None => b.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(email.text.to_string()),
        ),
    };
    built.map_err(|e| NotifyError::Invalid(format!("cannot build the email: {e}")))
}

fn header_name(name: &str) -> Result<HeaderName, NotifyError> {
    HeaderName::new_from_ascii(name.to_string())
        .map_err(|_| NotifyError::Invalid(format!("`{name}` is not a valid header name")))
}

/// A header a caller may add (the model's rule, checked again at send).
pub fn check_header(name: &str, value: &str) -> Result<(), NotifyError> {
    Ok(crate::outbox::check_header(name, value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_carries_ids_threading_and_both_bodies() {
        let from: Mailbox = "Support <support@example.com>".parse().unwrap();
        let headers = vec![
            ("Auto-Submitted".to_string(), "auto-replied".to_string()),
            ("In-Reply-To".to_string(), "<a@client.test>".to_string()),
            (
                "References".to_string(),
                "<root@client.test> <a@client.test>".to_string(),
            ),
            ("X-Auto-Response-Suppress".to_string(), "All".to_string()),
        ];
        let to = vec!["ann@client.test".to_string()];
        let m = build_message(
            &from,
            EmailParts {
                to: &to,
                subject: "We got your request",
                text: "plain body",
                html: Some("<p>html body</p>"),
                headers: &headers,
                message_id: "<id1@example.com>",
            },
        )
        .unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        for needle in [
            "Message-ID: <id1@example.com>",
            "Auto-Submitted: auto-replied",
            "In-Reply-To: <a@client.test>",
            "References: <root@client.test> <a@client.test>",
            "X-Auto-Response-Suppress: All",
            "multipart/alternative",
            "plain body",
            "<p>html body</p>",
        ] {
            assert!(raw.contains(needle), "missing {needle:?} in\n{raw}");
        }
    }
}
