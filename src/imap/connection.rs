//! One IMAP connection: TCP, implicit TLS or STARTTLS, the greeting, the
//! login, and every command bounded in time ([`timed`]).

use crate::config::{MailboxSettings, Tls};
use crate::oauth::sasl::OAuthAuthenticator;
use crate::oauth::{AuthMethod, OAuthError};
use async_imap::types::Capability;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::*;

impl MailboxPoller {
    pub(super) async fn connect(&mut self) -> Result<(), ImapError> {
        let started = Instant::now();
        self.session_until = None;
        let s = &self.settings;
        let limit = self.timing.command_timeout;
        let too_slow = |what| ImapError::Timeout {
            what,
            secs: limit.as_secs(),
        };
        let tcp = tokio::time::timeout(limit, TcpStream::connect((s.host.as_str(), s.port)))
            .await
            .map_err(|_| too_slow("connect"))?
            .map_err(|source| ImapError::Connect {
                host: s.host.clone(),
                port: s.port,
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let client = match s.tls {
            Tls::None => {
                let mut client = async_imap::Client::new(Conn::Plain(tcp));
                self.greeting(&mut client).await?;
                client
            }
            Tls::Tls => {
                let tls = tokio::time::timeout(limit, tls_handshake(s, tcp))
                    .await
                    .map_err(|_| too_slow("TLS handshake"))??;
                let mut client = async_imap::Client::new(Conn::Tls(Box::new(tls)));
                self.greeting(&mut client).await?;
                client
            }
            Tls::Starttls => {
                let mut plain = async_imap::Client::new(tcp);
                self.greeting(&mut plain).await?;
                timed(
                    limit,
                    "STARTTLS",
                    plain.run_command_and_check_ok("STARTTLS", None),
                )
                .await?;
                // No greeting after STARTTLS: the next bytes are the handshake.
                let tcp = plain.into_inner();
                let tls = tokio::time::timeout(limit, tls_handshake(s, tcp))
                    .await
                    .map_err(|_| too_slow("TLS handshake"))??;
                async_imap::Client::new(Conn::Tls(Box::new(tls)))
            }
        };
        let mut session = match self.settings.auth {
            AuthMethod::Password => {
                let s = &self.settings;
                let login =
                    tokio::time::timeout(limit, client.login(&s.username, s.password.expose()))
                        .await
                        .map_err(|_| too_slow("LOGIN"))?;
                login.map_err(|(e, _)| ImapError::Login {
                    username: s.username.clone(),
                    reason: e.to_string(),
                })?
            }
            AuthMethod::Oauth2 => self.authenticate(client).await?,
        };
        let caps = timed(limit, "CAPABILITY", session.capabilities()).await?;
        self.idle_supported = caps.has(&Capability::Atom("IDLE".into()));
        self.session = Some(session);
        self.selected = None;
        if let Some(h) = &self.health {
            h.connected(&self.settings.name);
        }
        tracing::info!(
            mailbox = %self.settings.name,
            idle = self.idle_supported,
            duration_ms = started.elapsed().as_millis() as u64,
            "IMAP connected"
        );
        Ok(())
    }

    /// `AUTHENTICATE` with an access token; a refused token is dropped and
    /// a fresh one tried once, on the same connection.
    async fn authenticate(
        &mut self,
        mut client: async_imap::Client<Conn>,
    ) -> Result<Session, ImapError> {
        let limit = self.timing.command_timeout;
        let s = &self.settings;
        let credential = s.oauth.clone().unwrap_or_default();
        let tokens = self
            .tokens
            .clone()
            .ok_or_else(|| ImapError::OAuth(OAuthError::Unknown(credential.clone())))?;
        let mechanism = s.sasl.unwrap_or_default();
        let user = s.username.clone();
        let mut attempt = 0;
        loop {
            let token = tokens.token(&credential, &user).await?;
            let authenticator =
                OAuthAuthenticator::new(mechanism, &user, token.secret.expose(), &s.host, s.port);
            let refusal = authenticator.refusal();
            let answer = tokio::time::timeout(
                limit,
                client.authenticate(mechanism.as_str(), authenticator),
            )
            .await
            .map_err(|_| ImapError::Timeout {
                what: "AUTHENTICATE",
                secs: limit.as_secs(),
            })?;
            match answer {
                Ok(session) => {
                    self.session_until = Some(token.expires_at);
                    return Ok(session);
                }
                Err((e, back)) => {
                    let refused = matches!(e, async_imap::error::Error::No(_));
                    let said = refusal.lock().unwrap_or_else(|e| e.into_inner()).take();
                    let reason = match said {
                        Some(json) => format!("{e} (server said {json})"),
                        None => e.to_string(),
                    };
                    if refused {
                        tokens.refused(&credential, &user, &token).await;
                    }
                    if refused && attempt == 0 {
                        tracing::warn!(mailbox = %s.name, mechanism = mechanism.as_str(), reason = %reason, "IMAP refused the OAuth token; taking a fresh one");
                        attempt += 1;
                        client = back;
                        continue;
                    }
                    return Err(ImapError::Login {
                        username: user,
                        reason,
                    });
                }
            }
        }
    }

    async fn greeting<T>(&self, client: &mut async_imap::Client<T>) -> Result<(), ImapError>
    where
        T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
    {
        let greeting = tokio::time::timeout(self.timing.command_timeout, client.read_response())
            .await
            .map_err(|_| ImapError::Timeout {
                what: "greeting",
                secs: self.timing.command_timeout.as_secs(),
            })?;
        match greeting {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ImapError::Protocol {
                what: "greeting",
                source: async_imap::error::Error::ConnectionLost,
            }),
            Err(e) => Err(ImapError::Protocol {
                what: "greeting",
                source: e.into(),
            }),
        }
    }

    pub(super) fn session(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("poll_all connects before using the session")
    }
}

/// Runs one IMAP command under `limit` (async-imap has no timeout of its own,
/// async-imap#63): a stalled server ends the connection, never the poller. A
/// free function, not a method, so a command may borrow the session mutably
/// while it runs.
pub(super) async fn timed<F, T>(limit: Duration, what: &'static str, fut: F) -> Result<T, ImapError>
where
    F: Future<Output = Result<T, async_imap::error::Error>>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(|source| ImapError::Protocol { what, source }),
        Err(_) => Err(ImapError::Timeout {
            what,
            secs: limit.as_secs(),
        }),
    }
}

/// Verifies the server against the public web roots plus the mailbox's
/// `ca_file`, for the name in `host` (a DNS name or an IP address, which the
/// certificate must then list as an IP SAN). The CA file is read on every
/// connection, so a renewed private CA is picked up without a restart.
async fn tls_handshake(
    s: &MailboxSettings,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ImapError> {
    use tokio_rustls::rustls;
    let host = s.host.as_str();
    let err = |reason: String| ImapError::Tls {
        host: host.to_string(),
        reason,
    };
    let roots = crate::tls::root_store(s.ca_file.as_deref())
        .map_err(|e| err(format!("mailbox `{}` ca_file: {e}", s.name)))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| err(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| err(format!("invalid server name: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            err(crate::tls::describe_error(&e, host, "mailboxes[].ca_file")
                .unwrap_or_else(|| e.to_string()))
        })
}

/// Plain TCP or TLS behind one type, because async-imap's session is
/// generic over its stream and the poller holds one session type.
#[derive(Debug)]
pub(super) enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
