//! TLS to the mail servers, against real servers on loopback that present a
//! certificate from a private CA this test makes (rcgen): Dovecot for IMAP
//! (implicit TLS and STARTTLS) and aiosmtpd for SMTP (STARTTLS and implicit
//! TLS). With `ca_file` naming the CA, mail flows; without it, or when the
//! certificate names another host, the handshake is refused and the error
//! says which of the two went wrong.
//!
//! The certificate lists only the IP address 127.0.0.1, so connecting to
//! `localhost` (the same server) is connecting to a host it is not valid for.

use crate::support;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keepword::config::{MailboxSettings, Secret, SmtpSettings, Tls};
use keepword::imap::{
    FetchedMail, FolderCheckpoint, FolderKind, ImapError, ImapMetrics, MailSink, MailboxPoller,
    PollerTiming,
};
use keepword::notify::smtp::EmailParts;
use keepword::notify::{NotifyError, SmtpSender};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use support::SmtpServer;
use support::dovecot::{Dovecot, ServerTls};

const USER: &str = "support@test.local";
const PASSWORD: &str = "supportpw";

/// A private CA and a server certificate it signed for 127.0.0.1 only.
struct Pki {
    /// Holds `ca.pem`, the file `ca_file` points at.
    dir: tempfile::TempDir,
    server_cert_pem: String,
    server_key_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "keepword test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        Pki {
            dir,
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn server_tls(&self) -> ServerTls<'_> {
        ServerTls {
            cert_pem: &self.server_cert_pem,
            key_pem: &self.server_key_pem,
        }
    }
}

// ---------------------------------------------------------------------- IMAP

/// Keeps what the poller hands over; one folder, no de-duplication needed.
#[derive(Default)]
struct Sink {
    mails: Mutex<Vec<FetchedMail>>,
    checkpoint: Mutex<Option<FolderCheckpoint>>,
}

impl MailSink for Sink {
    fn checkpoint(&self, _: &str, _: &str) -> Result<Option<FolderCheckpoint>, String> {
        Ok(*self.checkpoint.lock().unwrap())
    }

    fn ingest(
        &self,
        _: &str,
        _: &str,
        _: FolderKind,
        uidvalidity: u32,
        batch: Vec<FetchedMail>,
    ) -> Result<(), String> {
        let last_uid = batch.iter().map(|m| m.uid).max().unwrap_or(0);
        *self.checkpoint.lock().unwrap() = Some(FolderCheckpoint {
            uidvalidity,
            last_uid,
        });
        self.mails.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn mailbox(host: &str, port: u16, tls: Tls, ca_file: Option<PathBuf>) -> MailboxSettings {
    MailboxSettings {
        name: "support".into(),
        channel: "email".into(),
        host: host.into(),
        port,
        tls,
        username: USER.into(),
        password: Secret::new(PASSWORD),
        password_file: None,
        inbox: "INBOX".into(),
        sent: None,
        team_addresses: vec!["@test.local".into()],
        ca_file,
        auth: Default::default(),
        oauth: None,
        sasl: None,
    }
}

fn timing() -> PollerTiming {
    PollerTiming {
        command_timeout: Duration::from_secs(20),
        ..PollerTiming::default()
    }
}

const MAIL: &[u8] = b"From: Client <client@example.com>\r\nTo: support@test.local\r\n\
Subject: Over TLS\r\nMessage-ID: <tls-1@example.com>\r\n\
Date: Mon, 1 Dec 2025 10:00:00 +0000\r\n\r\nHello over an encrypted connection.\r\n";

/// Logins Dovecot logged as made over TLS. The harness appends over
/// plaintext, so only the poller's logins count here.
fn tls_logins(server: &Dovecot) -> usize {
    server
        .log()
        .lines()
        .filter(|l| l.contains("Login: user=<") && l.contains(", TLS"))
        .count()
}

async fn ingests_over(tls: Tls) {
    let pki = Pki::new();
    let server = Dovecot::start_tls(&[(USER, PASSWORD)], pki.server_tls());
    server.append(USER, PASSWORD, "INBOX", MAIL);
    let port = match tls {
        Tls::Tls => server.imaps_port.unwrap(),
        _ => server.port,
    };
    let sink = Arc::new(Sink::default());
    let mut poller = MailboxPoller::new(
        mailbox("127.0.0.1", port, tls, Some(pki.ca_file())),
        sink.clone(),
        ImapMetrics::new(),
    )
    .with_timing(timing());

    let report = poller
        .poll_once()
        .await
        .unwrap_or_else(|e| panic!("poll over {tls:?} failed: {e}\n{}", server.log()));
    assert_eq!(report.fetched(), 1);
    let mails = sink.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].raw, MAIL);
    assert_eq!(
        tls_logins(&server),
        1,
        "Dovecot did not log a TLS login:\n{}",
        server.log()
    );
}

#[tokio::test]
async fn imap_over_implicit_tls_with_a_private_ca_ingests_mail() {
    ingests_over(Tls::Tls).await;
}

#[tokio::test]
async fn imap_over_starttls_with_a_private_ca_ingests_mail() {
    ingests_over(Tls::Starttls).await;
}

#[tokio::test]
async fn imap_refuses_an_unknown_ca_and_a_certificate_for_another_host() {
    let pki = Pki::new();
    let server = Dovecot::start_tls(&[(USER, PASSWORD)], pki.server_tls());
    server.append(USER, PASSWORD, "INBOX", MAIL);
    let imaps = server.imaps_port.unwrap();
    let cases = [
        // No ca_file: only the public roots, which never signed this CA.
        (
            mailbox("127.0.0.1", imaps, Tls::Tls, None),
            ["UnknownIssuer", "not signed by a trusted CA", "ca_file"],
        ),
        (
            mailbox("127.0.0.1", server.port, Tls::Starttls, None),
            ["UnknownIssuer", "not signed by a trusted CA", "ca_file"],
        ),
        // The right CA, but the certificate lists 127.0.0.1, not localhost.
        (
            mailbox("localhost", imaps, Tls::Tls, Some(pki.ca_file())),
            [
                "NotValidForName",
                "not valid for the host name `localhost`",
                "127.0.0.1",
            ],
        ),
        (
            mailbox("localhost", server.port, Tls::Starttls, Some(pki.ca_file())),
            [
                "NotValidForName",
                "not valid for the host name `localhost`",
                "127.0.0.1",
            ],
        ),
    ];
    for (settings, expected) in cases {
        let what = format!("{} {:?} to {}", settings.host, settings.tls, settings.port);
        let metrics = ImapMetrics::new();
        let sink = Arc::new(Sink::default());
        let mut poller =
            MailboxPoller::new(settings, sink.clone(), metrics.clone()).with_timing(timing());
        let err = poller.poll_once().await.expect_err(&what);
        assert!(
            matches!(err, ImapError::Tls { .. }),
            "{what}: not a TLS error: {err:?}"
        );
        let text = err.to_string();
        eprintln!("{what}: {text}");
        for needle in expected {
            assert!(
                text.contains(needle),
                "{what}: {needle:?} missing in {text}"
            );
        }
        assert_eq!(metrics.errors.with_label_values(&["support"]).get(), 1);
        assert!(sink.mails.lock().unwrap().is_empty());
    }
    // Refused before LOGIN: the password never crossed the connection.
    assert_eq!(tls_logins(&server), 0, "{}", server.log());
}

// ---------------------------------------------------------------------- SMTP

pub(crate) fn smtp(host: &str, port: u16, tls: Tls, ca_file: Option<PathBuf>) -> SmtpSettings {
    SmtpSettings {
        host: host.into(),
        port,
        tls,
        username: String::new(),
        password: Secret::default(),
        password_file: None,
        from: "Northwind Support <support@example.com>".parse().unwrap(),
        ca_file,
        auth: Default::default(),
        oauth: None,
    }
}

async fn send(settings: &SmtpSettings, n: usize) -> Result<(), NotifyError> {
    let sender = SmtpSender::new(settings).expect("valid SMTP settings");
    let to = vec!["Ann Client <ann@client.test>".to_string()];
    let subject = format!("Encrypted acknowledgement {n}");
    let message_id = format!("<tls-{n}@example.com>");
    let send = sender.send(EmailParts {
        to: &to,
        subject: &subject,
        text: "We received your request.",
        html: None,
        headers: &[],
        message_id: &message_id,
    });
    tokio::time::timeout(Duration::from_secs(30), send)
        .await
        .expect("the SMTP attempt hung")
}

async fn delivers_over(mode: &str, tls: Tls) {
    let pki = Pki::new();
    let server = SmtpServer::start_tls(mode, &pki.server_cert_pem, &pki.server_key_pem);
    send(&smtp("127.0.0.1", server.port, tls, Some(pki.ca_file())), 1)
        .await
        .unwrap_or_else(|e| panic!("sending over {mode} failed: {e}"));
    let received = server.received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.rcpt_tos, ["ann@client.test"]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Encrypted acknowledgement 1")
    );
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some("<tls-1@example.com>")
    );
    // rustls offers 1.2 and 1.3; Python's OpenSSL picks 1.3.
    assert_eq!(mail.tls.as_deref(), Some("TLSv1.3"), "{mode}: {mail:?}");
}

#[tokio::test]
async fn smtp_over_starttls_with_a_private_ca_delivers() {
    delivers_over("starttls", Tls::Starttls).await;
}

#[tokio::test]
async fn smtp_over_implicit_tls_with_a_private_ca_delivers() {
    delivers_over("tls", Tls::Tls).await;
}

#[tokio::test]
async fn smtp_refuses_an_unknown_ca_and_a_certificate_for_another_host() {
    let pki = Pki::new();
    let starttls = SmtpServer::start_tls("starttls", &pki.server_cert_pem, &pki.server_key_pem);
    let implicit = SmtpServer::start_tls("tls", &pki.server_cert_pem, &pki.server_key_pem);
    let unknown = [
        "UnknownIssuer",
        "not signed by a trusted CA",
        "`smtp.ca_file`",
    ];
    let wrong_host = [
        "NotValidForName",
        "not valid for the host name `localhost`",
        "127.0.0.1",
    ];
    let cases = [
        (
            smtp("127.0.0.1", starttls.port, Tls::Starttls, None),
            unknown,
        ),
        (smtp("127.0.0.1", implicit.port, Tls::Tls, None), unknown),
        (
            smtp(
                "localhost",
                starttls.port,
                Tls::Starttls,
                Some(pki.ca_file()),
            ),
            wrong_host,
        ),
        (
            smtp("localhost", implicit.port, Tls::Tls, Some(pki.ca_file())),
            wrong_host,
        ),
    ];
    for (n, (settings, expected)) in cases.into_iter().enumerate() {
        let what = format!("{} {:?} to {}", settings.host, settings.tls, settings.port);
        let err = send(&settings, n).await.expect_err(&what);
        let text = err.to_string();
        eprintln!("{what}: {text}");
        assert!(
            matches!(err, NotifyError::Smtp(_)),
            "{what}: a TLS failure must stay retryable: {err:?}"
        );
        for needle in expected {
            assert!(
                text.contains(needle),
                "{what}: {needle:?} missing in {text}"
            );
        }
    }
    assert!(starttls.received().is_empty());
    assert!(implicit.received().is_empty());
}
